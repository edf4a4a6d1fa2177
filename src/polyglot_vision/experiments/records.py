"""What the CLI already wrote into a folder, as the results page records it: no measuring here.

`trained_metrics(model)` reads `polyglot-vision train`'s test metrics and training time, `experiment_record`
what `polyglot-vision transfer` or `adapt` wrote, and `train_seconds(model)` a model's training time.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["experiment_record", "train_seconds", "trained_metrics"]


def trained_metrics(model) -> dict:
    """The test metrics and training time that `polyglot-vision train` wrote into a model folder."""
    model = Path(model)
    metrics = json.loads((model / "metrics.json").read_text(encoding="utf-8"))
    results = json.loads((model / "all_results.json").read_text(encoding="utf-8"))
    test = {k: v for k, v in metrics["test"].items() if k not in ("confusion_matrix", "labels")}
    return {
        "model": str(model),
        "recipe": metrics.get("recipe"),
        "test": test,
        "train_runtime": results.get("train_runtime"),
    }


def experiment_record(folder, name: str) -> dict:
    """What `polyglot-vision transfer` or `adapt` wrote into `folder` as `name`.json and `name`.md."""
    folder = Path(folder)
    result = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return {**result, "markdown": (folder / f"{name}.md").read_text(encoding="utf-8")}


def train_seconds(model) -> float | None:
    """The training time a model folder records, if any."""
    for name in ("all_results.json", "train_results.json", "metrics.json"):
        path = Path(model) / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get("train_runtime")
            if value is not None:
                return float(value)
    return None
