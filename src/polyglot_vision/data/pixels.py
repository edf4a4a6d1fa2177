"""Pixels: decoded, resized uint8 images cached once, read by whole batches, normalised on the model's device.

`cache_pixels` runs the model's own image processor once per image (resize, RGB) and
stores uint8 pixels in a fingerprinted Arrow cache, so no epoch decodes an image again;
`PixelBatches` reads whole batches from it; `PixelNormalizer` turns uint8 batches into
the model's normalised floats, as `pipeline()` would, on whatever device the model is.
Before the cache is written, its size is checked against the free room where it goes
(`check_pixel_cache_fits`); `decode_on_the_fly` is the path without a cache (`pixel_cache:
false`): each batch is decoded and resized as it is read, and `DecodedBatches` serves it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import torch
from datasets import Array3D, Dataset, DatasetDict, Features
from torch import nn

from ..errors import UserError
from ..images import load_image
from .unify import GROUP_COLUMNS

# Part of the pixel cache's fingerprint: change it when `to_pixels` changes, so caches are not reused.
PIXELS_VERSION = "pixels-v1"
# Bytes a cached row takes beside its pixels, over Arrow's 4-byte offsets of the nested (C, H, W) lists:
# its label, language, script and source columns (measured: 816 bytes a row at 64 px, 784 of them offsets).
CACHE_ROW_EXTRA_BYTES = 64


def processor_input_size(processor) -> tuple[int, int]:
    """(height, width) of the images an image processor produces."""
    size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = size or processor.size
    if "height" in size:
        return size["height"], size["width"]
    edge = size.get("shortest_edge") or size.get("longest_edge")
    return edge, edge


def to_pixels(batch: dict, processor) -> dict:
    """A batch of images -> {"pixel_values": uint8 (n, 3, H, W)}: the processor's resize, not its normalisation."""
    images = [load_image(image) for image in batch["image"]]  # upright RGB, as prediction reads them
    out = processor(images, do_rescale=False, do_normalize=False, return_tensors="np")
    return {"pixel_values": np.clip(np.rint(out["pixel_values"]), 0, 255).astype(np.uint8)}


def pixel_cache_bytes(rows: int, height: int, width: int, channels: int = 3) -> int:
    """The size on disk of a pixel cache of `rows` images at `height` x `width`: uint8 pixels, and per row
    the offsets Arrow keeps for the nested (C, H, W) lists and the label and group columns."""
    offsets = 4 * (1 + channels + channels * height)
    return rows * (channels * height * width + offsets + CACHE_ROW_EXTRA_BYTES)


def cache_folder(part: Dataset) -> Path | None:
    """The folder `datasets` writes a split's mapped copy into (beside its own Arrow files); None: in memory."""
    files = part.cache_files
    return Path(files[0]["filename"]).parent if files else None


def pixel_fingerprint(part: Dataset, processor) -> str:
    """The fingerprint of a split's pixel cache: the split's own, the processor's settings and this code's version.

    Given to `map` rather than left to `datasets` (which hashes the function and its processor),
    so that whether the cache is already on disk can be told before anything is written.
    """
    digest = hashlib.blake2b(digest_size=16)
    settings = json.dumps(processor.to_dict(), sort_keys=True, default=str)
    for piece in (PIXELS_VERSION, part._fingerprint, type(processor).__name__, settings):
        digest.update(piece.encode())
    return digest.hexdigest()


def cached_already(part: Dataset, processor) -> bool:
    """Whether the split's pixel cache is on disk from an earlier run (`map` reads it back)."""
    folder = cache_folder(part)
    return folder is not None and (folder / f"cache-{pixel_fingerprint(part, processor)}.arrow").is_file()


def _gb(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale / 10:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.1f} kB"


