"""GPU check: fine-tune the ViT and ConvNeXt recipes for a few hundred steps in bf16 at 224 px, in one go.

Usage:
    python scripts/gpu_check.py                                   # on a CUDA machine: 300 steps each, bf16, 224 px
    python scripts/gpu_check.py --device cpu --steps 2 --batch-size 4 --image-size 32   # the same path on a CPU
    python scripts/gpu_check.py --output gpu_check.json

The models are the repository's recipes (`recipes/polydigits/vit.yaml`, `convnext.yaml`), built from
their configs at `--image-size` (the ViT keeps its grid of 8 x 8 patches), trained by `PolyglotTrainer`
(uint8 batches normalised and augmented on the device, as `train()` does) on random images of random
concepts held in memory, so the check needs no data set and no Hub. For each model it prints images/s
(after the warm-up steps), peak GPU memory and the first and last loss.

On a machine with torch, transformers and accelerate but without this package's other dependencies, install
them first: `pip install --no-deps datasets kornia kornia_rs langcodes babel num2words evaluate` (as wheels
carried along when the machine is offline), then `pip install --no-deps -e .`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback, set_seed

from polyglot_vision.data import collate
from polyglot_vision.labels import LabelSpace
from polyglot_vision.modeling import build_image_processor, build_model
from polyglot_vision.outputs import write_text
from polyglot_vision.training import BatchPreprocessor, PolyglotTrainer, load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"vit": REPO / "recipes/polydigits/vit.yaml", "convnext": REPO / "recipes/polydigits/convnext.yaml"}


class RandomPixels(torch.utils.data.Dataset):
    """`n` random uint8 images of random concepts, read by whole batches like the pixel cache."""

    def __init__(self, n: int, size: int, classes: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.pixels = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
        self.labels = torch.randint(0, classes, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices):
        return {"pixel_values": self.pixels[indices], "labels": self.labels[indices]}


class StepTimer(TrainerCallback):
    def __init__(self, warmup: int):
        self.warmup, self.ends, self.losses = warmup, [], []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def check(name: str, args) -> dict:
    on_gpu = args.device == "cuda"
    with tempfile.TemporaryDirectory() as out:
        overrides = {
            "output_dir": out,
            "max_steps": args.steps,
            "per_device_train_batch_size": args.batch_size,
            "image_size": args.image_size,
            "bf16": on_gpu,
            "use_cpu": not on_gpu,
            "eval_strategy": "no",
            "save_strategy": "no",
            "logging_steps": 1,
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "warmup_steps": 0,
            "report_to": "none",
        }
        recipe = load_recipe(RECIPES[name], overrides)
        config = recipe.model.model_config
        if config["model_type"] == "vit":  # the recipe's grid of patches at any image size
            config["patch_size"] = max(1, config["patch_size"] * args.image_size // config["image_size"])
        set_seed(recipe.training.seed)
        label_space = LabelSpace.from_yaml(REPO / recipe.data.label_space)
        model = build_model(recipe.model, label_space)
        processor = build_image_processor(recipe.model)
        data = RandomPixels(max(args.batch_size * 4, 64), args.image_size, len(label_space.ids))
        timer = StepTimer(warmup=min(args.warmup, max(args.steps - 1, 0)))
        trainer = PolyglotTrainer(
            model=model,
            args=recipe.training,
            train_dataset=data,
            data_collator=collate,
            preprocessor=BatchPreprocessor.from_processor(processor, recipe.training.augmentation),
            callbacks=[timer],
        )
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        timed = timer.ends[timer.warmup :]
        seconds = timed[-1] - timed[0] if len(timed) > 1 else float("nan")
        return {
            "model": name,
            "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "device": torch.cuda.get_device_name() if on_gpu else "cpu",
            "precision": "bf16" if on_gpu else "fp32",
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "images_per_second": round((len(timed) - 1) * args.batch_size / seconds, 1) if len(timed) > 1 else None,
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
            "first_loss": timer.losses[0] if timer.losses else None,
            "last_loss": timer.losses[-1] if timer.losses else None,
            "loss_is_finite": bool(timer.losses) and all(np.isfinite(timer.losses)),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of images/s")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--models", nargs="+", choices=sorted(RECIPES), default=sorted(RECIPES))
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --device cpu")
    results = []
    for name in args.models:
        row = check(name, args)
        results.append(row)
        print(
            f"{name}: {row['images_per_second']} images/s, peak {row['peak_memory_gib']} GiB, "
            f"loss {row['first_loss']} -> {row['last_loss']} ({row['precision']}, {row['device']})",
            flush=True,
        )
    text = json.dumps(results, indent=2)
    if args.output:
        write_text(args.output, text + "\n")  # a temporary beside it, then a rename: never half-written
    print(text)
    return 0 if all(row["loss_is_finite"] for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
