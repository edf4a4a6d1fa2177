"""Metrics that tell the truth per language: overall, and per language, script and source.

The numbers come from the `multilingual_accuracy` metric, an `evaluate.Metric`
kept in this repository at `metrics/multilingual_accuracy/` (publishable to the
Hub as-is). It ships with the repository, not inside the wheel: an editable
install (`pip install -e .`, what `make install` does) finds it beside `src/`;
elsewhere point `POLYGLOT_VISION_METRIC` at the folder.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data import GROUP_COLUMNS, collate
from .errors import UserError
from .modeling import concept_fold, concept_ids

METRIC_NAME = "multilingual_accuracy"
METRIC_ENV = "POLYGLOT_VISION_METRIC"
# Metric arguments for the usual group columns; any other column goes through `groups`.
_GROUP_ARGUMENTS = {"language": "languages", "script": "scripts", "source": "sources"}


def metric_path() -> Path:
    """The folder of the metric module: $POLYGLOT_VISION_METRIC, else `metrics/` of the repository."""
    candidates = []
    if os.environ.get(METRIC_ENV):
        candidates.append(Path(os.environ[METRIC_ENV]))
    # src/polyglot_vision/evaluation.py -> repository root
    candidates.append(Path(__file__).resolve().parents[2] / "metrics" / METRIC_NAME)
    candidates.append(Path.cwd() / "metrics" / METRIC_NAME)
    for path in candidates:
        if (path / f"{METRIC_NAME}.py").is_file():
            return path
    raise UserError(
        f"metric module {METRIC_NAME} not found (looked in {', '.join(str(p) for p in candidates)}); "
        f"install polyglot-vision from its repository (pip install -e .) or set {METRIC_ENV}"
    )


@lru_cache(maxsize=1)
def load_metric():
    """`evaluate.load` of the repository's metric, by path (no Hub), kept in memory."""
    import evaluate

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


@torch.inference_mode()
def predict_proba_dataset(model, preprocessor, dataset, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities (N, concepts) for a pixel-cached split (see `data.cache_pixels`).

    A joint (concept, language) model's probabilities are summed over languages,
    so every metric is at concept level whatever the label granularity.
    """
    model.eval()
    device = next(model.parameters()).device
    preprocessor = preprocessor.to(device)
    fold = concept_fold(model.config)
    probabilities = []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        logits = model(pixel_values=preprocessor(batch["pixel_values"].to(device))).logits
        batch_probabilities = logits.float().softmax(dim=-1).cpu()
        if fold is not None:
            batch_probabilities = batch_probabilities @ fold
        probabilities.append(batch_probabilities.numpy())
    if not probabilities:
        return np.zeros((0, len(concept_ids(model.config))), dtype=np.float32)
    return np.concatenate(probabilities)


def predict_dataset(model, preprocessor, dataset, batch_size: int = 256) -> np.ndarray:
    """Predicted class ids for a pixel-cached split (see `data.cache_pixels`)."""
    return predict_proba_dataset(model, preprocessor, dataset, batch_size).argmax(axis=-1)


def metrics_from_probabilities(probabilities: np.ndarray, dataset, labels: list[str]) -> dict:
    """Everything `evaluate_dataset` reports, from probabilities already computed on `dataset`."""
    predictions = probabilities.argmax(axis=-1)
    references = np.asarray([int(label) for label in dataset["label"]])
    groups = {column: list(dataset[column]) for column in GROUP_COLUMNS}
    metrics = grouped_metrics(predictions, references, groups, confidences=probabilities.max(axis=-1))
    metrics["labels"] = list(labels)
    metrics["confusion_matrix"] = confusion(predictions, references, len(labels)).tolist()
    metrics["top_confusions"] = top_confusions(predictions, references, labels, groups.get("script"))
    return metrics


def evaluate_dataset(model, preprocessor, dataset, batch_size: int = 256) -> dict:
    """Overall and per script / language / source metrics of a model on a pixel-cached split.

    Also: balanced accuracy, expected calibration error, the confusion matrix
    ([true][predicted], in `labels` order) and the most frequent confusions.
    """
    probabilities = predict_proba_dataset(model, preprocessor, dataset, batch_size)
    labels = concept_ids(model.config)
    return metrics_from_probabilities(probabilities, dataset, labels)
