"""Every shipped recipe parses, names real registries, and its Hub sources carry their real column names."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyglot_vision.labels import LabelSpace
from polyglot_vision.training import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*/*.yaml"))
RECIPES = [p for p in RECIPES if p.parent.name not in ("labels", "accelerate_configs")]
ADAPTATION = REPO / "recipes" / "polydigits" / "adapt.yaml"  # a recipe plus adaptation keys
RECIPES.remove(ADAPTATION)


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
    assert set(paths) >= {
        "ylecun/mnist",
        "MagedSaeed/MADBase",
        "ernestchu/emnist-digits",
        "DatarrX/myanmar-numeral-glyphs",
    }
    assert paths["ylecun/mnist"].own_splits == {"train": "train", "test": "test"}
    assert paths["DatarrX/myanmar-numeral-glyphs"].script == "Mymr"


def test_adaptation_recipe_holds_its_script_out_of_the_base_model(monkeypatch):
    from polyglot_vision.experiments.adaptation import load_adaptation

    monkeypatch.chdir(REPO)
    settings, base, recipe, _ = load_adaptation(ADAPTATION)
    assert settings["shots"] == [1, 5, 20, 100]
    assert [s.script for s in recipe.data.sources] == ["Thai"]
    assert "Thai" not in {s.script for s in base.data.sources} and len(base.data.sources) == 15  # and strangers
    assert recipe.model.model_name_or_path == base.training.output_dir
