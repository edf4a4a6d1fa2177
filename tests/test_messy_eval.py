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
from polyglot_vision.errors import UserError

from conftest import LABELS, TINY_MODEL, write_yaml


def fails(capsys, argv: list, *culprits: str) -> str:
    """The command stops with status 2 and one error line that names every culprit; returns that line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("polyglot-vision: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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
