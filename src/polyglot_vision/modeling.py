"""The classifier and its image processor, with the label space written into the config.

`id2label` holds the concept ids, so `pipeline("image-classification")` and the
Hub widget show them; `label_display_names` ({language: {id: name}}) and
`default_language` ride along in config.json for localized predictions.
"""

from __future__ import annotations

import logging

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    PreTrainedModel,
    ViTImageProcessorPil,
)

from .configs import ModelArguments
from .errors import UserError, first_line
from .labels import LabelSpace

logger = logging.getLogger(__name__)


def label_config(label_space: LabelSpace) -> dict:
    return {
        "num_labels": len(label_space.ids),
        "id2label": dict(enumerate(label_space.ids)),
        "label2id": {cid: i for i, cid in enumerate(label_space.ids)},
        "label_display_names": label_space.names_by_language(),
        "default_language": label_space.default_language,
    }


def _hub_error(name: str, err: Exception) -> UserError:
    reason = first_line(err)
    return UserError(f"model '{name}': cannot be loaded ({reason})")


def build_image_processor(model_args: ModelArguments):
    """The processor that both training and `pipeline()` use to resize and normalise.

    A model built from a config gets a plain resize to a square (no crop): a
    numeral at the edge of a scan must not be cut away.
    """
    if model_args.model_name_or_path:
        try:
            processor = AutoImageProcessor.from_pretrained(
                model_args.model_name_or_path, revision=model_args.model_revision, backend="pil"
            )
        except (OSError, ValueError) as err:
            raise _hub_error(model_args.model_name_or_path, err) from None
        if model_args.image_size:
            processor.size = {"height": model_args.image_size, "width": model_args.image_size}
            processor.crop_size = dict(processor.size)
        return processor
    size = model_args.image_size or model_args.model_config.get("image_size", 224)
    return ViTImageProcessorPil(
        size={"height": size, "width": size},
        image_mean=model_args.image_mean or [0.5, 0.5, 0.5],
        image_std=model_args.image_std or [0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )


def processor_input_size(processor) -> tuple[int, int]:
    size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = size or processor.size
    if "height" in size:
        return size["height"], size["width"]
    edge = size.get("shortest_edge") or size.get("longest_edge")
    return edge, edge


def build_model(model_args: ModelArguments, label_space: LabelSpace) -> PreTrainedModel:
    """A fresh model from `model_config`, or a checkpoint with a new head for our concepts."""
    labels = label_config(label_space)
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
        try:
            model = AutoModelForImageClassification.from_pretrained(
                model_args.model_name_or_path,
                revision=model_args.model_revision,
                ignore_mismatched_sizes=True,
                **labels,
            )
        except (OSError, ValueError) as err:
            raise _hub_error(model_args.model_name_or_path, err) from None
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model %s: %.2fM parameters, %d concepts", model.config.model_type, n_params / 1e6, labels["num_labels"])
    return model
