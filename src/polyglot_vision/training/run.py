"""Fine-tuning a recipe end to end: prepare, cache pixels, train, test, export.

`train(recipe)` is the one path behind `scripts/train.py` (the `accelerate
launch` target) and `polyglot-vision train`; `streaming: true` goes through the
same Trainer assembly (`build_trainer`) with streamed splits.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from accelerate.utils import broadcast_object_list
from datasets import Dataset, DatasetDict, IterableDataset
from transformers import EarlyStoppingCallback, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..data import (
    batches_of,
    build_sampler,
    cache_pixels,
    check_pixel_cache_fits,
    collate,
    decode_on_the_fly,
    few_shot,
    format_counts,
    read_paths,
    split_counts,
    stream_pixels,
    streaming_splits,
    unify,
)
from ..errors import UserError
from ..evaluation import evaluate_dataset, format_not_evaluated, format_table, not_evaluated, predict_logits_dataset
from ..evaluation.answers import fit_answer_rules
from ..export import push_model, write_model_card
from ..labels import LabelSpace
from ..modeling import (
    build_image_processor,
    build_model,
    check_checkpoint,
    concept_fold,
    concept_ids,
    fit_temperature,
    fold_temperature,
    freeze_backbone,
    is_joint,
)
from ..outputs import (
    check_output_dir,
    claim,
    machine_faults,
    make_temp_dir,
    output_lock,
    publish,
    remove_stale_siblings,
    write_json,
)
from .augment import BatchPreprocessor
from .checkpoints import (
    RecordSettings,
    check_explicit_checkpoint,
    last_whole_checkpoint,
    resume_point,
    training_settings,
)
from .recipe import Recipe
from .trainer import PolyglotTrainer, compute_metrics_for

logger = logging.getLogger(__name__)

# Entries of an earlier model folder that move into the new one at export instead of being deleted.
CARRIED_ON_EXPORT = (f"{PREFIX_CHECKPOINT_DIR}-*", "runs")
# Test images kept in memory from a streamed run (the train split is never materialised).
STREAMING_TEST_IMAGES = 10_000


def joint_column(granularity: str) -> str:
    """The data column that splits a concept into joint classes: `language` or `script`."""
    return "script" if granularity == "concept_script" else "language"


def joint_pairs(dataset, label_space: LabelSpace, column: str = "language") -> list[tuple[str, str]]:
    """The (concept, language or script) pairs present in any split, by tag then concept: the joint classes."""
    seen = set()
    for part in dataset.values():
        plain = part.with_format(None)
        seen.update(zip(plain["label"], plain[column]))
    return [(label_space.ids[c], tag) for tag, c in sorted((tag, c) for c, tag in seen)]


def language_scripts(dataset) -> dict[str, str]:
    """{language: the script most of its images are tagged with}: the script a joint class names."""
    counts: dict[str, dict[str, int]] = {}
    for part in dataset.values():
        plain = part.with_format(None)
        for language, script in zip(plain["language"], plain["script"]):
            by_script = counts.setdefault(language, {})
            by_script[script] = by_script.get(script, 0) + 1
    return {language: max(by_script, key=by_script.get) for language, by_script in counts.items()}


# The softmax temperature is one number fitted by likelihood: on a few validation images it
# follows which of them happen to be right (3 images gave 0.48, much sharper scores) rather
# than the model. Below these counts the scores are left as trained (temperature 1.0).
MIN_CALIBRATION_IMAGES = 50
MIN_CALIBRATION_CONCEPTS = 2


def calibration_problem(split) -> str | None:
    """Why `split` is too small to fit a temperature on, or None."""
    n = len(split) if split is not None else 0
    if n < MIN_CALIBRATION_IMAGES:
        return f"only {n} validation image(s), fewer than {MIN_CALIBRATION_IMAGES}"
    concepts = len(set(split.with_format(None)["label"]))
    if concepts < MIN_CALIBRATION_CONCEPTS:
        return f"the {n} validation images show {concepts} concept(s), fewer than {MIN_CALIBRATION_CONCEPTS}"
    return None


def calibrate(model, preprocessor, split, batch_size: int) -> dict:
    """Fit the softmax temperature on `split` (the validation split) and fold it into the head.

    Returns what was done: {"fitted", "temperature", "images"} and, when skipped, "reason".
    """
    n = len(split) if split is not None else 0
    problem = calibration_problem(split)
    if problem is not None:
        return {"fitted": False, "temperature": 1.0, "images": n, "reason": problem}
    labels = (
        joint_label_ids(split, model.config)
        if is_joint(model.config)
        else np.asarray(split.with_format(None)["label"])
    )
    logits = predict_logits_dataset(model, preprocessor, split, batch_size)
    temperature = fit_temperature(logits, torch.as_tensor(labels))
    fold_temperature(model, temperature)
    logger.info("temperature fitted on %d validation images: %.3f (folded into the head)", n, temperature)
    return {"fitted": True, "temperature": float(temperature), "images": n}


def fit_answers(model, preprocessor, split, batch_size: int, label_space: LabelSpace) -> dict:
    """Fit the refusal threshold and find the twins on `split` (the validation split, after calibration), into the
    config; returns the fields set."""
    config = model.config
    if split is None or not len(split) or not (label_space.refusal_ids or is_joint(config)):
        return {}
    labels = joint_label_ids(split, config) if is_joint(config) else np.asarray(split.with_format(None)["label"])
    probabilities = predict_logits_dataset(model, preprocessor, split, batch_size).softmax(dim=-1)
    fields = fit_answer_rules(probabilities, torch.as_tensor(labels), config, label_space.twins)
    for key, value in fields.items():
        setattr(config, key, value)
    logger.info("answer rules fitted on %d validation images: %s", len(split), fields)
    return fields


def joint_label_ids(part, config) -> np.ndarray:
    """Each image's joint class id, from its concept and its language (or script, for `concept_script`)."""
    column = joint_column(config.label_granularity)
    tags = config.joint_label_script if column == "script" else config.joint_label_language
    index = {
        (config.concepts.index(config.joint_label_concept[name]), tags[name]): i for i, name in config.id2label.items()
    }
    plain = part.with_format(None)
    return np.asarray([index[key] for key in zip(plain["label"], plain[column])], dtype=np.int64)


