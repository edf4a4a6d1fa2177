"""`polyglot-vision transfer`: how much each language's images teach about the others.

For every language of a recipe, a model is trained on that language's
training images alone (and, with `leave_one_out`, on all languages but that
one) for a fixed budget of steps, then tested on every language's test
images. The result is a train-language x test-language accuracy matrix:
`transfer.json`, `transfer.md` and the heat map `transfer_matrix.png`.

Every run starts from the same seed, architecture and schedule; only the
training images differ. The data is unified and pixel-cached once.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from transformers import PrinterCallback, set_seed

from ..errors import UserError
from ..evaluation import predict_proba_dataset
from ..modeling import build_model
from ..outputs import atomic_directory, write_json, write_text
from ..rendering import annotate, markdown_table, pyplot, save_figure
from ..training import Recipe, build_trainer, joint_column, joint_pairs, language_scripts, load_data, load_recipe

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 200
# Each run trains for a budget of steps on part of the data: no evaluation or
# checkpoint along the way, nothing pushed, logs only at the end.
RUN_OVERRIDES = {
    "eval_strategy": "no",
    "save_strategy": "no",
    "load_best_model_at_end": False,
    "push_to_hub": False,
    "disable_tqdm": True,
}


def run_recipe(recipe_path: str | Path, overrides: dict, output_dir: Path, steps: int) -> Recipe:
    """The recipe with the user's overrides, for one budgeted run writing into `output_dir`."""
    return load_recipe(
        recipe_path,
        {**overrides, **RUN_OVERRIDES, "max_steps": steps, "logging_steps": steps, "output_dir": str(output_dir)},
    )


def quiet(trainer):
    """Drop the Trainer's per-log print: many short runs would flood the terminal."""
    trainer.remove_callback(PrinterCallback)
    return trainer


def rows_of(dataset, column: str, values: set[str]) -> list[int]:
    """Indices of the rows whose `column` is one of `values`."""
    column_values = np.asarray(dataset.with_format(None)[column])
    return np.flatnonzero(np.isin(column_values, sorted(values))).tolist()


def accuracy_by_language(probabilities: np.ndarray, test_split) -> dict[str, float]:
    plain = test_split.with_format(None)
    correct = probabilities.argmax(axis=-1) == np.asarray(plain["label"])
    languages = np.asarray(plain["language"])
    return {lang: float(correct[languages == lang].mean()) for lang in sorted(set(languages.tolist()))}


def plot_matrix(matrix: np.ndarray, train_sets: list[str], test_languages: list[str], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(0.55 * len(test_languages) + 3, 0.42 * len(train_sets) + 2))
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(test_languages)), test_languages)
    ax.set_yticks(range(len(train_sets)), train_sets)
    ax.set_xlabel("test language")
    ax.set_ylabel("trained on")
    annotate(ax, 1 - matrix, lambda i, j: f"{matrix[i, j] * 100:.0f}", dark_above=0.4)
    fig.colorbar(image, ax=ax, label="test accuracy")
    ax.set_title(title)
    save_figure(fig, path)


def render_markdown(result: dict) -> str:
    languages = result["test_languages"]
    lines = [
        "# Cross-lingual transfer",
        "",
        f"Recipe `{result['recipe']}`, {result['steps']} steps of batch {result['batch_size']} per run, "
        f"seed {result['seed']}; test accuracy (%) of a model trained on each row's images, "
        f"on each column's test images ({result['minutes']:.1f} minutes in all).",
        "",
    ]
    rows = [
        (
            row["train_set"],
            row["train_images"],
            *(f"{row['accuracy'][lang] * 100:.1f}" for lang in languages),
            f"{row['others'] * 100:.1f}",
        )
        for row in result["rows"]
    ]
    lines += markdown_table(["trained on", "images", *languages, "others"], rows, numeric=range(1, len(languages) + 3))
    lines += [
        "",
        "`others`: mean accuracy on the test languages the row did not train on.",
        "",
        "![Train-language x test-language accuracy](transfer_matrix.png)",
        "",
    ]
    return "\n".join(lines)


