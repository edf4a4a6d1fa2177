"""Sources -> one unified `DatasetDict` in the concept space.

Each source (a Hub id, an image folder, a parquet / CSV / JSONL manifest or a
`save_to_disk` folder) is loaded with `datasets`, its labels are aligned onto
the `LabelSpace`, it is tagged with language, script and source name, and all
sources are merged and split train / validation / test, stratified by
(concept, language).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from datasets import (
    Array3D,
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    Image,
    Value,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)

from .configs import DataArguments, SourceConfig
from .errors import UserError, first_line
from .labels import LabelSpace
from .modeling import processor_input_size

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# Metadata columns that metrics are broken down by.
GROUP_COLUMNS = ("script", "language", "source")
MANIFEST_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


def unified_features(label_space: LabelSpace) -> Features:
    return Features(
        {
            "image": Image(),
            "label": ClassLabel(names=label_space.ids),
            "language": Value("string"),
            "script": Value("string"),
            "source": Value("string"),
        }
    )


def infer_script(language: str) -> str:
    """The usual ISO 15924 script of a BCP-47 language (`hi` -> `Deva`)."""
    import langcodes

    try:
        return langcodes.Language.get(language).maximize().script or "Zyyy"
    except (langcodes.LanguageTagError, ValueError):
        return "Zyyy"


def _load_local(path: Path, source: SourceConfig) -> Dataset:
    if path.is_file():
        builder = MANIFEST_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise UserError(f"source '{source.name}': cannot read {path} (expected .parquet, .csv, .jsonl or a folder)")
        return load_dataset(builder, data_files=str(path), split="train")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            if source.split not in loaded:
                raise UserError(f"source '{source.name}': split '{source.split}' not in {path} ({', '.join(loaded)})")
            loaded = loaded[source.split]
        return loaded
    for suffix, builder in MANIFEST_BUILDERS.items():
        files = sorted(str(p) for p in path.glob(f"*{suffix}"))
        if files:
            return load_dataset(builder, data_files=files, split="train")
    return load_dataset("imagefolder", data_dir=str(path), split="train")


def load_source(source: SourceConfig) -> Dataset:
    """Load one source with `datasets`, as-is (its own column names and labels)."""
    path = Path(source.path)
    if path.exists():
        dataset = _load_local(path, source)
    elif source.path.startswith((".", "/", "~")) or source.path.count("/") != 1:
        raise UserError(f"source '{source.name}': path {source.path} does not exist")
    else:
        try:
            dataset = load_dataset(source.path, name=source.config, split=source.split, revision=source.revision)
        except Exception as err:  # offline, private or misspelt: the user must see which source
            reason = first_line(err)
            raise UserError(
                f"source '{source.name}': {source.path} is neither a local path nor a loadable Hub dataset ({reason})"
            ) from None
    for role, column in (("image", source.image_column), ("label", source.label_column)):
        if column not in dataset.column_names:
            raise UserError(
                f"source '{source.name}': {role} column '{column}' not found in {source.path} "
                f"(columns: {', '.join(dataset.column_names)})"
            )
    if source.max_samples is not None and source.max_samples < len(dataset):
        # A seeded random subset: files are often sorted by class.
        dataset = dataset.shuffle(seed=0).select(range(source.max_samples)).flatten_indices()
    return dataset


def _raw_labels(dataset: Dataset, column: str) -> list:
    """Label values as their community wrote them (ClassLabel ids become their names)."""
    values = dataset[column]
    feature = dataset.features[column]
    if isinstance(feature, ClassLabel):
        return [feature.int2str(v) for v in values]
    return list(values)


def _hashable(label):
    # Float labels such as 7.0 from a CSV are still the integer they name.
    if isinstance(label, float) and label.is_integer():
        return int(label)
    return label


def align_source(dataset: Dataset, source: SourceConfig, label_space: LabelSpace) -> tuple[Dataset, dict, list]:
    """Map one source's labels onto concept ids; return (dataset, alignment, unmapped labels)."""
    raw = [_hashable(v) for v in _raw_labels(dataset, source.label_column)]
    alignment = label_space.align(sorted(set(raw), key=str), language=source.language, label_map=source.label_map)
    unmapped = [label for label, match in alignment.items() if match is None]
    if unmapped:
        return dataset, alignment, unmapped
    index = {cid: i for i, cid in enumerate(label_space.ids)}
    concepts = [index[alignment[v].concept] for v in raw]
    script = source.script or infer_script(source.language)
    n = len(dataset)
    keep = [c for c in dataset.column_names if c == source.image_column]
    dataset = dataset.select_columns(keep)
    if source.image_column != "image":
        dataset = dataset.rename_column(source.image_column, "image")
    dataset = dataset.cast_column("image", Image())
    for name, values in (
        ("label", concepts),
        ("language", [source.language] * n),
        ("script", [script] * n),
        ("source", [source.name] * n),
    ):
        dataset = dataset.add_column(name, values)
    return dataset.cast(unified_features(label_space)), alignment, []


def stratified_split(dataset: Dataset, validation_fraction: float, test_fraction: float, seed: int) -> DatasetDict:
    """Split each (concept, language) stratum by the given fractions.

    Done by hand rather than with `train_test_split(stratify_by_column=…)`, which
    stratifies one column and refuses strata with a single example.
    """
    strata: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(zip(dataset["label"], dataset["language"])):
        strata[key].append(i)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {split: [] for split in SPLITS}
    for key in sorted(strata):
        indices = rng.permutation(strata[key])
        n_test = int(round(len(indices) * test_fraction))
        n_val = int(round(len(indices) * validation_fraction))
        parts["test"].extend(indices[:n_test])
        parts["validation"].extend(indices[n_test : n_test + n_val])
        parts["train"].extend(indices[n_test + n_val :])
    return DatasetDict({split: dataset.select(sorted(parts[split])) for split in SPLITS})


