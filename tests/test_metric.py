"""The package's `multilingual_accuracy` metric, loaded by path as a user of `evaluate` would."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import REPO

METRIC_DIR = REPO / "src" / "polyglot_vision" / "evaluation" / "multilingual_accuracy"


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(str(METRIC_DIR))


def test_the_metric_folder_is_publishable():
    assert (METRIC_DIR / "multilingual_accuracy.py").is_file()
    card = (METRIC_DIR / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "expected_calibration_error" in card


def test_known_values_per_language_and_source(metric):
    result = metric.compute(
        predictions=[0, 1, 1, 0, 2, 2],
        references=[0, 1, 0, 0, 2, 1],
        languages=["en", "en", "hi", "hi", "zh", "zh"],
        sources=["mnist", "mnist", "deva", "deva", "han", "han"],
    )
    assert result["accuracy"] == pytest.approx(4 / 6)
    # recalls: class 0: 2/3, class 1: 1/2, class 2: 1/1
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1: class 0: 2*2/(4+0+1)=0.8, class 1: 2/(2+1+1)=0.5, class 2: 2/(2+1+0)=2/3
    assert result["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert result["per_language"] == {
        "en": {"accuracy": 1.0, "n": 2},
        "hi": {"accuracy": 0.5, "n": 2},
        "zh": {"accuracy": 0.5, "n": 2},
    }
    assert result["worst_language_accuracy"] == 0.5
    assert result["per_source"]["mnist"] == {"accuracy": 1.0, "n": 2}
    assert result["worst_source_accuracy"] == 0.5
    assert "expected_calibration_error" not in result


def test_expected_calibration_error_by_hand(metric):
    # 15 bins (k/15, (k+1)/15]: 0.95 and 0.97 share bin 14, 0.9 is in bin 13, 0.5 in bin 7, 0.25 in bin 3.
    confidences = [0.95, 0.97, 0.9, 0.5, 0.25]
    correct = [1, 0, 1, 1, 0]
    references = [3, 3, 3, 3, 3]
    predictions = [3 if ok else 4 for ok in correct]
    # bin 14: |0.5 - 0.96| * 2/5 ; bin 13: |1 - 0.9| /5 ; bin 7: |1 - 0.5| / 5 ; bin 3: |0 - 0.25| / 5
    expected = 0.46 * 2 / 5 + 0.1 / 5 + 0.5 / 5 + 0.25 / 5
    result = metric.compute(predictions=predictions, references=references, confidences=confidences)
    assert result["expected_calibration_error"] == pytest.approx(expected)
    perfect = metric.compute(predictions=[1, 1], references=[1, 1], confidences=[1.0, 1.0])
    assert perfect["expected_calibration_error"] == 0.0


def test_batches_and_other_groups(metric):
    metric.add_batch(predictions=[1, 2], references=[1, 1])
    metric.add_batch(predictions=[0], references=[0])
    result = metric.compute(scripts=["Latn", "Deva", "Latn"], groups={"font": ["a", "b", "b"]})
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["per_script"]["Deva"] == {"accuracy": 0.0, "n": 1}
    assert result["worst_font_accuracy"] == 0.5
    with pytest.raises(ValueError):
        metric.compute(predictions=[1], references=[1], confidences=[0.5, 0.5])


def test_library_metrics_come_from_the_metric():
    from sklearn.metrics import f1_score

    from polyglot_vision.evaluation import classification_metrics, grouped_metrics, metric_path
    from polyglot_vision.training import compute_metrics_for

    assert metric_path() == METRIC_DIR
    rng = np.random.default_rng(0)
    refs, preds = rng.integers(0, 10, 300), rng.integers(0, 10, 300)
    flat = classification_metrics(preds, refs)
    assert flat["accuracy"] == pytest.approx(float((preds == refs).mean()))
    assert flat["macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro"))
    grouped = grouped_metrics(preds, refs, {"language": ["en", "fr"] * 150, "source": ["a"] * 300})
    assert set(grouped["per_language"]) == {"en", "fr"} and grouped["per_source"]["a"]["n"] == 300

    class EvalPrediction:
        predictions = np.eye(3)[[0, 1, 2, 2]] * 5.0
        label_ids = np.array([0, 1, 2, 0])

    logged = compute_metrics_for()(EvalPrediction())
    assert logged["accuracy"] == 0.75
    assert all(isinstance(v, float) and math.isfinite(v) for v in logged.values())
    assert "expected_calibration_error" in logged
