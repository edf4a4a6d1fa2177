"""`resume_from_checkpoint: auto`: a run killed with SIGKILL and started again ends where an unbroken run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from safetensors.torch import load_file

from conftest import CLI

# Long enough to be killed between two checkpoints (a few seconds of training on 2 CPU cores);
# over more than one epoch, with the balanced sampler, whose order must be restored too.
RESUMABLE = dict(
    max_steps=40,
    save_strategy="steps",
    save_steps=5,
    save_total_limit=2,
    logging_steps=5,
    resume_from_checkpoint="auto",
    sampler="language",
)


def start(recipe):
    return subprocess.Popen([*CLI, "train", str(recipe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process):
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    return stderr


def outcome(model_dir):
    metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))["test"]
    state = json.loads((model_dir / "checkpoint-40" / "trainer_state.json").read_text(encoding="utf-8"))
    losses = [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]
    return metrics["accuracy"], losses[-1], load_file(model_dir / "model.safetensors")


def test_killed_run_resumes_to_the_same_model(write_recipe, tmp_path):
    # The unbroken run goes on beside the killed one (each uses the same seed and data).
    unbroken = start(write_recipe("unbroken.yaml", **RESUMABLE, output_dir=str(tmp_path / "unbroken")))
    recipe = write_recipe("killed.yaml", **RESUMABLE, output_dir=str(tmp_path / "killed"))
    first = tmp_path / "killed" / "checkpoint-5" / "trainer_state.json"
    process = subprocess.Popen([*CLI, "train", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not first.exists():
            assert process.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "checkpoint-40").exists(), "killed too late: the run had finished"

    resumed = finish(start(recipe))
    assert "resuming from" in resumed and "checkpoint-" in resumed, resumed[-2000:]
    assert "no checkpoint, starting fresh" in finish(unbroken)

    accuracy, last_loss, weights = outcome(tmp_path / "unbroken")
    accuracy_resumed, last_loss_resumed, weights_resumed = outcome(tmp_path / "killed")
    assert accuracy_resumed == accuracy
    assert last_loss_resumed == last_loss
    assert weights.keys() == weights_resumed.keys()
    different = [name for name in weights if not (weights[name] == weights_resumed[name]).all()]
    assert not different, different[:5]


@pytest.mark.parametrize("checkpoints, expected", [((10, 20), 20)])
def test_auto_takes_the_last_complete_checkpoint(tmp_path, checkpoints, expected):
    import torch
    from safetensors.torch import save_file
    from transformers import TrainingArguments

    from polyglot_vision.training.run import resolve_checkpoint

    for step in checkpoints:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        save_file({"w": torch.zeros(4)}, folder / "model.safetensors")
        torch.save({}, folder / "optimizer.pt")
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-30").mkdir()  # killed while saving: no trainer_state.json
    args = TrainingArguments(output_dir=str(tmp_path), resume_from_checkpoint="auto", report_to="none", use_cpu=True)
    found = resolve_checkpoint(args)
    assert found == (str(tmp_path / f"checkpoint-{expected}") if expected else None)
