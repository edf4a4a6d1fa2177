"""The yardstick of held-out sources: a model judged on designs it never saw, per source and per concept family.

Built for PolyObjects (the emoji designs that its recipes never train on, whole lineages held out), it reads
nothing but the data folder: `concepts.json` there says which sources are held out, which concept each folder
label names, and each concept's family. Every image goes through `Predictor` (the path of the CLI and the Space).

    result = held_out_designs("outputs/polyobjects/quickstart", "data/polyobjects")
    markdown(result)     # the results page's section
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from ..errors import UserError
from ..images import load_image
from ..serving import Predictor

__all__ = ["held_out_designs", "markdown"]


def _answers(data_dir: Path) -> dict:
    path = data_dir / "concepts.json"
    if not path.is_file():
        raise UserError(f"{path}: not found; make the data with `polyglot-vision polyobjects {data_dir}`")
    return json.loads(path.read_text(encoding="utf-8"))


def _images(data_dir: Path, source: str, concept_of: dict[str, str]) -> tuple[list[Path], list[str]]:
    folder = data_dir / source
    if not folder.is_dir():
        raise UserError(f"{folder}: no such source; make the data with `polyglot-vision polyobjects {data_dir}`")
    paths, labels = [], []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if label_dir.name not in concept_of:
            raise UserError(f"{label_dir}: label {label_dir.name!r} is not in {data_dir / 'concepts.json'}")
        for path in sorted(label_dir.glob("*.png")):
            paths.append(path)
            labels.append(concept_of[label_dir.name])
    return paths, labels


def held_out_designs(model, data_dir, *, k: int = 5, batch_size: int = 256) -> dict:
    """Top-1 and top-k accuracy of `model` on every held-out source of `data_dir`, per source and per family."""
    predictor = Predictor.from_pretrained(model)
    data_dir = Path(data_dir)
    answers = _answers(data_dir)
    family = {c["id"]: c["family"] for c in answers["concepts"]}
    known = set(predictor.concepts)
    per_design, per_family = {}, defaultdict(lambda: [0, 0, 0])
    confusions: dict[str, int] = defaultdict(int)
    start, seen = time.perf_counter(), 0
    for source in answers["held_out"]:
        paths, labels = _images(data_dir, source, answers["labels"][source])
        hits = [0, 0]
        for first in range(0, len(paths), batch_size):
            images = [load_image(p) for p in paths[first : first + batch_size]]
            for truth, ranked in zip(labels[first:], predictor.top_k(images, k=k)):
                guesses = [p.concept for p in ranked]
                top1, topk = guesses[0] == truth, truth in guesses
                hits[0] += top1
                hits[1] += topk
                row = per_family[family[truth]]
                row[0] += top1
                row[1] += topk
                row[2] += 1
                if not top1:
                    confusions[f"{truth} -> {guesses[0]}"] += 1
        seen += len(paths)
        per_design[source] = {
            "images": len(paths),
            "concepts": len(set(labels)),
            "concepts_unknown_to_model": len(set(labels) - known),
            "top1": hits[0] / max(1, len(paths)),
            f"top{k}": hits[1] / max(1, len(paths)),
        }
    if not per_design:
        raise UserError(f"{data_dir / 'concepts.json'}: no held-out source")
    total = sum(d["images"] for d in per_design.values())
    return {
        "model": str(model),
        "data": str(data_dir),
        "k": k,
        "top1": sum(d["top1"] * d["images"] for d in per_design.values()) / total,
        f"top{k}": sum(d[f"top{k}"] * d["images"] for d in per_design.values()) / total,
        "per_design": per_design,
        "per_family": {
            name: {"images": n, "top1": t1 / n, f"top{k}": tk / n} for name, (t1, tk, n) in sorted(per_family.items())
        },
        "top_confusions": dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:10]),
        "images_per_second": seen / (time.perf_counter() - start),
    }


def markdown(result: dict) -> list[str]:
    """The results page's section: held-out designs and concept families, top-1 and top-k."""
    k = result["k"]
    pct = lambda v: f"{v * 100:.1f} %"  # noqa: E731
    lines = [
        f"Model `{result['model']}` on the designs it never trained on (whole lineages held out), every image of "
        f"`{result['data']}`: **top-1 {pct(result['top1'])}, top-{k} {pct(result[f'top{k}'])}**.",
        "",
        f"| held-out design | concepts | images | top-1 | top-{k} |",
        "|---|---:|---:|---:|---:|",
    ]
    for source, row in result["per_design"].items():
        counts = f"{row['concepts']} | {row['images']}"
        lines.append(f"| `{source}` | {counts} | {pct(row['top1'])} | {pct(row[f'top{k}'])} |")
    lines += ["", f"| concept family | images | top-1 | top-{k} |", "|---|---:|---:|---:|"]
    for name, row in result["per_family"].items():
        lines.append(f"| {name} | {row['images']} | {pct(row['top1'])} | {pct(row[f'top{k}'])} |")
    if result.get("top_confusions"):
        mistakes = ", ".join(f"{pair} ×{n}" for pair, n in result["top_confusions"].items())
        lines += ["", f"Most frequent mistakes (true -> predicted): {mistakes}."]
    return lines
