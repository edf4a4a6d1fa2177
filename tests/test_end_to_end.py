"""The user's story: make sources, train a few steps, load with pipeline(), predict in French."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from conftest import CLI


@pytest.fixture(scope="module")
def seven(polydigits_dir) -> Path:
    """A French-labelled seven from the data, as a user's PNG file."""
    return sorted((polydigits_dir / "latin-fr" / "sept").glob("*.png"))[0]


def test_training_exports_a_standard_model_folder(trained_model):
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json"):
        assert (trained_model / name).is_file(), name
    config = json.loads((trained_model / "config.json").read_text(encoding="utf-8"))
    # The quickstart's head has one class per digit and numeral script; its answers are digits.
    assert config["label_granularity"] == "concept_script" and config["concepts"] == [str(i) for i in range(10)]
    assert len(config["id2label"]) == 10 * 12 and config["joint_label_concept"]["7@Deva"] == "7"
    assert config["label_display_names"]["fr"]["7"] == "sept"
    assert config["label_display_names"]["hi"]["7"] == "सात"
    assert config["default_language"] == "en"


def test_metrics_are_broken_down_per_numeral_system_and_language(trained_model):
    metrics = json.loads((trained_model / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and "macro_f1" in metrics
    expected_scripts = {"Latn", "Arab", "Deva", "Beng", "Gujr", "Taml", "Telu", "Knda", "Thai", "Khmr", "Mymr", "Hani"}
    assert set(metrics["per_script"]) == expected_scripts
    assert {"ar", "fa", "fr", "de", "zh"} <= set(metrics["per_language"])
    assert sum(row["n"] for row in metrics["per_source"].values()) == metrics["n"]


def test_pipeline_loads_the_model_offline(trained_model, seven):
    from transformers import pipeline

    classify = pipeline("image-classification", model=str(trained_model))
    result = classify(Image.open(seven), top_k=3)
    assert len(result) == 3
    classes = classify.model.config.id2label.values()
    assert {label.split("@")[0] for label in classes} == {str(i) for i in range(10)}  # digit@script
    assert {r["label"] for r in result} <= set(classes)
    assert abs(sum(r["score"] for r in classify(Image.open(seven), top_k=len(classes))) - 1.0) < 1e-4


def test_exported_scores_are_calibrated_and_the_same_through_pipeline_and_predictor(trained_model, seven):
    """The temperature fitted on the validation split is in the head: no reader has to apply it."""
    from transformers import pipeline

    from polyglot_vision.serving import Predictor

    config = json.loads((trained_model / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((trained_model / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert config["softmax_temperature"] > 0 and config["softmax_temperature"] != 1.0
    assert metrics["softmax_temperature"] == pytest.approx(config["softmax_temperature"])
    theirs = {}  # a digit's score is the sum of its classes' scores, one per numeral script
    for r in pipeline("image-classification", model=str(trained_model))(
        Image.open(seven), top_k=len(config["id2label"])
    ):
        concept = config["joint_label_concept"][r["label"]]
        theirs[concept] = theirs.get(concept, 0.0) + r["score"]
    (ours,) = Predictor.from_pretrained(trained_model).top_k([seven], k=10)
    assert {p.concept: p.score for p in ours} == pytest.approx(theirs, abs=1e-5)
    (hinted,) = Predictor.from_pretrained(trained_model).top_k([seven], k=1, hint="Latn")
    assert hinted[0].script == "Latn" and hinted[0].script_name == "Latin"


def test_predict_answers_in_the_chosen_language(trained_model, seven):
    run = subprocess.run(
        [*CLI, "predict", str(trained_model), str(seven), "--lang", "fr", "--top-k", "10", "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    [answer] = json.loads(run.stdout)
    names = {p["concept"]: p["name"] for p in answer["predictions"]}
    assert names["7"] == "sept" and names["0"] == "zéro"
    scores = [p["score"] for p in answer["predictions"]]
    assert scores == sorted(scores, reverse=True)

    text = subprocess.run(
        [*CLI, "predict", str(trained_model), str(seven), "--lang", "th", "--top-k", "10"],
        capture_output=True,
        text=True,
    )
    assert text.returncode == 0 and "เจ็ด (7)" in text.stdout


def test_predict_piped_into_head_stops_without_a_traceback(trained_model, seven):
    # Many images so that the JSON outgrows the pipe after `head` has left.
    images = [str(seven)] * 400
    run = subprocess.run(
        f"{' '.join(CLI)} predict {trained_model} {' '.join(images)} --json | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert run.stdout == "[\n  {\n    "
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr


def test_predict_falls_back_to_the_default_language(trained_model, seven):
    from polyglot_vision.serving import Predictor

    predictor = Predictor.from_pretrained(trained_model)
    [preds] = predictor.top_k([Image.open(seven)], k=10, language="pt-BR")
    assert {p.concept: p.name for p in preds}["7"] == "sete"  # pt-BR -> pt
    [preds] = predictor.top_k([Image.open(seven)], k=10, language="xx")
    assert {p.concept: p.name for p in preds}["7"] == "seven"  # unknown -> en


def test_evaluate_command_reports_per_language(trained_model, write_recipe):
    recipe = write_recipe()
    run = subprocess.run(
        [*CLI, "evaluate", str(trained_model), "--recipe", str(recipe), "--split", "test"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "language" in run.stdout and "Deva" in run.stdout
