"""Messy data and machines, after the data is read: what the evaluation could not measure, resumes that tell,
full disks and read-only folders, streams held to the same policies, counts that agree, messages that fit.

Each case asserts what a user would check: the console, metrics.json, the model card, the exit status and one line
naming the culprit, and that nothing the user had is rewritten or left half-written.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from polyglot_vision.cli import main
from polyglot_vision.data import streaming_splits
from polyglot_vision.errors import UserError
from polyglot_vision.labels import LabelSpace

from conftest import LABELS, TINY_MODEL, fails, snapshot, write_yaml


def hidden_siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}"))


def draw(path: Path, seed: int) -> Path:
    """A distinct 16-pixel noise image: every seed gives other bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def class_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """{class folder: images}: a folder of class sub-folders, distinct images throughout."""
    for i, (name, n) in enumerate(per_class.items()):
        for j in range(n):
            draw(root / name / f"{j:03d}.png", seed * 10_000 + i * 100 + j)
    return root


def recipe(tmp_path: Path, sources: list[dict], name: str = "r.yaml", **overrides) -> Path:
    data = {
        "model_config": dict(TINY_MODEL),
        "label_space": str(LABELS / "digits.yaml"),
        "sources": sources,
        "output_dir": str(tmp_path / "model"),
        "validation_fraction": 0.25,
        "test_fraction": 0.25,
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "save_strategy": "no",
        "eval_strategy": "no",
        "disable_tqdm": True,
        **overrides,
    }
    return write_yaml(tmp_path / name, data)


@pytest.fixture
def lopsided(tmp_path):
    """Source `en`: digits 0 and 1 with 8 images each, digits 2-6 with one image each; source `de`: copies of it."""
    en = class_folder(tmp_path / "en", {"0": 8, "1": 8, **{str(d): 1 for d in range(2, 7)}})
    shutil.copytree(en, tmp_path / "de")
    sources = [
        {"name": "en-photos", "path": str(en), "language": "en"},
        {"name": "de-copies", "path": str(tmp_path / "de"), "language": "de"},
    ]
    return sources


# ---- evaluation names what it could not evaluate -------------------------------------------------------


def test_training_names_every_language_concept_and_source_without_a_test_image(lopsided, tmp_path, capsys):
    code = main(["train", str(recipe(tmp_path, lopsided))])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("not evaluated"))
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text(encoding="utf-8"))["test"]
    missing = metrics["not_evaluated"]
    # The copies' source and its language have no image left anywhere; 7-9 have none at all.
    assert missing["source"] == ["de-copies"] and missing["language"] == ["de"]
    assert {"7", "8", "9"} <= set(missing["concept"]) and not {"0", "1"} & set(missing["concept"])
    # A digit with a single image goes to train: it is named, never silently absent from the table.
    tested = {label for label, row in zip(metrics["labels"], metrics["confusion_matrix"]) if sum(row)}
    assert set(missing["concept"]) == set(metrics["labels"]) - tested
    assert "de-copies" in line and "language: de" in line
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert "not evaluated: " in card and "source de-copies" in card and "language de" in card


def test_calibration_on_a_handful_of_validation_images_is_skipped_and_said(lopsided, tmp_path, capsys):
    assert main(["train", str(recipe(tmp_path, lopsided[:1]))]) == 0
    out = capsys.readouterr().out
    assert "calibration skipped: only" in out and "fewer than 50" in out
    model = tmp_path / "model"
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    assert config.get("softmax_temperature", 1.0) == 1.0
    calibration = json.loads((model / "metrics.json").read_text(encoding="utf-8"))["test"]["calibration"]
    assert calibration["fitted"] is False and calibration["temperature"] == 1.0 and calibration["images"] < 50
    card = (model / "README.md").read_text(encoding="utf-8")
    assert "Scores are not calibrated" in card and "temperature is 1.0" in card


