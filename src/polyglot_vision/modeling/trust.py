"""A model folder is data, never code: what a checkpoint may ask for before anything of it is built.

Before transformers sees a model folder (or a Hub id), its config.json and
preprocessor_config.json are read as plain JSON: a request for custom code
(`auto_map`, `custom_pipelines`) is refused, the sizes it declares must be sane
(layers, widths, input size, classes), and the parameters it declares must be
held by its weights file, whose shapes are read without its data (the
safetensors header; a `.bin` through torch's weights-only unpickler onto the
meta device). Only then is the model built, with `trust_remote_code=False`.
A folder that fails any of this is one line naming the folder and the key.
"""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig
from transformers.image_processing_base import ImageProcessingMixin
from transformers.utils import cached_file

from ..errors import UserError, first_line

# Sane limits, far above any published image classifier (ViT-g: 48 layers, width 1664; ConvNeXt-XL: 36 blocks;
# ImageNet-21k: 21,843 classes), far below what fills a machine's memory.
MAX_DEPTH = 1024  # layers or blocks, summed over a list of stages
MAX_WIDTH = 65_536  # hidden sizes, channels, attention heads
MAX_IMAGE_SIZE = 2048  # pixels a side: input, patch and processor sizes
MAX_LABELS = 100_000
MAX_PARAMETERS = 2_000_000_000
# The weights must hold what the config declares; a little slack for buffers and layouts that differ.
DECLARED_SLACK = 1.1

CUSTOM_CODE_KEYS = ("auto_map", "custom_pipelines")
WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
LABEL_MAPS = {"id2label", "label2id"}

_DEPTH_KEY = re.compile(r"(depths?|layers|blocks)$")
_IMAGE_KEY = re.compile(r"(image_size|img_size|input_size|patch_sizes?|crop_size|shortest_edge|longest_edge)$")
_WIDTH_KEY = re.compile(r"(size|sizes|dim|dims|channels|heads|features|ratio)$")
_PROCESSOR_SIZE_KEYS = ("size", "crop_size", "pad_size", "max_size")


def model_error(name: str, err: BaseException) -> UserError:
    """Any failure to load a model, as one line naming it."""
    return UserError(f"model {name}: cannot be loaded ({first_line(err)})")


def _local_or_cached(name: str, filename: str, revision: str | None) -> Path | None:
    """The path of `filename` in a model folder, or in the Hub cache for a Hub id; None if it has none."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    path = cached_file(
        name,
        filename,
        revision=revision,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    return Path(path) if path else None


def refuse_custom_code(name: str, filename: str, settings: dict) -> None:
    for key in CUSTOM_CODE_KEYS:
        if settings.get(key):
            raise UserError(
                f"model {name}: {filename} asks for custom code (`{key}`); polyglot-vision never runs "
                "a model's own code, only the architectures transformers ships"
            )


def _numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _numbers(item)]
    if isinstance(value, dict):
        return [v for item in value.values() for v in _numbers(item)]
    return []


def check_declared_sizes(settings: dict, where: str) -> None:
    """Every layer count, width, input size and class count of a config (and its nested configs) within limits.

    `where` names the file or recipe key in the message (`model M: config.json`, `recipe: model_config`).
    """
    labels = settings.get("id2label")
    n_labels = max(len(labels) if isinstance(labels, dict) else 0, *_numbers(settings.get("num_labels")) or [0])
    if n_labels > MAX_LABELS:
        raise UserError(f"{where}: declares {n_labels:,} classes (at most {MAX_LABELS:,})")
    for key, value in settings.items():
        if key in LABEL_MAPS or not isinstance(key, str):
            continue
        if isinstance(value, dict):
            check_declared_sizes(value, where)
            continue
        name = key.lower()
        numbers = _numbers(value)
        if not numbers or not (_DEPTH_KEY.search(name) or _IMAGE_KEY.search(name) or _WIDTH_KEY.search(name)):
            continue
        if any(not math.isfinite(v) for v in numbers):
            raise UserError(f"{where}: `{key}` must be a finite number, got {_short(value)}")
        if _DEPTH_KEY.search(name) and sum(numbers) > MAX_DEPTH:
            raise UserError(f"{where}: `{key}` declares {sum(numbers):,.0f} layers (at most {MAX_DEPTH:,} in all)")
        if _IMAGE_KEY.search(name) and max(numbers) > MAX_IMAGE_SIZE:
            raise UserError(f"{where}: `{key}` is {_short(value)} pixels (at most {MAX_IMAGE_SIZE} a side)")
        if _WIDTH_KEY.search(name) and max(numbers) > MAX_WIDTH:
            raise UserError(f"{where}: `{key}` is {_short(value)} (at most {MAX_WIDTH:,})")


def check_processor_sizes(settings: dict, where: str) -> None:
    """The sizes an image processor resizes, crops or pads to, within limits (a 60000×60000 resize is refused)."""
    for key in _PROCESSOR_SIZE_KEYS:
        numbers = _numbers(settings.get(key))
        if any(not math.isfinite(v) or v > MAX_IMAGE_SIZE for v in numbers):
            raise UserError(f"{where}: `{key}` is {_short(settings[key])} pixels (at most {MAX_IMAGE_SIZE} a side)")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def declared_parameters(config: PretrainedConfig, where: str) -> tuple[int, int]:
    """(parameters of the whole classifier, of its backbone) that `config` declares, built on the meta device.

    Nothing is allocated: the modules exist, their tensors have shapes only.
    """
    try:
        with torch.device("meta"):
            model = AutoModelForImageClassification.from_config(config)
    except Exception as err:  # any architecture transformers cannot build from this config
        raise UserError(f"{where}: no image classifier can be built from it ({first_line(err)})") from None
    total = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for p in model.base_model.parameters())
    if total > MAX_PARAMETERS:
        raise UserError(f"{where}: declares {total:,} parameters (at most {MAX_PARAMETERS:,})")
    return total, backbone


def stored_elements(name: str, revision: str | None = None) -> tuple[str, int]:
    """(weights file, number of values it holds), read from the files' headers, never their data."""
    for filename in WEIGHTS_FILES:
        path = _local_or_cached(name, filename, revision)
        if path is None:
            continue
        if filename.endswith(".index.json"):
            try:
                shards = sorted(set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
                raise UserError(f"model {name}: {filename} is not a weights index ({first_line(err)})") from None
            total = 0
            for shard in shards:
                inside = isinstance(shard, str) and not Path(shard).is_absolute() and ".." not in Path(shard).parts
                shard_path = _local_or_cached(name, shard, revision) if inside else None
                if shard_path is None:
                    raise UserError(f"model {name}: {filename} names a shard outside the model: {_short(shard)}")
                total += _count_file(name, shard_path)
            return filename, total
        return filename, _count_file(name, path)
    raise UserError(f"model {name}: no weights file ({', '.join(WEIGHTS_FILES[::2])})")


def _count_file(name: str, path: Path) -> int:
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                return sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
        except Exception as err:  # a truncated or forged header
            raise UserError(
                f"model {name}: {path.name} is not a readable safetensors file ({first_line(err)})"
            ) from None
    try:
        try:
            state = torch.load(path, map_location="meta", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be mapped
            state = torch.load(path, map_location="meta", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"model {name}: {path.name} holds pickled objects besides tensors, which could run code; "
            "refused (convert a copy you trust to model.safetensors)"
        ) from None
    except Exception as err:
        raise UserError(f"model {name}: {path.name} cannot be read ({first_line(err)})") from None
    if not isinstance(state, dict):
        raise UserError(f"model {name}: {path.name} is not a state dict of tensors")
    return sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))


