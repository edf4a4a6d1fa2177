"""Recipes: one flat YAML file -> model, data and training arguments.

A recipe holds the fields of three dataclasses side by side, as in
alignment-handbook: `ModelArguments` (modeling/), `DataArguments`
(data/sources.py) and `PolyglotTrainingArguments` (a `transformers.TrainingArguments`).
Any key can be overridden on the command line (`--learning_rate 3e-4`); an
unknown key, or a value that cannot work, is a `UserError` naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser

from ..data import DataArguments
from ..errors import UserError, first_line
from ..modeling import ModelArguments
from ..paths import AliasRefused, parse_yaml, read_yaml
from .arguments import PolyglotTrainingArguments


@dataclass
class Recipe:
    model: ModelArguments
    data: DataArguments
    training: PolyglotTrainingArguments
    path: str | None = None


RECIPE_CLASSES = (ModelArguments, DataArguments, PolyglotTrainingArguments)


def _field_defaults() -> dict[str, Any]:
    defaults = {}
    for cls in RECIPE_CLASSES:
        for f in dataclasses.fields(cls):
            if f.init:
                defaults[f.name] = f.default
    return defaults


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Give a YAML or command-line value the type of the field's default.

    The command line gives only strings and YAML 1.1 reads `3e-4` as a string
    and `no` as false, so values are converted to what the field expects.
    """
    if isinstance(value, bool) and isinstance(default, str) and value is False:
        return "no"  # `eval_strategy: no`
    if not isinstance(value, str):
        return value
    if isinstance(default, bool):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise UserError(f"recipe: `{key}` expects true or false, got {value!r}")
    if isinstance(default, (int, float)):
        try:
            return (
                float(value) if isinstance(default, float) or not value.strip().lstrip("-").isdigit() else int(value)
            )
        except ValueError:
            raise UserError(f"recipe: `{key}` expects a number, got {value!r}") from None
    if isinstance(default, str):
        return value
    try:  # lists, mappings and numbers for fields without a typed default
        return parse_yaml(value) if value else value
    except AliasRefused as err:
        raise UserError(f"--{key}: {err}") from None
    except yaml.YAMLError:
        return value