def test_evaluate_names_what_its_split_has_no_image_of(lopsided, tmp_path, capsys):
    assert main(["train", str(recipe(tmp_path, lopsided))]) == 0
    capsys.readouterr()
    out_dir = tmp_path / "report"
    argv = ["evaluate", tmp_path / "model", "--recipe", recipe(tmp_path, lopsided), "--output-dir", out_dir]
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert "not evaluated (no test image)" in out and "de-copies" in out
    report = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))["test"]["not_evaluated"]
    assert report["source"] == ["de-copies"] and "9" in report["concept"]
    assert "Not evaluated:" in (out_dir / "report.md").read_text(encoding="utf-8")


def test_a_well_covered_test_split_leaves_nothing_unevaluated(tmp_path):
    from datasets import Dataset

    from polyglot_vision.evaluation import format_not_evaluated, not_evaluated

    rows = {"label": [0, 1], "language": ["en", "fr"], "script": ["Latn", "Latn"], "source": ["a", "b"]}
    test = Dataset.from_dict(rows)
    train = Dataset.from_dict({k: v[:1] for k, v in rows.items()})
    assert not_evaluated(test, [train], ["0", "1"]) == {}
    assert format_not_evaluated({}) == ""
    many = not_evaluated(test.select([0]), [test], [str(i) for i in range(30)])
    assert many["language"] == ["fr"] and many["source"] == ["b"] and len(many["concept"]) == 29
    assert "and 17 more" in format_not_evaluated(many)  # a long list is counted, not spread over the console


# ---- resume that tells ----------------------------------------------------------------------------------


def whole_checkpoint(folder: Path, step: int) -> Path:
    """A checkpoint-N as the Trainer writes it: weights, optimizer, scheduler, state."""
    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(256)}, folder / "model.safetensors")
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    state = {"global_step": step, "max_steps": 40, "num_train_epochs": 1, "log_history": []}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    return folder


def cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGES = {
    "model.safetensors cut short": lambda c: cut_short(c / "model.safetensors"),
    "optimizer.pt cut short": lambda c: cut_short(c / "optimizer.pt"),
    "trainer_state.json cut short": lambda c: cut_short(c / "trainer_state.json"),
    "no optimizer state": lambda c: (c / "optimizer.pt").unlink(),
    "no model weights": lambda c: (c / "model.safetensors").unlink(),
    "no trainer_state.json": lambda c: (c / "trainer_state.json").unlink(),
}


def training_args(output_dir: Path, resume="auto"):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(output_dir), resume_from_checkpoint=resume, report_to="none", use_cpu=True)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_auto_names_a_damaged_last_checkpoint_and_resumes_from_the_whole_one_before(tmp_path, caplog, damage):
    from polyglot_vision.training.run import resolve_checkpoint

    whole_checkpoint(tmp_path / "checkpoint-10", 10)
    whole_checkpoint(tmp_path / "checkpoint-20", 20)
    DAMAGES[damage](whole_checkpoint(tmp_path / "checkpoint-30", 30))
    with caplog.at_level(logging.WARNING):
        assert resolve_checkpoint(training_args(tmp_path)) == str(tmp_path / "checkpoint-20")
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-30 is damaged" in warned and damage.split(" cut")[0].replace("no ", "") in warned


def test_auto_with_only_damaged_checkpoints_is_one_line_naming_them(tmp_path, capsys):
    from polyglot_vision.training.run import resolve_checkpoint

    cut_short(whole_checkpoint(tmp_path / "checkpoint-30", 30) / "model.safetensors")
    with pytest.raises(UserError, match="checkpoint-30: model.safetensors is cut short"):
        resolve_checkpoint(training_args(tmp_path))
    with pytest.raises(UserError, match="not a whole checkpoint"):
        resolve_checkpoint(training_args(tmp_path, str(tmp_path / "checkpoint-30")))
    assert resolve_checkpoint(training_args(tmp_path / "nothing-yet")) is None


