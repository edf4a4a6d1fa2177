"""`polyglot-vision adapt`: how fast a model learns a script it has never seen.

An adaptation recipe (e.g. `recipes/polydigits/adapt.yaml`) is a recipe for
the new script's sources plus four keys of its own:

- `base_recipe` and `base_overrides`: the base model, trained like that recipe
  but with the new script left out (`holdout_scripts`); it is trained first
  unless its output folder already holds a finished model;
- `shots`: the numbers k of training images per class to try;
- `repeats`: how many different draws of the k images to average over.

For each k and draw, the base model is fine-tuned on the k images per class,
and the same architecture is trained from scratch on the same images, with
the same steps and schedule; both are tested on the new script's test split.
The output folder gets `adaptation.json`, `adaptation.md` and
`adaptation_curve.png`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from transformers import AutoConfig, AutoModelForImageClassification, set_seed

from ..data import PixelNormalizer, few_shot
from ..errors import UserError, first_line
from ..evaluation import evaluate_dataset
from ..modeling import build_model, label_config, relabel
from ..outputs import atomic_directory, write_json, write_text
from ..paths import parse_yaml
from ..rendering import markdown_table, pyplot, save_figure
from ..training import Recipe, build_trainer, load_data, load_recipe, read_recipe, recipe_from_file, train
from .transfer import RUN_OVERRIDES, quiet

logger = logging.getLogger(__name__)

ADAPT_KEYS = {"base_recipe": None, "base_overrides": {}, "shots": [1, 5, 20, 100], "repeats": 1}
INITS = ("fine-tuned", "from scratch")


def adapt_settings(raw: dict, path) -> dict:
    """Pop and check the adaptation keys of a raw recipe."""
    settings = {key: raw.pop(key, default) for key, default in ADAPT_KEYS.items()}
    for key in ("base_overrides", "shots"):
        if isinstance(settings[key], str):  # from the command line
            try:
                settings[key] = parse_yaml(settings[key])
            except yaml.YAMLError as err:
                raise UserError(f"--{key}: {first_line(err)}") from None
    if not settings["base_recipe"]:
        raise UserError(f"recipe {path}: `base_recipe` is required (the recipe of the base model)")
    if not isinstance(settings["base_overrides"], dict):
        raise UserError(f"recipe {path}: `base_overrides` must be a mapping of recipe keys to values")
    shots = settings["shots"]
    if not isinstance(shots, list) or not shots or not all(isinstance(k, int) and k >= 1 for k in shots):
        raise UserError(f"recipe {path}: `shots` must be a list of positive integers, got {shots!r}")
    try:
        settings["repeats"] = int(settings["repeats"])
    except (TypeError, ValueError):
        raise UserError(f"recipe {path}: `repeats` must be a positive integer, got {settings['repeats']!r}") from None
    if settings["repeats"] < 1:
        raise UserError(f"recipe {path}: `repeats` must be a positive integer, got {settings['repeats']}")
    settings["shots"] = sorted(set(shots))
    return settings


def ensure_base_model(base: Recipe, base_recipe: str, new_scripts: set[str]) -> Path:
    """The base model's folder: trained now without `new_scripts`, or reused if already there."""
    seen = {source.script for source in base.data.sources}  # holdout_scripts already left out
    if seen & new_scripts:
        raise UserError(
            f"recipe {base_recipe}: the base model would train on {', '.join(sorted(seen & new_scripts))}; "
            f"add `holdout_scripts: [{', '.join(sorted(new_scripts))}]` to base_overrides"
        )
    output_dir = Path(base.training.output_dir)
    metrics_path = output_dir / "metrics.json"
    if (output_dir / "config.json").is_file() and metrics_path.is_file():
        tested = set(json.loads(metrics_path.read_text(encoding="utf-8"))["test"].get("per_script", {}))
        if tested & new_scripts:
            raise UserError(
                f"base model {output_dir} was trained and tested on {', '.join(sorted(tested & new_scripts))}; "
                "remove it or point base_overrides.output_dir elsewhere"
            )
        logger.info("reusing the base model in %s", output_dir)
        return output_dir
    logger.info(
        "training the base model (%s without %s) into %s", base_recipe, ", ".join(sorted(new_scripts)), output_dir
    )
    train(base)
    return output_dir


