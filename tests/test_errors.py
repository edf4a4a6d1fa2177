"""Bad input: one line naming the culprit, exit status 2, no traceback, nothing half-written."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import assert_clean_failure

CLI = [sys.executable, "-m", "polyglot_vision.cli"]


def run_cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)


def edit_recipe(path, change):
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(recipe)
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return recipe


def test_unknown_recipe_key(write_recipe, tmp_path):
    recipe = write_recipe(learning_rat=0.1)
    assert_clean_failure(run_cli("train", recipe), "learning_rat")
    assert not (tmp_path / "model").exists()


def test_unknown_override_key(write_recipe, tmp_path):
    assert_clean_failure(run_cli("train", write_recipe(), "--num_epochs", "3"), "num_epochs")
    assert not (tmp_path / "model").exists()


def test_missing_source_path(write_recipe, tmp_path):
    recipe = write_recipe()
    edit_recipe(recipe, lambda r: r["sources"][3].update(path=str(tmp_path / "nowhere" / "arabic")))
    assert_clean_failure(run_cli("train", recipe), "arabic", "nowhere")
    assert not (tmp_path / "model").exists()


def test_missing_label_column(write_recipe, tmp_path):
    recipe = write_recipe()
    edit_recipe(recipe, lambda r: r["sources"][0].update(label_column="class"))
    assert_clean_failure(run_cli("prepare", recipe, "--output", tmp_path / "ds"), "mnist", "'class'", "digit")
    assert not (tmp_path / "ds").exists()


def test_missing_image_column(write_recipe, tmp_path):
    recipe = write_recipe()
    edit_recipe(recipe, lambda r: r["sources"][4].update(image_column="img"))
    assert_clean_failure(run_cli("train", recipe), "persian", "'img'")
    assert not (tmp_path / "model").exists()


def test_unmappable_labels_are_all_listed(write_recipe, polydigits_dir, tmp_path):
    # A copy of the Thai source whose labels nobody can map.
    table = pq.read_table(polydigits_dir / "thai" / "data.parquet")
    labels = ["blorp" if i % 2 else "zzyzx" for i in range(table.num_rows)]
    table = table.set_column(table.column_names.index("label"), "label", [labels])
    (tmp_path / "weird").mkdir()
    pq.write_table(table, tmp_path / "weird" / "data.parquet")
    recipe = write_recipe()
    edit_recipe(
        recipe, lambda r: r["sources"].append({"name": "weird", "path": str(tmp_path / "weird"), "language": "th"})
    )
    assert_clean_failure(run_cli("prepare", recipe, "--output", tmp_path / "ds"), "'blorp'", "'zzyzx'", "weird")
    assert not (tmp_path / "ds").exists()


def test_recipe_not_valid_yaml(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("model_config: {model_type: vit\nsources: [", encoding="utf-8")
    assert_clean_failure(run_cli("train", recipe), "broken.yaml")


def test_missing_recipe(tmp_path):
    assert_clean_failure(run_cli("prepare", tmp_path / "nope.yaml"), "nope.yaml")


@pytest.mark.parametrize("content", [None, b"this is not a png"])
def test_predict_bad_image(tmp_path, content):
    image = tmp_path / "digit.png"
    if content is not None:
        image.write_bytes(content)
    assert_clean_failure(run_cli("predict", tmp_path, image), "digit.png")
