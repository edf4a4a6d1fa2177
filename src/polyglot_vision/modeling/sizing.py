"""A checkpoint at another input size: its processor resized, its position embeddings resampled once.

A ViT trained at 224 px holds one position embedding per 16-px patch of a 224-px image. At
`image_size: 64` the embeddings are resampled (bicubic, as transformers' own
`interpolate_pos_encoding` does) and the config says 64, so the saved folder is a plain ViT
at 64 px that `pipeline()`, the Predictor and evaluation read without any flag. Convolutional
models take any size as they are; only their processor changes. Whatever a model type cannot
do at the size asked is found on the meta device (nothing allocated, no data read) and said
in one line.
"""

from __future__ import annotations

import copy

import torch
from transformers import AutoModelForImageClassification, PreTrainedModel

from ..errors import UserError, first_line


def resize_processor(processor, size: int, where: str):
    """The same processor giving `size` x `size` images, with its resize-to-crop ratio kept.

    A processor that crops (`crop_size`) keeps its margin: 256 -> 224 becomes 73 -> 64 at 64 px.
    ConvNeXt's (`shortest_edge` with `crop_pct`) crops by its own ratio, so only the edge changes.
    """
    current = dict(processor.size or {})
    crop = dict(processor.crop_size or {}) if getattr(processor, "do_center_crop", False) else {}
    crop_side = crop.get("height") or crop.get("shortest_edge")
    ratio = 1.0
    if crop_side and crop.get("height", crop_side) == crop.get("width", crop_side):
        resized = current.get("height") or current.get("shortest_edge") or crop_side
        ratio = resized / crop_side
    elif crop:
        raise UserError(f"{where}: preprocessor_config.json crops to a non-square {crop}; image_size cannot apply")
    edge = max(size, round(size * ratio))
    overrides = {}
    if "height" in current and "width" in current:
        if current["height"] != current["width"]:
            raise UserError(
                f"{where}: preprocessor_config.json resizes to a non-square {current}; image_size cannot apply"
            )
        overrides["size"] = {"height": edge, "width": edge}
    elif "shortest_edge" in current:
        overrides["size"] = {"shortest_edge": edge}
    else:
        raise UserError(
            f"{where}: preprocessor_config.json resizes by {sorted(current) or 'nothing'}, "
            "not to a square or a shortest edge; image_size cannot apply"
        )
    if crop:
        overrides["crop_size"] = {"height": size, "width": size}
    try:
        return type(processor).from_dict(processor.to_dict(), **overrides)
    except Exception as err:
        raise UserError(f"{where}: its image processor cannot take image_size {size}: {first_line(err)}") from None


def _resampled(model: PreTrainedModel, key: str, shape: torch.Size, size: int, where: str) -> torch.Tensor:
    """The tensor `key` of `model` for `size`-px inputs, where it depends on the input size."""
    module_name, _, attribute = key.rpartition(".")
    module = model.get_submodule(module_name)
    if attribute == "position_embeddings" and hasattr(module, "interpolate_pos_encoding"):
        old = getattr(module, attribute)
        with torch.no_grad():
            new = module.interpolate_pos_encoding(old.new_zeros(shape), size, size)
        if tuple(new.shape) == tuple(shape):
            return new.detach().clone()
    raise UserError(
        f"{where}: `{key}` is fixed to its {model.config.image_size}-px inputs; "
        f"image_size {size} cannot apply to model type {model.config.model_type}"
    )


# Model types that cut the image into patches of `patch_size` before anything else.
_PATCH_FIRST = {"vit", "deit", "beit", "data2vec-vision", "dinov2", "vit_msn", "vit_mae", "vit_hybrid"}


def _sized_config(config, size: int | None = None, architecture: str | None = None):
    """A copy of `config` (at `size` px) naming the classifier class to build: the Auto classes pick among
    several (DeiT's with and without teacher) by `architectures`, and fail on a config without any."""
    sized = copy.deepcopy(config)
    if size:
        sized.image_size = size
    sized.architectures = [architecture] if architecture else list(config.architectures or [])
    return sized


def needs_resizing(config, size: int | None) -> bool:
    current = getattr(config, "image_size", size)
    sides = set(current) if isinstance(current, (list, tuple)) else {current}
    return bool(size) and sides != {size}


def _carried_state(model: PreTrainedModel, sized: PreTrainedModel, size: int, where: str) -> dict:
    """`model`'s tensors in the shapes of `sized` (the same model at `size` px), size-bound ones resampled."""
    old_state = model.state_dict()
    state = {}
    for key, tensor in sized.state_dict().items():
        if key not in old_state:
            raise UserError(f"{where}: `{key}` exists only at another image_size; image_size {size} cannot apply")
        old = old_state[key]
        state[key] = old if old.shape == tensor.shape else _resampled(model, key, tensor.shape, size, where)
    return state


def check_image_size(config, size: int, where: str) -> None:
    """Refuse, in one line, a model that cannot take `size`-px inputs; checked on the meta device."""
    patch = getattr(config, "patch_size", None)
    if isinstance(patch, int) and getattr(config, "model_type", None) in _PATCH_FIRST and size < patch:
        raise UserError(f"{where}: image_size {size} is smaller than one of its {patch}-px patches")
    try:
        with torch.device("meta"):
            model = AutoModelForImageClassification.from_config(_sized_config(config))
            sized = model
            if needs_resizing(config, size):
                sized = AutoModelForImageClassification.from_config(_sized_config(config, size))
            _carried_state(model, sized, size, where)
            sized.eval()
            sized(pixel_values=torch.zeros(1, getattr(config, "num_channels", 3), size, size))
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"{where}: cannot take image_size {size}: {first_line(err)}") from None


def at_image_size(model: PreTrainedModel, size: int | None, where: str) -> PreTrainedModel:
    """`model` for `size`-px inputs: size-bound tensors resampled and the config's image_size set, or `model`."""
    if not needs_resizing(model.config, size):
        return model
    sized = AutoModelForImageClassification.from_config(_sized_config(model.config, size, type(model).__name__))
    sized.load_state_dict(_carried_state(model, sized, size, where), strict=True)
    sized.to(dtype=next(model.parameters()).dtype)
    sized.train(model.training)
    return sized