@pytest.fixture
def finished(tmp_path, capsys):
    """A run trained to its last step with checkpoints and `resume_from_checkpoint: auto`; its recipe writer."""
    folder = class_folder(tmp_path / "photos", {str(d): 4 for d in range(3)})
    sources = [{"name": "photos", "path": str(folder), "language": "en"}]

    def write(**overrides) -> Path:
        settings = dict(save_strategy="steps", save_steps=2, max_steps=2, resume_from_checkpoint="auto")
        return recipe(tmp_path, sources, "finished.yaml", **{**settings, **overrides})

    assert main(["train", str(write())]) == 0
    capsys.readouterr()
    return write


def test_auto_on_a_finished_run_says_already_trained_and_rewrites_nothing(finished, tmp_path, capsys):
    model = tmp_path / "model"
    before = snapshot(model)
    assert main(["train", str(finished())]) == 0
    assert "already trained" in capsys.readouterr().out
    assert snapshot(model) == before


@pytest.mark.parametrize("change", [("--learning_rate", "0.3"), ("--seed", "7")])
def test_auto_on_a_finished_run_under_new_settings_is_refused(finished, tmp_path, capsys, change):
    model = tmp_path / "model"
    before = snapshot(model)
    line = fails(capsys, ["train", finished(), *change], str(model), change[0][2:], "new output_dir")
    assert "finished run" in line and "--overwrite_output_dir" in line
    assert snapshot(model) == before
    # Asked to, it trains anew there.
    assert main(["train", str(finished()), *change, "--overwrite_output_dir", "true"]) == 0
    assert snapshot(model) != before


