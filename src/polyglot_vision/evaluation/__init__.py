"""Evaluation: metrics per language, script and source, predictions on a split, reports with plots."""

from .coverage import format_not_evaluated, not_evaluated
from .metrics import classification_metrics, format_table, grouped_metrics, load_metric, metric_path
from .predict import evaluate_dataset, metrics_from_probabilities, predict_logits_dataset, predict_proba_dataset
from .report import evaluate_model, write_report

__all__ = [
    "classification_metrics",
    "evaluate_dataset",
    "evaluate_model",
    "format_not_evaluated",
    "format_table",
    "grouped_metrics",
    "load_metric",
    "metric_path",
    "metrics_from_probabilities",
    "not_evaluated",
    "predict_logits_dataset",
    "predict_proba_dataset",
    "write_report",
]
