"""Unification: every source in one concept space, split by (concept, language)."""

from __future__ import annotations

from collections import Counter

from polyglot_vision.data import build_dataset
from polyglot_vision.labels import LabelSpace
from polyglot_vision.training import load_recipe


def test_sources_in_many_languages_become_one_dataset(write_recipe):
    recipe = load_recipe(write_recipe())
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    dataset = build_dataset(recipe.data, label_space)

    assert set(dataset) == {"train", "validation", "test"}
    for split in dataset.values():
        assert split.column_names == ["image", "label", "language", "script", "source"]
        assert split.features["label"].names == [str(i) for i in range(10)]

    # Every image keeps its concept: a French "sept" and a Thai "เจ็ด" are both concept "7".
    train = dataset["train"]
    names = train.features["label"].names
    by_source = Counter((s, names[c]) for s, c in zip(train["source"], train["label"]))
    for source in ("latin-fr", "thai", "han", "arabic", "persian", "mnist"):
        assert {c for s, c in by_source if s == source} == set(names), source

    scripts = dict(zip(train["source"], train["script"]))
    assert scripts["persian"] == "Arab" and scripts["han"] == "Hani" and scripts["devanagari"] == "Deva"


def test_split_is_stratified_and_disjoint(write_recipe):
    recipe = load_recipe(write_recipe(test_fraction=0.25, validation_fraction=0.25))
    dataset = build_dataset(recipe.data, LabelSpace.from_yaml(recipe.data.label_space))
    total = sum(len(s) for s in dataset.values())
    # 14 rendered sources x 10 digits x 4 images + 200 MNIST images
    assert total == 14 * 10 * 4 + 200
    for split in ("validation", "test"):
        strata = Counter(zip(dataset[split]["label"], dataset[split]["language"]))
        # each (concept, language) of a rendered source has 4 images: one in test, one in validation
        for language in ("fr", "th", "zh", "fa"):
            assert all(strata[(c, language)] == 1 for c in range(10)), (split, language)
