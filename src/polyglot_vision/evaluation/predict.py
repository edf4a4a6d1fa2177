"""Predictions on a pixel-cached split, and every metric of them, at concept level."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data import GROUP_COLUMNS, PixelNormalizer, collate
from ..modeling import concept_fold, concept_ids
from .metrics import confusion, grouped_metrics, top_confusions


@torch.inference_mode()
def predict_logits_dataset(model, preprocessor: PixelNormalizer, dataset, batch_size: int = 256) -> torch.Tensor:
    """The model's class logits (N, classes) for a pixel-cached split (see `data.cache_pixels`)."""
    model.eval()
    device = next(model.parameters()).device
    preprocessor = preprocessor.to(device)
    logits = [
        model(pixel_values=preprocessor(batch["pixel_values"].to(device))).logits.float().cpu()
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    ]
    return torch.cat(logits) if logits else torch.zeros(0, model.config.num_labels)


def predict_proba_dataset(model, preprocessor: PixelNormalizer, dataset, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities (N, concepts) for a pixel-cached split.

    A joint (concept, language) model's probabilities are summed over languages,
    so every metric is at concept level whatever the label granularity.
    """
    probabilities = predict_logits_dataset(model, preprocessor, dataset, batch_size).softmax(dim=-1)
    fold = concept_fold(model.config)
    if fold is not None:
        probabilities = probabilities @ fold
    return probabilities.numpy()


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
