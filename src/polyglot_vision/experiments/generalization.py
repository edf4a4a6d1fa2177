"""A yardstick of what a model never saw: images drawn by sources held out of training, and real handwriting.

`generalization(model, held_out, handwriting)` judges a model through `Predictor` (the path of the CLI and the
Space; its scores equal `pipeline()`'s) on

- `held_out`: {source: {images, concepts, script, system, held_out, publishers}}, images of each writing system
  drawn only by publishers and design lineages that no training image came from (PolyDigits makes them:
  `builtin_data.polydigits.held_out_digits`), reported per system with no hint, with the true script given,
  and as the right concept among the top two answers;
- `handwriting`: {framing: (images, concept ids)}, real handwriting at several framings
  (`builtin_data.handwriting_framings`), also measured with `handwriting_script` as the hint.

    result = generalization("outputs/polydigits/quickstart", held_out_digits(30), handwriting_framings(), "Latn")
    print(report(result))
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..serving import Predictor

__all__ = ["generalization", "report"]


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


def generalization(
    model: str | Path, held_out: dict, handwriting: dict, handwriting_script: str | None = None
) -> dict:
    """Accuracy on held-out sources and on handwriting, per system and framing, with no hint, with the script
    given (a `concept_script` model; a concept model reports none) and within the top two."""
    predictor = Predictor.from_pretrained(str(model))
    hints = bool(predictor.scripts)
    start, n_images = time.perf_counter(), 0
    by_system: dict[str, dict] = {}
    for data in held_out.values():
        images, labels, script = data["images"], data["concepts"], data["script"]
        row = by_system.setdefault(
            data["system"],
            {
                "script": script,
                "held_out_families": data["held_out"],
                "held_out_publishers": list(data["publishers"]),
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
    for framing, (images, labels) in handwriting.items():
        accuracy, top2, confusions = _scores(predictor, images, labels)
        hinted = (
            _scores(predictor, images, labels, hint=handwriting_script)[0] if hints and handwriting_script else None
        )
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