def test_auto_with_more_steps_than_the_finished_run_goes_on(finished, tmp_path, capsys):
    assert main(["train", str(finished(max_steps=4))]) == 0
    state = json.loads((tmp_path / "model" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


# ---- machine faults are one line ------------------------------------------------------------------------


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_exporting_is_one_line_and_leaves_no_temporary_folder(
    lopsided, tmp_path, capsys, monkeypatch
):
    import polyglot_vision.training.run as run

    monkeypatch.setattr(run, "write_model_card", full_disk)
    line = fails(capsys, ["train", recipe(tmp_path, lopsided[:1])], str(tmp_path / "model"), "disk is full")
    assert "free space" in line
    assert not hidden_siblings(tmp_path / "model")


def test_a_full_disk_while_exporting_keeps_the_previous_model(lopsided, tmp_path, capsys, monkeypatch):
    import polyglot_vision.training.run as run

    assert main(["train", str(recipe(tmp_path, lopsided[:1]))]) == 0
    before = snapshot(tmp_path / "model")

    def rust_full_disk(*args, **kwargs):  # what safetensors raises: not an OSError
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(run.PolyglotTrainer, "save_model", rust_full_disk)
    fails(capsys, ["train", recipe(tmp_path, lopsided[:1])], str(tmp_path / "model"), "disk is full")
    assert snapshot(tmp_path / "model") == before
    assert not hidden_siblings(tmp_path / "model")


def test_a_full_disk_while_checkpointing_is_one_line(lopsided, tmp_path, capsys, monkeypatch):
    from polyglot_vision.training.trainer import PolyglotTrainer

    monkeypatch.setattr(PolyglotTrainer, "_save_checkpoint", full_disk)
    overrides = dict(save_strategy="steps", save_steps=1)
    fails(capsys, ["train", recipe(tmp_path, lopsided[:1], **overrides)], str(tmp_path / "model"), "disk is full")


@pytest.mark.parametrize(
    "fault, said",
    [(errno.EROFS, "read-only file system"), (errno.EACCES, "not writable"), (errno.ENOSPC, "disk is full")],
)
def test_prepare_into_a_read_only_or_full_place_is_one_line(lopsided, tmp_path, capsys, monkeypatch, fault, said):
    from datasets import DatasetDict

    def refuse(*args, **kwargs):
        raise OSError(fault, "refused", str(tmp_path / "ds" / "train"))

    monkeypatch.setattr(DatasetDict, "save_to_disk", refuse)
    fails(capsys, ["prepare", recipe(tmp_path, lopsided[:1]), "--output", tmp_path / "ds"], str(tmp_path / "ds"), said)
    assert not (tmp_path / "ds").exists() and not hidden_siblings(tmp_path / "ds")


def test_a_folder_that_cannot_be_created_is_one_line(lopsided, tmp_path, capsys, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    fails(capsys, ["prepare", recipe(tmp_path, lopsided[:1]), "--output", tmp_path / "ds"], "ds", "not writable")


def test_other_errors_pass_through_the_fault_handling(tmp_path):
    from polyglot_vision.outputs import machine_faults

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(OSError) as caught, machine_faults(tmp_path, cleanup=[scratch]):
        raise OSError(errno.EIO, "Input/output error")
    assert caught.value.errno == errno.EIO and not scratch.exists()
    with pytest.raises(ValueError), machine_faults(tmp_path):
        raise ValueError("a bug, not the machine")


# ---- streaming holds to the same policies ---------------------------------------------------------------


@pytest.fixture
def stream_recipe(tmp_path, monkeypatch):
    """A CSV manifest streamed: `write(rows, **overrides)` -> the recipe's data arguments.

    `rows` are (label, image kind) pairs: kind `ok` draws a distinct image, `corrupt` writes bytes that are no image.
    """
    from polyglot_vision.training import recipe_from_dict

    def write(rows: list[tuple[str, str]], **overrides):
        lines = ["file,digit"]
        for i, (label, kind) in enumerate(rows):
            path = tmp_path / "images" / f"{i:03d}.png"
            if kind == "ok":
                draw(path, 500 + i)
            else:
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
            lines.append(f"images/{path.name},{label}")
        (tmp_path / "stream.csv").write_text("\n".join(lines) + "\n")
        source = {
            "name": "scans",
            "path": str(tmp_path / "stream.csv"),
            "language": "en",
            "image_column": "file",
            "label_column": "digit",
        }
        data = {
            "model_config": dict(TINY_MODEL),
            "label_space": str(LABELS / "digits.yaml"),
            "sources": [source],
            "output_dir": str(tmp_path / "model"),
            "streaming": True,
            "max_steps": 2,
            "test_fraction": 0.2,
            "validation_fraction": 0.0,
            **overrides,
        }
        return recipe_from_dict(data).data

    return write


def streamed(data_args) -> list[dict]:
    from polyglot_vision.data import streaming_splits
    from polyglot_vision.labels import LabelSpace

    splits = streaming_splits(data_args, LabelSpace.from_yaml(data_args.label_space))
    names = splits["train"].features["label"].names
    return [
        {**row, "label": names[row["label"]]} for split in ("train", "validation", "test") for row in splits[split]
    ]


HEAD = [(str(d % 3), "ok") for d in range(6)]


def test_a_stream_with_a_corrupt_row_stops_under_on_bad_image_error(stream_recipe):
    data_args = stream_recipe([*HEAD, ("1", "corrupt"), ("2", "ok")], on_bad_image="error")
    with pytest.raises(UserError, match=r"source 'scans': image .*006\.png.*on_bad_image: skip"):
        streamed(data_args)
    rows = streamed(stream_recipe([*HEAD, ("1", "corrupt"), ("2", "ok")], on_bad_image="skip"))
    assert len(rows) == 7  # the corrupt row alone is left out


def test_a_stream_with_an_unlabelled_row_stops_under_on_bad_image_error(stream_recipe):
    with pytest.raises(UserError, match="without a label in column 'digit'"):
        streamed(stream_recipe([*HEAD, ("", "ok")], on_bad_image="error"))
    assert len(streamed(stream_recipe([*HEAD, ("", "ok")]))) == 6


def test_a_registry_label_met_late_in_a_stream_is_aligned_as_prepare_aligns_it(stream_recipe):
    rows = streamed(stream_recipe([*HEAD, ("7", "ok"), ("٨", "ok")], unmapped_labels="error"))
    assert sorted(row["label"] for row in rows) == sorted(["0", "1", "2"] * 2 + ["7", "8"])
    # A French name in an English source is a proposal, not a match: the same one line as `prepare` gives.
    with pytest.raises(UserError, match="'sept' \\(source 'scans', proposed"):
        streamed(stream_recipe([*HEAD, ("sept", "ok")], unmapped_labels="error"))


def test_an_unknown_label_met_late_in_a_stream_follows_unmapped_labels_before_training(stream_recipe, caplog):
    late = [*HEAD, ("3", "ok"), ("banana", "ok")]
    with pytest.raises(UserError, match="'banana'"):
        streaming_splits(stream_recipe(late, unmapped_labels="error"), LabelSpace.from_yaml(LABELS / "digits.yaml"))
        # (made above, before any image is read: the error comes from the label pass, not while training)
    with caplog.at_level(logging.WARNING):
        rows = streamed(stream_recipe(late, unmapped_labels="drop"))
    assert sorted(row["label"] for row in rows) == sorted(["0", "1", "2"] * 2 + ["3"])
    assert any("'banana'" in r.getMessage() and "1 images are left out" in r.getMessage() for r in caplog.records)
    # The label pass reads it before the model is built, so `keep` gives it a class of its own.
    with caplog.at_level(logging.INFO):
        rows = streamed(stream_recipe(late, unmapped_labels="keep"))
    assert sorted(row["label"] for row in rows)[-1] == "banana" and len(rows) == 8
    assert "8 labelled rows of the stream: 5 labels, 5 aligned (1 kept as new concepts)" in caplog.text


def test_a_label_the_label_pass_did_not_see_follows_unmapped_labels_as_it_comes(stream_recipe, monkeypatch, caplog):
    import polyglot_vision.data.streaming as streaming

    read = streaming.label_pass

    def before_the_source_changed(stream, source, reader):  # the pass saw the stream before "banana" was added
        counts, how = read(stream, source, reader)
        counts.pop("banana", None)
        return counts, how

    monkeypatch.setattr(streaming, "label_pass", before_the_source_changed)
    late = [*HEAD, ("3", "ok"), ("banana", "ok")]
    with pytest.raises(UserError, match="'banana'.*did not see"):
        streamed(stream_recipe(late, unmapped_labels="error"))
    with caplog.at_level(logging.WARNING):
        rows = streamed(stream_recipe(late, unmapped_labels="drop"))
    assert sorted(row["label"] for row in rows) == sorted(["0", "1", "2"] * 2 + ["3"])
    assert any("'banana'" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)
    with pytest.raises(UserError, match="'banana'.*cannot add a class"):
        streamed(stream_recipe(late, unmapped_labels="keep"))


def test_streamed_training_stops_in_one_line_on_a_corrupt_row_under_on_bad_image_error(
    stream_recipe, tmp_path, capsys
):
    stream_recipe([*HEAD, ("1", "corrupt"), ("2", "ok")])
    data = {
        "model_config": dict(TINY_MODEL),
        "label_space": str(LABELS / "digits.yaml"),
        "sources": [
            {
                "name": "scans",
                "path": str(tmp_path / "stream.csv"),
                "language": "en",
                "image_column": "file",
                "label_column": "digit",
            }
        ],
        "output_dir": str(tmp_path / "model"),
        "streaming": True,
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "test_fraction": 0.2,
        "validation_fraction": 0.0,
        "on_bad_image": "error",
        "disable_tqdm": True,
    }
    fails(capsys, ["train", write_yaml(tmp_path / "s.yaml", data)], "scans", "006.png", "on_bad_image")
    assert not (tmp_path / "model" / "model.safetensors").exists()


# ---- counts agree ---------------------------------------------------------------------------------------


def console_table(out: str, *names: str) -> dict[str, dict[str, str]]:
    lines = out.splitlines()
    header = next(line.split() for line in lines if line.startswith("source") and "kept" in line)
    return {
        line.split()[0]: dict(zip(header[1:], line.split()[1:]))
        for line in lines
        if line.split()[:1] in [[n] for n in names]
    }


def test_a_conflict_copy_is_counted_as_a_conflict_and_never_as_a_duplicate(tmp_path, capsys):
    a = class_folder(tmp_path / "a", {"1": 3, "2": 3})
    b = class_folder(tmp_path / "b", {"1": 2, "2": 2}, seed=9)
    shutil.copy(a / "1" / "000.png", b / "2" / "same-image-other-label.png")  # one conflict
    shutil.copy(a / "2" / "001.png", b / "2" / "plain-copy.png")  # one duplicate
    sources = [{"name": "a", "path": str(a), "language": "en"}, {"name": "b", "path": str(b), "language": "en"}]
    overrides = dict(on_label_conflict="drop", validation_fraction=0.0, test_fraction=0.0)
    assert main(["prepare", str(recipe(tmp_path, sources, **overrides)), "--output", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    table = console_table(out, "a", "b")
    assert table["b"]["duplicates"] == "1" and table["a"]["duplicates"] == "0"
    assert table["a"]["conflicts"] == "1" and table["b"]["conflicts"] == "1"  # both copies of it left out
    removed = int(next(line for line in out.splitlines() if line.startswith("duplicates removed:")).split(":")[1])
    assert removed == sum(int(row["duplicates"]) for row in table.values())
    assert sum(int(row["kept"]) for row in table.values()) == 6 + 6 - 1 - 2
    report = (tmp_path / "ds" / "alignment_report.md").read_text(encoding="utf-8")
    assert "| b | 6 | 0 | 1 | 1 | 4 |" in report and "| a | 6 | 0 | 0 | 1 | 5 |" in report


# ---- messages that fit the case -------------------------------------------------------------------------


def test_a_model_folder_holding_only_checkpoints_says_so(tmp_path, capsys):
    whole_checkpoint(tmp_path / "run" / "checkpoint-2", 2)
    whole_checkpoint(tmp_path / "run" / "checkpoint-10", 10)
    draw(tmp_path / "x.png", 1)
    line = fails(capsys, ["predict", tmp_path / "run", tmp_path / "x.png"], "holds only checkpoints", "checkpoint-10")
    assert "model_type" not in line and "resume training" in line
    source = [{"name": "a", "path": str(class_folder(tmp_path / "a", {"1": 2, "2": 2})), "language": "en"}]
    fails(capsys, ["evaluate", tmp_path / "run", "--recipe", recipe(tmp_path, source)], "holds only checkpoints")
    base = recipe(tmp_path, source, "base.yaml", model_name_or_path=str(tmp_path / "run"), model_config=None)
    fails(capsys, ["train", base], str(tmp_path / "run"), "holds only checkpoints")


def test_class_folders_with_images_at_several_depths_are_not_called_too_few(tmp_path, capsys):
    folder = class_folder(tmp_path / "photos", {"1": 2, "2": 2, "3": 2})
    draw(folder / "3" / "extra" / "nested.png", 99)
    sources = [{"name": "photos", "path": str(folder), "language": "en"}]
    line = fails(capsys, ["prepare", recipe(tmp_path, sources), "--output", tmp_path / "ds"], "photos", "3/extra")
    assert "at least two class sub-folders" not in line
    # An image beside the class folders rather than below one: named, with where it lies.
    (folder / "3" / "extra" / "nested.png").unlink()
    (folder / "3" / "extra").rmdir()
    draw(folder / "stray.png", 98)
    line = fails(capsys, ["prepare", recipe(tmp_path, sources), "--output", tmp_path / "ds"], "photos", "stray.png")
    assert "at least two class sub-folders" not in line
