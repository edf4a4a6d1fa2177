"""Two processes with DDP over gloo on the CPU, started as a user would with `accelerate launch`."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]
CPU_DDP = REPO / "recipes" / "accelerate_configs" / "cpu_ddp.yaml"


def test_two_process_cpu_ddp_trains_once_and_saves_once(write_recipe, tmp_path):
    recipe = write_recipe()
    run = subprocess.run(
        [*LAUNCH, "--config_file", str(CPU_DDP), str(REPO / "scripts" / "train.py"), str(recipe)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # Both processes joined one group of two (each would say "of 1" if they trained alone).
    assert "process 0 of 2 on cpu" in run.stderr and "process 1 of 2 on cpu" in run.stderr, run.stderr[-3000:]
    # Only the main process prints the table and saves.
    assert run.stdout.count("Model saved to") == 1, run.stdout
    assert run.stdout.count("accuracy") >= 1
    weights = sorted(tmp_path.rglob("model.safetensors"))
    assert weights == [tmp_path / "model" / "model.safetensors"]
    assert sorted(tmp_path.rglob("metrics.json")) == [tmp_path / "model" / "metrics.json"]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text(encoding="utf-8"))
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
