"""Sources -> one unified `DatasetDict` in the concept space.

Each source (a Hub id, an image folder, a parquet / CSV / JSONL manifest or a
`save_to_disk` folder) is loaded with `datasets`, its labels are aligned onto
the `LabelSpace` (alignment.py), every image is checked, converted when it must
be and hashed (images.py), identical images are kept once across all sources,
and the result is split train / validation / test, stratified by (concept,
language); a source's own test split stays the test split. `unify` also returns
the report that `prepare` writes beside the dataset.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import partial
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

from .alignment import align_sources, alignment_rows
from .configs import DataArguments, SourceConfig, infer_script
from .errors import UserError, first_line
from .images import check_batch, problem_kind
from .labels import LabelSpace
from .modeling import processor_input_size

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# Metadata columns that metrics are broken down by.
GROUP_COLUMNS = ("script", "language", "source")
MANIFEST_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
POOL = "pool"  # images of sources without their own splits, split by `stratified_split`
# Which copy of a duplicated image is kept: one in a source's own test split first, so
# that test sets stay whole and no copy of a test image is trained on.
ROLE_PRIORITY = {"test": 0, "validation": 1, "train": 2, POOL: 3}
# Sources this large are checked by several processes.
PARALLEL_FROM = 20_000
CHECK_COLUMNS = ("_hash", "_problem", "_file")

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


# ---- loading ------------------------------------------------------------------------------------


def _load_local(path: Path, source: SourceConfig, split: str) -> Dataset:
    if path.is_file():
        builder = MANIFEST_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise UserError(f"source '{source.name}': cannot read {path} (expected .parquet, .csv, .jsonl or a folder)")
        if split != "train":
            raise UserError(f"source '{source.name}': {path} is one file, one split; `split: {split}` needs a folder")
        return load_dataset(builder, data_files=str(path), split="train")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise UserError(f"source '{source.name}': split '{split}' not in {path} ({', '.join(loaded)})")
            loaded = loaded[split]
        return loaded
    for suffix, builder in MANIFEST_BUILDERS.items():
        files = sorted(str(p) for p in path.glob(f"*{suffix}"))
        if files:
            return load_dataset(builder, data_files=files, split="train")
    return load_dataset("imagefolder", data_dir=str(path), split=split)


def source_base_dir(source: SourceConfig) -> str | None:
    """Folder that relative image paths in a manifest are read from: the manifest's own."""
    path = Path(source.path)
    if not path.exists():
        return None
    return str((path.parent if path.is_file() else path).resolve())


def load_source(source: SourceConfig, split: str | None = None) -> Dataset:
    """Load one split of one source with `datasets`, as-is (its own column names and labels)."""
    split = split or (source.split if isinstance(source.split, str) else "train")
    path = Path(source.path)
    try:
        if path.exists():
            dataset = _load_local(path, source, split)
        elif source.path.startswith((".", "/", "~")) or source.path.count("/") != 1:
            raise UserError(f"source '{source.name}': path {source.path} does not exist")
        else:
            dataset = load_dataset(source.path, name=source.config, split=split, revision=source.revision)
    except UserError:
        raise
    except ValueError as err:
        if "corresponds to no data" not in str(err):  # a manifest with a header and no rows is an empty source
            raise UserError(f"source '{source.name}': {source.path} (split {split}) is not readable ({first_line(err)})") from None
        dataset = Dataset.from_dict({source.image_column: [], source.label_column: []},
                                    features=Features({source.image_column: Value("string"),
                                                       source.label_column: Value("string")}))
    except Exception as err:  # offline, private, misspelt or unreadable: the user must see which source
        reason = first_line(err)
        where = "a loadable Hub dataset" if not path.exists() else "readable"
        raise UserError(f"source '{source.name}': {source.path} (split {split}) is not {where} ({reason})") from None
    for role, column in (("image", source.image_column), ("label", source.label_column)):
        if column not in dataset.column_names:
            raise UserError(
                f"source '{source.name}': {role} column '{column}' not found in {source.path} "
                f"(columns: {', '.join(dataset.column_names)})"
            )
    feature = dataset.features[source.image_column]
    if not isinstance(feature, Image) and not (isinstance(feature, Value) and feature.dtype in ("string", "large_string")) \
            and not isinstance(feature, dict):
        raise UserError(
            f"source '{source.name}': image column '{source.image_column}' holds {feature}, not images or file paths"
        )
    if source.max_samples is not None and source.max_samples < len(dataset):
        # A seeded random subset: files are often sorted by class.
        dataset = dataset.shuffle(seed=0).select(range(source.max_samples)).flatten_indices()
    return dataset


