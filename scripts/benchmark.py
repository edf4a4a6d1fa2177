"""Benchmarks: measured by running them, never by timed tests.

Usage:
    python scripts/benchmark.py generalization outputs/polydigits/quickstart [--per-class 30] [--output gen.json]

`generalization` judges a model the way an outsider would, through the plain
`transformers.pipeline("image-classification")`, on images it never saw:
PolyDigits rendered only with the held-out fonts (typefaces kept out of
training) and scikit-learn's 1,797 handwritten digits (8 x 8 scans from UCI,
upscaled, dark ink on light), which share no writer with the MNIST sample.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image


def sklearn_handwriting() -> tuple[list[Image.Image], list[str]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for pixels in digits.images:  # 0 (paper) .. 16 (ink)
        gray = (255 - pixels * (255 / 16)).astype(np.uint8)
        canvas = Image.new("L", (12, 12), 255)  # a margin like a scanned box
        canvas.paste(Image.fromarray(gray), (2, 2))
        images.append(canvas.resize((48, 48), Image.BICUBIC).convert("RGB"))
    return images, [str(t) for t in digits.target]


def held_out_fonts(per_class: int, work: Path):
    """{source: (images, concept ids)} rendered only with held-out fonts."""
    from polyglot_vision.configs import SourceConfig
    from polyglot_vision.data import load_source
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.polydigits import generate_polydigits

    label_space = LabelSpace.from_yaml(Path(__file__).resolve().parents[1] / "recipes" / "labels" / "digits.yaml")
    sources = generate_polydigits(work / "holdout", per_class=per_class, seed=1, holdout_fonts=True, progress=False)
    sets = {}
    for entry in sources:
        source = SourceConfig(**{k: v for k, v in entry.items() if k in SourceConfig.__dataclass_fields__})
        dataset = load_source(source)
        raw = dataset[source.label_column]
        feature = dataset.features[source.label_column]
        raw = [feature.int2str(v) for v in raw] if hasattr(feature, "int2str") else raw
        alignment = label_space.align(set(raw), language=source.language)
        sets[source.name] = (list(dataset[source.image_column]), [alignment[v].concept for v in raw])
    return sets


def cmd_generalization(args) -> dict:
    from transformers import pipeline

    classify = pipeline("image-classification", model=args.model)
    with tempfile.TemporaryDirectory() as tmp:
        sets = held_out_fonts(args.per_class, Path(tmp))
    sets["sklearn-handwriting"] = sklearn_handwriting()
    results, start = {}, time.perf_counter()
    n_images = 0
    for name, (images, labels) in sets.items():
        predictions = [out[0]["label"] for out in classify(images, top_k=1, batch_size=64)]
        correct = np.asarray(predictions) == np.asarray(labels)
        confusions = defaultdict(int)
        for truth, guess in zip(labels, predictions):
            if truth != guess:
                confusions[f"{truth}->{guess}"] += 1
        worst = sorted(confusions.items(), key=lambda kv: -kv[1])[:3]
        results[name] = {"accuracy": float(correct.mean()), "n": len(labels), "top_confusions": dict(worst)}
        n_images += len(labels)
    elapsed = time.perf_counter() - start
    fonts = [r["accuracy"] for k, r in results.items() if k != "sklearn-handwriting"]
    summary = {
        "model": args.model,
        "held_out_fonts_mean_accuracy": float(np.mean(fonts)),
        "handwriting_accuracy": results["sklearn-handwriting"]["accuracy"],
        "images_per_second": n_images / elapsed,
        "per_set": results,
    }
    width = max(map(len, results))
    print(f"{'set':<{width}}  accuracy      n  most confused (true->predicted)")
    for name, row in results.items():
        worst = ", ".join(f"{k} x{v}" for k, v in row["top_confusions"].items())
        print(f"{name:<{width}}  {row['accuracy']:>8.2%}  {row['n']:>5}  {worst}")
    print(f"held-out fonts, mean over sources: {summary['held_out_fonts_mean_accuracy']:.2%}")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    p = sub.add_parser("generalization", help="accuracy through pipeline() on held-out fonts and handwriting")
    p.add_argument("model")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--output", help="write the JSON here too")
    p.set_defaults(func=cmd_generalization)
    args = parser.parse_args(argv)
    result = args.func(args)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
