"""Fine-tuning with `transformers.Trainer`: prepare, cache pixels, train, test, export.

`train(recipe)` is the one path behind `scripts/train.py` (the `accelerate
launch` target) and `polyglot-vision train`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import DistributedType
from datasets import DatasetDict
from transformers import EarlyStoppingCallback, Trainer, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .augment import BatchPreprocessor
from .configs import Recipe
from .data import PixelBatches, build_dataset, build_sampler, cache_pixels, collate, few_shot, split_counts
from .evaluation import classification_metrics, evaluate_dataset, format_table
from .hub import finish_export
from .labels import LabelSpace
from .modeling import build_image_processor, build_model, concept_fold, layer_decay_groups
from .outputs import write_json

logger = logging.getLogger(__name__)


# Set-ups where every process holds the whole model and its gradients.
UNSHARDED = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)


class PolyglotTrainer(Trainer):
    """Trainer whose batches arrive as uint8 and are augmented, mixed and normalised on the device.

    Training and evaluation read whole batches from the pixel cache (`PixelBatches`).
    The loss is `classification_loss`, which takes the soft targets of mixup /
    CutMix as well as class ids. `freeze_backbone` keeps the backbone in eval
    mode (its normalisation statistics stay as loaded); `layer_decay` gives each
    block its own learning rate.
    """

    def __init__(self, *args, preprocessor: BatchPreprocessor, sampler=None, layer_decay: float | None = None,
                 frozen_backbone: bool = False, **kwargs):
        kwargs.setdefault("compute_loss_func", classification_loss(kwargs["args"].label_smoothing_factor))
        super().__init__(*args, **kwargs)
        self.preprocessor = preprocessor
        self.sampler = sampler  # a balanced sampler (data.build_sampler), or None for the Trainer's own
        self.layer_decay = layer_decay
        self.frozen_backbone = frozen_backbone
        self._parameters: list[torch.nn.Parameter] | None = None
        self._parameter_count: int | None = None

    def _get_train_sampler(self, train_dataset=None):
        return self.sampler if self.sampler is not None else super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model=None):
        if self.layer_decay is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        groups = layer_decay_groups(model, self.args.learning_rate, self.layer_decay, self.args.weight_decay,
                                    set(self.get_decay_parameter_names(model)))
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's estimate (6 · input size · parameters), counting the parameters once, not at every step."""
        main_input = getattr(self.model, "main_input_name", "pixel_values")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._parameter_count is None:
            self._parameter_count = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main_input].numel() * self._parameter_count

    def _clip_grad_norm(self, model):
        # One process or DDP: torch's clipping over the parameter list taken once, instead of
        # walking every module at every step; sharded and other set-ups keep the Trainer's path.
        if self.accelerator.distributed_type not in UNSHARDED or self._has_mixed_mesh_grads(model):
            return super()._clip_grad_norm(model)
        if self._parameters is None:
            self._parameters = list(model.parameters())
        self.accelerator.unscale_gradients()
        max_norm = self.args.max_grad_norm
        norm = torch.nn.utils.get_total_norm([p.grad for p in self._parameters if p.grad is not None])
        # Under the limit the scaling is by exactly 1: on a CPU, where reading the norm costs no
        # wait for a device, that pass over every gradient is skipped.
        if norm.device.type != "cpu" or not float(norm) + 1e-6 <= max_norm:  # NaN clips, as in torch
            torch.nn.utils.clip_grads_with_norm_(self._parameters, max_norm, norm)
        return norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self.frozen_backbone:
            self.accelerator.unwrap_model(model).base_model.eval()
        pixels = self.preprocessor(inputs["pixel_values"], augment=model.training)
        labels = inputs.get("labels")
        if model.training and labels is not None:
            num_classes = self.accelerator.unwrap_model(model).config.num_labels
            pixels, labels = self.preprocessor.mix(pixels, labels, num_classes)
        inputs = {**inputs, "pixel_values": pixels, "labels": labels}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


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


compute_metrics = compute_metrics_for()


