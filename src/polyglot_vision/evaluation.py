"""Metrics that tell the truth per language: overall, and per language, script and source."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader

from .data import GROUP_COLUMNS, collate


def classification_metrics(predictions, references) -> dict[str, float]:
    predictions, references = np.asarray(predictions), np.asarray(references)
    return {
        "accuracy": float((predictions == references).mean()) if len(references) else float("nan"),
        "macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
    }


def grouped_metrics(predictions, references, groups: dict[str, list[str]]) -> dict:
    """Overall metrics plus accuracy and count for each value of each group column."""
    predictions, references = np.asarray(predictions), np.asarray(references)
    result: dict = {**classification_metrics(predictions, references), "n": int(len(references))}
    for column, values in groups.items():
        members: dict[str, list[int]] = defaultdict(list)
        for i, value in enumerate(values):
            members[value].append(i)
        per_value = {}
        for value in sorted(members):
            idx = np.asarray(members[value])
            per_value[value] = {
                "accuracy": float((predictions[idx] == references[idx]).mean()),
                "n": int(len(idx)),
            }
        result[f"per_{column}"] = per_value
        result[f"worst_{column}_accuracy"] = min(v["accuracy"] for v in per_value.values())
    return result


def format_table(metrics: dict, title: str = "test") -> str:
    """A plain-text table of the overall and per-group numbers."""
    lines = [
        f"{title}: accuracy {metrics['accuracy']:.2%}  macro-F1 {metrics['macro_f1']:.4f}  ({metrics['n']} images)",
    ]
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
def predict_dataset(model, preprocessor, dataset, batch_size: int = 256) -> np.ndarray:
    """Predicted class ids for a pixel-cached split (see `data.cache_pixels`)."""
    model.eval()
    device = next(model.parameters()).device
    preprocessor = preprocessor.to(device)
    predictions = []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        logits = model(pixel_values=preprocessor(batch["pixel_values"].to(device))).logits
        predictions.append(logits.argmax(dim=-1).cpu().numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)


def evaluate_dataset(model, preprocessor, dataset, batch_size: int = 256) -> dict:
    """Overall and per script / language / source metrics of a model on a pixel-cached split."""
    predictions = predict_dataset(model, preprocessor, dataset, batch_size)
    references = np.asarray([int(label) for label in dataset["label"]])
    groups = {column: list(dataset[column]) for column in GROUP_COLUMNS}
    return grouped_metrics(predictions, references, groups)
