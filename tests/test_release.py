"""Release: the model card written by `train`, the evaluation report and plots, the files a push sends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import CLI, REPO


@pytest.fixture(scope="module")
def card(trained_model):
    from huggingface_hub import ModelCard

    return ModelCard.load(trained_model / "README.md")


@pytest.fixture(scope="module")
def test_metrics(trained_model) -> dict:
    return json.loads((trained_model / "metrics.json").read_text(encoding="utf-8"))["test"]


def test_card_front_matter(card, test_metrics):
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    data = card.data
    assert {"en", "fr", "de", "ar", "fa", "hi", "bn", "zh", "th"} <= set(data.language)
    assert {"image-classification", "vision", "multilingual"} <= set(data.tags)
    assert data.pipeline_tag == "image-classification"
    assert data.license == "apache-2.0"
    assert data.base_model is None and data.datasets is None  # built from a config, local sources
    metadata = data.to_dict()
    assert ModelCardData(**metadata).to_dict() == metadata
    name, results = model_index_to_eval_results(metadata["model-index"])
    values = {r.metric_type: r.metric_value for r in results}
    assert values["accuracy"] == pytest.approx(test_metrics["accuracy"])
    assert values["f1"] == pytest.approx(test_metrics["macro_f1"])
    assert all(r.task_type == "image-classification" and r.dataset_split == "test" for r in results)


def test_card_tables_hold_the_measured_numbers(card, test_metrics, trained_model):
    text = card.text
    assert f"| accuracy | {test_metrics['accuracy']:.2%} |" in text
    assert f"| macro-F1 | {test_metrics['macro_f1']:.4f} |" in text
    for language, row in test_metrics["per_language"].items():
        assert f"| {language} | {row['accuracy']:.2%} | {row['n']} |" in text
    for script, row in test_metrics["per_script"].items():
        assert f"| {row['accuracy']:.2%} | {row['n']} |" in text and f"| {script}" in text
    assert "| 7 | seven | sept | sieben |" in text  # the label table: en, fr, de first
    assert "## Known limits" in text and "pipeline(" in text and "polyglot-vision predict" in text
    assert "```yaml" in text and "sources:" in text  # the recipe
    assert "(confusion_matrix.png)" in text and (trained_model / "confusion_matrix.png").is_file()


def test_card_from_a_hub_checkpoint_recipe(tmp_path):
    """base_model, datasets and license come from the recipe; limits from the measured confusions."""
    from huggingface_hub import ModelCard

    from polyglot_vision.export import write_model_card
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.modeling import ModelArguments

    from conftest import REPO

    class Recipe:
        path = None
        model = ModelArguments(model_name_or_path="google/vit-base-patch16-224-in21k", license="mit")
        data = type(
            "Data",
            (),
            {
                "sources": [
                    {"name": "mnist", "path": "ylecun/mnist", "language": "en"},
                    {"name": "madbase", "path": "MagedSaeed/MADBase", "language": "ar"},
                ],
                "label_space": "digits.yaml",
            },
        )()
        training = type("Args", (), {"hub_model_id": "org/vit-digits", "push_to_hub": False})()

    label_space = LabelSpace.from_yaml(REPO / "recipes" / "labels" / "digits.yaml")
    metrics = {
        "accuracy": 0.9,
        "macro_f1": 0.89,
        "n": 20,
        "top_confusions": [{"true": "5", "predicted": "0", "count": 3, "scripts": {"Arab": 3}}],
    }
    card = ModelCard.load(write_model_card(tmp_path, Recipe, label_space, metrics))
    assert card.data.base_model == "google/vit-base-patch16-224-in21k"
    assert card.data.datasets == ["MagedSaeed/MADBase", "ylecun/mnist"]
    assert card.data.license == "mit"
    assert "**five (5) read as zero (0)**: 3 test image(s), by script: Arabic 3." in card.text


def test_the_card_of_an_objects_model_speaks_of_objects(tmp_path, write_objects_recipe):
    from polyglot_vision.export import write_model_card
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.training import load_recipe

    recipe = load_recipe(write_objects_recipe())
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    metrics = {
        "accuracy": 0.5,
        "macro_f1": 0.4,
        "n": 10,
        "per_script": {"Latn": {"accuracy": 0.5, "n": 10}},
        "top_confusions": [{"true": "cat", "predicted": "dog", "count": 2, "scripts": {"Latn": 2}}],
    }
    text = write_model_card(tmp_path, recipe, label_space, metrics).read_text(encoding="utf-8")
    assert "**cat (cat) read as dog (dog)**: 2 test image(s), by script: Latin 2." in text
    assert "Latn (Latin)" in text
    for word in ("numeral", "digit", "Arabic", "Devanagari"):
        assert word.lower() not in text.lower(), word


def test_files_to_upload_leave_training_state_out(tmp_path):
    from polyglot_vision.export import files_to_upload

    keep = [
        "README.md",
        "all_results.json",
        "config.json",
        "confusion_matrix.png",
        "evaluation-test/confusion_matrix.png",
        "evaluation-test/metrics.json",
        "evaluation-test/report.md",
        "metrics.json",
        "model.safetensors",
        "preprocessor_config.json",
        "test_results.json",
    ]
    drop = [
        "training_args.bin",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "pytorch_model.bin",
        "checkpoint-4/model.safetensors",
        "checkpoint-4/config.json",
        "dataset/dataset_dict.json",
        "runs/events.out",
        "evaluation-test/.tmp",
    ]
    for name in keep + drop:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in files_to_upload(tmp_path)] == keep


def test_push_dry_run_lists_the_model_files(trained_model):
    run = subprocess.run(
        [*CLI, "push", str(trained_model), "--repo-id", "org/tiny", "--dry-run"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    listed = [line.split()[1] for line in run.stdout.splitlines()[:-1] if line.startswith("upload")]
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json", "metrics.json"} <= set(listed)
    assert "training_args.bin" not in listed and not any(name.startswith("checkpoint-") for name in listed)
    assert run.stdout.splitlines()[-1].endswith("would be pushed to org/tiny")


def test_push_offline_fails_in_one_line(trained_model):
    run = subprocess.run([*CLI, "push", str(trained_model), "--repo-id", "org/tiny"], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "org/tiny" in run.stderr


def test_evaluate_writes_report_metrics_and_plots(trained_model, write_recipe, tmp_path):
    out = tmp_path / "report"
    run = subprocess.run(
        [*CLI, "evaluate", str(trained_model), "--recipe", str(write_recipe()), "--output-dir", str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["test"]
    for key in (
        "accuracy",
        "macro_f1",
        "balanced_accuracy",
        "expected_calibration_error",
        "per_language",
        "worst_language_accuracy",
        "confusion_matrix",
        "top_confusions",
    ):
        assert key in metrics, key
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"| accuracy | {metrics['accuracy']:.2%} |" in report and "## Per language" in report
    for name in ("confusion_matrix", "language_concept_accuracy", "worst_errors", "reliability_diagram"):
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG" and min(image.size) > 300, name
        assert f"({name}.png)" in report
    assert not list(tmp_path.glob(".report-*"))  # the temporary folder was renamed


def test_default_report_folder_is_beside_the_model(tmp_path):
    from polyglot_vision.evaluation.report import default_output_dir

    assert default_output_dir(str(tmp_path), "test") == tmp_path / "evaluation-test"
    assert default_output_dir("org/model", "validation") == Path("evaluation-org--model-validation")


def test_the_gpu_check_runs_its_path_on_a_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "gpu_check.py"),
            "--device",
            "cpu",
            "--steps",
            "2",
            "--warmup",
            "0",
            "--batch-size",
            "4",
            "--image-size",
            "32",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [row["model"] for row in rows] == ["convnext", "vit"]
    assert all(row["loss_is_finite"] and row["images_per_second"] > 0 for row in rows)
