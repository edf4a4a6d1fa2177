"""Metrics that tell the truth per language: overall, and per language, script and source.

The numbers come from the `multilingual_accuracy` metric, an `evaluate.Metric`
that ships inside this package (`evaluation/multilingual_accuracy/`, with its
metric card; publishable to the Hub as-is). `evaluate.load` runs the module it
is given, so it is loaded by the installed package's absolute path only, never
from the current folder or a path taken from the environment.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import evaluate
import numpy as np

from ..data import GROUP_COLUMNS
from ..errors import UserError

METRIC_NAME = "multilingual_accuracy"
METRIC_DIR = Path(__file__).resolve().parent / METRIC_NAME
# Metric arguments for the usual group columns; any other column goes through `groups`.
_GROUP_ARGUMENTS = {"language": "languages", "script": "scripts", "source": "sources"}


def metric_path() -> Path:
    """The folder of the metric module, inside the installed package."""
    if not (METRIC_DIR / f"{METRIC_NAME}.py").is_file():
        raise UserError(f"metric module {METRIC_NAME} missing from the installed package ({METRIC_DIR}); reinstall it")
    return METRIC_DIR


@lru_cache(maxsize=1)
def load_metric():
    """`evaluate.load` of the package's metric, by its absolute path (no Hub), kept in memory."""
    return evaluate.load(str(metric_path()), keep_in_memory=True)


def compute_metric(predictions, references, **kwargs) -> dict:
    predictions = [int(p) for p in np.asarray(predictions).reshape(-1)]
    references = [int(r) for r in np.asarray(references).reshape(-1)]
    return load_metric().compute(predictions=predictions, references=references, **kwargs)


def classification_metrics(predictions, references, confidences=None) -> dict[str, float]:
    """Accuracy, macro-F1, balanced accuracy (and calibration error given confidences): flat floats."""
    kwargs = {} if confidences is None else {"confidences": [float(c) for c in np.asarray(confidences)]}
    result = compute_metric(predictions, references, **kwargs)
    result.pop("n", None)
    return result


def grouped_metrics(predictions, references, groups: dict[str, list[str]], confidences=None) -> dict:
    """Overall metrics plus accuracy and count for each value of each group column."""
    kwargs: dict = {}
    other = {}
    for column, values in groups.items():
        if column in _GROUP_ARGUMENTS:
            kwargs[_GROUP_ARGUMENTS[column]] = [str(v) for v in values]
        else:
            other[column] = [str(v) for v in values]
    if other:
        kwargs["groups"] = other
    if confidences is not None:
        kwargs["confidences"] = [float(c) for c in np.asarray(confidences)]
    return compute_metric(predictions, references, **kwargs)


def confusion(predictions, references, num_classes: int) -> np.ndarray:
    """Counts [true, predicted]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(references, dtype=int), np.asarray(predictions, dtype=int)), 1)
    return matrix


def top_confusions(predictions, references, labels: list[str], scripts=None, k: int = 5) -> list[dict]:
    """The `k` most frequent (true, predicted) errors, with the scripts they happen in."""
    errors = Counter()
    by_script: dict[tuple[int, int], Counter] = {}
    for i, (p, r) in enumerate(zip(np.asarray(predictions), np.asarray(references))):
        if p == r:
            continue
        errors[(int(r), int(p))] += 1
        if scripts is not None:
            by_script.setdefault((int(r), int(p)), Counter())[str(scripts[i])] += 1
    return [
        {
            "true": labels[r],
            "predicted": labels[p],
            "count": count,
            "scripts": dict(by_script.get((r, p), Counter()).most_common()),
        }
        for (r, p), count in errors.most_common(k)
    ]


def format_table(metrics: dict, title: str = "test") -> str:
    """A plain-text table of the overall and per-group numbers."""
    head = f"{title}: accuracy {metrics['accuracy']:.2%}  macro-F1 {metrics['macro_f1']:.4f}"
    if "balanced_accuracy" in metrics:
        head += f"  balanced {metrics['balanced_accuracy']:.2%}"
    if "expected_calibration_error" in metrics:
        head += f"  ECE {metrics['expected_calibration_error']:.4f}"
    lines = [f"{head}  ({metrics['n']} images)"]
    for column in GROUP_COLUMNS:
        per_value = metrics.get(f"per_{column}")
        if not per_value:
            continue
        width = max(len(column), *(len(v) for v in per_value))
        lines.append("")
        lines.append(f"{column:<{width}}  accuracy      n")
        for value, row in per_value.items():
            lines.append(f"{value:<{width}}  {row['accuracy']:>8.2%}  {row['n']:>5}")
    return "\n".join(lines)
