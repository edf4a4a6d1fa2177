"""`PolyglotTrainer`: a `transformers.Trainer` whose batches arrive as uint8 and are augmented on the device."""

from __future__ import annotations

import numpy as np
import torch
from transformers import Trainer

from ..evaluation import classification_metrics
from ..modeling import layer_decay_groups
from .augment import BatchPreprocessor


class PolyglotTrainer(Trainer):
    """Trainer whose batches arrive as uint8 and are augmented, mixed and normalised on the device.

    Training and evaluation read whole batches from the pixel cache (`PixelBatches`), or decode them as they
    are read (`DecodedBatches`, `pixel_cache: false`).
    The loss is `classification_loss`, which takes the soft targets of mixup /
    CutMix as well as class ids. With `freeze_backbone` (PolyglotTrainingArguments)
    the backbone stays in eval mode (its normalisation statistics stay as loaded);
    `layer_decay` gives each block its own learning rate.
    """

    def __init__(self, *args, preprocessor: BatchPreprocessor, sampler=None, **kwargs):
        kwargs.setdefault("compute_loss_func", classification_loss(kwargs["args"].label_smoothing_factor))
        super().__init__(*args, **kwargs)
        self.preprocessor = preprocessor
        self.sampler = sampler  # a balanced sampler (data.build_sampler), or None for the Trainer's own
        self.layer_decay = getattr(self.args, "layer_decay", None)
        self.frozen_backbone = getattr(self.args, "freeze_backbone", False)
        self._parameter_count: int | None = None

    def _get_train_sampler(self, train_dataset=None):
        return self.sampler if self.sampler is not None else super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model=None):
        if self.layer_decay is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        groups = layer_decay_groups(
            model,
            self.args.learning_rate,
            self.layer_decay,
            self.args.weight_decay,
            set(self.get_decay_parameter_names(model)),
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's estimate, 6 · input size · parameters, with the parameters counted once."""
        main_input = getattr(self.model, "main_input_name", "pixel_values")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._parameter_count is None:
            self._parameter_count = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main_input].numel() * self._parameter_count

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self.frozen_backbone:
            self.accelerator.unwrap_model(model).base_model.eval()
        pixels = self.preprocessor(inputs["pixel_values"], augment=model.training)
        labels = inputs.get("labels")
        if model.training and labels is not None:
            num_classes = self.accelerator.unwrap_model(model).config.num_labels
            pixels, labels = self.preprocessor.mix(pixels, labels, num_classes)
        inputs = {**inputs, "pixel_values": pixels, "labels": labels}
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )


def classification_loss(label_smoothing: float = 0.0):
    """Cross-entropy for class ids or soft targets (mixup / CutMix), with label smoothing on top.

    As a Trainer `compute_loss_func` it is normalised by the number of images of
    the whole accumulated batch when the Trainer gives it (gradient accumulation),
    else it is the batch mean.
    """

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        total = torch.nn.functional.cross_entropy(
            logits.float(), labels.to(logits.device), label_smoothing=label_smoothing, reduction="sum"
        )
        count = num_items_in_batch if num_items_in_batch is not None else labels.shape[0]
        if torch.is_tensor(count):
            count = count.to(total.device)
        return total / count

    return loss


def compute_metrics_for(fold: torch.Tensor | None = None):
    """`compute_metrics` at concept level; `fold` sums a joint model's (concept, language) classes."""
    fold_np = None if fold is None else fold.numpy().astype(np.float64)

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits, labels = eval_prediction.predictions, eval_prediction.label_ids
        logits = np.asarray(logits, dtype=np.float64)
        probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        labels = np.asarray(labels)
        if fold_np is not None:
            probabilities = probabilities @ fold_np
            labels = fold_np[labels].argmax(axis=-1)
        # The repository's `multilingual_accuracy` metric (see evaluation.py), with calibration.
        return classification_metrics(probabilities.argmax(axis=-1), labels, confidences=probabilities.max(axis=-1))

    return compute_metrics