def pixel_batches(part, config):
    """A split (pixel-cached or decoded as read) as whole-batch reads, labelled with the model's classes (joint
    ones too)."""
    return batches_of(part, joint_label_ids(part, config) if is_joint(config) else None)


def resolve_checkpoint(args) -> str | None:
    """`resume_from_checkpoint: auto` -> the last whole checkpoint-N in output_dir, or None (start fresh)."""
    checkpoint = args.resume_from_checkpoint
    if checkpoint is None or checkpoint is False:
        return None
    if str(checkpoint).strip().lower() != "auto":
        return check_explicit_checkpoint(str(checkpoint))
    last = last_whole_checkpoint(args.output_dir)
    logger.info(
        "resume_from_checkpoint auto: %s", f"resuming from {last}" if last else "no checkpoint, starting fresh"
    )
    return str(last) if last else None


def finished_metrics(output_dir: Path) -> dict:
    """The test metrics a finished run left in its folder (empty when it has none)."""
    try:
        return json.loads((output_dir / "metrics.json").read_text(encoding="utf-8")).get("test") or {}
    except (OSError, ValueError):
        return {}


def end_distributed() -> None:
    """Destroy the process group that the Trainer set up, if any (else runs may abort at exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def load_data(recipe: Recipe) -> tuple[LabelSpace, object, DatasetDict]:
    """The recipe's sources, unified, split and pixel-cached: (label space, image processor, cached splits).

    With `pixel_cache: false` nothing is cached: the splits decode their images as they are read.
    """
    args = recipe.training
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    # Under several processes the main one fills the `datasets` cache first; the others read it.
    with args.main_process_first(desc="loading the sources"):
        unified = unify(recipe.data, label_space)
    if args.process_index == 0:
        print(format_counts(unified.report), flush=True)
    dataset = unified.dataset
    if recipe.data.train_samples_per_class is not None:
        dataset["train"] = few_shot(dataset["train"], recipe.data.train_samples_per_class, recipe.data.split_seed)
    logger.info("images per split and source: %s", split_counts(dataset))
    processor = build_image_processor(recipe.model)
    if not recipe.data.pixel_cache:
        return label_space, processor, decode_on_the_fly(dataset, processor)
    with args.main_process_first(desc="caching pixels"):
        cached = cache_pixels(dataset, processor)
    return label_space, processor, cached


def check_cache_room(recipe: Recipe, dataset: DatasetDict) -> None:
    """For `prepare`: refuse now, in one line, a dataset whose pixel cache `train` could not write.

    Nothing to check with `pixel_cache: false`; a checkpoint whose processor cannot be read
    here (a Hub id offline) leaves the check to `train`, which makes it before caching.
    """
    if not recipe.data.pixel_cache:
        return
    try:
        processor = build_image_processor(recipe.model)
    except (UserError, OSError) as err:
        logger.info("pixel cache not estimated before training (%s); `train` checks it before caching", err)
        return
    check_pixel_cache_fits(dataset, processor)


def keep_token_off_disk(args) -> None:
    """Move `hub_token` out of the TrainingArguments, which the Trainer pickles into training_args.bin.

    The Hub client reads it from this process's environment instead (HF_TOKEN), for the
    Trainer's own pushes and for ours.
    """
    token = getattr(args, "hub_token", None)
    if token:
        os.environ["HF_TOKEN"] = str(token)
        args.hub_token = None


def build_trainer(recipe: Recipe, model, processor, train_split, eval_split=None) -> PolyglotTrainer:
    """A `PolyglotTrainer` with the recipe's augmentation, sampler and fine-tuning controls.

    `train_split` is a pixel-cached split (read by whole batches, drawn by the recipe's
    sampler) or a streamed one (`stream_pixels`), which the Trainer reads as it comes.
    """
    args = recipe.training
    keep_token_off_disk(args)
    if args.freeze_backbone:
        freeze_backbone(model)
    streamed = isinstance(train_split, IterableDataset)
    sampler = (
        None
        if streamed
        else build_sampler(
            train_split,
            recipe.data.sampler,
            recipe.data.sampler_temperature,
            args.seed,
            {source.name: source.weight for source in recipe.data.sources},
        )
    )
    callbacks = []
    if args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(args.early_stopping_patience, args.early_stopping_threshold))
    return PolyglotTrainer(
        model=model,
        args=args,
        train_dataset=train_split if streamed else pixel_batches(train_split, model.config),
        eval_dataset=pixel_batches(eval_split, model.config) if eval_split is not None and len(eval_split) else None,
        data_collator=collate,
        compute_metrics=compute_metrics_for(concept_fold(model.config)),
        processing_class=processor,
        preprocessor=BatchPreprocessor.from_processor(processor, args.augmentation),
        sampler=sampler,
        callbacks=callbacks,
    )


def train(recipe: Recipe) -> dict:
    """Run a recipe end to end; returns the test metrics.

    The main process holds the output folder's lock from the start through the export: a
    second run into the same `output_dir` is refused while this one lives.
    """
    args = recipe.training
    keep_token_off_disk(args)
    output_dir = check_output_dir(
        args.output_dir,
        overwrite=args.overwrite_output_dir,
        sources=read_paths(recipe.data),
        what="output_dir",
    )
    with output_lock(output_dir, what="output_dir") if args.process_index == 0 else nullcontext():
        return _train(recipe, output_dir)


def check_split_sizes(splits: DatasetDict, recipe: Recipe) -> None:
    """A split the run needs that came out empty is one line, before the model is built."""
    data, evaluates = recipe.data, recipe.training.eval_strategy != "no"
    if not len(splits["train"]):
        raise UserError(
            "recipe: the train split is empty: the sources hold too few images for the test and "
            "validation fractions; lower `test_fraction` and `validation_fraction`, or add images"
        )
    if evaluates and not len(splits["validation"]):
        raise UserError(
            f"recipe: `validation_fraction: {data.validation_fraction}` leaves the validation split empty "
            f'(it is taken per concept and language, rounded): raise it, or set `eval_strategy: "no"`'
        )


def _train(recipe: Recipe, output_dir: Path) -> dict:
    args = recipe.training
    done, checkpoint = resume_point(recipe, resolve_checkpoint(args))
    if done:
        return finished_metrics(output_dir)
    check_checkpoint(recipe.model)  # a hostile or oversized checkpoint stops before any data is prepared
    set_seed(args.seed)

    # Load datasets, model and image processor
    if recipe.data.streaming:
        label_space, processor, splits = stream_data(recipe)
        train_split, eval_split = splits["train"], None
        test_split = splits["test"]
    else:
        label_space, processor, cached = load_data(recipe)
        check_split_sizes(cached, recipe)
        train_split, eval_split, test_split = cached["train"], cached["validation"], cached["test"]
    # A joint model's classes are the (concept, language) pairs of the data (refused with streaming).
    granularity = args.label_granularity
    joint = granularity != "concept"
    pairs = joint_pairs(cached, label_space, joint_column(granularity)) if joint else None
    scripts = language_scripts(cached) if joint else None
    model = build_model(recipe.model, label_space, pairs, scripts, granularity)
    logger.info("process %d of %d on %s", args.process_index, args.world_size, args.device)

    # Training loop
    if args.process_index == 0:
        with machine_faults(output_dir, "output_dir"):
            claim(output_dir)  # checkpoints written while training land in a folder marked as the tool's
        remove_stale_siblings(output_dir)
    trainer = build_trainer(recipe, model, processor, train_split, eval_split)
    trainer.add_callback(RecordSettings(training_settings(recipe)))
    with machine_faults(output_dir, "output_dir"):  # checkpoints
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", train_result.metrics)

    # Test, save the model and write its card
    return export(
        trainer,
        recipe,
        label_space,
        test_split,
        train_result.metrics,
        calibration_split=eval_split,
        other_splits=[train_split, eval_split] if not recipe.data.streaming else [],
    )


def stream_data(recipe: Recipe) -> tuple[LabelSpace, object, dict]:
    """`load_data` for `streaming: true`: a streamed train split, and the head of the test split, pixel-cached."""
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    splits = streaming_splits(recipe.data, label_space)
    processor = build_image_processor(recipe.model)
    seed = recipe.training.seed
    train_stream = stream_pixels(splits["train"].shuffle(seed=seed, buffer_size=1_000), processor)
    test_rows = list(splits["test"].take(STREAMING_TEST_IMAGES))
    test = None
    if test_rows:
        test = Dataset.from_list(test_rows, features=splits["test"].features)
        test = cache_pixels(DatasetDict({"test": test}), processor)["test"]
    return label_space, processor, {"train": train_stream, "test": test}


def export(
    trainer: PolyglotTrainer,
    recipe: Recipe,
    label_space: LabelSpace,
    test_split=None,
    train_metrics: dict | None = None,
    calibration_split=None,
    other_splits=(),
) -> dict:
    """Calibrate and test the model, and publish its folder whole: weights, processor, metrics, card, push.

    The softmax temperature is fitted on `calibration_split` (the validation split) and folded into
    the classifier head before anything is saved, so the scores of the saved model are calibrated
    wherever it is loaded; too few images leave it at 1.0, said on the console and in the card.
    What the test split has no image of (languages, scripts, concepts, sources of `other_splits`)
    is named on the console, in metrics.json (`not_evaluated`) and in the card.

    Everything is written into a staging sibling of `output_dir` that replaces it at the
    end, so a run killed while exporting leaves the previous model or the new one, never
    a mix; the earlier folder's checkpoints move into the new one. A failed export (a full
    disk, a read-only folder) removes its staging folder.
    """
    args = recipe.training
    output_dir = Path(args.output_dir)
    calibration = calibrate(trainer.model, trainer.preprocessor, calibration_split, args.per_device_eval_batch_size)
    fit_answers(trainer.model, trainer.preprocessor, calibration_split, args.per_device_eval_batch_size, label_space)
    staging = _staging_dir(trainer, output_dir)
    with machine_faults(output_dir, "output_dir", cleanup=[staging] if trainer.is_world_process_zero() else []):
        trainer.save_model(str(staging))  # on every process: sharded set-ups gather the weights here
        metrics = {}
        if trainer.is_world_process_zero():
            metrics = test_and_publish(
                trainer, recipe, label_space, staging, test_split, train_metrics, calibration, other_splits
            )
    trainer.accelerator.wait_for_everyone()
    return metrics


def _staging_dir(trainer: PolyglotTrainer, output_dir: Path) -> Path:
    """A fresh temporary sibling of `output_dir`, made by the main process; every process gets its name."""
    staging = [str(make_temp_dir(output_dir)) if trainer.is_world_process_zero() else None]
    if trainer.args.world_size > 1:
        broadcast_object_list(staging, from_process=0)
    return Path(staging[0])


def coverage(metrics: dict, calibration: dict, test_split, other_splits, labels: list[str], sources=()) -> dict:
    """`metrics` with what the test did not cover and how the scores were calibrated, both said on the console."""
    missing = not_evaluated(test_split, [part for part in other_splits if part is not None], labels, sources)
    if calibration["fitted"]:
        print(
            f"calibration: softmax temperature {calibration['temperature']:.3f} fitted on "
            f"{calibration['images']} validation images",
            flush=True,
        )
    else:
        print(f"calibration skipped: {calibration['reason']}; the softmax temperature stays 1.0", flush=True)
    if missing:
        print(format_not_evaluated(missing), flush=True)
    return {**metrics, "not_evaluated": missing, "calibration": calibration}


def test_and_publish(trainer, recipe, label_space, staging, test_split, train_metrics, calibration, other_splits):
    """On the main process: test metrics, results files, the card, the swap into output_dir, the push."""
    args = recipe.training
    output_dir = Path(args.output_dir)
    metrics = {}
    if test_split is not None and len(test_split):
        metrics = evaluate_dataset(trainer.model, trainer.preprocessor, test_split, args.per_device_eval_batch_size)
    results = {**(train_metrics or {})}
    if metrics:
        results.update(test_accuracy=metrics["accuracy"], test_macro_f1=metrics["macro_f1"])
        metrics["softmax_temperature"] = float(getattr(trainer.model.config, "softmax_temperature", 1.0) or 1.0)
    labels = concept_ids(trainer.model.config)
    metrics = coverage(metrics, calibration, test_split, other_splits, labels, recipe.data.sources)
    write_json(staging / "train_results.json", train_metrics or {})
    write_json(staging / "all_results.json", results)
    write_json(staging / "metrics.json", {"test": metrics, "recipe": recipe.path})
    write_model_card(
        staging,
        recipe,
        label_space,
        metrics,
        model_name=args.hub_model_id or output_dir.name,
        config=trainer.model.config,
    )
    publish(staging, output_dir, carry=CARRIED_ON_EXPORT)
    if args.push_to_hub:
        # After the Trainer's own pushes: our card, metrics and plots replace its generated README.
        url = push_model(
            output_dir,
            args.hub_model_id or output_dir.name,
            private=getattr(args, "hub_private_repo", None),
        )
        print(f"Pushed to {url}", flush=True)
    if metrics.get("accuracy") is not None:
        print(format_table(metrics), flush=True)
    print(f"\nModel saved to {output_dir}", flush=True)
    return metrics