def check_model_folder(model: str | Path, what: str = "model") -> None:
    """One line for a local folder that holds only the checkpoints of a run stopped before its export.

    transformers would say it lacks a `model_type` key, which points at the wrong remedy.
    """
    folder = Path(str(model)).expanduser()
    if not folder.is_dir() or (folder / "config.json").is_file():
        return
    found = sorted(
        (p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.rpartition("-")[2].isdigit()),
        key=lambda p: int(p.name.rpartition("-")[2]),
    )
    if found:
        raise UserError(
            f"{what} {model}: holds only checkpoints ({', '.join(p.name for p in found[-3:])}), no exported model: "
            f"the run stopped before its export; resume training (resume_from_checkpoint: auto) or pass a "
            f"checkpoint-N folder such as {found[-1]}"
        )


def check_model_source(name: str, revision: str | None = None, classifier: bool = True) -> None:
    """Refuse, in one line, a model folder or Hub id that asks for custom code or declares sizes it cannot hold.

    `classifier`: the folder must be a finished classifier (`id2label` for every class), as `predict`,
    `evaluate` and the demo need; a checkpoint to fine-tune may lack its labels (it gets a new head).
    """
    name = str(name)
    check_model_folder(name)
    try:
        settings, _ = PretrainedConfig.get_config_dict(name, revision=revision)
        processor, _ = ImageProcessingMixin.get_image_processor_dict(name, revision=revision)
    except UserError:
        raise
    except Exception as err:
        raise model_error(name, err) from None
    refuse_custom_code(name, "config.json", settings)
    refuse_custom_code(name, "preprocessor_config.json", processor)
    if not isinstance(settings.get("model_type"), str):
        raise UserError(f"model {name}: config.json has no `model_type` (e.g. vit, convnext)")
    check_declared_sizes(settings, f"model {name}: config.json")
    check_processor_sizes(processor, f"model {name}: preprocessor_config.json")
    if classifier:
        check_label_map(name, settings)
    try:
        config = AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=False)
    except Exception as err:  # values the config class itself refuses (stage names, unknown model type)
        raise UserError(f"model {name}: config.json: {first_line(err)}") from None
    _, backbone = declared_parameters(config, f"model {name}: config.json")
    filename, stored = stored_elements(name, revision)
    if backbone > stored * DECLARED_SLACK + 4096:
        raise UserError(
            f"model {name}: config.json declares {backbone:,} parameters but {filename} holds {stored:,} values; "
            "the config does not describe these weights"
        )


def check_label_map(name: str, settings: dict) -> None:
    """`id2label` names every class 0 … n-1: what `pipeline()` and the Predictor read answers from."""
    labels = settings.get("id2label")
    if not isinstance(labels, dict) or not labels:
        raise UserError(f"model {name}: config.json has no `id2label` (the names of its classes)")
    keys = sorted(str(k) for k in labels)
    if keys != sorted(str(i) for i in range(len(labels))):
        raise UserError(f"model {name}: config.json: `id2label` must number its classes 0 to {len(labels) - 1}")
    count = settings.get("num_labels")
    if count is not None and count != len(labels):
        raise UserError(f"model {name}: config.json: `num_labels` is {count} but `id2label` names {len(labels)}")
