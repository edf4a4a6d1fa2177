"""Recipes: flat YAML, command-line overrides, errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from polyglot_vision.errors import UserError
from polyglot_vision.training import load_recipe, parse_overrides

from conftest import QUICKSTART


def test_quickstart_recipe_parses_into_three_argument_groups():
    recipe = load_recipe(QUICKSTART)
    assert recipe.model.model_config["model_type"] in ("resnet", "convnext", "vit")
    assert len(recipe.data.sources) == 16  # 15 of numerals, and the strangers
    assert {s.language for s in recipe.data.sources} >= {"en", "fr", "de", "ar", "fa", "hi", "zh"}
    assert recipe.training.output_dir == "outputs/polydigits/quickstart"
    assert recipe.training.remove_unused_columns is False


def test_command_line_overrides_win_and_are_typed():
    recipe = load_recipe(
        QUICKSTART,
        [
            "--learning_rate",
            "3e-4",
            "--max_steps=7",
            "--bf16",
            "false",
            "--eval_strategy",
            "no",
            "--augmentation",
            "affine+blur",
        ],
    )
    assert recipe.training.learning_rate == pytest.approx(3e-4)
    assert recipe.training.max_steps == 7
    assert recipe.training.bf16 is False
    assert recipe.training.eval_strategy == "no"
    assert recipe.training.augmentation == "affine+blur"


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(UserError, match="learning_rat"):
        load_recipe(QUICKSTART, ["--learning_rat", "1"])
    bad = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    bad["sources"][0]["langauge"] = "en"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.yaml.*sources\[0\].*langauge"):
        load_recipe(path)


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["--max_steps", "many"], "max_steps"),
        (["--bf16", "maybe"], "bf16"),
        (["--learning_rate"], "learning_rate"),
        (["learning_rate", "1"], "learning_rate"),
        (["--augmentation", "affine+spin"], "spin"),
        (["--label_granularity", "script"], "label_granularity"),
        (["--layer_decay", "1.5"], "layer_decay"),
        (["--early_stopping_patience", "0"], "early_stopping_patience"),
    ],
)
def test_bad_values_are_named(args, culprit):
    with pytest.raises(UserError, match=culprit):
        recipe = load_recipe(QUICKSTART, args)
        from polyglot_vision.training.augment import build_augmentation

        build_augmentation(recipe.training.augmentation)


def test_exactly_one_way_to_get_a_model(tmp_path):
    recipe = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    recipe["model_name_or_path"] = "google/vit-base-patch16-224-in21k"
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserError, match="exactly one of `model_name_or_path` or `model_config`"):
        load_recipe(path)


def test_parse_overrides_keeps_raw_strings():
    assert parse_overrides(["--a", "1", "--b=x y", "--c", "[1, 2]"]) == {"a": "1", "b": "x y", "c": "[1, 2]"}
