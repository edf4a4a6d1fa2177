"""Images per second of `prepare` on synthetic PNGs.

`prepare_speed()` writes parquet manifests of small synthetic PNGs (as Hub datasets store them, with a few planted
duplicates) and times unification alone (load, align, check, hash, de-duplicate, split) and with `save_to_disk`,
from a cold `datasets` cache. `scripts/benchmark.py prepare` runs it.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

from ..data import save_dataset, unify
from ..labels import LabelSpace
from ..training import recipe_from_dict

__all__ = ["prepare_speed"]


def _synthetic_pngs(n: int, size: int, seed: int) -> tuple[list[bytes], list[str]]:
    """n distinct PNGs of smooth shapes (a few KB each, like scans), labels "0" … "9"."""
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


def prepare_speed(
    *,
    images: int = 40_000,
    sources: int = 4,
    size: int = 64,
    duplicates: int = 50,
    num_proc: int | None = None,
    label_space: str = "recipes/labels/digits.yaml",
) -> dict:
    """Images per second of unification alone and with `save_to_disk`, on `images` synthetic PNGs."""
    datasets.disable_caching()  # every run checks every image: no result comes from an earlier run's cache
    datasets.disable_progress_bars()
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    languages = ["en", "fr", "hi", "ar", "zh", "th", "de", "bn"][:sources]
    per_source = images // sources
    listed = []
    started = time.perf_counter()
    for k, lang in enumerate(languages):
        pngs, labels = _synthetic_pngs(per_source, size, seed=k)
        pngs[-duplicates:] = pngs[:duplicates]  # planted duplicates
        features = Features({"image": ImageFeature(), "label": Value("string")})
        Dataset.from_dict(
            {"image": [{"bytes": b, "path": None} for b in pngs], "label": labels}, features=features
        ).to_parquet(str(work / f"{lang}.parquet"))
        listed.append({"name": f"synthetic-{lang}", "path": str(work / f"{lang}.parquet"), "language": lang})
    print(
        f"wrote {per_source * len(languages)} PNGs of {size} px in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    recipe = recipe_from_dict(
        {
            "model_config": {"model_type": "resnet"},
            "label_space": label_space,
            "sources": listed,
            "output_dir": str(work / "out"),
            "num_proc": num_proc,
        }
    )
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    n = per_source * len(languages)
    started = time.perf_counter()
    unified = unify(recipe.data, label_space)
    unify_s = time.perf_counter() - started
    save_dataset(unified.dataset, work / "dataset")
    total_s = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    result = {
        "images": n,
        "image_size": size,
        "sources": len(languages),
        "duplicates_removed": unified.report["duplicates"]["removed"],
        "unify_seconds": round(unify_s, 2),
        "unify_images_per_second": round(n / unify_s, 1),
        "prepare_seconds": round(total_s, 2),
        "prepare_images_per_second": round(n / total_s, 1),
        "num_proc": num_proc,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(
        f"prepare: {result['prepare_images_per_second']:.0f} images/s with save_to_disk "
        f"({result['unify_images_per_second']:.0f} images/s to unify), {n} images of {size} px",
        file=sys.stderr,
    )
    return result
