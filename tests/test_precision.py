"""Mixed precision: what the device cannot do is one clear line before anything is written."""

from __future__ import annotations

import subprocess

import pytest
import torch
import yaml

from conftest import CLI

cpu_only = pytest.mark.skipif(torch.accelerator.is_available(), reason="checks the CPU-only behaviour")


@cpu_only
def test_fp16_on_the_cpu_is_refused_before_anything_is_written(write_recipe, tmp_path):
    recipe = write_recipe(fp16=True)
    run = subprocess.run([*CLI, "train", str(recipe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    [line] = [line for line in run.stderr.splitlines() if line.startswith("polyglot-vision: error:")]
    assert "fp16" in line and "CPU" in line and "bf16" in line and str(recipe) in line
    assert not (tmp_path / "model").exists()


@cpu_only
def test_fp16_from_the_command_line_is_refused_too(write_recipe):
    from polyglot_vision.errors import UserError
    from polyglot_vision.training import load_recipe

    with pytest.raises(UserError, match="`fp16: true` needs a GPU"):
        load_recipe(write_recipe(), ["--fp16", "true"])


def _recipe(write_recipe, **overrides):
    from polyglot_vision.training import recipe_from_dict

    raw = yaml.safe_load(write_recipe(**overrides).read_text(encoding="utf-8"))
    return recipe_from_dict(raw)


@cpu_only
def test_bf16_is_accepted_on_the_cpu(write_recipe):
    args = _recipe(write_recipe, bf16=True).training
    assert args.bf16 and args.use_cpu and args.device.type == "cpu"


@cpu_only
def test_without_an_accelerator_use_cpu_defaults_to_true(write_recipe):
    # So that processes started by `accelerate launch` join one gloo group (tests/test_distributed.py).
    assert _recipe(write_recipe).training.use_cpu is True


def test_fp16_and_bf16_together_are_refused(write_recipe):
    from polyglot_vision.errors import UserError

    with pytest.raises(UserError, match="choose one precision"):
        _recipe(write_recipe, fp16=True, bf16=True)