def check_pixel_cache_fits(dataset: DatasetDict, processor) -> None:
    """Refuse, in one line and before anything is written, a pixel cache larger than the room where it goes.

    The room is the free space of the file system that holds the splits' Arrow files (where
    `map` writes the cache), or the available memory for splits held in memory; a split whose
    cache an earlier run wrote needs none. The line names
    the ways out: decoding on the fly (`pixel_cache: false`), a smaller `image_size`, or a
    `datasets` cache on a disk with room.
    """
    height, width = processor_input_size(processor)
    needed: dict[Path | None, list[int]] = {}
    for part in dataset.values():
        if not cached_already(part, processor):  # read back, not written again
            needed.setdefault(cache_folder(part), []).append(len(part))
    for folder, sizes in needed.items():
        rows = sum(sizes)
        size = pixel_cache_bytes(rows, height, width)
        free = psutil.virtual_memory().available if folder is None else shutil.disk_usage(folder).free
        if size > free:
            where = "memory (the splits are held in memory)" if folder is None else str(folder)
            raise UserError(
                f"the pixel cache of {rows:,} images at {height}x{width} px needs about {_gb(size)} in {where}, "
                f"which has {_gb(free)} free: set `pixel_cache: false` to decode and resize each batch as it is "
                "read (no cache, as the Hub examples' set_transform does), lower `image_size`, or point "
                "HF_DATASETS_CACHE at a disk with room (the cache already holds uint8, a quarter of float32)"
            )


def cache_pixels(dataset: DatasetDict, processor) -> DatasetDict:
    """Decode and resize every image once, with the model's own processor, into uint8.

    `datasets` fingerprints the result, so a second run with the same sources
    and processor reads it back from the cache instead of decoding again. A cache
    larger than the room where it would be written is refused first (`check_pixel_cache_fits`).
    """
    check_pixel_cache_fits(dataset, processor)
    height, width = processor_input_size(processor)
    any_split = next(iter(dataset.values()))
    metadata = {c: any_split.features[c] for c in ("label", *GROUP_COLUMNS)}
    features = Features({**metadata, "pixel_values": Array3D(shape=(3, height, width), dtype="uint8")})

    def cache(part: Dataset) -> Dataset:
        if not len(part):  # `map` would return an empty split without the new column
            return Dataset.from_dict({name: [] for name in features}, features=features)
        return part.map(
            partial(to_pixels, processor=processor),
            batched=True,
            batch_size=256,
            remove_columns=["image"],
            features=features,
            new_fingerprint=pixel_fingerprint(part, processor),
            desc="Caching pixels",
        )

    cached = DatasetDict({name: cache(part) for name, part in dataset.items()})
    # uint8 all the way to the device: the formatter would otherwise widen it to int64.
    cached.set_format("torch", columns=["pixel_values"], dtype=torch.uint8, output_all_columns=True)
    return cached


def _decoded(batch: dict, processor) -> dict:
    return {"pixel_values": torch.from_numpy(to_pixels(batch, processor)["pixel_values"])}


def decode_on_the_fly(dataset: DatasetDict, processor) -> DatasetDict:
    """`cache_pixels` without the cache (`pixel_cache: false`): nothing is written, and each read of a split
    decodes and resizes its images with the model's processor (`with_transform`), giving the same uint8
    `pixel_values` beside the label and group columns. `DecodedBatches` reads it by whole batches."""
    columns = ["image", "label", *GROUP_COLUMNS]
    return DatasetDict(
        {
            name: part.select_columns(columns).with_transform(
                partial(_decoded, processor=processor), columns=["image"], output_all_columns=True
            )
            for name, part in dataset.items()
        }
    )


def collate(examples: list[dict] | dict) -> dict[str, torch.Tensor]:
    """Examples -> one batch; a batch that `PixelBatches` already read whole passes through."""
    if isinstance(examples, dict):
        return examples
    return {
        "pixel_values": torch.stack([torch.as_tensor(e["pixel_values"]) for e in examples]),
        "labels": torch.tensor([int(e["label"]) for e in examples]),
    }


