"""`streaming: true`: the same mapping as `prepare`, sources mixed by weight, and training with max_steps."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from polyglot_vision.data import streaming_splits, unify
from polyglot_vision.errors import UserError
from polyglot_vision.labels import LabelSpace
from polyglot_vision.training import recipe_from_dict

from conftest import objects_recipe


def test_streamed_sources_map_like_prepared_ones(objects_dir, tmp_path):
    recipe = recipe_from_dict(
        objects_recipe(objects_dir, tmp_path / "model", streaming=True, test_fraction=0.2, validation_fraction=0.0)
    )
    splits = streaming_splits(recipe.data, LabelSpace.from_yaml(recipe.data.label_space))
    rows = [row for split in ("train", "test") for row in splits[split]]
    assert len(rows) == 120  # every image once, none lost, none twice
    assert not list(splits["validation"])
    names = splits["train"].features["label"].names
    streamed = Counter((row["source"], names[row["label"]]) for row in rows)

    prepared = unify(
        recipe_from_dict(objects_recipe(objects_dir, tmp_path / "m2")).data,
        LabelSpace.from_yaml(recipe.data.label_space),
    )
    expected = Counter()
    for part in prepared.dataset.values():
        expected.update((s, names[label]) for s, label in zip(part["source"], part["label"]))
    assert streamed == expected
    assert {row["language"] for row in rows} == {"en", "fr", "de"}
    assert rows[0]["image"].size == (16, 16)


def test_streaming_needs_max_steps(objects_dir, tmp_path):
    with pytest.raises(UserError, match="max_steps"):
        recipe_from_dict(objects_recipe(objects_dir, tmp_path / "model", streaming=True, max_steps=-1))


def test_training_accepts_a_stream(objects_dir, tmp_path):
    from polyglot_vision.training import train

    sources = objects_recipe(objects_dir, tmp_path)["sources"]
    sources[0]["weight"] = 3.0
    recipe = recipe_from_dict(
        objects_recipe(objects_dir, tmp_path / "model", streaming=True, max_steps=3, sources=sources, logging_steps=1)
    )
    metrics = train(recipe)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] > 0
    state = json.loads((tmp_path / "model" / "train_results.json").read_text())
    assert state["epoch"] >= 0 and (tmp_path / "model" / "model.safetensors").is_file()


def test_streamed_duplicates_are_dropped_and_stay_in_one_split(objects_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(objects_dir, data)
    shutil.copy(data / "en" / "cats" / "0000.png", data / "en" / "cats" / "again.png")
    shutil.copy(data / "en" / "bird" / "0001.png", data / "fr" / "oiseau" / "from-en.png")
    sources = objects_recipe(objects_dir, tmp_path)["sources"]
    for source in sources:
        source["path"] = str(data / source["language"])
    recipe = recipe_from_dict(objects_recipe(objects_dir, tmp_path / "model", streaming=True, sources=sources))
    splits = streaming_splits(recipe.data, LabelSpace.from_yaml(recipe.data.label_space))
    rows = [row["image"].tobytes() for split in ("train", "validation", "test") for row in splits[split]]
    assert len(rows) == 120 and len(set(rows)) == 120
    # A second pass (a new epoch) sees the same images again: the memory of seen copies starts afresh.
    assert sum(1 for _ in splits["train"]) == sum(1 for _ in splits["train"]) > 0
