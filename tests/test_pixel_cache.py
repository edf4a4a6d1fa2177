"""The pixel cache fits or is refused before anything is written; without it (`pixel_cache: false`) images are
decoded as they are read, to the same pixels, and the model trains."""

from __future__ import annotations

import json
import os
import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch
from datasets import DatasetDict

from polyglot_vision.data import (
    DecodedBatches,
    PixelBatches,
    cache_pixels,
    decode_on_the_fly,
    pixel_cache_bytes,
    unify,
)
from polyglot_vision.errors import UserError
from polyglot_vision.labels import LabelSpace
from polyglot_vision.modeling import ModelArguments, build_image_processor
from polyglot_vision.training import recipe_from_dict

from conftest import TINY_MODEL, fails, objects_recipe

Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def small_disk(monkeypatch):
    """Every file system has `free` bytes left (1 MB unless changed): `small_disk(n)` sets it."""
    room = {"free": 1_000_000}
    real = shutil.disk_usage

    def disk_usage(path):
        total = real(path).total
        return Usage(total, total - room["free"], room["free"])

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    return lambda free: room.update(free=free)


def objects_splits(objects_dir, tmp_path):
    recipe = recipe_from_dict(objects_recipe(objects_dir, tmp_path / "model"))
    return unify(recipe.data, LabelSpace.from_yaml(recipe.data.label_space)).dataset


def processor_at(size: int):
    return build_image_processor(ModelArguments(model_config={**TINY_MODEL, "image_size": size}))


def test_prepare_refuses_in_one_line_a_pixel_cache_larger_than_the_free_disk_before_writing_anything(
    write_objects_recipe, tmp_path, capsys, small_disk
):
    # 120 images at 224 px: about 18 MB of uint8 pixels, on a disk with 1 MB left.
    recipe = write_objects_recipe(model_config={**TINY_MODEL, "image_size": 224})
    out = tmp_path / "dataset"
    line = fails(capsys, ["prepare", recipe, "--output", out], "pixel cache", "224x224", "pixel_cache: false")
    assert "18.4 MB" in line and "1.0 MB free" in line
    assert not out.exists() and not list(tmp_path.glob(".dataset*"))
    # Decoding on the fly needs no cache: the same disk prepares it.
    succeeds(capsys, ["prepare", recipe, "--output", out, "--pixel_cache", "false"])
    assert (out / "dataset_dict.json").is_file()


def succeeds(capsys, argv) -> None:
    from polyglot_vision.cli import main

    code = main([str(a) for a in argv])
    assert code == 0, capsys.readouterr().err[-2000:]


def test_train_refuses_a_cache_that_does_not_fit_before_training_and_trains_without_one(
    write_objects_recipe, tmp_path, capsys, small_disk
):
    recipe = write_objects_recipe(label_granularity="concept_language", max_steps=3)
    small_disk(10_000)  # 120 images at 16 px need about 100 kB
    fails(capsys, ["train", recipe], "pixel cache", "10.0 kB free", "pixel_cache: false")
    assert not (tmp_path / "model" / "model.safetensors").exists()
    succeeds(capsys, ["train", recipe, "--pixel_cache", "false"])  # on the same 10 kB disk: nothing cached
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())["test"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] > 0
    # The model's classes are the (concept, language) pairs, as with the cache.
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert len(config["id2label"]) == 30
    # `evaluate` without a cache, on the same small disk, scores the test split as training did.
    report = tmp_path / "report.json"
    argv = ["evaluate", tmp_path / "model", "--recipe", recipe, "--pixel_cache", "false", "--output", report]
    succeeds(capsys, [*argv, "--output-dir", tmp_path / "evaluation"])
    assert json.loads(report.read_text())["test"]["accuracy"] == pytest.approx(metrics["accuracy"])
    cached = ["evaluate", tmp_path / "model", "--recipe", recipe, "--output-dir", tmp_path / "evaluation-2"]
    fails(capsys, cached, "pixel cache", "pixel_cache: false")


