"""Fine-tuning with `transformers.Trainer`: prepare, cache pixels, train, test, export.

`train(recipe)` is the one path behind `scripts/train.py` (the `accelerate
launch` target) and `polyglot-vision train`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from transformers import Trainer, set_seed

from .augment import BatchPreprocessor
from .configs import Recipe
from .data import build_dataset, cache_pixels, collate, split_counts
from .evaluation import classification_metrics, evaluate_dataset, format_table
from .labels import LabelSpace
from .modeling import build_image_processor, build_model

logger = logging.getLogger(__name__)


class PolyglotTrainer(Trainer):
    """Trainer whose batches arrive as uint8 and are augmented and normalised on the device."""

    def __init__(self, *args, preprocessor: BatchPreprocessor, **kwargs):
        super().__init__(*args, **kwargs)
        self.preprocessor = preprocessor

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {**inputs, "pixel_values": self.preprocessor(inputs["pixel_values"], augment=model.training)}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def compute_metrics(eval_prediction) -> dict[str, float]:
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    return classification_metrics(np.argmax(logits, axis=-1), labels)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def train(recipe: Recipe) -> dict:
    """Run a recipe end to end; returns the test metrics."""
    args = recipe.training
    set_seed(args.seed)

    # Load datasets
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    dataset = build_dataset(recipe.data, label_space)
    logger.info("images per split and source: %s", split_counts(dataset))

    # Load model and image processor
    processor = build_image_processor(recipe.model)
    model = build_model(recipe.model, label_space)
    cached = cache_pixels(dataset, processor)

    # Training loop
    preprocessor = BatchPreprocessor.from_processor(processor, recipe.data.augmentation)
    trainer = PolyglotTrainer(
        model=model,
        args=args,
        train_dataset=cached["train"],
        eval_dataset=cached["validation"] if len(cached["validation"]) else None,
        data_collator=collate,
        compute_metrics=compute_metrics,
        processing_class=processor,
        preprocessor=preprocessor,
    )
    checkpoint = args.resume_from_checkpoint
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)

    # Save model and processor, evaluate on the test split
    trainer.save_model(args.output_dir)
    metrics = {}
    if trainer.is_world_process_zero():
        metrics = evaluate_dataset(trainer.model, preprocessor, cached["test"], args.per_device_eval_batch_size)
        trainer.save_metrics("test", {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"]})
        output_dir = Path(args.output_dir)
        write_json(output_dir / "metrics.json", {"test": metrics, "recipe": recipe.path})
        print(format_table(metrics), flush=True)
        print(f"\nModel saved to {output_dir}", flush=True)
    return metrics
