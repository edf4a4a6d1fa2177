"""The pixel cache against decoding on the fly (`pixel_cache: false`): training images/s of each, and the size.

`cache_or_decode(recipe)` trains the recipe's model with `PolyglotTrainer`, as `train()` builds it, on the same
images three times per round: from the uint8 pixel cache (`PixelBatches`), and decoded and resized as each batch is
read (`DecodedBatches`) in the main process and by one DataLoader worker. Rounds alternate the three; each path
reports its best round, and the ratios the median of their per-round values (a CPU shared with other jobs slows
some rounds). The loaders alone (no model) show what decoding costs, and give the ratio a second way: a step from
the cache plus the time to decode one batch.
It also writes the cache once and compares its size on disk with the estimate that `prepare` and `train` check
against the free room, and gives that estimate for a Hub-sized set at 224 px. `scripts/benchmark.py cache` runs it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import numpy as np
import torch
import transformers
from datasets import DatasetDict
from torch.utils.data import DataLoader
from transformers import set_seed

from ..data import (
    DecodedBatches,
    PixelBatches,
    build_dataset,
    cache_pixels,
    cached_already,
    collate,
    decode_on_the_fly,
    pixel_cache_bytes,
    processor_input_size,
)
from ..labels import LabelSpace
from ..modeling import build_image_processor, build_model
from ..training import PolyglotTrainer, load_recipe
from ..training.augment import BatchPreprocessor
from .throughput import StepTimer

__all__ = ["cache_or_decode"]

PATHS = {
    "cached": "pixel cache (PixelBatches)",
    "on_the_fly": "decoded as read (DecodedBatches, pixel_cache: false)",
    "on_the_fly_worker": "decoded as read by one loader worker (pixel_cache: false, dataloader_num_workers: 1)",
}


def _loader_images_per_second(batches, batch_size: int, n_batches: int) -> float:
    loader = DataLoader(batches, batch_size=batch_size, shuffle=True, collate_fn=collate, drop_last=True)
    start, seen = None, 0
    for i, batch in enumerate(loader):
        if i == 0:
            start = time.perf_counter()  # the first batch warms up
        else:
            seen += len(batch["labels"])
        if i >= n_batches:
            break
    return seen / (time.perf_counter() - start)


def cache_or_decode(
    recipe_path: str,
    *,
    image_size: int | None = None,
    steps: int = 30,
    warmup: int = 3,
    rounds: int = 3,
    train_images: int = 2048,
    estimate_images: int = 250_000,
    estimate_size: int = 224,
) -> dict:
    """Images/s of training from the cache and decoding on the fly, their ratio, and the cache's size."""
    transformers.logging.set_verbosity_error()
    load_before = os.getloadavg()
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
    if image_size is not None:
        recipe.model = dataclasses.replace(recipe.model, image_size=image_size)
    args = recipe.training
    batch_size = args.per_device_train_batch_size
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    dataset = build_dataset(recipe.data, label_space)
    n = min(train_images, len(dataset["train"]))
    raw = DatasetDict({"train": dataset["train"].shuffle(seed=0).select(range(n)).flatten_indices()})
    processor = build_image_processor(recipe.model)
    height, width = processor_input_size(processor)

    read_back = cached_already(raw["train"], processor)  # an earlier run's cache is read, not written
    start = time.perf_counter()
    cached = cache_pixels(raw, processor)["train"]
    cache_seconds = time.perf_counter() - start
    cache_bytes = sum(os.path.getsize(f["filename"]) for f in cached.cache_files[-1:])
    decoded = decode_on_the_fly(raw, processor)["train"]
    sources = {
        "cached": lambda: PixelBatches(cached),
        "on_the_fly": lambda: DecodedBatches(decoded),
        "on_the_fly_worker": lambda: DecodedBatches(decoded),
    }
    workers = {"on_the_fly_worker": 1}  # else the recipe's own
    recipe_workers = args.dataloader_num_workers

    rounds_ips: dict[str, list[float]] = {key: [] for key in PATHS}
    for _ in range(rounds):
        for key, batches in sources.items():
            args.dataloader_num_workers = workers.get(key, recipe_workers)
            set_seed(args.seed)
            timer = StepTimer(warmup)
            trainer = PolyglotTrainer(
                model=build_model(recipe.model, label_space),
                args=args,
                train_dataset=batches(),
                data_collator=collate,
                preprocessor=BatchPreprocessor.from_processor(processor, args.augmentation),
                callbacks=[timer],
            )
            trainer.train()
            ips, _, step_seconds = timer.throughput(batch_size)
            rounds_ips[key].append(batch_size / float(np.median(step_seconds)))
            print(f"  {key}: {rounds_ips[key][-1]:8.1f} img/s by the median step ({PATHS[key]})", flush=True)
    args.dataloader_num_workers = recipe_workers
    loaders = {
        key: _loader_images_per_second(sources[key](), batch_size, max(4, min(20, n // batch_size - 1)))
        for key in ("cached", "on_the_fly")
    }
    tmp.cleanup()

    ratios = {
        key: [d / c for c, d in zip(rounds_ips["cached"], rounds_ips[key])]
        for key in ("on_the_fly", "on_the_fly_worker")
    }
    # What decoding alone adds to a step: a step from the cache (best round) plus the loader's time for one batch.
    # Steadier than the ratio of two trainings when other jobs share the cores.
    from_loader = 1 / (1 + max(rounds_ips["cached"]) / loaders["on_the_fly"])
    estimate = pixel_cache_bytes(n, height, width)
    summary = {
        "recipe": recipe_path,
        "model": recipe.model.model_name_or_path or recipe.model.model_config.get("model_type"),
        "input_size": height,
        "batch_size": batch_size,
        "train_images": n,
        "timed_steps": steps,
        "warmup_steps": warmup,
        "rounds": rounds,
        "dataloader_num_workers": args.dataloader_num_workers,
        "training_images_per_second": {
            key: {"what": PATHS[key], "best": max(values), "rounds": values} for key, values in rounds_ips.items()
        },
        "on_the_fly_over_cached": {
            "median_of_rounds": float(np.median(ratios["on_the_fly"])),
            "rounds": ratios["on_the_fly"],
            "from_the_decoding_cost": from_loader,
        },
        "on_the_fly_worker_over_cached": {
            "median_of_rounds": float(np.median(ratios["on_the_fly_worker"])),
            "rounds": ratios["on_the_fly_worker"],
        },
        "loader_images_per_second": loaders,
        "cache": {
            "bytes_on_disk": cache_bytes,
            "estimated_bytes": estimate,
            "estimate_error": (estimate - cache_bytes) / cache_bytes,
            "seconds_to_write": None if read_back else cache_seconds,
            "read_back": read_back,
            "bytes_per_image": cache_bytes / n,
        },
        "estimate_at_scale": {
            "images": estimate_images,
            "input_size": estimate_size,
            "gigabytes": pixel_cache_bytes(estimate_images, estimate_size, estimate_size) / 1e9,
        },
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15min_before": list(load_before),
        "load_average_1_5_15min_after": list(os.getloadavg()),
    }
    print(
        f"on the fly / cached: {summary['on_the_fly_over_cached']['median_of_rounds']:.2f}, with a loader worker "
        f"{summary['on_the_fly_worker_over_cached']['median_of_rounds']:.2f} (medians of rounds); "
        f"cache {cache_bytes / 1e6:.1f} MB for {n} images at {height} px (estimate {estimate / 1e6:.1f} MB); "
        f"{estimate_images:,} images at {estimate_size} px: {summary['estimate_at_scale']['gigabytes']:.1f} GB"
    )
    return summary
