"""Multilingual accuracy: overall, balanced and per-group accuracy, macro-F1 and calibration.

A classifier trained on image sets labelled in many languages can be right on
average and wrong for one community. This metric reports the overall numbers
together with the accuracy of every language, script and source, the worst of
them, and (given the model's confidences) the expected calibration error.
"""

from __future__ import annotations

from collections import defaultdict

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={ICML},
  year={2017}
}
"""

_DESCRIPTION = """\
Accuracy, macro-F1 and balanced accuracy (mean per-class recall) of a classifier,
broken down per language, per script and per source when those are given, with the
worst group's accuracy, and the expected calibration error (15 equal-width bins)
when the confidence of each prediction is given.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    languages (`list` of `str`, optional): BCP-47 language of each example's source label.
    scripts (`list` of `str`, optional): ISO 15924 script of each example (e.g. `Deva`).
    sources (`list` of `str`, optional): name of the image set each example comes from.
    groups (`dict` of `str` to `list` of `str`, optional): further group columns, `{name: values}`;
        each gives `per_<name>` and `worst_<name>_accuracy`.
    confidences (`list` of `float`, optional): the probability the model gave its prediction
        (the top softmax score). Gives `expected_calibration_error`.
    n_bins (`int`, optional, default 15): bins of the calibration error.
    num_classes (`int`, optional): number of classes, so that a class never seen in
        `references` still counts in macro-F1 (default: the classes that occur).

Returns:
    accuracy (`float`): share of correct predictions.
    macro_f1 (`float`): unweighted mean of the per-class F1 scores.
    balanced_accuracy (`float`): unweighted mean of the per-class recalls (classes present in references).
    n (`int`): number of examples.
    per_language / per_script / per_source (`dict`): `{value: {"accuracy": float, "n": int}}`, sorted by value.
    worst_language_accuracy / worst_script_accuracy / worst_source_accuracy (`float`): lowest group accuracy.
    expected_calibration_error (`float`): sum over bins of |accuracy - mean confidence| weighted by the
        bin's share of examples; bins are (k/15, (k+1)/15], the first one also holds 0.

Examples:
    >>> metric = evaluate.load("path/to/multilingual_accuracy")
    >>> result = metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0],
    ...                         languages=["en", "en", "hi", "hi"])
    >>> result["accuracy"], result["per_language"]["hi"]["accuracy"], result["worst_language_accuracy"]
    (0.75, 0.5, 0.5)
"""

GROUP_ARGUMENTS = {"languages": "language", "scripts": "script", "sources": "source"}


def expected_calibration_error(confidences, correct, n_bins: int = 15) -> float:
    """ECE with `n_bins` equal-width bins (k/n, (k+1)/n]; a confidence of 0 falls in the first bin."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if not len(confidences):
        return float("nan")
    bins = np.clip(np.ceil(confidences * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidences[in_bin].mean())
    return float(ece)


def _f1_and_recall(predictions: np.ndarray, references: np.ndarray, num_classes: int | None):
    classes = np.union1d(predictions, references) if num_classes is None else np.arange(num_classes)
    f1s, recalls = [], []
    for c in classes:
        tp = np.sum((predictions == c) & (references == c))
        fp = np.sum((predictions == c) & (references != c))
        fn = np.sum((predictions != c) & (references == c))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        if tp + fn:  # balanced accuracy averages the recall of the classes that occur
            recalls.append(tp / (tp + fn))
    macro_f1 = float(np.mean(f1s)) if f1s else float("nan")
    balanced = float(np.mean(recalls)) if recalls else float("nan")
    return macro_f1, balanced


def _per_group(correct: np.ndarray, values) -> dict:
    values = [str(v) for v in values]
    if len(values) != len(correct):
        raise ValueError(f"a group column has {len(values)} values for {len(correct)} predictions")
    members: dict[str, list[int]] = defaultdict(list)
    for i, value in enumerate(values):
        members[value].append(i)
    return {
        value: {"accuracy": float(correct[members[value]].mean()), "n": len(members[value])}
        for value in sorted(members)
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultilingualAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            license="apache-2.0",
            reference_urls=["https://arxiv.org/abs/1706.04599"],
        )

    def _compute(
        self,
        predictions,
        references,
        languages=None,
        scripts=None,
        sources=None,
        groups=None,
        confidences=None,
        n_bins: int = 15,
        num_classes: int | None = None,
    ):
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        correct = predictions == references
        n = len(references)
        macro_f1, balanced = _f1_and_recall(predictions, references, num_classes)
        result = {
            "accuracy": float(correct.mean()) if n else float("nan"),
            "macro_f1": macro_f1,
            "balanced_accuracy": balanced,
            "n": int(n),
        }
        columns = {
            name: values
            for arg, name in GROUP_ARGUMENTS.items()
            if (values := {"languages": languages, "scripts": scripts, "sources": sources}[arg]) is not None
        }
        columns.update(groups or {})
        for name, values in columns.items():
            per_value = _per_group(correct, values)
            result[f"per_{name}"] = per_value
            result[f"worst_{name}_accuracy"] = min((v["accuracy"] for v in per_value.values()), default=float("nan"))
        if confidences is not None:
            if len(confidences) != n:
                raise ValueError(f"{len(confidences)} confidences for {n} predictions")
            result["expected_calibration_error"] = expected_calibration_error(confidences, correct, n_bins)
        return result
