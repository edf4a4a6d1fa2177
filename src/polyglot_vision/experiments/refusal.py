"""How often a model refuses: images it should refuse, and images of its concepts it should not.

The caller gives the images in groups (for PolyDigits: builtin_data/refusal_sets.py), each group saying whether
its images should be refused. Each image is judged as `Predictor.top_k` judges it (the model's own refusal
threshold), and the same images at other thresholds show what the threshold trades.

    measure_refusal("outputs/polydigits/quickstart", refusal_sets(work))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..images import load_image
from ..serving import Predictor

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _judge(predictor: Predictor, images: list) -> tuple[np.ndarray, np.ndarray]:
    """(refused as the predictor answers, the probability on the refusal concept) per image."""
    refused, shares = [], []
    for start in range(0, len(images), 256):
        probabilities = predictor.class_probabilities([load_image(image) for image in images[start : start + 256]])
        refused += [answer.refused for answer in predictor.rank(probabilities, k=1)]
        shares += (probabilities @ predictor.refusal_classes).tolist()
    return np.asarray(refused, dtype=bool), np.asarray(shares, dtype=np.float64)


def _rates(groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Refusal rate per subgroup and over all, and the overall rate at each of THRESHOLDS."""
    refused = np.concatenate([r for r, _ in groups.values()])
    shares = np.concatenate([s for _, s in groups.values()])
    return {
        "refused": float(refused.mean()),
        "n": int(len(refused)),
        "by_group": {name: {"refused": float(r.mean()), "n": int(len(r))} for name, (r, _) in groups.items()},
        "at_threshold": {f"{t:.1f}": float((shares >= t).mean()) for t in THRESHOLDS},
    }


def measure_refusal(model: str | Path, sets: dict[str, dict]) -> dict:
    """Refusal rates of `model` on each group of `sets` ({group: {"title", "refuse", "images": {subgroup: images}}});
    the model must have a refusal concept."""
    predictor = Predictor.from_pretrained(model)
    if not predictor.refusal_concepts:
        raise UserError(f"model {model}: it has no refusal concept (train it with a registry that declares one)")
    result = {"model": str(model), "refusal_threshold": predictor.refusal_threshold, "groups": {}}
    with torch.inference_mode():
        for name, group in sets.items():
            judged = {sub: _judge(predictor, images) for sub, images in group["images"].items()}
            result["groups"][name] = {"title": group["title"], "refuse": group["refuse"], **_rates(judged)}
    return result


def refusal_markdown(result: dict) -> str:
    """The result as the results page shows it."""
    pct = lambda v: f"{v:.1%}"  # noqa: E731
    lines = [
        f"Refusal threshold fitted at export: {result['refusal_threshold']:.2f} (the probability on the refusal "
        "concept).",
        "",
        "| images | refused | n |",
        "|---|---:|---:|",
    ]
    for group in result["groups"].values():
        should = "should be refused" if group["refuse"] else "should not be"
        lines.append(f"| **{group['title']}: {should}** | **{pct(group['refused'])}** | {group['n']:,} |")
        lines += [f"| {name} | {pct(g['refused'])} | {g['n']:,} |" for name, g in group["by_group"].items()]
    thresholds = list(next(iter(result["groups"].values()))["at_threshold"]) if result["groups"] else []
    lines += [
        "",
        "The same images at other thresholds (share refused):",
        "",
        "| threshold | " + " | ".join(thresholds) + " |",
        "|---|" + "---:|" * len(thresholds),
    ]
    for name, group in result["groups"].items():
        lines.append(f"| {name} | " + " | ".join(pct(group["at_threshold"][t]) for t in thresholds) + " |")
    return "\n".join(lines)
