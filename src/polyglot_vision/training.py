"""Fine-tuning with `transformers.Trainer`: prepare, cache pixels, train, test, export.

`train(recipe)` is the one path behind `scripts/train.py` (the `accelerate
launch` target) and `polyglot-vision train`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from datasets import DatasetDict
from transformers import Trainer, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .augment import BatchPreprocessor
from .configs import Recipe
from .data import build_dataset, build_sampler, cache_pixels, collate, few_shot, split_counts
from .evaluation import classification_metrics, evaluate_dataset, format_table
from .hub import finish_export
from .labels import LabelSpace
from .modeling import build_image_processor, build_model
from .outputs import write_json

logger = logging.getLogger(__name__)


class PolyglotTrainer(Trainer):
    """Trainer whose batches arrive as uint8 and are augmented and normalised on the device."""

    def __init__(self, *args, preprocessor: BatchPreprocessor, sampler=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.preprocessor = preprocessor
        self.sampler = sampler  # a balanced sampler (data.build_sampler), or None for the Trainer's own

    def _get_train_sampler(self, train_dataset=None):
        return self.sampler if self.sampler is not None else super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {**inputs, "pixel_values": self.preprocessor(inputs["pixel_values"], augment=model.training)}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def compute_metrics(eval_prediction) -> dict[str, float]:
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    # The repository's `multilingual_accuracy` metric (see evaluation.py), with calibration.
    return classification_metrics(probabilities.argmax(axis=-1), labels, confidences=probabilities.max(axis=-1))


def resolve_checkpoint(args) -> str | None:
    """`resume_from_checkpoint: auto` -> the last checkpoint-N in output_dir, or None (start fresh)."""
    checkpoint = args.resume_from_checkpoint
    if checkpoint is None or str(checkpoint).strip().lower() != "auto":
        return checkpoint
    last = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
    if last is not None and not os.path.isfile(os.path.join(last, "trainer_state.json")):
        # A run killed while saving leaves a checkpoint without trainer_state.json (the
        # Trainer writes it last): take the newest complete one; the resumed run overwrites it.
        logger.warning("checkpoint %s is incomplete; looking for an earlier one", last)
        complete = [
            path
            for path in Path(args.output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
            if path.name.rpartition("-")[2].isdigit() and (path / "trainer_state.json").is_file()
        ]
        last = str(max(complete, key=lambda path: int(path.name.rpartition("-")[2]))) if complete else None
    logger.info("resume_from_checkpoint auto: %s", f"resuming from {last}" if last else "no checkpoint, starting fresh")
    return last


def end_distributed() -> None:
    """Destroy the process group that the Trainer set up, if any (else runs may abort at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def load_data(recipe: Recipe) -> tuple[LabelSpace, object, DatasetDict]:
    """The recipe's sources, unified, split and pixel-cached: (label space, image processor, cached splits)."""
    args = recipe.training
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    # Under several processes the main one fills the `datasets` cache first; the others read it.
    with args.main_process_first(desc="loading the sources"):
        dataset = build_dataset(recipe.data, label_space)
    if recipe.data.train_samples_per_class is not None:
        dataset["train"] = few_shot(dataset["train"], recipe.data.train_samples_per_class, recipe.data.split_seed)
    logger.info("images per split and source: %s", split_counts(dataset))
    processor = build_image_processor(recipe.model)
    with args.main_process_first(desc="caching pixels"):
        cached = cache_pixels(dataset, processor)
    return label_space, processor, cached


def build_trainer(recipe: Recipe, model, processor, train_dataset, eval_dataset=None) -> PolyglotTrainer:
    """A `PolyglotTrainer` for pixel-cached splits, with the recipe's augmentation and sampler."""
    args = recipe.training
    return PolyglotTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if eval_dataset is not None and len(eval_dataset) else None,
        data_collator=collate,
        compute_metrics=compute_metrics,
        processing_class=processor,
        preprocessor=BatchPreprocessor.from_processor(processor, recipe.data.augmentation),
        sampler=build_sampler(train_dataset, recipe.data.sampler, recipe.data.sampler_temperature, args.seed),
    )


def train(recipe: Recipe) -> dict:
    """Run a recipe end to end; returns the test metrics."""
    args = recipe.training
    set_seed(args.seed)

    # Load datasets, model and image processor
    label_space, processor, cached = load_data(recipe)
    model = build_model(recipe.model, label_space)
    logger.info("process %d of %d on %s", args.process_index, args.world_size, args.device)

    # Training loop
    trainer = build_trainer(recipe, model, processor, cached["train"], cached["validation"])
    checkpoint = resolve_checkpoint(args)
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)

    # Save model and processor, evaluate on the test split
    trainer.save_model(args.output_dir)
    metrics = {}
    if trainer.is_world_process_zero():
        metrics = evaluate_dataset(trainer.model, trainer.preprocessor, cached["test"], args.per_device_eval_batch_size)
        trainer.save_metrics("test", {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"]})
        output_dir = Path(args.output_dir)
        write_json(output_dir / "metrics.json", {"test": metrics, "recipe": recipe.path})
        finish_export(output_dir, recipe, label_space, metrics)  # model card, and the push when push_to_hub
        print(format_table(metrics), flush=True)
        print(f"\nModel saved to {output_dir}", flush=True)
    return metrics