def kept_sources(data_args: DataArguments) -> list[SourceConfig]:
    """The recipe's sources less those written in a `holdout_scripts` script."""
    holdout = set(data_args.holdout_scripts or ())
    return [source for source in data_args.sources if (source.script or infer_script(source.language)) not in holdout]


def build_dataset(data_args: DataArguments, label_space: LabelSpace) -> DatasetDict:
    """Load, align, merge and split every source of a recipe."""
    aligned, problems = [], []
    for source in kept_sources(data_args):
        dataset = load_source(source)
        dataset, alignment, unmapped = align_source(dataset, source, label_space)
        if unmapped:
            problems.extend(f"{label!r} (source '{source.name}')" for label in unmapped)
            continue
        methods = sorted({m.method for m in alignment.values()})
        logger.info("source %s: %d images, %d labels aligned by %s", source.name, len(dataset), len(alignment), methods)
        aligned.append(dataset)
    if problems:
        raise UserError(
            f"unmappable label(s) for registry {data_args.label_space}: {', '.join(problems)}; "
            "add them to the registry or give the source a label_map"
        )
    merged = concatenate_datasets(aligned)
    return stratified_split(merged, data_args.validation_fraction, data_args.test_fraction, data_args.split_seed)


def save_dataset(dataset: DatasetDict, out_dir: str | Path) -> Path:
    """`save_to_disk` into a temporary sibling, then rename: never a half-written dataset."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        dataset.save_to_disk(str(tmp / "dataset"))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp / "dataset", out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def split_counts(dataset: DatasetDict) -> dict[str, dict[str, int]]:
    """Images per split and source, for logs and reports."""
    counts: dict[str, dict[str, int]] = {}
    for split, part in dataset.items():
        sources, n = np.unique(part["source"], return_counts=True)
        counts[split] = {str(s): int(c) for s, c in zip(sources, n)}
    return counts


def cache_pixels(dataset: DatasetDict, processor) -> DatasetDict:
    """Decode and resize every image once, with the model's own processor, into uint8.

    `datasets` fingerprints the result, so a second run with the same sources
    and processor reads it back from the cache instead of decoding again.
    """
    height, width = processor_input_size(processor)
    any_split = next(iter(dataset.values()))
    metadata = {c: any_split.features[c] for c in ("label", *GROUP_COLUMNS)}
    features = Features({**metadata, "pixel_values": Array3D(shape=(3, height, width), dtype="uint8")})

    def to_pixels(batch):
        out = processor(batch["image"], do_rescale=False, do_normalize=False, return_tensors="np")
        return {"pixel_values": np.clip(np.rint(out["pixel_values"]), 0, 255).astype(np.uint8)}

    def cache(part: Dataset) -> Dataset:
        if not len(part):  # `map` would return an empty split without the new column
            return Dataset.from_dict({name: [] for name in features}, features=features)
        return part.map(
            to_pixels, batched=True, batch_size=256, remove_columns=["image"], features=features, desc="Caching pixels"
        )

    cached = DatasetDict({name: cache(part) for name, part in dataset.items()})
    # uint8 all the way to the device: the formatter would otherwise widen it to int64.
    cached.set_format("torch", columns=["pixel_values"], dtype=torch.uint8, output_all_columns=True)
    return cached


def collate(examples: list[dict] | dict) -> dict[str, torch.Tensor]:
    """Examples -> one batch; a batch that `PixelBatches` already read whole passes through."""
    if isinstance(examples, dict):
        return examples
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
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
        return {"pixel_values": torch.from_numpy(self.pixels(indices)), "labels": torch.from_numpy(self.labels[indices])}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.from_numpy(self.pixels([index])[0]), "label": int(self.labels[index])}


class BalancedSampler(torch.utils.data.Sampler[int]):
    """Draws `len(groups)` indices with replacement so that a group of n images has probability ∝ n^τ.

    Each image of group g has weight n_g^τ / n_g; τ = 1 keeps the data's own mix, τ = 0 gives every
    group (language or concept) the same share of the batches. The draw is seeded by `seed + epoch`
    (`set_epoch`, which the Trainer calls), so every process of a distributed run draws the same
    order, and a run resumed from a checkpoint draws the same order as an unbroken one.
    """

    def __init__(self, groups, temperature: float = 0.5, seed: int = 0):
        self.groups = np.asarray(groups)
        self.weights = torch.as_tensor(balanced_weights(self.groups, temperature), dtype=torch.double)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.multinomial(self.weights, len(self.groups), replacement=True, generator=generator).tolist()


def balanced_weights(groups, temperature: float) -> np.ndarray:
    """Per-example weights n_g^(τ-1), normalised to sum to 1 (group g's share ∝ n_g^τ)."""
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    weights = counts.astype(np.float64) ** (temperature - 1.0)
    weights = weights[inverse]
    return weights / weights.sum()


def build_sampler(dataset: Dataset, kind: str, temperature: float, seed: int) -> BalancedSampler | None:
    """`language` / `class` -> a `BalancedSampler` over that column of the train split; `none` -> None."""
    if kind == "none":
        return None
    column = {"language": "language", "class": "label"}[kind]
    return BalancedSampler(dataset.with_format(None)[column], temperature=temperature, seed=seed)


def few_shot(dataset: Dataset, k: int, seed: int) -> Dataset:
    """At most `k` images of each (concept, language), drawn at random with `seed`."""
    strata: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(zip(dataset["label"], dataset["language"])):
        strata[key].append(i)
    rng = np.random.default_rng(seed)
    keep = [int(i) for key in sorted(strata) for i in rng.permutation(strata[key])[:k]]
    return dataset.select(sorted(keep))