class PixelBatches(torch.utils.data.Dataset):
    """A pixel-cached split that a `DataLoader` reads a whole batch at a time, without copies per image.

    The uint8 pixels are a zero-copy numpy view of the memory-mapped Arrow cache
    that `cache_pixels` wrote, so a batch is one fancy-indexing gather (what
    `__getitems__` returns, already collated) instead of `datasets` formatting
    each example as a tensor and `collate` stacking them again. Indices come
    from any sampler in any order, so the Trainer's random sampler, a
    `BalancedSampler`, accelerate's per-process sharding and its skipping of
    batches on resume all work as with the `datasets` split itself.
    """

    def __init__(self, dataset: Dataset, labels=None):
        self.shape = dataset.features["pixel_values"].shape
        dataset = dataset.with_format(None)
        if dataset._indices is not None:  # a `select`ed view: make its rows contiguous once
            dataset = dataset.flatten_indices()
        self.dataset = dataset
        column = dataset["label"] if labels is None else labels
        self.labels = np.asarray(column, dtype=np.int64)
        self._views = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self):  # DataLoader workers map the Arrow file again instead of pickling pixels
        return {**self.__dict__, "_views": None}

    def views(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Per Arrow chunk, a (n, C, H, W) uint8 view; and the first row of each chunk."""
        if self._views is None:
            shape = self.shape
            chunks = []
            for chunk in self.dataset.data.column("pixel_values").chunks:
                values = chunk.storage.flatten().flatten().flatten().to_numpy(zero_copy_only=True)
                chunks.append(values.reshape(len(chunk), *shape))
            starts = np.cumsum([0] + [len(c) for c in chunks])
            self._views = (chunks, starts)
        return self._views

    def pixels(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        chunks, starts = self.views()
        if len(chunks) == 1:
            return chunks[0][indices]
        which = np.searchsorted(starts, indices, side="right") - 1
        out = np.empty((len(indices), *chunks[0].shape[1:]), dtype=np.uint8)
        for c in np.unique(which):
            rows = which == c
            out[rows] = chunks[c][indices[rows] - starts[c]]
        return out

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.from_numpy(self.pixels(indices)),
            "labels": torch.from_numpy(self.labels[indices]),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.from_numpy(self.pixels([index])[0]), "label": int(self.labels[index])}


class DecodedBatches(torch.utils.data.Dataset):
    """`PixelBatches` for a split of `decode_on_the_fly`: each batch of indices decoded and resized in one go."""

    def __init__(self, dataset: Dataset, labels=None):
        self.dataset = dataset
        self.labels = np.asarray(dataset.with_format(None)["label"] if labels is None else labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        indices = [int(i) for i in indices]
        pixels = self.dataset[indices]["pixel_values"]
        return {"pixel_values": pixels, "labels": torch.from_numpy(self.labels[indices])}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.dataset[int(index)]["pixel_values"], "label": int(self.labels[index])}


def batches_of(part: Dataset, labels=None) -> torch.utils.data.Dataset:
    """A split as whole-batch reads: from the pixel cache (`PixelBatches`), or decoded as read (`DecodedBatches`)."""
    return PixelBatches(part, labels) if "pixel_values" in part.features else DecodedBatches(part, labels)


def stream_pixels(stream, processor):
    """The streamed counterpart of `cache_pixels`: uint8 pixel values made as batches stream by."""
    # numpy, not torch: the torch formatter would widen uint8 to int64; `collate` makes the tensors.
    return stream.map(
        partial(to_pixels, processor=processor), batched=True, batch_size=256, remove_columns=["image"]
    ).with_format("numpy")


class PixelNormalizer(nn.Module):
    """uint8 (B, C, H, W) -> (x / 255 - mean) / std in float32, the model's input, on the batch's device."""

    def __init__(self, image_mean, image_std):
        super().__init__()
        mean = torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        # (u8 / 255 - mean) / std as one multiply-add: u8 · scale + shift.
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)

    @classmethod
    def from_processor(cls, processor, *args, **kwargs):
        return cls(processor.image_mean, processor.image_std, *args, **kwargs)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 -> normalised float32: a new tensor, the input is left as it is."""
        x = pixels.to(dtype=torch.float32, copy=True)
        return x.mul_(self.scale.to(x.device)).add_(self.shift.to(x.device))

    def forward(self, pixels: torch.Tensor, augment: bool = False) -> torch.Tensor:
        return self.normalise(pixels)
