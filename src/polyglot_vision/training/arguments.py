"""`PolyglotTrainingArguments`: `transformers.TrainingArguments` plus the controls this project adds.

The batch augmentation policy, the label granularity and the fine-tuning controls
(linear probe, layer-wise learning-rate decay, early stopping) are training
arguments like any other; the defaults that differ from the Trainer's suit image
classifiers trained offline: nothing is reported anywhere, the metadata columns
reach the collator, and DDP does not search for unused parameters (an image
classifier uses all of them in every forward pass).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from transformers import TrainingArguments

from ..errors import UserError
from ..options import option
from .augment import parse_policy

GRANULARITIES = ("concept", "concept_language", "concept_script")
# Counts (steps, batch sizes, seeds, workers) beyond a 32-bit integer overflow torch, numpy or the samplers.
MAX_COUNT = 2**31 - 1


@dataclass
class PolyglotTrainingArguments(TrainingArguments):
    remove_unused_columns: bool = option(
        False, "Keep the metadata columns (language, script, source) for the collator."
    )
    ddp_find_unused_parameters: bool | None = option(
        False, "Image classifiers use every parameter; set true for a model that does not."
    )
    overwrite_output_dir: bool = option(
        False, "Replace `output_dir` even when it holds files that polyglot-vision did not write."
    )
    augmentation: str = option(
        "affine",
        "Batch augmentation policy: `none` or ops joined by `+` from crop, affine, elastic, "
        "blur, jitter, color (saturation and hue too), gray, erase, flip (horizontal, opt-in), mixup, cutmix; "
        "e.g. `crop+affine+mixup`.",
    )
    label_granularity: str = option(
        "concept",
        "`concept`: one class per concept; `concept_language`: one per (concept, language), "
        "`concept_script`: one per (concept, script) seen in the data, summed back to concepts for "
        "predictions and metrics; a hint (script or language) restricts the sum.",
    )
    freeze_backbone: bool = option(
        False,
        "Train the classification head only (a linear probe); the backbone's weights and "
        "normalisation statistics stay as loaded.",
    )
    layer_decay: float | None = option(
        None,
        "Layer-wise learning-rate decay in (0, 1]: block i of L trains at "
        "learning_rate * layer_decay^(L + 1 - i), the embeddings lowest, the head at learning_rate.",
    )
    early_stopping_patience: int | None = option(
        None,
        "Stop after this many evaluations without improving `metric_for_best_model` "
        "(needs `load_best_model_at_end: true` and an `eval_strategy`).",
    )
    early_stopping_threshold: float = option(0.0, "How much the metric must improve to count as an improvement.")

    def __post_init__(self):
        self.check_values()
        super().__post_init__()

    def check_values(self) -> None:
        """Each value a user can get wrong, refused with one line naming its key, before anything runs."""
        self.check_numbers()
        parse_policy(self.augmentation)
        if self.label_granularity not in GRANULARITIES:
            raise UserError(
                f"recipe: `label_granularity` must be one of {', '.join(GRANULARITIES)}, "
                f"got {self.label_granularity!r}"
            )
        for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            _whole(key, getattr(self, key), minimum=1)
        for key in ("max_steps", "logging_steps", "eval_steps", "save_steps"):
            value = getattr(self, key)
            if value is not None and key != "max_steps" and isinstance(value, float) and 0 < value < 1:
                continue  # a ratio of the total steps, as TrainingArguments allows
            if value is not None:
                _whole(key, value, minimum=-1 if key == "max_steps" else 0)
        if not isinstance(self.num_train_epochs, (int, float)) or isinstance(self.num_train_epochs, bool):
            raise UserError(f"recipe: `num_train_epochs` expects a number, got {self.num_train_epochs!r}")
        if self.max_steps <= 0 and not self.num_train_epochs > 0:
            raise UserError(
                f"recipe: `num_train_epochs` must be above 0 (or set `max_steps`), got {self.num_train_epochs}"
            )
        if self.max_steps == 0:
            raise UserError("recipe: `max_steps` must be above 0 (or -1 to train for `num_train_epochs`)")
        for key in ("seed", "data_seed"):
            if getattr(self, key) is not None:
                _whole(key, getattr(self, key), minimum=0)
        if not self.learning_rate > 0:
            raise UserError(f"recipe: `learning_rate` must be above 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise UserError(f"recipe: `weight_decay` must be 0 or more, got {self.weight_decay}")
        if not 0 <= self.label_smoothing_factor < 1:
            raise UserError(f"recipe: `label_smoothing_factor` must be in [0, 1), got {self.label_smoothing_factor}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise UserError(f"recipe: `layer_decay` must be in (0, 1], got {self.layer_decay}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise UserError(f"recipe: `early_stopping_patience` must be 1 or more, got {self.early_stopping_patience}")
        if self.early_stopping_threshold < 0:
            raise UserError(
                f"recipe: `early_stopping_threshold` must be 0 or more, got {self.early_stopping_threshold}"
            )

    def check_numbers(self) -> None:
        """Every number finite and within a 32-bit count; a whole-number field given as `1e3` becomes 1000."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name, None)
            if not field.init or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                raise UserError(f"recipe: `{field.name}` must be a finite number, got {value}")
            if abs(value) > MAX_COUNT:
                raise UserError(f"recipe: `{field.name}` must lie within ±{MAX_COUNT:,}, got {value:g}")
            if "int" in str(field.type) and "float" not in str(field.type):
                if value != int(value):
                    raise UserError(f"recipe: `{field.name}` must be a whole number, got {value!r}")
                setattr(self, field.name, int(value))


def _whole(key: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < minimum:
        raise UserError(f"recipe: `{key}` must be a whole number of at least {minimum}, got {value!r}")
