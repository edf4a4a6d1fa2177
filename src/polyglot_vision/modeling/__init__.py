"""The classifier and its image processor, with the label space written into the config.

`id2label` holds the concept ids, so `pipeline("image-classification")` and the
Hub widget show them; `label_display_names` ({language: {id: name}}) and
`default_language` ride along in config.json for localized predictions.

A model with `label_granularity: concept_language` has one class per (concept,
language), named `concept@language` in `id2label` (`concept_script`: one per
(concept, script), `concept@Script`); its config also holds
`concepts` (the concept ids in order) and, per joint label, `joint_label_concept`,
`joint_label_language` (concept_language only), `joint_label_script` (ISO
15924, from the data's `script` column) and `language_scripts` ({language:
script} of the data), which is all a reader needs to sum its probabilities back to
concepts, over every class or over those of a hinted language or script.

`softmax_temperature` in the config records the softmax temperature fitted on the
validation split at export; it is already folded into the classifier head
(`fold_temperature`), so `pipeline()` and `Predictor` give the same,
calibrated scores and no reader has to apply it.

What an answer may say is in the config too (evaluation/answers.py fits it at export):
`refusal_concepts` (the registry's `refusal: true` concepts, "none": learnt, never an
answer), `refusal_threshold` (the probability on them from which an image is refused)
and `label_twins` (pairs of joint classes of different scripts and concepts that draw
the same shape: an answer without a hint names both).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    PreTrainedModel,
    ViTImageProcessorPil,
)

from ..errors import UserError, first_line
from ..labels import LabelSpace, infer_script
from ..options import option
from .sizing import at_image_size, check_image_size, resize_processor
from .trust import (
    MAX_IMAGE_SIZE,
    check_declared_sizes,
    check_model_source,
    declared_parameters,
    model_error,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = option(
        None, "Hub id or local folder of a checkpoint to fine-tune; a new head is put on it."
    )
    model_config: dict | None = option(
        None, "Build the model from this config instead (a dict with `model_type`), no download."
    )
    image_size: int | None = option(
        None, "Input size in pixels; defaults to the checkpoint's or model_config's image_size."
    )
    image_mean: list[float] | None = option(None, "Normalisation mean for a model built from a config (default 0.5).")
    image_std: list[float] | None = option(None, "Normalisation std for a model built from a config (default 0.5).")
    model_revision: str = option("main", "Revision of `model_name_or_path` on the Hub.")
    license: str | None = option(None, "License of the exported model, for its model card (default: apache-2.0).")

    def __post_init__(self):
        if (self.model_name_or_path is None) == (self.model_config is None):
            raise UserError("recipe: give exactly one of `model_name_or_path` or `model_config`")
        if self.model_config is not None:
            if not isinstance(self.model_config, dict) or "model_type" not in self.model_config:
                raise UserError("recipe: `model_config` needs a `model_type` (e.g. vit, convnext)")
            check_model_config(self.model_config)
        if self.image_size is not None and (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or not 8 <= self.image_size <= MAX_IMAGE_SIZE
        ):
            raise UserError(
                f"recipe: `image_size` must be a whole number of pixels from 8 to {MAX_IMAGE_SIZE}, "
                f"got {self.image_size!r}"
            )


def check_model_config(settings: dict) -> None:
    """Every key of a `model_config` is a field of the model type's config class, with a value of its type,
    and the model it declares is of a sane size (checked on the meta device, nothing allocated)."""
    model_type = settings.get("model_type")
    try:
        config_class = AutoConfig.for_model(model_type).__class__
    except ValueError:
        raise UserError(
            f"recipe: model_config: unknown model_type {model_type!r} (e.g. vit, convnext, resnet)"
        ) from None
    defaults = config_class().to_dict()
    for key, value in settings.items():
        if key == "model_type" or key not in defaults or defaults[key] is None:
            continue
        expected = defaults[key]
        if isinstance(expected, bool):
            ok = isinstance(value, bool)
        elif isinstance(expected, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and (not isinstance(expected, int) or isinstance(value, int) or float(value).is_integer())
        elif isinstance(expected, (list, tuple)):
            ok = isinstance(value, (list, tuple))
        elif isinstance(expected, str):
            ok = isinstance(value, str)
        else:
            ok = True
        if not ok:
            raise UserError(
                f"recipe: model_config: `{key}` of a {model_type} model expects {type(expected).__name__} "
                f"(like {expected!r}), got {value!r}"
            )
    check_declared_sizes(settings, "recipe: model_config")
    try:
        config = AutoConfig.for_model(**settings)
    except (ValueError, TypeError) as err:
        raise UserError(f"recipe: model_config: {first_line(err)}") from None
    declared_parameters(config, "recipe: model_config")


def joint_label(concept: str, language: str) -> str:
    return f"{concept}@{language}"


JOINT_GRANULARITIES = ("concept_language", "concept_script")


JOINT_CONFIG_KEYS = {
    "concepts",
    "joint_label_concept",
    "joint_label_script",
    "joint_label_language",
    "language_scripts",
}


def is_joint(config) -> bool:
    """Whether a model has joint (concept, language) or (concept, script) classes."""
    return getattr(config, "label_granularity", "concept") in JOINT_GRANULARITIES


def label_config(
    label_space: LabelSpace,
    joint_pairs: list[tuple[str, str]] | None = None,
    scripts: dict | None = None,
    granularity: str = "concept_language",
) -> dict:
    """Config fields for the label maps; `joint_pairs` ((concept, language or script), …) makes joint classes.

    `scripts` ({language: ISO 15924 script}, from the data) names the script of each joint class of a
    `concept_language` model (a language missing from it gets its usual script) and lets a
    `concept_script` model take a language as a hint.
    """
    shared = {
        "label_display_names": label_space.names_by_language(),
        "default_language": label_space.default_language,
        "label_space_name": label_space.name,
    }
    if label_space.refusal_ids:  # "none of the others": learnt, never an answer (serving refuses on it)
        shared["refusal_concepts"] = label_space.refusal_ids
    if joint_pairs is None:
        ids = label_space.ids
        return {
            "num_labels": len(ids),
            "id2label": dict(enumerate(ids)),
            "label2id": {c: i for i, c in enumerate(ids)},
            "label_granularity": "concept",
            **shared,
        }
    scripts = dict(scripts or {})
    joint = [joint_label(c, tag) for c, tag in joint_pairs]
    by_script = granularity == "concept_script"
    config = {
        "num_labels": len(joint),
        "id2label": dict(enumerate(joint)),
        "label2id": {name: i for i, name in enumerate(joint)},
        "label_granularity": granularity,
        "concepts": list(label_space.ids),
        "joint_label_concept": {name: c for name, (c, _) in zip(joint, joint_pairs)},
        "joint_label_script": {
            name: tag if by_script else (scripts.get(tag) or infer_script(tag))
            for name, (_, tag) in zip(joint, joint_pairs)
        },
        "language_scripts": scripts,
        **shared,
    }
    if not by_script:
        config["joint_label_language"] = {name: lang for name, (_, lang) in zip(joint, joint_pairs)}
    return config


def concept_ids(config) -> list[str]:
    """The concept ids a model answers in: its labels, or for a joint model the concepts they sum to."""
    if is_joint(config):
        return list(config.concepts)
    return [config.id2label[i] for i in range(config.num_labels)]


def concept_fold(config) -> torch.Tensor | None:
    """(num_labels, num_concepts) 0/1 matrix that sums joint probabilities into concepts; None for a concept model."""
    if not is_joint(config):
        return None
    index = {c: i for i, c in enumerate(config.concepts)}
    fold = torch.zeros(config.num_labels, len(index))
    for i in range(config.num_labels):
        fold[i, index[config.joint_label_concept[config.id2label[i]]]] = 1.0
    return fold


def label_languages(config) -> list[str | None]:
    """The language of each class of a joint model (None for a concept model's classes)."""
    languages = getattr(config, "joint_label_language", None) or {}
    return [languages.get(config.id2label[i]) for i in range(config.num_labels)]


def label_scripts(config) -> list[str | None]:
    """The script of each class of a joint model (its language's usual one for a model that did not store it)."""
    languages = label_languages(config)
    scripts = getattr(config, "joint_label_script", None) or {}
    return [
        scripts.get(config.id2label[i]) or (infer_script(lang) if lang else None) for i, lang in enumerate(languages)
    ]


def classifier_head(model: PreTrainedModel) -> torch.nn.Linear:
    """The final linear layer that maps features to class logits (ResNet, ConvNeXt, ViT, Swin, …)."""
    head = getattr(model, "classifier", None)
    if isinstance(head, torch.nn.Sequential):
        head = head[-1]
    if not isinstance(head, torch.nn.Linear):
        raise UserError(f"model type {model.config.model_type}: no linear classification head to calibrate")
    return head


@torch.no_grad()
def fold_temperature(model: PreTrainedModel, temperature: float) -> None:
    """Divide the head's weight and bias by `temperature`: softmax(logits / T) from the model itself.

    The config keeps the product of every temperature folded in (`softmax_temperature`), for the record.
    """
    head = classifier_head(model)
    head.weight.div_(temperature)
    if head.bias is not None:
        head.bias.div_(temperature)
    model.config.softmax_temperature = float(getattr(model.config, "softmax_temperature", 1.0) or 1.0) * float(
        temperature
    )


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(logits / T) (Guo et al., 2017)."""
    logits, labels = logits.detach().float().clone(), labels.detach().long().clone()  # not inference tensors
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        value.backward()
        return value

    optimizer.step(loss)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def freeze_backbone(model: PreTrainedModel) -> None:
    """A linear probe: only the head (what is outside `base_model`) keeps `requires_grad`."""
    model.base_model.requires_grad_(False)


# Blocks of the backbones that transformers' image classifiers use, in depth order:
# ViT `layers.3`, ConvNeXt / ResNet / Swin `encoder.stages.1.layers.0`.
_BLOCK = re.compile(r"^(.*?\.(?:layer|layers)\.\d+)\.")
_STAGE = re.compile(r"^(.*?\.stages\.\d+)\.")


def parameter_depths(model: PreTrainedModel) -> tuple[dict[str, int], int]:
    """{parameter name: depth}, and the number of blocks L.

    Block i (1 … L, in the order the model defines them) has depth i; a
    stage's own layers (a ConvNeXt downsampling) share its first block's depth;
    everything before the first block (the embeddings) has depth 0, and what
    follows the last one (final norm, pooler, classification head) depth L + 1.
    """
    names = [name for name, _ in model.named_parameters()]
    blocks: dict[str, int] = {}
    stages: dict[str, int] = {}
    for name in names:
        match = _BLOCK.match(name)
        if match:
            depth = blocks.setdefault(match.group(1), len(blocks) + 1)
            stage = _STAGE.match(name)
            if stage:
                stages.setdefault(stage.group(1), depth)
    depths, seen_block = {}, False
    for name in names:
        block, stage = _BLOCK.match(name), _STAGE.match(name)
        if block:
            depths[name], seen_block = blocks[block.group(1)], True
        elif stage and stage.group(1) in stages:
            depths[name] = stages[stage.group(1)]
        else:
            depths[name] = len(blocks) + 1 if seen_block else 0
    return depths, len(blocks)


def layer_decay_groups(
    model: PreTrainedModel, learning_rate: float, layer_decay: float, weight_decay: float, decay_names
) -> list[dict]:
    """Optimizer parameter groups with learning_rate * layer_decay^(L + 1 - depth), with and without weight decay."""
    depths, n_blocks = parameter_depths(model)
    if n_blocks == 0:
        raise UserError(f"recipe: `layer_decay` cannot find the layers of model type {model.config.model_type}")
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth, decays = depths[name], name in decay_names
        group = groups.setdefault(
            (depth, decays),
            {
                "params": [],
                "weight_decay": weight_decay if decays else 0.0,
                "lr": learning_rate * layer_decay ** (n_blocks + 1 - depth),
            },
        )
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def check_checkpoint(model_args: ModelArguments) -> None:
    """A checkpoint to fine-tune passes `check_model_source` (no custom code, sizes its weights hold), and the
    model and its processor can take `image_size`: all said in one line before any data is prepared."""
    size = model_args.image_size
    if model_args.model_name_or_path:
        name = model_args.model_name_or_path
        check_model_source(name, model_args.model_revision, classifier=False)
        if size:
            try:
                config = AutoConfig.from_pretrained(name, revision=model_args.model_revision, trust_remote_code=False)
            except Exception as err:  # a checkpoint is data: whatever is wrong with it is one line
                raise model_error(name, err) from None
            check_image_size(config, size, f"model {name}")
            _pretrained_processor(model_args)
    elif size:
        settings = {**model_args.model_config, "image_size": size}
        check_image_size(AutoConfig.for_model(**settings), size, "recipe: model_config")


def _pretrained_processor(model_args: ModelArguments):
    name = model_args.model_name_or_path
    try:
        processor = AutoImageProcessor.from_pretrained(
            name, revision=model_args.model_revision, backend="pil", trust_remote_code=False
        )
    except Exception as err:  # a checkpoint is data: whatever is wrong with it is one line
        raise model_error(name, err) from None
    if model_args.image_size:
        processor = resize_processor(processor, model_args.image_size, f"model {name}")
    processor.do_convert_rgb = True  # grayscale scans and uploads become the three channels the model takes
    return processor


def build_image_processor(model_args: ModelArguments):
    """The processor that both training and `pipeline()` use to resize and normalise.

    A model built from a config gets a plain resize to a square (no crop): a
    mark at the edge of a scan must not be cut away.
    """
    if model_args.model_name_or_path:
        check_checkpoint(model_args)
        return _pretrained_processor(model_args)
    size = model_args.image_size or model_args.model_config.get("image_size", 224)
    return ViTImageProcessorPil(
        size={"height": size, "width": size},
        image_mean=model_args.image_mean or [0.5, 0.5, 0.5],
        image_std=model_args.image_std or [0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )


def check_loaded_weights(name: str, model: PreTrainedModel, loading: dict, new_head: bool = False) -> None:
    """The weights filled every tensor of the model with its own shape (`new_head`: but the fresh head's)."""
    head = ""
    if new_head:
        head_module = classifier_head(model)
        head = next((n for n, m in model.named_modules() if m is head_module), "").rsplit(".", 1)[0]

    def body(keys) -> list[str]:
        keys = [k[0] if isinstance(k, tuple) else k for k in keys or ()]
        return sorted(str(k) for k in keys if not (head and str(k).startswith(head + ".")))

    mismatched, missing = body(loading.get("mismatched_keys")), body(loading.get("missing_keys"))
    if mismatched or (missing and not new_head):
        keys = mismatched or missing
        what = "of other shapes than config.json declares" if mismatched else "missing"
        raise UserError(
            f"model {name}: its weights do not match its config.json ({len(keys)} tensors {what}, e.g. {keys[0]})"
        )
    if missing:
        logger.warning(
            "model %s: %d tensors not in the checkpoint, drawn at random (e.g. %s)", name, len(missing), missing[0]
        )


def relabel(config, labels: dict):
    """Put our label maps (from `label_config`) in `config`; a joint checkpoint's maps that no longer apply go."""
    config.update(labels)
    for key in JOINT_CONFIG_KEYS - set(labels):
        if hasattr(config, key):
            delattr(config, key)
    return config


def build_model(
    model_args: ModelArguments,
    label_space: LabelSpace,
    joint_pairs=None,
    scripts=None,
    granularity: str = "concept_language",
) -> PreTrainedModel:
    """A fresh model from `model_config`, or a checkpoint with a new head for our concepts (or joint classes)."""
    labels = label_config(label_space, joint_pairs, scripts, granularity)
    if model_args.model_config is not None:
        settings = dict(model_args.model_config)
        model_type = settings.pop("model_type")
        if model_args.image_size:
            settings["image_size"] = model_args.image_size
        try:
            config = AutoConfig.for_model(model_type, **settings, **labels)
        except (ValueError, TypeError) as err:
            raise UserError(f"recipe: model_config: {first_line(err)}") from None
        model = AutoModelForImageClassification.from_config(config)
    else:
        name = model_args.model_name_or_path
        check_model_source(name, model_args.model_revision, classifier=False)
        try:
            config = AutoConfig.from_pretrained(name, revision=model_args.model_revision, trust_remote_code=False)
            relabel(config, labels)  # our label maps replace the checkpoint's: a new head is drawn for them
            model, loading = AutoModelForImageClassification.from_pretrained(
                name,
                config=config,
                revision=model_args.model_revision,
                ignore_mismatched_sizes=True,
                trust_remote_code=False,
                output_loading_info=True,
            )
        except Exception as err:  # a checkpoint is data: whatever is wrong with it is one line
            raise model_error(name, err) from None
        check_loaded_weights(name, model, loading, new_head=True)
        model = at_image_size(model, model_args.image_size, f"model {name}")
    n_params = sum(p.numel() for p in model.parameters())
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(
        "model %s: %.2fM parameters (%.2fM trained), %d classes",
        model.config.model_type,
        n_params / 1e6,
        n_trained / 1e6,
        labels["num_labels"],
    )
    return model