def joint_pairs(dataset, label_space: LabelSpace) -> list[tuple[str, str]]:
    """The (concept, language) pairs present in any split, by language then concept: a joint model's classes."""
    seen = set()
    for part in dataset.values():
        plain = part.with_format(None)
        seen.update(zip(plain["label"], plain["language"]))
    return [(label_space.ids[c], language) for language, c in sorted((lang, c) for c, lang in seen)]


def joint_label_ids(part, config) -> np.ndarray:
    """Each image's joint class id of a `concept_language` model, from its concept and language."""
    index = {
        (config.concepts.index(config.joint_label_concept[name]), config.joint_label_language[name]): i
        for i, name in config.id2label.items()
    }
    plain = part.with_format(None)
    return np.asarray([index[key] for key in zip(plain["label"], plain["language"])], dtype=np.int64)


def pixel_batches(part, config) -> PixelBatches:
    """A cached split as whole-batch reads, labelled with the model's classes (joint ones too)."""
    joint = getattr(config, "label_granularity", "concept") == "concept_language"
    return PixelBatches(part, joint_label_ids(part, config) if joint else None)


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


def build_trainer(recipe: Recipe, model, processor, train_split, eval_split=None) -> PolyglotTrainer:
    """A `PolyglotTrainer` on pixel-cached splits, with the recipe's augmentation, sampler and controls."""
    args, controls = recipe.training, recipe.model
    callbacks = []
    if controls.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(controls.early_stopping_patience, controls.early_stopping_threshold))
    return PolyglotTrainer(
        model=model,
        args=args,
        train_dataset=pixel_batches(train_split, model.config),
        eval_dataset=pixel_batches(eval_split, model.config) if eval_split is not None and len(eval_split) else None,
        data_collator=collate,
        compute_metrics=compute_metrics_for(concept_fold(model.config)),
        processing_class=processor,
        preprocessor=BatchPreprocessor.from_processor(processor, recipe.data.augmentation),
        sampler=build_sampler(train_split, recipe.data.sampler, recipe.data.sampler_temperature, args.seed,
                              {source.name: source.weight for source in recipe.data.sources}),
        layer_decay=controls.layer_decay,
        frozen_backbone=controls.freeze_backbone,
        callbacks=callbacks,
    )


def train(recipe: Recipe) -> dict:
    """Run a recipe end to end; returns the test metrics."""
    args = recipe.training
    set_seed(args.seed)
    if recipe.data.streaming:
        return train_streaming(recipe)

    # Load datasets, model and image processor
    label_space, processor, cached = load_data(recipe)
    pairs = joint_pairs(cached, label_space) if recipe.data.label_granularity == "concept_language" else None
    model = build_model(recipe.model, label_space, pairs)
    logger.info("process %d of %d on %s", args.process_index, args.world_size, args.device)

    # Training loop
    trainer = build_trainer(recipe, model, processor, cached["train"], cached["validation"])
    checkpoint = resolve_checkpoint(args)
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)

    return finish_run(trainer, recipe, label_space, cached["test"])


def finish_run(trainer: PolyglotTrainer, recipe: Recipe, label_space: LabelSpace, test_split=None) -> dict:
    """Save the model; on the main process test it on `test_split`, write metrics.json and the model card."""
    args = recipe.training
    trainer.save_model(args.output_dir)
    metrics = {}
    if trainer.is_world_process_zero():
        if test_split is not None and len(test_split):
            metrics = evaluate_dataset(trainer.model, trainer.preprocessor, test_split, args.per_device_eval_batch_size)
            trainer.save_metrics("test", {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"]})
        output_dir = Path(args.output_dir)
        write_json(output_dir / "metrics.json", {"test": metrics, "recipe": recipe.path})
        finish_export(output_dir, recipe, label_space, metrics)  # model card, and the push when push_to_hub
        if metrics:
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
    from datasets import Dataset

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
    test_split = cache_pixels(DatasetDict({"test": test}), processor)["test"] if test is not None else None
    return finish_run(trainer, recipe, label_space, test_split)