def test_decoding_on_the_fly_gives_the_pixels_the_cache_holds(objects_dir, tmp_path):
    splits = objects_splits(objects_dir, tmp_path)
    processor = processor_at(24)
    cached, decoded = cache_pixels(splits, processor), decode_on_the_fly(splits, processor)
    order = [5, 0, 3, 11]
    from_cache = PixelBatches(cached["train"]).__getitems__(order)
    read = DecodedBatches(decoded["train"]).__getitems__(order)
    assert read["pixel_values"].dtype == torch.uint8 and tuple(read["pixel_values"].shape) == (4, 3, 24, 24)
    assert torch.equal(read["pixel_values"], from_cache["pixel_values"])
    assert torch.equal(read["labels"], from_cache["labels"])
    # One image at a time (evaluation reads so) and the plain columns too.
    row = decoded["test"][2]
    assert torch.equal(torch.as_tensor(row["pixel_values"]), torch.as_tensor(cached["test"][2]["pixel_values"]))
    assert {row["language"], row["source"]} <= {"en", "fr", "de", "objects-en", "objects-fr", "objects-de"}


def test_the_estimate_is_the_size_of_the_cache_written_and_the_check_counts_every_split(
    objects_dir, tmp_path, small_disk
):
    splits = objects_splits(objects_dir, tmp_path)
    processor = processor_at(48)
    rows = sum(len(part) for part in splits.values())
    estimate = pixel_cache_bytes(rows, 48, 48)
    cached = cache_pixels(splits, processor)  # a 1 MB disk takes 120 images at 48 px (about 0.9 MB)
    written = sum(os.path.getsize(part.cache_files[-1]["filename"]) for part in cached.values())
    assert abs(written - estimate) / written < 0.05, (written, estimate)
    # A second run reads that cache back: it needs no room, even on a full disk.
    small_disk(1_000)
    again = cache_pixels(splits, processor)
    assert again["train"].cache_files == cached["train"].cache_files
    small_disk(1_000_000)
    with pytest.raises(UserError, match=r"pixel cache of 120 images at 64x64 px needs about 1\.6 MB .* 1\.0 MB"):
        cache_pixels(splits, processor_at(64))
    assert np.isclose(pixel_cache_bytes(250_000, 224, 224) / 1e9, 38.3, atol=0.1)  # mnist-mix's order of size


def test_a_split_held_in_memory_is_checked_against_the_memory_left(objects_dir, tmp_path, monkeypatch):
    import polyglot_vision.data.pixels as pixels

    splits = objects_splits(objects_dir, tmp_path)
    in_memory = DatasetDict({name: part.flatten_indices(keep_in_memory=True) for name, part in splits.items()})
    assert all(not part.cache_files for part in in_memory.values())
    monkeypatch.setattr(pixels.psutil, "virtual_memory", lambda: namedtuple("Memory", "available")(50_000))
    with pytest.raises(UserError, match="in memory"):
        cache_pixels(in_memory, processor_at(32))


def test_the_cache_benchmark_trains_both_ways_on_the_same_images_and_weighs_the_cache(write_objects_recipe, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    from results_page import _cache

    recipe = write_objects_recipe(per_device_train_batch_size=8)
    out = tmp_path / "cache.json"
    command = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "cache", "--recipe", str(recipe)]
    command += ["--steps", "2", "--warmup", "1", "--rounds", "1", "--train-images", "48", "--output", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert (result["train_images"], result["input_size"], result["batch_size"]) == (48, 16, 8)
    speeds = result["training_images_per_second"]
    assert all(speeds[key]["best"] > 0 for key in ("cached", "on_the_fly", "on_the_fly_worker"))
    ratio = result["on_the_fly_over_cached"]["median_of_rounds"]
    assert ratio == pytest.approx(speeds["on_the_fly"]["rounds"][0] / speeds["cached"]["rounds"][0])
    assert 0 < result["on_the_fly_over_cached"]["from_the_decoding_cost"] < 1
    assert abs(result["cache"]["estimate_error"]) < 0.05 and result["cache"]["bytes_on_disk"] > 48 * 3 * 16 * 16
    assert result["estimate_at_scale"]["gigabytes"] == pytest.approx(38.3, abs=0.1)
    page = "\n".join(_cache(result))
    assert f"**{ratio:.2f}**" in page and "38.3 GB" in page
