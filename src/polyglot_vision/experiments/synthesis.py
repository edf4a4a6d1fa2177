"""What each ingredient of the training data is worth.

`synthesis_worth` trains a recipe on data rendered with a base set of ingredients, then without each of them and
with each of the others in turn (`ingredient_runs`), and judges every model on one yardstick and on its own test
split. The data set's renderer and the yardstick are handed in (`scripts/benchmark.py synthesis` passes
PolyDigits' and `generalization`'s).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

__all__ = ["ingredient_runs", "synthesis_worth"]


def ingredient_runs(ingredients, base, leave_out, add, *, first: str = "default") -> list[tuple[str, tuple]]:
    """The first row trains on `base`, then one row without each of `leave_out` (within the base) and one with
    each of `add` (outside it); every ingredient list in the order of `ingredients`."""
    base = [x for x in ingredients if x in base]
    runs = [(first, tuple(base))]
    runs += [(f"without {x}", tuple(i for i in base if i != x)) for x in base if x in leave_out]
    outside = [x for x in ingredients if x not in base and x in add]
    runs += [(f"with {x}", tuple(i for i in ingredients if i in base or i == x)) for x in outside]
    return runs


def synthesis_worth(
    recipe_path: str,
    runs: list[tuple[str, tuple]],
    work,
    render: Callable[[Path, tuple], object],
    judge: Callable[[str], dict],
    *,
    per_class: int,
    keep: bool = False,
) -> dict:
    """For each run: `render(folder, ingredients)` makes the data, the recipe trains on it (`polyglot-vision
    train`, a process of its own), and `judge(model)` scores the model (the `generalization` yardstick);
    with its own test split's scores."""
    recipe = yaml.safe_load(Path(recipe_path).read_text(encoding="utf-8"))
    work = Path(work)
    rows = []
    for name, synthesis in runs:
        folder = work / name.replace(" ", "-")
        data, model = folder / "polydigits", folder / "model"
        if folder.exists():
            shutil.rmtree(folder)
        start = time.perf_counter()
        render(data, synthesis)
        run_recipe = {**recipe, "output_dir": str(model)}
        run_recipe["sources"] = [{**s, "path": str(data / Path(s["path"]).name)} for s in recipe["sources"]]
        (folder / "recipe.yaml").write_text(yaml.safe_dump(run_recipe, allow_unicode=True), encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "polyglot_vision.cli", "train", str(folder / "recipe.yaml")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        test = json.loads((model / "metrics.json").read_text(encoding="utf-8"))["test"]
        judged = judge(str(model))
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
        if not keep:
            shutil.rmtree(folder)
    return {"recipe": recipe_path, "per_class": per_class, "runs": rows, "markdown": _synthesis_table(rows)}


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
