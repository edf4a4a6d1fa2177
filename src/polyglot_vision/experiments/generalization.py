"""The yardstick of what a model never saw: held-out publishers' typefaces and real handwriting.

`generalization(model)` judges a model through `Predictor` (the path of the CLI and the Space; its scores equal
`pipeline()`'s) on

- PolyDigits rendered only with the held-out families of the font table: whole publishers and design lineages
  (a foundry, all Noto, all Baloo …) that no training image was drawn with, reported per numeral system with no
  hint, with the true script given, and as the right concept among the top two answers;
- scikit-learn's 1,797 handwritten digits (UCI, 43 writers none of whom wrote the MNIST sample) at five framings
  (tight, with margins, thin, thick, light on dark).

    result = generalization("outputs/polydigits/quickstart", per_class=30)
    print(report(result))
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["YARDSTICK_SYNTHESIS", "generalization", "held_out_fonts", "report"]

# The held-out families are drawn with a fixed set of variations, whatever the training data's synthesis
# becomes, so that the yardstick does not move with what it measures.
YARDSTICK_SYNTHESIS = ("axes", "strokes", "elastic")
DIGITS_REGISTRY = Path(__file__).resolve().parents[3] / "recipes" / "labels" / "digits.yaml"


def held_out_fonts(per_class: int, work: Path) -> dict[str, tuple]:
    """{source: (images, concept ids, script, system, held out)} rendered only with held-out families.

    A system with no held-out publisher (every family from one publisher) is rendered with its training
    families, other images: it is reported, but kept out of the held-out averages.
    """
    from ..builtin_data.fonts import HOLDOUT_FONTS
    from ..builtin_data.polydigits import SOURCES, generate_polydigits
    from ..data import SourceConfig, load_source
    from ..labels import LabelSpace

    label_space = LabelSpace.from_yaml(DIGITS_REGISTRY)
    systems = {s.name: s.numerals for s in SOURCES}
    sources = generate_polydigits(
        work / "holdout",
        per_class=per_class,
        seed=1,
        holdout_fonts=True,
        synthesis=YARDSTICK_SYNTHESIS,
        progress=False,
    )
    sets = {}
    for entry in sources:
        if entry["name"] not in systems or not systems[entry["name"]]:
            continue
        source = SourceConfig(**{k: v for k, v in entry.items() if k in SourceConfig.__dataclass_fields__})
        dataset = load_source(source)
        raw = dataset[source.label_column]
        feature = dataset.features[source.label_column]
        raw = [feature.int2str(v) for v in raw] if hasattr(feature, "int2str") else raw
        alignment = label_space.align(set(raw), language=source.language)
        system = systems[source.name]
        sets[source.name] = (
            list(dataset[source.image_column]),
            [alignment[v].concept for v in raw],
            entry["script"],
            system,
            system in HOLDOUT_FONTS,
        )
    return sets


def _scores(predictor, images, labels, hint=None) -> tuple[float, float, dict]:
    """(top-1 accuracy, right concept among the top two, {"true->predicted": count})."""
    first, top2 = [], []
    for start in range(0, len(images), 256):
        for row, truth in zip(predictor.top_k(images[start : start + 256], k=2, hint=hint), labels[start:]):
            concepts = [p.concept for p in row]
            first.append(concepts[0])
            top2.append(truth in concepts)
    confusions = defaultdict(int)
    for truth, guess in zip(labels, first):
        if truth != guess:
            confusions[f"{truth}->{guess}"] += 1
    return float(np.mean(np.asarray(first) == np.asarray(labels))), float(np.mean(top2)), dict(confusions)


def _top3(confusions: dict) -> dict:
    return dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:3])


def generalization(model: str | Path, per_class: int = 30) -> dict:
    """Accuracy on held-out publishers' typefaces and on handwriting, per system and framing, with no hint, with
    the script given (a `concept_script` model; a concept model reports none) and within the top two."""
    from ..builtin_data import handwriting_framings
    from ..builtin_data.fonts import FONTS, SCRIPT_FONTS
    from ..serving import Predictor

    predictor = Predictor.from_pretrained(str(model))
    hints = bool(predictor.scripts)
    with tempfile.TemporaryDirectory() as tmp:
        fonts = held_out_fonts(per_class, Path(tmp))
    start, n_images = time.perf_counter(), 0
    by_system: dict[str, dict] = {}
    for images, labels, script, system, held in fonts.values():
        held_names = SCRIPT_FONTS[system][1]
        row = by_system.setdefault(
            system,
            {
                "script": script,
                "held_out_families": held,
                "held_out_publishers": sorted({FONTS[n].publisher or n for n in held_names}),
                "n": 0,
                "_c": [0.0, 0.0, 0.0],
            },
        )
        accuracy, top2, confusions = _scores(predictor, images, labels)
        hinted = _scores(predictor, images, labels, hint=script)[0] if hints else 0.0
        row["n"] += len(labels)
        for i, value in enumerate((accuracy, hinted, top2)):
            row["_c"][i] += value * len(labels)
        counts = row.setdefault("top_confusions", {})
        for pair, n in confusions.items():
            counts[pair] = counts.get(pair, 0) + n
        n_images += 2 * len(labels) if hints else len(labels)
    for row in by_system.values():
        row["top_confusions"] = _top3(row["top_confusions"])
        correct, correct_hinted, correct_top2 = row.pop("_c")
        row["accuracy"] = correct / row["n"]
        row["accuracy_script_hint"] = correct_hinted / row["n"] if hints else None
        row["accuracy_top2"] = correct_top2 / row["n"]
    framings = {}
    for framing, (images, labels) in handwriting_framings().items():
        accuracy, top2, confusions = _scores(predictor, images, labels)
        hinted = _scores(predictor, images, labels, hint="Latn")[0] if hints else None
        framings[framing] = {
            "accuracy": accuracy,
            "accuracy_script_hint": hinted,
            "accuracy_top2": top2,
            "n": len(labels),
            "top_confusions": _top3(confusions),
        }
        n_images += 2 * len(labels) if hints else len(labels)
    elapsed = time.perf_counter() - start
    held = {k: v for k, v in by_system.items() if v["held_out_families"]}

    def summary_of(key):
        values = {k: v[key] for k, v in held.items()}
        if not values or any(v is None for v in values.values()):
            return None, None, None
        worst = min(values, key=values.get)
        return float(np.mean(list(values.values()))), worst, values[worst]

    macro, worst, worst_value = summary_of("accuracy")
    macro_hint, worst_hint, worst_hint_value = summary_of("accuracy_script_hint")
    macro_top2, worst_top2, worst_top2_value = summary_of("accuracy_top2")
    hand = {k: v["accuracy"] for k, v in framings.items()}
    return {
        "model": str(model),
        "held_out_families_macro_accuracy": macro,
        "held_out_families_worst_system": worst,
        "held_out_families_worst_system_accuracy": worst_value,
        "held_out_families_macro_accuracy_script_hint": macro_hint,
        "held_out_families_worst_system_script_hint": worst_hint,
        "held_out_families_worst_system_accuracy_script_hint": worst_hint_value,
        "held_out_families_macro_accuracy_top2": macro_top2,
        "held_out_families_worst_system_top2": worst_top2,
        "held_out_families_worst_system_accuracy_top2": worst_top2_value,
        "handwriting_worst_framing": min(hand, key=hand.get),
        "handwriting_worst_framing_accuracy": min(hand.values()),
        "images_per_second": n_images / elapsed,
        "per_system": by_system,
        "handwriting_per_framing": framings,
    }


def report(result: dict) -> str:
    """The result as a plain-text table, per system and per handwriting framing."""

    def pct(v):
        return "     –" if v is None else f"{v:>6.1%}"

    lines = [f"{'system':<8} script  held out  accuracy  +hint   top-2      n  most confused (true->predicted)"]
    for system, row in result["per_system"].items():
        worst3 = ", ".join(f"{k} x{v}" for k, v in list(row["top_confusions"].items())[:3])
        lines.append(
            f"{system:<8} {row['script']:<6}  {'yes' if row['held_out_families'] else 'no ':<8}  "
            f"{pct(row['accuracy'])}  {pct(row['accuracy_script_hint'])}  {pct(row['accuracy_top2'])}  "
            f"{row['n']:>5}  {worst3}"
        )
    lines += ["", f"{'handwriting':<16} accuracy  +hint   top-2      n"]
    for framing, row in result["handwriting_per_framing"].items():
        lines.append(
            f"{framing:<16} {pct(row['accuracy'])}    {pct(row['accuracy_script_hint'])}  "
            f"{pct(row['accuracy_top2'])}  {row['n']:>5}"
        )
    r = result
    held = sum(1 for row in r["per_system"].values() if row["held_out_families"])
    lines += [
        "",
        f"held-out publishers, macro over {held} systems: {pct(r['held_out_families_macro_accuracy'])} "
        f"(worst {r['held_out_families_worst_system']} {pct(r['held_out_families_worst_system_accuracy'])}); "
        f"with the script given: {pct(r['held_out_families_macro_accuracy_script_hint'])} "
        f"(worst {r['held_out_families_worst_system_script_hint']} "
        f"{pct(r['held_out_families_worst_system_accuracy_script_hint'])}); "
        f"top-2: {pct(r['held_out_families_macro_accuracy_top2'])}",
    ]
    return "\n".join(lines)
