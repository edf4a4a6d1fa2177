"""Cross-lingual transfer and few-shot adaptation, run through the command line as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import CLI, REPO, assert_clean_failure, tiny_recipe, write_yaml

# Three sources, three scripts: enough for a matrix, small enough to be quick.
SOURCES = ("latin-fr", "thai", "han")


def small_recipe(polydigits_dir: Path, out_dir: Path, sources=SOURCES, **overrides) -> dict:
    recipe = tiny_recipe(polydigits_dir, out_dir, **overrides)
    recipe["sources"] = [s for s in recipe["sources"] if s["name"] in sources]
    return recipe


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)


def test_transfer_matrix_covers_every_train_and_test_language(polydigits_dir, tmp_path):
    recipe = write_yaml(tmp_path / "recipe.yaml", small_recipe(polydigits_dir, tmp_path / "model"))
    out = tmp_path / "transfer"
    run = run_cli("transfer", recipe, "--steps", 2, "--leave-one-out", "--output-dir", out)
    assert run.returncode == 0, run.stderr[-2000:]

    result = json.loads((out / "transfer.json").read_text(encoding="utf-8"))
    languages = ["fr", "th", "zh"]
    assert result["test_languages"] == languages and result["steps"] == 2
    assert [row["train_set"] for row in result["rows"]] == [*languages, *(f"all but {lang}" for lang in languages)]
    # 4 images per digit and language: 2 train, 1 validation, 1 test
    assert result["test_images"] == {lang: 10 for lang in languages}
    for row in result["rows"]:
        assert row["train_images"] == 20 * len(row["train_languages"])
        assert set(row["accuracy"]) == set(languages)
        assert all(acc in {i / 10 for i in range(11)} for acc in row["accuracy"].values())  # 10 test images each
        unseen = [row["accuracy"][lang] for lang in languages if lang not in row["train_languages"]]
        assert row["others"] == pytest.approx(sum(unseen) / len(unseen))
    assert result["rows"][3]["train_languages"] == ["th", "zh"]

    with Image.open(out / "transfer_matrix.png") as plot:
        assert plot.width > 300 and plot.height > 200
    table = (out / "transfer.md").read_text(encoding="utf-8")
    assert "| trained on | images | fr | th | zh | others |" in table
    assert "| all but th | 40 |" in table
    assert "Transfer matrix written to" in run.stdout


def test_transfer_needs_two_languages(polydigits_dir, tmp_path):
    recipe = write_yaml(tmp_path / "recipe.yaml", small_recipe(polydigits_dir, tmp_path / "model", sources=("thai",)))
    assert_clean_failure(run_cli("transfer", recipe, "--steps", 1), "at least two languages", "th")
    assert_clean_failure(run_cli("transfer", recipe, "--steps", 0), "--steps")
    assert not (tmp_path / "model").exists()


@pytest.fixture
def adapt_recipe(polydigits_dir, tmp_path):
    base = write_yaml(tmp_path / "base.yaml", small_recipe(polydigits_dir, tmp_path / "unused"))
    recipe = small_recipe(polydigits_dir, tmp_path / "adapt", sources=("thai",))
    del recipe["model_config"]  # the models come from the base recipe
    recipe.update(
        label_granularity="concept",  # the base model keeps the quickstart's concept·script head
        base_recipe=str(base),
        base_overrides={"holdout_scripts": ["Thai"], "output_dir": str(tmp_path / "base-without-thai")},
        shots=[2, 1],
        repeats=2,
        max_steps=2,
    )

    def make(**changes) -> Path:
        return write_yaml(tmp_path / "adapt.yaml", {**recipe, **changes})

    return make


def test_adapt_compares_fine_tuning_with_training_from_scratch(adapt_recipe, tmp_path):
    run = run_cli("adapt", adapt_recipe())
    assert run.returncode == 0, run.stderr[-2000:]

    base = tmp_path / "base-without-thai"
    base_metrics = json.loads((base / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert set(base_metrics["per_script"]) == {"Latn", "Hani"}  # Thai held out of the base model

    out = tmp_path / "adapt"
    result = json.loads((out / "adaptation.json").read_text(encoding="utf-8"))
    assert result["new_scripts"] == ["Thai"] and result["shots"] == [1, 2] and result["repeats"] == 2
    assert result["base_model"] == str(base) and result["test_images"] == 10
    assert 0 <= result["zero_shot"] <= 1
    for init in ("fine-tuned", "from scratch"):
        for k in ("1", "2"):
            runs = result["runs"][init][k]
            assert len(runs["accuracies"]) == 2
            assert runs["mean"] == pytest.approx(sum(runs["accuracies"]) / 2)
    with Image.open(out / "adaptation_curve.png") as plot:
        assert plot.width > 300 and plot.height > 200
    table = (out / "adaptation.md").read_text(encoding="utf-8")
    assert "| k per class | fine-tuned | from scratch | gain |" in table and "| 2 |" in table

    # A second run reuses the base model instead of training it again.
    weights = base / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = run_cli("adapt", adapt_recipe(shots=[1], repeats=1))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reusing the base model" in again.stderr
    assert weights.stat().st_mtime_ns == before
    assert json.loads((out / "adaptation.json").read_text(encoding="utf-8"))["shots"] == [1]

    joint = run_cli("adapt", adapt_recipe(label_granularity="concept_script"))
    assert joint.returncode == 2 and "label_granularity: concept_script` does not work with adapt" in joint.stderr


def test_adapt_refuses_a_base_model_that_saw_the_new_script(adapt_recipe, tmp_path):
    run = run_cli("adapt", adapt_recipe(base_overrides={"output_dir": str(tmp_path / "base")}))
    assert_clean_failure(run, "would train on Thai", "holdout_scripts")
    assert not (tmp_path / "base").exists() and not (tmp_path / "adapt").exists()


@pytest.mark.parametrize(
    "changes, culprit",
    [
        ({"shots": [0, 5]}, "`shots`"),
        ({"shots": "many"}, "`shots`"),
        ({"repeats": "twice"}, "`repeats`"),
        ({"base_recipe": None}, "`base_recipe`"),
        ({"max_steps": -1}, "`max_steps`"),
        ({"model_config": {"model_type": "vit"}}, "model_config"),
        ({"base_overrides": {"holdout_scripts": ["Tibt"]}}, "holdout_scripts Tibt"),
    ],
)
def test_adapt_names_a_bad_setting(adapt_recipe, tmp_path, capsys, changes, culprit):
    from polyglot_vision.cli import main

    assert main(["adapt", str(adapt_recipe(**changes))]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("polyglot-vision: error:") and culprit in line, line
    assert not (tmp_path / "adapt").exists() and not (tmp_path / "base-without-thai").exists()


def test_few_shot_keeps_k_images_per_concept_and_language_and_nests(polydigits_dir, tmp_path):
    from polyglot_vision.data import build_dataset, few_shot
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.training import recipe_from_dict

    recipe = recipe_from_dict(small_recipe(polydigits_dir, tmp_path / "m", validation_fraction=0.0, test_fraction=0.0))
    train = build_dataset(recipe.data, LabelSpace.from_yaml(recipe.data.label_space))["train"]
    one, two = few_shot(train, 1, seed=3), few_shot(train, 2, seed=3)
    pairs = list(zip(one["label"], one["language"]))
    assert len(pairs) == len(set(pairs)) == 30  # 10 digits x 3 languages
    assert len(two) == 60
    assert set(one["image"][i].tobytes() for i in range(len(one))) <= set(
        two["image"][i].tobytes() for i in range(len(two))
    )
    assert few_shot(train, 1, seed=3)["label"] == one["label"]
    assert len(few_shot(train, 100, seed=0)) == len(train)  # k above what there is keeps everything


def test_holdout_scripts_leaves_those_sources_out(polydigits_dir, tmp_path):
    from polyglot_vision.data import build_dataset
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.training import recipe_from_dict

    recipe = recipe_from_dict(small_recipe(polydigits_dir, tmp_path / "m", holdout_scripts=["Thai", "Hani"]))
    dataset = build_dataset(recipe.data, LabelSpace.from_yaml(recipe.data.label_space))
    assert {lang for part in dataset.values() for lang in part["language"]} == {"fr"}


def test_the_synthesis_benchmark_leaves_out_each_base_ingredient_then_adds_each_other_one():
    from polyglot_vision.experiments.synthesis import ingredient_runs

    runs = ingredient_runs(("a", "b", "c", "d"), {"c", "a"}, {"a", "c"}, {"d", "b"}, first="base")
    assert runs == [
        ("base", ("a", "c")),
        ("without a", ("c",)),
        ("without c", ("a",)),
        ("with b", ("a", "b", "c")),
        ("with d", ("a", "c", "d")),
    ]
    assert ingredient_runs(("a", "b"), {"a"}, set(), set()) == [("default", ("a",))]


def test_the_prepare_benchmark_counts_every_image_and_removes_the_planted_duplicates(tmp_path):
    out = tmp_path / "prepare.json"
    command = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "prepare", "--images", "200"]
    command += ["--sources", "2", "--size", "32", "--duplicates", "10", "--num-proc", "1", "--output", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert (result["images"], result["sources"], result["image_size"]) == (200, 2, 32)
    assert result["duplicates_removed"] == 2 * 10
    assert result["prepare_images_per_second"] > 0 and result["unify_images_per_second"] > 0