def source_parts(source: SourceConfig) -> dict[str, Dataset]:
    """{role: Dataset}: `pool` for a source split by `prepare`, else its own train / validation / test."""
    if not source.own_splits:
        return {POOL: load_source(source)}
    return {role: load_source(source, split) for role, split in source.own_splits.items()}


def _raw_labels(dataset: Dataset, column: str) -> list:
    """Label values as their community wrote them (ClassLabel ids become their names)."""
    values = dataset.with_format("arrow")[column].to_pylist()
    feature = dataset.features[column]
    if isinstance(feature, ClassLabel):
        return [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    return list(values)


def _hashable(label):
    """7.0 from a CSV is the integer 7; NaN and empty cells are no label; text is stripped."""
    if isinstance(label, float):
        if math.isnan(label):
            return None
        return int(label) if label.is_integer() else label
    if isinstance(label, str):
        return label.strip() or None
    return label


def _labels_of(dataset: Dataset, source: SourceConfig) -> list:
    labels = [_hashable(v) for v in _raw_labels(dataset, source.label_column)]
    bad = next((v for v in labels if isinstance(v, (list, dict, bytes))), None)
    if bad is not None:
        raise UserError(
            f"source '{source.name}': label column '{source.label_column}' holds {type(bad).__name__} values "
            f"such as {bad!r}; one label per image is expected"
        )
    return labels


# ---- checking images ----------------------------------------------------------------------------


def _num_proc(data_args: DataArguments, n: int) -> int | None:
    if data_args.num_proc is not None:
        return data_args.num_proc if data_args.num_proc > 1 else None
    cores = os.cpu_count() or 1
    return min(cores, 8) if cores > 1 and n >= PARALLEL_FROM else None


def column(dataset: Dataset, name: str) -> list:
    """One column as a Python list, read through Arrow (iterating a `datasets` column formats row by row)."""
    return dataset.with_format("arrow")[name].to_pylist()


def select(dataset: Dataset, indices) -> Dataset:
    """`Dataset.select` with a fingerprint made from the indices' bytes (datasets would pickle the list)."""
    import hashlib

    indices = np.asarray(indices, dtype=np.int64)
    digest = hashlib.blake2b(dataset._fingerprint.encode() + indices.tobytes(), digest_size=16).hexdigest()
    return dataset.select(indices, new_fingerprint=digest)


def _check_rows(images: list, indices: list, *, concepts: np.ndarray, constants: dict, base_dir: str | None) -> dict:
    batch = check_batch(images, base_dir=base_dir)
    n = len(images)
    batch["label"] = concepts[indices].tolist()
    for name, value in constants.items():
        batch[name] = [value] * n
    return batch


CHECKED_FEATURES = Features({
    "image": Image(), "label": Value("int64"), "language": Value("string"), "script": Value("string"),
    "source": Value("string"), "_hash": Value("string"), "_problem": Value("string"), "_file": Value("string"),
})
# Part of the fingerprint of checked images: change it when the checks change, so caches are not reused.
CHECK_VERSION = "images-v1"


def checked_part(dataset: Dataset, source: SourceConfig, concepts: list, data_args: DataArguments) -> Dataset:
    """The unified columns plus `_hash`, `_problem`, `_file` for one part of a source.

    `concepts` holds each row's concept index, or -1 where the row has no usable label.
    The image bytes are copied as they are; only images that need converting are re-encoded.
    The fingerprint is computed here from the input's own and the labels, which is much
    cheaper than letting `datasets` hash the arguments, and lets a second run reuse the cache.
    """
    import hashlib

    dataset = dataset.select_columns([source.image_column])
    if source.image_column != "image":
        dataset = dataset.rename_column(source.image_column, "image")
    dataset = dataset.cast_column("image", Image(decode=False))
    concepts = np.asarray(concepts, dtype=np.int64)
    constants = {"language": source.language, "script": source.script or infer_script(source.language),
                 "source": source.name}
    base_dir = source_base_dir(source)
    digest = hashlib.blake2b(digest_size=16)
    for part in (CHECK_VERSION, dataset._fingerprint, repr(sorted(constants.items())), str(base_dir)):
        digest.update(part.encode())
    digest.update(concepts.tobytes())
    check = partial(_check_rows, concepts=concepts, constants=constants, base_dir=base_dir)
    return dataset.map(check, input_columns=["image"], with_indices=True, batched=True, batch_size=500,
                       features=CHECKED_FEATURES, remove_columns=["image"], num_proc=_num_proc(data_args, len(dataset)),
                       new_fingerprint=digest.hexdigest(), desc=f"Checking images of {source.name}")


# ---- unification --------------------------------------------------------------------------------


@dataclass
class Unified:
    dataset: DatasetDict
    report: dict
    label_space: LabelSpace


def unify(data_args: DataArguments, label_space: LabelSpace) -> Unified:
    """Load, align, check, de-duplicate, merge and split every source of a recipe; with the report."""
    loaded = {source.name: source_parts(source) for source in data_args.sources}
    raw = {name: {role: _labels_of(part, src) for role, part in parts.items()}
           for (name, parts), src in zip(loaded.items(), data_args.sources)}
    label_counts = {name: Counter(v for labels in roles.values() for v in labels if v is not None)
                    for name, roles in raw.items()}
    alignments = align_sources(label_counts, data_args, label_space)
    index = {cid: i for i, cid in enumerate(label_space.ids)}

    pieces, stats = [], {}
    for source in data_args.sources:
        matches = alignments[source.name].matches
        stat = stats[source.name] = {"read": 0, "bad_images": 0, "bad_by_kind": Counter(), "unlabelled": 0,
                                     "dropped_labels": 0, "duplicates": 0, "kept": 0}
        for role, part in loaded[source.name].items():
            labels = raw[source.name][role]
            concepts = [index[matches[v].concept] if v is not None and matches.get(v) else -1 for v in labels]
            stat["read"] += len(part)
            stat["unlabelled"] += sum(v is None for v in labels)
            stat["dropped_labels"] += sum(v is not None and not matches.get(v) for v in labels)
            if not len(part):
                continue
            checked = checked_part(part, source, concepts, data_args)
            problems = column(checked, "_problem")
            bad = [i for i, p in enumerate(problems) if p is not None]
            if bad and data_args.on_bad_image == "error":
                first = bad[0]
                raise UserError(
                    f"source '{source.name}': image {column(checked, '_file')[first] or f'#{first}'}: {problems[first]} "
                    f"({len(bad)} bad image(s) in this source); set `on_bad_image: skip` to leave them out"
                )
            stat["bad_images"] += len(bad)
            stat["bad_by_kind"].update(problem_kind(problems[i]) for i in bad)
            usable = np.flatnonzero((np.asarray([p is None for p in problems], dtype=bool))
                                    & (np.asarray(concepts) >= 0))
            pieces.append((source, role, select(checked, usable)))
        if stat["unlabelled"] and data_args.on_bad_image == "error":
            raise UserError(f"source '{source.name}': {stat['unlabelled']} image(s) without a label in column "
                            f"'{source.label_column}'; set `on_bad_image: skip` to leave them out")
        if not sum(len(d) for s, _, d in pieces if s is source):
            if data_args.on_bad_image == "error":
                raise UserError(f"source '{source.name}': no usable images in {source.path}")
            logger.warning("source %s: no usable images in %s", source.name, source.path)
    if not any(len(d) for _, _, d in pieces):
        counts = "; ".join(f"{name}: {row['read']} read, {row['bad_images']} bad, {row['unlabelled']} unlabelled, "
                           f"{row['dropped_labels']} with dropped labels" for name, row in stats.items())
        raise UserError(f"no usable images in any source ({counts})")

    kept, duplicates = deduplicate(pieces) if data_args.deduplicate else ({id(d): None for *_, d in pieces}, {})
    parts = defaultdict(list)
    for source, role, dataset in pieces:
        selection = kept[id(dataset)]
        if selection is not None:
            stats[source.name]["duplicates"] += len(dataset) - len(selection)
            dataset = select(dataset, selection)
        stats[source.name]["kept"] += len(dataset)
        parts[role].append((source, dataset))
    dataset = _assemble(parts, data_args, label_space)
    report = build_report(data_args, label_space, alignments, stats, duplicates, dataset)
    return Unified(dataset, report, label_space)


def deduplicate(pieces: list) -> tuple[dict, dict]:
    """Keep one copy of every image hash across all pieces; ({id(piece): kept row indices}, counts).

    The copy kept is the one in a source's own test split if there is one, else in its own
    validation split, else the first in recipe order; every other copy is removed, so no
    image can sit in train and test at once.
    """
    order = sorted(range(len(pieces)), key=lambda i: ROLE_PRIORITY[pieces[i][1]])
    first: dict[str, tuple[int, int]] = {}  # hash -> (piece, concept) of the copy kept
    kept: dict[int, list[int]] = {}
    counts = Counter(within_source=0, across_sources=0, across_splits=0, label_conflicts=0)
    for i in order:
        source, role, dataset = pieces[i]
        rows = []
        for row, (digest, label) in enumerate(zip(column(dataset, "_hash"), column(dataset, "label"))):
            owner = first.get(digest)
            if owner is None:
                first[digest] = (i, label)
                rows.append(row)
                continue
            other_source, other_role, _ = pieces[owner[0]]
            counts["within_source" if other_source is source else "across_sources"] += 1
            counts["across_splits"] += other_role != role
            counts["label_conflicts"] += owner[1] != label
        kept[id(dataset)] = rows
    counts["removed"] = counts["within_source"] + counts["across_sources"]
    return kept, dict(counts)


def _assemble(parts: dict, data_args: DataArguments, label_space: LabelSpace) -> DatasetDict:
    """Pool -> stratified train / validation / test; own splits kept; all in the unified schema."""
    features = unified_features(label_space)
    splits: dict[str, list[Dataset]] = {split: [] for split in SPLITS}
    pool = [d for _, d in parts.get(POOL, []) if len(d)]
    if pool:
        for split, part in stratified_split(concatenate_datasets(pool), data_args.validation_fraction,
                                            data_args.test_fraction, data_args.split_seed).items():
            splits[split].append(part)
    own_validation = {s.name for s, _ in parts.get("validation", [])}
    for role in ("train", "validation", "test"):
        for source, dataset in parts.get(role, []):
            if role == "train" and source.name not in own_validation and len(dataset):
                # A source with train (and test) but no validation: carve validation out of its train split.
                carved = stratified_split(dataset, data_args.validation_fraction, 0.0, data_args.split_seed)
                splits["train"].append(carved["train"])
                splits["validation"].append(carved["validation"])
            else:
                splits[role].append(dataset)

    # An empty split is cut from real data: `save_to_disk` writes no table for `Dataset.from_dict({})`.
    template = next(c for chunks in splits.values() for c in chunks if len(c))

    def finish(chunks: list[Dataset]) -> Dataset:
        chunks = [c for c in chunks if len(c)] or [select(template, [])]
        merged = concatenate_datasets(chunks).remove_columns(list(CHECK_COLUMNS))
        return merged.cast_column("label", features["label"])

    return DatasetDict({split: finish(chunks) for split, chunks in splits.items()})


def build_report(data_args: DataArguments, label_space: LabelSpace, alignments: dict, stats: dict,
                 duplicates: dict, dataset: DatasetDict) -> dict:
    """What `prepare` did, for alignment_report.json / .md and the dataset card."""
    from .embeddings import load_backend

    names = label_space.ids
    splits = {}
    for split, part in dataset.items():
        languages, labels = column(part, "language"), column(part, "label")
        splits[split] = {
            "images": len(part),
            "by_language": dict(sorted(Counter(languages).items())),
            "by_concept": {names[c]: n for c, n in sorted(Counter(labels).items())},
            "by_source": dict(Counter(column(part, "source"))),
        }
    languages = sorted({lang for row in splits.values() for lang in row["by_language"]})
    train_languages = splits["train"]["by_language"]
    weights = dict(zip(train_languages, group_probabilities(list(train_languages.values()),
                                                            data_args.sampler_temperature)))
    backend = load_backend(data_args.label_embeddings)
    return {
        "label_space": data_args.label_space,
        "embedding_backend": backend.name if backend is not None else None,
        "embedding_threshold": data_args.embedding_threshold if backend is not None else None,
        "unmapped_labels": data_args.unmapped_labels,
        "on_bad_image": data_args.on_bad_image,
        "concepts": names,
        "languages": languages,
        "alignment": alignment_rows(alignments),
        "sources": {name: {**row, "bad_by_kind": dict(row["bad_by_kind"])} for name, row in stats.items()},
        "source_info": [
            {"name": s.name, "path": s.path, "language": s.language, "script": s.script, "license": s.license,
             "weight": s.weight, "split": s.split}
            for s in data_args.sources
        ],
        "duplicates": {"removed": 0, "within_source": 0, "across_sources": 0, "across_splits": 0,
                       "label_conflicts": 0, **duplicates},
        "splits": splits,
        "language_sampling": {
            "temperature": data_args.sampler_temperature,
            "languages": {lang: {"images": n, "probability": round(float(weights[lang]), 6)}
                          for lang, n in train_languages.items()},
        },
    }


def group_probabilities(sizes: list[int], temperature: float) -> np.ndarray:
    """Share of draws of each group, ∝ n^τ (the balanced sampler's, per group)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if not len(sizes):
        return sizes
    weights = sizes**temperature
    return weights / weights.sum()


def build_dataset(data_args: DataArguments, label_space: LabelSpace) -> DatasetDict:
    """Load, align, check, de-duplicate, merge and split every source of a recipe."""
    return unify(data_args, label_space).dataset


def stratified_split(dataset: Dataset, validation_fraction: float, test_fraction: float, seed: int) -> DatasetDict:
    """Split each (concept, language) stratum by the given fractions.

    Done by hand rather than with `train_test_split(stratify_by_column=…)`, which
    stratifies one column and refuses strata with a single example.
    """
    strata: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(zip(column(dataset, "label"), column(dataset, "language"))):
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
    return DatasetDict({split: select(dataset, sorted(parts[split])) for split in SPLITS})


def save_dataset(dataset: DatasetDict, out_dir: str | Path, extra=None) -> Path:
    """`save_to_disk` into a temporary sibling, then rename: never a half-written dataset.

    `extra(folder)` writes the files that belong beside the data (report, card) into the
    temporary folder before the rename, so they appear together with it or not at all.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        # One shard for an empty split: left to itself, `save_to_disk` writes none, which it cannot load back.
        dataset.save_to_disk(str(tmp / "dataset"), num_shards={name: 1 for name, part in dataset.items() if not len(part)})
        if extra is not None:
            extra(tmp / "dataset")
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
        sources, n = np.unique(column(part, "source"), return_counts=True)
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
        return {"pixel_values": torch.from_numpy(self.pixels(indices)), "labels": torch.from_numpy(self.labels[indices])}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.from_numpy(self.pixels([index])[0]), "label": int(self.labels[index])}


