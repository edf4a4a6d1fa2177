"""`streaming: true`: the same mapping as `prepare`, sources mixed by weight, and training with max_steps."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

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
    assert rows[0]["image"].size == (32, 32)


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


@pytest.mark.parametrize(
    "key, value",
    [
        ("sampler", "language"),
        ("label_granularity", "concept_language"),
        ("early_stopping_patience", 2),
        ("eval_strategy", "epoch"),
    ],
)
def test_streaming_refuses_each_control_that_needs_the_whole_split(objects_dir, tmp_path, key, value):
    with pytest.raises(UserError, match=f"`{key}: {value}` does not work with `streaming: true`"):
        recipe_from_dict(objects_recipe(objects_dir, tmp_path / "model", streaming=True, **{key: value}))


def streamed_trainer(objects_dir, tmp_path, **overrides):
    from polyglot_vision.modeling import build_model
    from polyglot_vision.training import build_trainer
    from polyglot_vision.training.run import stream_data

    recipe = recipe_from_dict(objects_recipe(objects_dir, tmp_path / "model", streaming=True, **overrides))
    label_space, processor, splits = stream_data(recipe)
    model = build_model(recipe.model, label_space)
    return model, build_trainer(recipe, model, processor, splits["train"])


def test_a_streamed_linear_probe_trains_the_head_only(objects_dir, tmp_path):
    model, trainer = streamed_trainer(objects_dir, tmp_path, max_steps=3, freeze_backbone=True, learning_rate=0.05)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.train()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith("classifier") for name in changed)


def test_streamed_training_gives_each_block_its_decayed_learning_rate(objects_dir, tmp_path):
    _, trainer = streamed_trainer(objects_dir, tmp_path, max_steps=1, layer_decay=0.5, learning_rate=0.01)
    trainer.create_optimizer()
    rates = sorted({group["lr"] for group in trainer.optimizer.param_groups})
    assert rates[-1] == pytest.approx(0.01) and rates[0] < rates[-1] and len(rates) >= 3
    assert all(b / a == pytest.approx(2.0) for a, b in zip(rates, rates[1:]))


def test_a_stream_says_that_its_images_do_not_vote_and_how_to_let_them(objects_dir, tmp_path, caplog):
    recipe = recipe_from_dict(objects_recipe(objects_dir, tmp_path / "model", streaming=True))
    with caplog.at_level("INFO", logger="polyglot_vision.data.streaming"):
        streaming_splits(recipe.data, LabelSpace.from_yaml(recipe.data.label_space))
    assert "images do not vote" in caplog.text and "polyglot-vision align RECIPE" in caplog.text


# ---- labels that first appear late in a stream ------------------------------------------------------------

# The first labels of the stream: 10,000 rows of five digits; the other five (and a stranger) come after them.
HEAD_ROWS = 10_000


def late_labels_recipe(tmp_path, labels, class_names=None, hub_id=None, **overrides):
    """A recipe streaming a Hub-layout parquet repository written in tmp_path/late-labels (by `hub_id`, if given)."""
    from hub_mirrors import parquet_dataset

    from conftest import LABELS, TINY_MODEL

    repo = parquet_dataset(tmp_path / "late-labels", labels, class_names)
    data = {
        "model_config": dict(TINY_MODEL),
        "label_space": str(LABELS / "digits.yaml"),
        "sources": [{"name": "scans", "path": hub_id or str(repo / "data"), "language": "en"}],
        "output_dir": str(tmp_path / "model"),
        "streaming": True,
        "max_steps": 2,
        "test_fraction": 0.2,
        "validation_fraction": 0.0,
        **overrides,
    }
    return recipe_from_dict(data).data


def align_stream(data_args) -> dict:
    """The streamed splits: every label is read and aligned when they are made, before any image is read."""
    return streaming_splits(data_args, LabelSpace.from_yaml(data_args.label_space))


@pytest.mark.parametrize(
    "late, class_names",
    [
        (["five", "six", "seven", "eight", "nine"], None),  # words of the source's language
        ([5, 6, 7, 8, 9], [str(d) for d in range(10)]),  # a ClassLabel
        ([5, 6, 7, 8, 9], None),  # integers: here the images are streamed too
    ],
    ids=["words", "class-label", "integers"],
)
def test_labels_first_met_after_ten_thousand_rows_of_a_hub_parquet_stream_are_all_aligned(
    tmp_path, caplog, late, class_names
):
    head = [0, 1, 2, 3, 4] if isinstance(late[0], int) else ["zero", "one", "two", "three", "four"]
    labels = [head[i % 5] for i in range(HEAD_ROWS)] + [label for label in late for _ in range(3)]
    with caplog.at_level("INFO", logger="polyglot_vision"):
        splits = align_stream(late_labels_recipe(tmp_path, labels, class_names, unmapped_labels="error"))
    assert "labels read from all 10,015 labelled rows of the stream: 10 labels, 10 aligned" in caplog.text
    if class_names is None and isinstance(late[0], int):
        names = splits["train"].features["label"].names
        streamed = Counter(names[row["label"]] for split in ("train", "test") for row in splits[split])
        assert streamed == Counter({**{str(d): 2000 for d in range(5)}, **{str(d): 3 for d in range(5, 10)}})


def test_a_stranger_first_met_late_in_a_stream_is_refused_before_training_or_counted_when_dropped(tmp_path, caplog):
    labels = [i % 10 for i in range(HEAD_ROWS)] + [11] * 7
    with pytest.raises(UserError, match="11 \\(source 'scans', unmapped"):
        align_stream(late_labels_recipe(tmp_path / "a", labels, unmapped_labels="error"))
    with caplog.at_level("INFO", logger="polyglot_vision"):
        align_stream(late_labels_recipe(tmp_path / "b", labels, unmapped_labels="drop"))
    assert "10,007 labelled rows of the stream: 11 labels, 10 aligned; 1 left out, 7 rows" in caplog.text
    assert "11 (7 rows)" in caplog.text


def test_a_hub_dataset_in_parquet_is_read_by_its_id_and_its_label_pass_asks_for_the_label_column_only(
    tmp_path, monkeypatch, caplog
):
    """The Hub id goes through the same `load_dataset` call as on the Hub; here it resolves to a folder laid out
    as the repository is (data/train-00000-of-00001.parquet)."""
    import datasets

    import polyglot_vision.data.sources as sources

    asked = []

    def from_the_mirror(path, *args, **kwargs):
        asked.append(kwargs.get("columns"))
        return datasets.load_dataset(
            str(tmp_path / "late-labels") if path == "someone/late-labels" else path, *args, **kwargs
        )

    monkeypatch.setattr(sources, "load_dataset", from_the_mirror)
    labels = [i % 5 for i in range(HEAD_ROWS)] + [9, 9]
    data_args = late_labels_recipe(tmp_path, labels, hub_id="someone/late-labels", unmapped_labels="error")
    with caplog.at_level("INFO", logger="polyglot_vision"):
        align_stream(data_args)
    assert asked == [None, ["label"]]  # the stream itself, then the label column alone
    assert "labels read from all 10,002 labelled rows of the stream: 6 labels, 6 aligned" in caplog.text
