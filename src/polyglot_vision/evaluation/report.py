"""`polyglot-vision evaluate`: metrics of a model on a recipe's split, as JSON, Markdown and PNG plots.

The report folder (default MODEL/evaluation-<split>) holds:
metrics.json, report.md, confusion_matrix.png (concept x concept),
language_concept_accuracy.png (language x concept), worst_errors.png (the
misclassified images the model was surest of) and reliability_diagram.png.
It is written into a temporary sibling and renamed: never half a report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import DatasetDict, concatenate_datasets

from ..data import GROUP_COLUMNS, PixelNormalizer, build_dataset, cache_pixels, decode_on_the_fly, read_paths
from ..errors import UserError
from ..labels import LabelSpace, script_name
from ..modeling import concept_ids
from ..outputs import atomic_directory, check_output_dir, output_lock, write_json, write_text
from ..rendering import annotate, group_table, markdown_table, md, percent, pyplot, save_figure
from .coverage import not_evaluated
from .predict import metrics_from_probabilities, predict_proba_dataset

PLOTS = {
    "confusion_matrix": "confusion_matrix.png",
    "language_concept_accuracy": "language_concept_accuracy.png",
    "worst_errors": "worst_errors.png",
    "reliability_diagram": "reliability_diagram.png",
}
N_BINS = 15
# A plot of hundreds of concepts stays a readable picture, not a poster of many megapixels that takes minutes.
MAX_INCHES = 24.0
MAX_TICKS = 80


def plot_confusion_matrix(matrix, labels: list[str], path: Path, title: str) -> None:
    plt = pyplot()
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = min(max(5.0, 0.5 * len(labels) + 2), MAX_INCHES)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if len(labels) <= MAX_TICKS:
        ax.set_xticks(range(len(labels)), labels, rotation=90 if max(map(len, labels)) > 2 else 0)
        ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted concept")
    ax.set_ylabel("true concept")
    if len(labels) <= 30:
        annotate(ax, np.where(matrix > 0, share, np.nan), lambda i, j: int(matrix[i, j]), dark_above=0.5)
    fig.colorbar(image, ax=ax, label="share of the true concept's images")
    ax.set_title(title)
    save_figure(fig, path)


def language_concept_accuracy(predictions, references, languages, num_classes: int):
    """(languages sorted, accuracy [language, concept] with NaN where a language has no image of a concept)."""
    languages = np.asarray([str(v) for v in languages])
    names = sorted(set(languages.tolist()))
    table = np.full((len(names), num_classes), np.nan)
    correct = np.asarray(predictions) == np.asarray(references)
    for i, lang in enumerate(names):
        for c in range(num_classes):
            mask = (languages == lang) & (np.asarray(references) == c)
            if mask.any():
                table[i, c] = correct[mask].mean()
    return names, table


def plot_language_concept(names, table, labels: list[str], path: Path, title: str) -> None:
    plt = pyplot()
    width = min(max(6.0, 0.55 * len(labels) + 2.5), MAX_INCHES)
    fig, ax = plt.subplots(figsize=(width, min(max(3.5, 0.4 * len(names) + 1.5), MAX_INCHES)))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(table), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    if len(labels) <= MAX_TICKS:
        ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("concept")
    ax.set_ylabel("language")
    if table.size <= 600:
        annotate(ax, table, lambda i, j: f"{table[i, j]:.0%}", fontsize=6)
    fig.colorbar(image, ax=ax, label="accuracy")
    ax.set_title(title)
    save_figure(fig, path)


def plot_worst_errors(images, rows: list[dict], path: Path, title: str, columns: int = 6) -> None:
    """A grid of misclassified images, each titled with true -> predicted, confidence and language."""
    plt = pyplot()
    n = max(1, len(rows))
    grid_rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(grid_rows, columns, figsize=(1.9 * columns, 2.1 * grid_rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if not rows:
        axes[0, 0].text(0, 0.5, "no misclassified image", fontsize=11)
    for ax, row in zip(axes.ravel(), rows):
        ax.imshow(np.asarray(images[row["index"]].convert("RGB")))
        ax.set_title(
            f"true {row['true']} → {row['predicted']}\n{row['confidence']:.0%}  {row['language']} ({row['source']})",
            fontsize=7,
        )
    fig.suptitle(title)
    save_figure(fig, path)


def reliability_bins(confidences, correct, n_bins: int = N_BINS):
    """Per bin (k/n, (k+1)/n]: (count, accuracy, mean confidence), the binning of the metric's ECE."""
    confidences = np.asarray(confidences, dtype=float)
    correct = np.asarray(correct, dtype=float)
    bins = np.clip(np.ceil(confidences * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    accuracy = np.divide(np.bincount(bins, correct, n_bins), counts, out=np.full(n_bins, np.nan), where=counts > 0)
    mean_conf = np.divide(
        np.bincount(bins, confidences, n_bins), counts, out=np.full(n_bins, np.nan), where=counts > 0
    )
    return counts, accuracy, mean_conf


def plot_reliability(confidences, correct, ece: float, path: Path, title: str, n_bins: int = N_BINS) -> None:
    plt = pyplot()
    counts, accuracy, mean_conf = reliability_bins(confidences, correct, n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(
        edges[:-1],
        np.nan_to_num(accuracy),
        width=1 / n_bins,
        align="edge",
        edgecolor="black",
        color="tab:blue",
        label="accuracy",
    )
    centres = edges[:-1] + 0.5 / n_bins
    ax.plot(
        centres,
        mean_conf,
        "_",
        color="tab:red",
        markersize=14,
        markeredgewidth=2.5,
        label="mean confidence in the bin",
    )
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title}\nECE ({n_bins} bins) = {ece:.4f}")
    ax_count.bar(edges[:-1], counts, width=1 / n_bins, align="edge", color="grey", edgecolor="black")
    ax_count.set_xlabel("confidence (top softmax probability)")
    ax_count.set_ylabel("images")
    ax_count.set_xlim(0, 1)
    save_figure(fig, path)


def worst_errors(probabilities, references, dataset_columns: dict, labels: list[str], k: int = 24) -> list[dict]:
    """Misclassified examples, most confident first."""
    predictions = probabilities.argmax(axis=-1)
    confidences = probabilities.max(axis=-1)
    wrong = np.flatnonzero(predictions != references)
    wrong = wrong[np.argsort(-confidences[wrong], kind="stable")][:k]
    return [
        {
            "index": int(i),
            "true": labels[int(references[i])],
            "predicted": labels[int(predictions[i])],
            "confidence": float(confidences[i]),
            **{column: str(dataset_columns[column][i]) for column in GROUP_COLUMNS},
        }
        for i in wrong
    ]


def summary_lines(metrics: dict, heading: str = "##") -> list[str]:
    """The overall metrics, then accuracy per language, script and source: the report's and the card's tables."""
    rows = [("accuracy", percent(metrics["accuracy"])), ("macro-F1", f"{metrics['macro_f1']:.4f}")]
    if "balanced_accuracy" in metrics:
        rows.append(("balanced accuracy", percent(metrics["balanced_accuracy"])))
    if "expected_calibration_error" in metrics:
        rows.append(("expected calibration error (15 bins)", f"{metrics['expected_calibration_error']:.4f}"))
    rows += [
        (f"worst {column} accuracy", percent(metrics[f"worst_{column}_accuracy"]))
        for column in GROUP_COLUMNS
        if f"worst_{column}_accuracy" in metrics
    ]
    rows.append(("images", metrics["n"]))
    lines = markdown_table(["metric", "value"], rows, numeric=(1,))
    for column in GROUP_COLUMNS:
        if metrics.get(f"per_{column}"):
            describe = (lambda s: f"{s} ({script_name(s)})") if column == "script" else None
            lines += ["", f"{heading} Per {column}", "", *group_table(metrics[f"per_{column}"], column, describe)]
    return lines


def render_markdown(metrics: dict, split: str, model: str, recipe: str | None, errors: list[dict]) -> str:
    lines = [
        f"# Evaluation of {md(model)} on the {md(split)} split",
        "",
        f"Recipe: {md(recipe)}" if recipe else "",
        "",
        *summary_lines(metrics),
    ]
    if metrics.get("not_evaluated"):
        named = "; ".join(f"{column} {', '.join(values)}" for column, values in metrics["not_evaluated"].items())
        lines += ["", f"**Not evaluated: {named}** (no image of them in the {split} split)."]
    if metrics.get("top_confusions"):
        rows = [
            (row["true"], row["predicted"], row["count"], ", ".join(f"{s} ({n})" for s, n in row["scripts"].items()))
            for row in metrics["top_confusions"]
        ]
        lines += [
            "",
            "## Most frequent confusions",
            "",
            *markdown_table(["true", "predicted", "count", "scripts"], rows, numeric=(2,)),
        ]
    lines += [
        "",
        "## Plots",
        "",
        "![Confusion matrix](confusion_matrix.png)",
        "",
        "![Accuracy per language and concept](language_concept_accuracy.png)",
        "",
        "![Reliability diagram](reliability_diagram.png)",
        "",
        f"![The {len(errors)} misclassified images the model was surest of](worst_errors.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(
    probabilities: np.ndarray,
    split_dataset,
    labels: list[str],
    output_dir: str | Path,
    *,
    split: str = "test",
    model: str = "",
    recipe: str | None = None,
    overwrite: bool = False,
    other_splits=(),
    sources=(),
) -> tuple[dict, Path]:
    """Metrics, report.md and plots for `probabilities` predicted on `split_dataset` (with its image column).

    `metrics["not_evaluated"]` names what `other_splits` and `labels` hold but `split_dataset` has no image of.
    """
    metrics = metrics_from_probabilities(probabilities, split_dataset, labels)
    metrics["not_evaluated"] = not_evaluated(split_dataset, other_splits, labels, sources)
    references = np.asarray([int(v) for v in split_dataset["label"]])
    predictions = probabilities.argmax(axis=-1)
    columns = {column: list(split_dataset[column]) for column in GROUP_COLUMNS}
    errors = worst_errors(probabilities, references, columns, labels)

    output_dir = Path(output_dir)
    with atomic_directory(output_dir, overwrite=overwrite, what="report folder") as tmp:
        plot_confusion_matrix(
            metrics["confusion_matrix"],
            labels,
            tmp / PLOTS["confusion_matrix"],
            f"Confusion matrix, {split} ({metrics['n']} images)",
        )
        names, table = language_concept_accuracy(predictions, references, columns["language"], len(labels))
        plot_language_concept(
            names,
            table,
            labels,
            tmp / PLOTS["language_concept_accuracy"],
            f"Accuracy per language and concept, {split}",
        )
        images = split_dataset["image"] if errors else []
        plot_worst_errors(
            images, errors, tmp / PLOTS["worst_errors"], f"Worst misclassified images, {split} (most confident first)"
        )
        plot_reliability(
            probabilities.max(axis=-1),
            predictions == references,
            metrics.get("expected_calibration_error", float("nan")),
            tmp / PLOTS["reliability_diagram"],
            f"Reliability diagram, {split}",
        )
        payload = {split: metrics, "model": model, "recipe": recipe, "worst_errors": errors}
        write_json(tmp / "metrics.json", payload)
        write_text(tmp / "report.md", render_markdown(metrics, split, model, recipe, errors))
    return metrics, output_dir


def default_output_dir(model: str, split: str) -> Path:
    path = Path(model).expanduser()
    if path.is_dir():
        return path / f"evaluation-{split}"
    return Path(f"evaluation-{model.replace('/', '--')}-{split}")


def evaluate_model(
    model,
    processor,
    recipe,
    split: str = "test",
    output_dir: str | Path | None = None,
    model_name: str | None = None,
    overwrite: bool = False,
) -> tuple[dict, Path]:
    """Build the recipe's split, predict it with `model`, and write the report folder."""
    model_name = model_name or str(getattr(model, "name_or_path", "model"))
    labels = concept_ids(model.config)
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    if labels != label_space.ids:
        raise UserError(f"model {model_name}: its labels {labels} differ from {recipe.data.label_space}")
    out = Path(output_dir) if output_dir else default_output_dir(model_name, split)
    out = check_output_dir(out, overwrite=overwrite, sources=read_paths(recipe.data), what="report folder")
    with output_lock(out, what="report folder"):  # one writer from the first image read to the report
        dataset = build_dataset(recipe.data, label_space)
        if split == "all":
            dataset = DatasetDict({"all": concatenate_datasets(list(dataset.values()))})
        if split not in dataset:
            raise UserError(f"--split {split}: choose from {', '.join(dataset)} or all")
        part = dataset[split]
        others = [other for name, other in dataset.items() if name != split]
        if not len(part):
            raise UserError(f"--split {split}: the recipe's {split} split is empty; choose another split (or all)")
        pixels = cache_pixels if recipe.data.pixel_cache else decode_on_the_fly  # `pixel_cache: false`: no cache
        cached = pixels(DatasetDict({split: part}), processor)[split]
        probabilities = predict_proba_dataset(model, PixelNormalizer.from_processor(processor), cached)
        return write_report(
            probabilities,
            part,
            labels,
            out,
            split=split,
            model=model_name,
            recipe=recipe.path,
            overwrite=overwrite,
            other_splits=others,
            sources=recipe.data.sources,
        )