def parse_overrides(args: list[str]) -> dict[str, str]:
    """`--key value` / `--key=value` pairs -> {key: raw string}; `_coerce` types them."""
    overrides: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise UserError(f"command line: expected --key value, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise UserError(f"command line: --{key} needs a value")
            value = args[i + 1]
            i += 1
        overrides[key] = value
        i += 1
    return overrides


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a recipe file, checked to be YAML and a mapping."""
    path = Path(path)
    raw = read_yaml(path, "recipe") or {}
    if not isinstance(raw, dict):
        raise UserError(f"recipe {path}: top level must be a mapping of keys to values")
    return raw


def recipe_from_file(raw: dict[str, Any], path: str | Path) -> Recipe:
    """`recipe_from_dict` for values read from `path`: its errors name the file."""
    try:
        return recipe_from_dict(raw, source=str(path))
    except UserError as err:
        message = str(err)
        raise UserError(message.replace("recipe:", f"recipe {path}:", 1)) from None


def load_recipe(path: str | Path, overrides: list[str] | dict | None = None) -> Recipe:
    raw = read_recipe(path)
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    raw.update(overrides or {})
    return recipe_from_file(raw, path)


def _check_device(values: dict[str, Any]) -> None:
    """Pick the CPU when there is no accelerator, and refuse mixed precision it cannot do.

    Without a GPU, `use_cpu` defaults to true: `TrainingArguments` then lets
    `bf16` run on the CPU, and processes started by `accelerate launch` /
    `torchrun` join one gloo process group (otherwise each would train alone).
    A precision the device lacks is a `UserError` here, before anything is
    written, instead of an error deep inside the Trainer.
    """
    has_accelerator = torch.accelerator.is_available()
    if "use_cpu" not in values and not has_accelerator:
        values["use_cpu"] = True
    on_cpu = bool(values.get("use_cpu")) or not has_accelerator
    fp16 = [k for k in ("fp16", "fp16_full_eval") if values.get(k)]
    bf16 = [k for k in ("bf16", "bf16_full_eval") if values.get(k)]
    if fp16 and bf16:
        raise UserError(f"recipe: `{fp16[0]}` and `{bf16[0]}` both set; choose one precision")
    if fp16 and on_cpu:
        raise UserError(
            f"recipe: `{fp16[0]}: true` needs a GPU, and this run is on the CPU; "
            "use `bf16: true` on the CPU, or drop fp16"
        )
    if bf16 and not on_cpu and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise UserError(
            f"recipe: `{bf16[0]}: true` is not supported by {torch.cuda.get_device_name()} "
            "(bf16 needs an Ampere or newer GPU); use `fp16: true` instead"
        )


def recipe_from_dict(raw: dict[str, Any], source: str | None = None) -> Recipe:
    defaults = _field_defaults()
    unknown = sorted(k for k in raw if k not in defaults)
    if unknown:
        raise UserError(f"recipe: unknown key(s) {', '.join(unknown)}")
    values = {k: _coerce(k, v, defaults[k]) for k, v in raw.items()}
    if not values.get("output_dir"):
        raise UserError("recipe: `output_dir` is required")
    _check_device(values)
    parser = HfArgumentParser(RECIPE_CLASSES)
    try:
        model_args, data_args, training_args = parser.parse_dict(values, allow_extra_keys=False)
    except UserError:
        raise
    except (TypeError, ValueError) as err:
        # TrainingArguments validates combinations (e.g. bf16 on a device without it).
        raise UserError(f"recipe: {first_line(err)}") from None
    _check_combinations(data_args, training_args)
    return Recipe(model=model_args, data=data_args, training=training_args, path=source)


# Training controls that need the whole split or evaluations, which a stream does not have.
STREAMING_REFUSED = {
    "sampler": ("none", "a balanced sampler draws from the whole train split"),
    "label_granularity": ("concept", "joint classes need every (concept, language) pair before training"),
    "early_stopping_patience": (None, "early stopping needs evaluations, and streaming evaluates only at the end"),
    "eval_strategy": ("no", "streaming evaluates on the test split at the end"),
}


def _check_combinations(data_args: DataArguments, training_args: PolyglotTrainingArguments) -> None:
    """Values that each look fine but cannot work together: one line that names the key."""
    evaluates = training_args.eval_strategy != "no"
    own_validation = any("validation" in s.own_splits for s in data_args.sources)
    if evaluates and data_args.validation_fraction <= 0 and not own_validation and not data_args.streaming:
        raise UserError(
            f"recipe: `eval_strategy: {_plain(training_args.eval_strategy)}` needs a validation split: "
            'set `validation_fraction` above 0, or `eval_strategy: "no"`'
        )
    if training_args.early_stopping_patience is not None and not data_args.streaming:
        if not evaluates:
            raise UserError("recipe: `early_stopping_patience` needs evaluations: set `eval_strategy` (e.g. epoch)")
        if not training_args.load_best_model_at_end:
            raise UserError(
                "recipe: `early_stopping_patience` needs `load_best_model_at_end: true` "
                "(and `save_strategy` equal to `eval_strategy`)"
            )
    if data_args.streaming:
        if training_args.max_steps <= 0:
            raise UserError("recipe: `streaming: true` needs `max_steps` (a stream has no length to count epochs by)")
        for key, (allowed, why) in STREAMING_REFUSED.items():
            source = data_args if hasattr(data_args, key) else training_args
            value = _plain(getattr(source, key))
            if value != allowed:
                raise UserError(f"recipe: `{key}: {value}` does not work with `streaming: true` ({why}); remove it")


def _plain(value):
    """An enum of TrainingArguments (IntervalStrategy.EPOCH) as the recipe wrote it ("epoch")."""
    return getattr(value, "value", value)