def transfer_matrix(
    recipe_path: str | Path,
    overrides: dict | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    leave_one_out: bool = False,
    output_dir: str | Path | None = None,
) -> dict:
    """Train on each language alone (and all but each, if asked); test on all. Returns the result dict."""
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    overrides = dict(overrides or {})
    recipe = load_recipe(recipe_path, overrides)
    output_dir = Path(output_dir or Path(recipe.training.output_dir) / "transfer")
    recipe_languages = sorted({source.language for source in recipe.data.sources})
    if len(recipe_languages) < 2:
        raise UserError(
            f"recipe {recipe_path}: transfer needs at least two languages, found {', '.join(recipe_languages)}"
        )
    start = time.monotonic()
    set_seed(recipe.training.seed)
    label_space, processor, cached = load_data(recipe)
    train_split, test_split = cached["train"], cached["test"]
    granularity = recipe.training.label_granularity
    joint = granularity != "concept"
    pairs = joint_pairs(cached, label_space, joint_column(granularity)) if joint else None
    scripts = language_scripts(cached) if joint else None
    languages = sorted(set(train_split.with_format(None)["language"]))
    test_languages = sorted(set(test_split.with_format(None)["language"]))
    runs = [(lang, {lang}) for lang in languages]
    if leave_one_out:
        runs += [(f"all but {lang}", set(languages) - {lang}) for lang in languages]

    rows = []
    with tempfile.TemporaryDirectory(prefix="transfer-") as scratch:
        for i, (name, train_languages) in enumerate(runs, 1):
            logger.info("transfer run %d/%d: training on %s", i, len(runs), name)
            run = run_recipe(recipe_path, overrides, Path(scratch) / f"run-{i}", steps)
            set_seed(run.training.seed)
            model = build_model(run.model, label_space, pairs, scripts, granularity)
            subset = train_split.select(rows_of(train_split, "language", train_languages))
            trainer = quiet(build_trainer(run, model, processor, subset))
            trainer.train()
            probabilities = predict_proba_dataset(
                trainer.model, trainer.preprocessor, test_split, run.training.per_device_eval_batch_size
            )
            accuracy = accuracy_by_language(probabilities, test_split)
            unseen = [accuracy[lang] for lang in test_languages if lang not in train_languages]
            logger.info(
                "trained on %s: %.1f%% on its own test images, %.1f%% on the others' (%.0f s so far)",
                name,
                100 * np.mean([accuracy[lang] for lang in train_languages if lang in accuracy]),
                100 * np.mean(unseen) if unseen else float("nan"),
                time.monotonic() - start,
            )
            rows.append(
                {
                    "train_set": name,
                    "train_languages": sorted(train_languages),
                    "train_images": len(subset),
                    "accuracy": accuracy,
                    "others": float(np.mean(unseen)) if unseen else float("nan"),
                }
            )

    result = {
        "recipe": str(recipe_path),
        "steps": steps,
        "batch_size": recipe.training.per_device_train_batch_size,
        "seed": recipe.training.seed,
        "test_languages": test_languages,
        "test_images": {
            lang: int(n) for lang, n in zip(*np.unique(test_split.with_format(None)["language"], return_counts=True))
        },
        "rows": rows,
        "minutes": (time.monotonic() - start) / 60,
    }
    matrix = np.array([[row["accuracy"][lang] for lang in test_languages] for row in rows])
    with atomic_directory(output_dir) as tmp:
        write_json(tmp / "transfer.json", result)
        plot_matrix(
            matrix,
            [row["train_set"] for row in rows],
            test_languages,
            tmp / "transfer_matrix.png",
            f"Cross-lingual transfer ({steps} steps per run)",
        )
        write_text(tmp / "transfer.md", render_markdown(result))
    result["output_dir"] = str(output_dir)
    return result
