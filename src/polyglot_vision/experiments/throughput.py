"""Training throughput (images per second) in one run, on one model, batch size and data.

`training_throughput(recipe)` times (a) the bare model (forward, backward and the Trainer's own optimizer, fused
AdamW, on a batch already in memory), (b) this project's `PolyglotTrainer` on the pixel cache (whole batches read
by `PixelBatches`) with batch augmentation, as `train()` builds it, (b0) the same Trainer fed one fixed, already
normalised batch (the Trainer's own loop, which splits the gap between (a) and (b) into Trainer and data path),
(c) the plain `Trainer` fed by a per-image Pillow `set_transform` as in the transformers image-classification
example, and, without a model, the loaders alone: (d) the pixel cache to a uint8 batch tensor and (e) the
per-image Pillow transform, at the recipe's input size and at 224 px. The batch augmentation is device work; its
cost on this CPU is reported beside (d) as `d_augment_on_cpu_*`. Step times are taken after a warm-up, so
start-up (loading, caching, building the Trainer) is excluded. `scripts/benchmark.py train` runs it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import tempfile
import time

import numpy as np
import torch
import transformers
from datasets import DatasetDict
from PIL import Image
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback, set_seed

from ..data import PixelBatches, build_dataset, cache_pixels, collate, processor_input_size
from ..labels import LabelSpace
from ..modeling import build_image_processor, build_model
from ..training import PolyglotTrainer, load_recipe
from ..training.augment import BatchPreprocessor

__all__ = ["StepTimer", "collate_float", "pil_train_transform", "training_throughput"]


def pil_train_transform(size: int, mean, std, seed: int = 0):
    """Per-image decode -> random resized crop -> resize -> normalise, with PIL and numpy.

    What the transformers image-classification example does with torchvision
    (RandomResizedCrop(size) + ToTensor + Normalize; no flip: glyphs are not
    symmetric), written with PIL because torchvision is not installed.
    """
    rng = np.random.default_rng(seed)
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def crop_box(width, height, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        area = width * height
        for _ in range(10):  # torchvision's RandomResizedCrop.get_params
            target = area * rng.uniform(*scale)
            aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                x = int(rng.integers(0, width - w + 1))
                y = int(rng.integers(0, height - h + 1))
                return (x, y, x + w, y + h)
        return (0, 0, width, height)

    def transform(batch):
        out = []
        for image in batch["image"]:  # `datasets` decodes each image to PIL here
            image = image.convert("RGB")
            image = image.resize((size, size), Image.BILINEAR, box=crop_box(*image.size))
            array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
            out.append(torch.from_numpy((array - mean) / std))
        return {"pixel_values": out, "labels": batch["label"]}

    return transform


def collate_float(examples):
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([int(e["labels"]) for e in examples]),
    }


class _FixedBatch:
    """A training set whose every batch is one fixed, already normalised batch (for row b0)."""

    def __init__(self, batch: dict, length: int):
        self.batch, self.length = batch, length

    def __len__(self):
        return self.length

    def __getitems__(self, indices):
        return self.batch


class _Prepared(torch.nn.Module):
    """A `BatchPreprocessor` stand-in that passes batches through: no normalisation, no augmentation."""

    def forward(self, pixels, augment=False):
        return pixels

    def mix(self, pixels, labels, num_classes):
        return pixels, labels


class StepTimer(TrainerCallback):
    """Times the steps after `warmup`: end of step `warmup` to end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.ends = warmup, []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

    def throughput(self, batch_size):
        timed = self.ends[self.warmup - 1 :]
        steps = len(timed) - 1
        return steps * batch_size / (timed[-1] - timed[0]), steps, np.diff(timed)


def _time_loader(loader, batches: int, warmup: int, per_batch=None) -> tuple[float, int]:
    n, start, done = 0, None, 0
    while done < batches + warmup:
        for batch in loader:
            if per_batch is not None:
                per_batch(batch)
            done += 1
            if done == warmup:
                start = time.perf_counter()
            elif done > warmup:
                n += len(batch["labels"])
            if done >= batches + warmup:
                break
    return n / (time.perf_counter() - start), batches


