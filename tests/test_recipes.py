"""Every shipped recipe parses, names real registries, and its Hub sources carry their real column names."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyglot_vision.configs import load_recipe
from polyglot_vision.labels import LabelSpace

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*/*.yaml"))
RECIPES = [p for p in RECIPES if p.parent.name not in ("labels", "accelerate_configs")]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_parses(path, monkeypatch):
    monkeypatch.chdir(REPO)
    recipe = load_recipe(path)
    space = LabelSpace.from_yaml(recipe.data.label_space)
    assert space.ids and recipe.data.sources
    for source in recipe.data.sources:
        assert source.script and source.language


def test_mnist_mix_uses_pretrained_checkpoints_and_keeps_test_splits(monkeypatch):
    monkeypatch.chdir(REPO)
    vit = load_recipe(REPO / "recipes" / "mnist-mix" / "vit.yaml")
    convnext = load_recipe(REPO / "recipes" / "mnist-mix" / "convnext.yaml")
    assert vit.model.model_name_or_path == "google/vit-base-patch16-224-in21k"
    assert convnext.model.model_name_or_path == "facebook/convnext-tiny-224"
    paths = {s.path: s for s in vit.data.sources}
    assert set(paths) >= {"ylecun/mnist", "MagedSaeed/MADBase", "ernestchu/emnist-digits", "DatarrX/myanmar-numeral-glyphs"}
    assert paths["ylecun/mnist"].own_splits == {"train": "train", "test": "test"}
    assert paths["DatarrX/myanmar-numeral-glyphs"].script == "Mymr"
