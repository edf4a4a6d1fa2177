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
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .augment import BatchPreprocessor
from .configs import Recipe
from .data import build_dataset, build_sampler, cache_pixels, collate, split_counts
from .evaluation import classification_metrics, evaluate_dataset, format_table
from .hub import finish_export
from .labels import LabelSpace
from .modeling import build_image_processor, build_model

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


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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


def train(recipe: Recipe) -> dict:
    """Run a recipe end to end; returns the test metrics."""
    args = recipe.training
    set_seed(args.seed)
    if recipe.data.streaming:
        return train_streaming(recipe)

    # Load datasets
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    # Under several processes the main one fills the `datasets` cache first; the others read it.
    with args.main_process_first(desc="loading the sources"):
        dataset = build_dataset(recipe.data, label_space)
    logger.info("images per split and source: %s", split_counts(dataset))

    # Load model and image processor
    processor = build_image_processor(recipe.model)
    model = build_model(recipe.model, label_space)
    with args.main_process_first(desc="caching pixels"):
        cached = cache_pixels(dataset, processor)
    logger.info("process %d of %d on %s", args.process_index, args.world_size, args.device)

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
        sampler=build_sampler(cached["train"], recipe.data.sampler, recipe.data.sampler_temperature, args.seed),
    )
    checkpoint = resolve_checkpoint(args)
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
        finish_export(output_dir, recipe, label_space, metrics)  # model card, and the push when push_to_hub
        print(format_table(metrics), flush=True)
        print(f"\nModel saved to {output_dir}", flush=True)
    return metrics


# Test images kept in memory from a streamed run (the train split is never materialised).
STREAMING_TEST_IMAGES = 10_000


def train_streaming(recipe: Recipe) -> dict:
    """`train` for `streaming: true`: sources read while training, for sets larger than the disk.

    The train split streams through the Trainer for `max_steps`; there is no balanced
    sampler (it needs the whole split) and no evaluation during training; the first
    STREAMING_TEST_IMAGES of the test split are cached and scored at the end.
    """
    from datasets import Dataset, DatasetDict

    from .streaming import stream_pixels, streaming_splits

    args = recipe.training
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    splits = streaming_splits(recipe.data, label_space)
    processor = build_image_processor(recipe.model)
    model = build_model(recipe.model, label_space)
    train_stream = stream_pixels(splits["train"].shuffle(seed=args.seed, buffer_size=1_000), processor)
    test_rows = list(splits["test"].take(STREAMING_TEST_IMAGES))
    test = Dataset.from_list(test_rows, features=splits["test"].features) if test_rows else None
    preprocessor = BatchPreprocessor.from_processor(processor, recipe.data.augmentation)
    trainer = PolyglotTrainer(model=model, args=args, train_dataset=train_stream, data_collator=collate,
                              processing_class=processor, preprocessor=preprocessor)
    train_result = trainer.train(resume_from_checkpoint=resolve_checkpoint(args))
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_model(args.output_dir)
    metrics = {}
    if trainer.is_world_process_zero():
        if test is not None:
            cached = cache_pixels(DatasetDict({"test": test}), processor)["test"]
            metrics = evaluate_dataset(trainer.model, preprocessor, cached, args.per_device_eval_batch_size)
            trainer.save_metrics("test", {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"]})
        output_dir = Path(args.output_dir)
        write_json(output_dir / "metrics.json", {"test": metrics, "recipe": recipe.path})
        finish_export(output_dir, recipe, label_space, metrics)
        if metrics:
            print(format_table(metrics), flush=True)
        print(f"\nModel saved to {output_dir}", flush=True)
    return metrics
