"""How often a model refuses: strangers it should refuse, and real numerals it should not.

Everything is drawn so that the model never saw it: the strangers (builtin_data/strangers.py) with a seed of
their own and their letters and symbols in the held-out Latin families only; the numerals in the held-out type
families of the font table (PolyDigits' `holdout_fonts`); the real handwriting at every framing of
builtin_data/handwriting.py. Each image is judged as `Predictor.top_k` judges it (its refusal threshold), and the
same images at other thresholds show what the threshold trades.

    measure_refusal("outputs/polydigits/quickstart")   # {"strangers": …, "numerals": …, "handwriting": …}
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..builtin_data import handwriting_framings
from ..builtin_data.polydigits import SOURCES, generate_polydigits
from ..builtin_data.strangers import KINDS, draw_strangers
from ..data import SourceConfig, load_source
from ..errors import UserError
from ..images import load_image
from ..serving import Predictor

# The held-out families are drawn with a fixed set of variations (as the generalization yardstick draws them), so
# that the measurement does not move with the training data's synthesis.
SYNTHESIS = ("axes", "strokes", "elastic")
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _judge(predictor: Predictor, images: list) -> tuple[np.ndarray, np.ndarray]:
    """(refused as the predictor answers, the probability on the refusal concept) per image."""
    refused, shares = [], []
    for start in range(0, len(images), 256):
        probabilities = predictor.class_probabilities(images[start : start + 256])
        answers = predictor.rank(probabilities, k=1)
        refused += [answer.refused for answer in answers]
        shares += (probabilities @ predictor.refusal_classes).tolist()
    return np.asarray(refused, dtype=bool), np.asarray(shares, dtype=np.float64)


def _rates(groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Refusal rate per group and over all, and the overall rate at each of THRESHOLDS."""
    refused = np.concatenate([r for r, _ in groups.values()])
    shares = np.concatenate([s for _, s in groups.values()])
    return {
        "refused": float(refused.mean()),
        "n": int(len(refused)),
        "by_group": {name: {"refused": float(r.mean()), "n": int(len(r))} for name, (r, _) in groups.items()},
        "at_threshold": {f"{t:.1f}": float((shares >= t).mean()) for t in THRESHOLDS},
    }


def held_out_numerals(per_class: int, work: Path, seed: int = 1) -> dict[str, list]:
    """{numeral system: images} rendered only with held-out families (systems without any are left out)."""
    from ..builtin_data.fonts import HOLDOUT_FONTS

    systems = {s.name: s.numerals for s in SOURCES}
    entries = generate_polydigits(
        work / "holdout", per_class=per_class, seed=seed, holdout_fonts=True, synthesis=SYNTHESIS, progress=False
    )
    sets = {}
    for entry in entries:
        if systems.get(entry["name"]) not in HOLDOUT_FONTS:
            continue
        source = SourceConfig(**{k: v for k, v in entry.items() if k in SourceConfig.__dataclass_fields__})
        sets.setdefault(systems[entry["name"]], []).extend(load_source(source)[source.image_column])
    return sets


def measure_refusal(model: str | Path, per_class: int = 30, strangers_per_kind: int = 100, seed: int = 1) -> dict:
    """Refusal rates of `model` on held-out strangers (by kind), numerals of held-out families (by system) and
    the real handwriting (by framing); the model must have a refusal concept."""
    predictor = Predictor.from_pretrained(model)
    if not predictor.refusal_concepts:
        raise UserError(f"model {model}: it has no refusal concept (train it with a registry that declares one)")
    with torch.inference_mode():
        strangers = {}
        for kind in KINDS:
            images, _ = draw_strangers(strangers_per_kind, seed=seed, image_size=48, holdout=True, kinds=(kind,))
            strangers[kind] = _judge(predictor, [load_image(image) for image in images])  # PNG bytes
        with tempfile.TemporaryDirectory() as tmp:
            numerals = {
                system: _judge(predictor, images) for system, images in held_out_numerals(per_class, Path(tmp)).items()
            }
        handwriting = {framing: _judge(predictor, images) for framing, (images, _) in handwriting_framings().items()}
    return {
        "model": str(model),
        "refusal_threshold": predictor.refusal_threshold,
        "strangers": _rates(strangers),
        "numerals": _rates(numerals),
        "handwriting": _rates(handwriting),
    }


def refusal_markdown(result: dict) -> str:
    """The result as the results page shows it."""
    pct = lambda v: f"{v:.1%}"  # noqa: E731
    lines = [
        f"Refusal threshold fitted at export: {result['refusal_threshold']:.2f} (the probability on `none`).",
        "",
        "| images | refused | n |",
        "|---|---:|---:|",
    ]
    for key, title in (
        ("strangers", "strangers (held-out Latin families for letters and symbols): should be refused"),
        ("numerals", "numerals of held-out type families: should not be"),
        ("handwriting", "real handwriting (UCI digits, every framing): should not be"),
    ):
        part = result[key]
        lines.append(f"| **{title}** | **{pct(part['refused'])}** | {part['n']:,} |")
        lines += [f"| {name} | {pct(g['refused'])} | {g['n']:,} |" for name, g in part["by_group"].items()]
    thresholds = list(result["strangers"]["at_threshold"])
    lines += [
        "",
        "The same images at other thresholds (share refused):",
        "",
        "| threshold | " + " | ".join(thresholds) + " |",
        "|---|" + "---:|" * len(thresholds),
    ]
    for key in ("strangers", "numerals", "handwriting"):
        lines.append(f"| {key} | " + " | ".join(pct(result[key]["at_threshold"][t]) for t in thresholds) + " |")
    return "\n".join(lines)