class BalancedSampler(torch.utils.data.Sampler[int]):
    """Draws `len(groups)` indices with replacement so that a group of n images has probability ∝ n^τ.

    Each image of group g has weight n_g^τ / n_g; τ = 1 keeps the data's own mix, τ = 0 gives every
    group (language or concept) the same share of the batches. `scale` multiplies each image's
    weight (a source's `weight`). The draw is seeded by `seed + epoch` (`set_epoch`, which the
    Trainer calls), so every process of a distributed run draws the same order, and a run resumed
    from a checkpoint draws the same order as an unbroken one.
    """

    def __init__(self, groups, temperature: float = 0.5, seed: int = 0, scale=None):
        self.groups = np.asarray(groups)
        weights = balanced_weights(self.groups, temperature)
        if scale is not None:
            weights = weights * np.asarray(scale, dtype=np.float64)
        self.weights = torch.as_tensor(weights / weights.sum(), dtype=torch.double)
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


def build_sampler(dataset: Dataset, kind: str, temperature: float, seed: int,
                  source_weights: dict[str, float] | None = None) -> BalancedSampler | None:
    """A `BalancedSampler` over the train split, or None for the Trainer's uniform shuffle.

    `kind` balances by `language` or `class` (concept); `none` keeps the data's own mix. Sources
    with a `weight` other than 1 scale the probability of each of their images by it.
    """
    plain = dataset.with_format(None)
    scale = None
    if source_weights and any(w != 1 for w in source_weights.values()):
        scale = [source_weights.get(name, 1.0) for name in plain["source"]]
    if kind == "none":
        return None if scale is None else BalancedSampler(np.zeros(len(plain)), temperature=1.0, seed=seed, scale=scale)
    column = {"language": "language", "class": "label"}[kind]
    return BalancedSampler(plain[column], temperature=temperature, seed=seed, scale=scale)


def few_shot(dataset: Dataset, k: int, seed: int) -> Dataset:
    """At most `k` images of each (concept, language), drawn at random with `seed`."""
    strata: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(zip(dataset["label"], dataset["language"])):
        strata[key].append(i)
    rng = np.random.default_rng(seed)
    keep = [int(i) for key in sorted(strata) for i in rng.permutation(strata[key])[:k]]
    return dataset.select(sorted(keep))