def plot_curve(result: dict, path: Path) -> None:
    plt = pyplot()
    shots = result["shots"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for init, style in zip(INITS, ("o-", "s--")):
        mean = np.array([result["runs"][init][str(k)]["mean"] for k in shots]) * 100
        std = np.array([result["runs"][init][str(k)]["std"] for k in shots]) * 100
        ax.errorbar(shots, mean, yerr=std if result["repeats"] > 1 else None, fmt=style, capsize=3, label=init)
    ax.axhline(result["zero_shot"] * 100, color="grey", linestyle=":", label="base model, no adaptation")
    ax.set_xscale("log")
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("training images per class (k)")
    ax.set_ylabel(f"test accuracy on {', '.join(result['new_scripts'])} (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"Adapting to an unseen script: {', '.join(result['new_scripts'])}")
    save_figure(fig, path)


def render_markdown(result: dict) -> str:
    spread = " ± std over draws" if result["repeats"] > 1 else ""
    lines = [
        f"# Few-shot adaptation to {', '.join(result['new_scripts'])}",
        "",
        f"Base model `{result['base_model']}` (trained without {', '.join(result['new_scripts'])}); "
        f"{result['steps']} steps of batch up to {result['batch_size']} per run, {result['repeats']} draw(s) of the "
        f"k images per class; test accuracy (%){spread} on {result['test_images']} test images "
        f"({result['minutes']:.1f} minutes in all).",
        "",
        f"Base model without adaptation: {result['zero_shot'] * 100:.1f} %.",
        "",
    ]
    rows = []
    for k in result["shots"]:
        cells = []
        for init in INITS:
            run = result["runs"][init][str(k)]
            cells.append(f"{run['mean'] * 100:.1f}" + (f" ± {run['std'] * 100:.1f}" if result["repeats"] > 1 else ""))
        gain = result["runs"][INITS[0]][str(k)]["mean"] - result["runs"][INITS[1]][str(k)]["mean"]
        rows.append((k, *cells, f"{gain * 100:+.1f}"))
    lines += markdown_table(["k per class", *INITS, "gain"], rows, numeric=range(len(INITS) + 2))
    lines += ["", "![Accuracy against k, fine-tuned and from scratch](adaptation_curve.png)", ""]
    return "\n".join(lines)


def load_adaptation(recipe_path: str | Path, overrides: dict | None = None) -> tuple[dict, Recipe, Recipe, dict]:
    """(adaptation settings, base recipe, recipe of the adaptation runs, its raw values) of an adaptation recipe."""
    raw = {**read_recipe(recipe_path), **(overrides or {})}
    settings = adapt_settings(raw, recipe_path)
    model_keys = sorted({"model_name_or_path", "model_config"} & set(raw))
    if model_keys:
        raise UserError(f"recipe {recipe_path}: remove {', '.join(model_keys)}; the models come from base_recipe")
    base = load_recipe(settings["base_recipe"], settings["base_overrides"])
    recipe = recipe_from_file({**raw, "model_name_or_path": base.training.output_dir}, recipe_path)
    if recipe.training.max_steps <= 0:
        raise UserError(f"recipe {recipe_path}: set `max_steps`, the same training budget for every k")
    if recipe.training.label_granularity != "concept":
        raise UserError(
            f"recipe {recipe_path}: `label_granularity: {recipe.training.label_granularity}` does not work with "
            "adapt, which trains one class per concept on the new script; remove it"
        )
    return settings, base, recipe, raw


def adaptation_curve(
    recipe_path: str | Path, overrides: dict | None = None, output_dir: str | Path | None = None
) -> dict:
    """Fine-tune the base model and train from scratch for each k; test both. Returns the result dict."""
    start = time.monotonic()
    settings, base, recipe, raw = load_adaptation(recipe_path, overrides)
    new_scripts = {source.script for source in recipe.data.sources}
    base_dir = ensure_base_model(base, settings["base_recipe"], new_scripts)

    output_dir = Path(output_dir or recipe.training.output_dir)
    set_seed(recipe.training.seed)
    label_space, processor, cached = load_data(recipe)
    test_split = cached["test"]
    batch = recipe.training.per_device_eval_batch_size
    zero_shot = evaluate_dataset(
        build_model(recipe.model, label_space), PixelNormalizer.from_processor(processor), test_split, batch
    )["accuracy"]
    per_class = np.bincount(cached["train"].with_format(None)["label"], minlength=len(label_space.ids))
    if per_class.min() < max(settings["shots"]):
        logger.warning("a class has only %d training images: larger k are capped at that", per_class.min())

    runs: dict[str, dict[str, list[float]]] = {init: {str(k): [] for k in settings["shots"]} for init in INITS}
    with tempfile.TemporaryDirectory(prefix="adapt-") as scratch:
        for repeat in range(settings["repeats"]):
            for k in settings["shots"]:
                subset = few_shot(cached["train"], k, recipe.data.split_seed + repeat)
                for init in INITS:
                    run = recipe_from_file(
                        {
                            **raw,
                            **RUN_OVERRIDES,
                            "model_name_or_path": str(base_dir),
                            "output_dir": str(Path(scratch) / f"{init}-{k}-{repeat}"),
                            "logging_steps": 10**6,
                        },
                        recipe_path,
                    )
                    set_seed(run.training.seed + repeat)
                    if init == INITS[0]:
                        model = build_model(run.model, label_space)
                    else:
                        model = fresh_model(base_dir, label_space)
                    trainer = quiet(build_trainer(run, model, processor, subset))
                    trainer.train()
                    accuracy = evaluate_dataset(trainer.model, trainer.preprocessor, test_split, batch)["accuracy"]
                    runs[init][str(k)].append(accuracy)
                    logger.info(
                        "k=%d draw %d %s: %.1f%% (%.0f s so far)",
                        k,
                        repeat,
                        init,
                        100 * accuracy,
                        time.monotonic() - start,
                    )

    result = {
        "recipe": str(recipe_path),
        "base_model": str(base_dir),
        "new_scripts": sorted(new_scripts),
        "shots": settings["shots"],
        "repeats": settings["repeats"],
        "steps": recipe.training.max_steps,
        "batch_size": recipe.training.per_device_train_batch_size,
        "test_images": len(test_split),
        "zero_shot": zero_shot,
        "runs": {
            init: {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "accuracies": v} for k, v in per_k.items()}
            for init, per_k in runs.items()
        },
        "minutes": (time.monotonic() - start) / 60,
    }
    with atomic_directory(output_dir) as tmp:
        write_json(tmp / "adaptation.json", result)
        plot_curve(result, tmp / "adaptation_curve.png")
        write_text(tmp / "adaptation.md", render_markdown(result))
    result["output_dir"] = str(output_dir)
    return result


def fresh_model(base_dir: Path, label_space):
    """The base model's architecture with our concepts' head, all weights new and random."""
    config = relabel(AutoConfig.from_pretrained(base_dir, trust_remote_code=False), label_config(label_space))
    return AutoModelForImageClassification.from_config(config)