def training_throughput(
    recipe_path: str,
    *,
    steps: int = 60,
    warmup: int = 3,
    rounds: int = 5,
    train_images: int = 4096,
    images_224: int = 2048,
    loader_batches: int = 20,
) -> dict:
    """(a) to (e) on the recipe's model, batch size and data: the best round of each, ratios, the machine."""
    transformers.logging.set_verbosity_error()
    load_before = os.getloadavg()  # others sharing the cores show here
    tmp = tempfile.TemporaryDirectory()
    recipe = load_recipe(
        recipe_path,
        {
            "output_dir": tmp.name,
            "max_steps": steps + warmup,
            "eval_strategy": "no",
            "save_strategy": "no",
            "logging_strategy": "no",
            "disable_tqdm": True,
            "report_to": "none",
        },
    )
    targs = recipe.training
    batch_size = targs.per_device_train_batch_size
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    t0 = time.perf_counter()
    dataset = build_dataset(recipe.data, label_space)
    full_train = len(dataset["train"])
    n_train = min(train_images, full_train)
    train_raw = dataset["train"].shuffle(seed=0).select(range(n_train)).flatten_indices()
    processor = build_image_processor(recipe.model)
    size = processor_input_size(processor)[0]
    cached = cache_pixels(DatasetDict({"train": train_raw}), processor)["train"]
    setup_s = time.perf_counter() - t0
    results: dict[str, dict] = {}

    def record(key, label, ips, n_steps, step_seconds=None, **extra):
        previous = results.get(key, {})
        rounds = previous.get("rounds_images_per_second", []) + [ips]
        # Batch size over the median step: a step slowed by another job on the machine moves the
        # mean but not the median (each timed step does the same work: no logging, eval or saving).
        median = None if step_seconds is None else batch_size / float(np.median(step_seconds))
        medians = previous.get("rounds_images_per_second_median_step", []) + ([median] if median else [])
        print(
            f"  {key}: {ips:8.1f} img/s" + (f", {median:8.1f} by the median step" if median else "") + f"  ({label})",
            flush=True,
        )
        if key in results and results[key]["images_per_second"] >= ips:
            results[key]["rounds_images_per_second"] = rounds
            results[key]["rounds_images_per_second_median_step"] = medians
            return
        results[key] = {
            "what": label,
            "images_per_second": ips,
            "timed_batches": n_steps,
            "rounds_images_per_second": rounds,
            "rounds_images_per_second_median_step": medians,
            **extra,
        }

    def timed_training(key, label, trainer_cls, **trainer_kwargs):
        """Train a fresh model from the same seed with `trainer_cls`; record its step times under `key`."""
        set_seed(targs.seed)
        timer = StepTimer(warmup)
        trainer = trainer_cls(
            model=build_model(recipe.model, label_space), args=targs, callbacks=[timer], **trainer_kwargs
        )
        out = trainer.train()
        ips, n, step_seconds = timer.throughput(batch_size)
        record(
            key,
            label,
            ips,
            n,
            step_seconds,
            trainer_reported_samples_per_second_incl_startup=out.metrics.get("train_samples_per_second"),
        )

    # (a), (b), (b0), (c) in rounds, each keeping its best round: a CPU shared with other jobs
    # slows some rounds, and the best one is the closest to what the code itself costs.
    # The batch (a) trains on at every step, and (b0) too: the cache's first images, normalised.
    first = collate([cached[i] for i in range(batch_size)])
    fixed_batch = {
        "pixel_values": BatchPreprocessor.from_processor(processor)(first["pixel_values"], augment=False),
        "labels": first["labels"],
    }
    for _ in range(rounds):
        # (a) bare model: a fixed, pre-normalised float batch already in memory, with the optimizer
        # the Trainer builds from the recipe (fused AdamW where torch has it), and, as an extra
        # row, torch's default AdamW (foreach), which the Trainer does not use.
        for key, fused in (("a_bare_model", True), ("a_bare_model_default_adamw", False)):
            set_seed(targs.seed)
            model = build_model(recipe.model, label_space)
            model.train()
            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(targs, model)
            optimizer_kwargs = {**optimizer_kwargs, "weight_decay": targs.weight_decay}
            if not fused:
                optimizer_kwargs.pop("fused", None)
            optimizer = optimizer_cls(model.parameters(), **optimizer_kwargs)
            pixels, labels = fixed_batch["pixel_values"], fixed_batch["labels"]
            loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=targs.label_smoothing_factor)
            ends = []
            for _ in range(steps + warmup):
                loss = loss_fn(model(pixel_values=pixels).logits, labels)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                ends.append(time.perf_counter())
            timed = ends[warmup - 1 :]
            what = (
                f"forward+backward+{optimizer_cls.__name__}({'fused' if optimizer_kwargs.get('fused') else 'foreach'})"
            )
            record(
                key,
                f"{what} on an in-memory float batch",
                steps * batch_size / (timed[-1] - timed[0]),
                steps,
                np.diff(timed),
            )

        # (b) this project's pipeline: PolyglotTrainer on the pixel cache, augmented per batch.
        timed_training(
            "b_polyglot_trainer",
            f"PolyglotTrainer, pixel cache, '{recipe.training.augmentation}' batch augmentation",
            PolyglotTrainer,
            train_dataset=PixelBatches(cached),
            data_collator=collate,
            preprocessor=BatchPreprocessor.from_processor(processor, recipe.training.augmentation),
        )

        # (b0) the same Trainer fed, at every step, the normalised batch (a) trains on: no cache
        # read and no augmentation, so (b0) against (a) is the Trainer's own loop, and (b) against
        # (b0) the data path.
        timed_training(
            "b0_trainer_fixed_batch",
            "PolyglotTrainer on one fixed normalised batch: no cache read, no augmentation",
            PolyglotTrainer,
            train_dataset=_FixedBatch(fixed_batch, len(cached)),
            data_collator=collate,
            preprocessor=_Prepared(),
        )

        # (c) the plain Trainer fed by a per-image Pillow transform (the HF example's way).
        pil_train = train_raw.select_columns(["image", "label"])
        pil_train.set_transform(pil_train_transform(size, processor.image_mean, processor.image_std))
        timed_training(
            "c_trainer_pil_transform",
            "transformers.Trainer, per-image PIL decode/random-resized-crop/resize/normalise",
            Trainer,
            train_dataset=pil_train,
            data_collator=collate_float,
        )

    # (d), (e): the loaders alone, no model, at the recipe's size and at 224 px.
    for px in dict.fromkeys((size, 224)):
        if px == size:
            proc, cache_px, raw_px = processor, cached, train_raw
        else:
            model_args = dataclasses.replace(recipe.model, image_size=px)
            proc = build_image_processor(model_args)
            raw_px = train_raw.select(range(min(images_224, n_train)))
            cache_px = cache_pixels(DatasetDict({"train": raw_px}), proc)["train"]
        batches = loader_batches if px == size else max(4, loader_batches // 2)
        prep = BatchPreprocessor.from_processor(proc, recipe.training.augmentation)
        loader = DataLoader(
            PixelBatches(cache_px), batch_size=batch_size, shuffle=True, collate_fn=collate, drop_last=True
        )
        ips, n = _time_loader(loader, batches, 1)
        record(f"d_cache_loader_{px}px", f"PixelBatches (pixel cache -> uint8 batch) + collate, {px} px", ips, n)
        with torch.no_grad():
            ips, n = _time_loader(loader, batches, 1, lambda b, prep=prep: prep(b["pixel_values"], augment=True))
        record(
            f"d_augment_on_cpu_{px}px",
            f"the same + BatchPreprocessor('{recipe.training.augmentation}') on the CPU (device work on a GPU), "
            f"{px} px",
            ips,
            n,
        )
        pil = raw_px.select_columns(["image", "label"])
        pil.set_transform(pil_train_transform(px, proc.image_mean, proc.image_std))
        loader = DataLoader(pil, batch_size=batch_size, shuffle=True, collate_fn=collate_float, drop_last=True)
        ips, n = _time_loader(loader, batches, 1)
        record(f"e_pil_loader_{px}px", f"per-image PIL transform + stack, {px} px", ips, n)
    tmp.cleanup()

    r = {k: v["images_per_second"] for k, v in results.items()}
    ratios = {
        "b_over_a": r["b_polyglot_trainer"] / r["a_bare_model"],
        "b_over_a_default_adamw": r["b_polyglot_trainer"] / r["a_bare_model_default_adamw"],
        "b0_over_a": r["b0_trainer_fixed_batch"] / r["a_bare_model"],
        "b_over_c": r["b_polyglot_trainer"] / r["c_trainer_pil_transform"],
    }
    # The same ratios round by round, (a), (b) and (c) of one round run minutes apart at most: their
    # median is steadier than a ratio of two best rounds when the CPU's speed drifts.
    # And by the median step of each round, the steadiest of the three.
    for suffix, field in (
        ("median_of_rounds", "rounds_images_per_second"),
        ("median_step_median_of_rounds", "rounds_images_per_second_median_step"),
    ):
        by_round = {k: v[field] for k, v in results.items()}
        for name, num, den in (
            ("b_over_a", "b_polyglot_trainer", "a_bare_model"),
            ("b0_over_a", "b0_trainer_fixed_batch", "a_bare_model"),
            ("b_over_c", "b_polyglot_trainer", "c_trainer_pil_transform"),
        ):
            ratios[f"{name}_{suffix}"] = float(np.median([n / d for n, d in zip(by_round[num], by_round[den])]))
    for px in dict.fromkeys((size, 224)):
        ratios[f"d_over_e_{px}px"] = r[f"d_cache_loader_{px}px"] / r[f"e_pil_loader_{px}px"]
    summary = {
        "recipe": recipe_path,
        "batch_size": batch_size,
        "input_size": size,
        "train_images": n_train,
        "train_split_images": full_train,
        "images_224": min(images_224, n_train),
        "timed_steps": steps,
        "warmup_steps": warmup,
        "rounds": rounds,
        "dataloader_num_workers": targs.dataloader_num_workers,
        "setup_seconds": setup_s,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "platform": platform.platform(),
        "device": str(targs.device),
        "load_average_1_5_15min_before": list(load_before),
        "load_average_1_5_15min_after": list(os.getloadavg()),
        "results": results,
        "ratios": ratios,
    }
    width = max(map(len, results))
    print(f"\n{'measurement':<{width}}  {'img/s':>9}  {'median':>9}  what")
    for key, row in results.items():
        medians = row["rounds_images_per_second_median_step"]
        median = f"{max(medians):>9.1f}" if medians else f"{'':>9}"
        print(f"{key:<{width}}  {row['images_per_second']:>9.1f}  {median}  {row['what']}")
    print("  ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
    return summary
