"""Sources -> one unified `DatasetDict` in the concept space.

Each source is loaded with `datasets` (sources.py), its labels are aligned onto the
`LabelSpace` (labels/alignment.py), every image is checked, converted when it must
be and hashed (images.py), identical images are kept once across all sources,
and the result is split train / validation / test, stratified by (concept,
language); a source's own test split stays the test split. `unify` also returns
the report that `prepare` writes beside the dataset.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, concatenate_datasets

from ..errors import UserError, printable
from ..images import check_batch, check_image, frame_count, problem_kind, read_bytes
from ..labels import LabelSpace, align_sources
from ..labels.alignment import alignment_rows
from ..labels.embeddings import describe as describe_text_evidence
from ..labels.embeddings import load_backend
from ..outputs import atomic_directory
from .sampler import group_probabilities
from .sources import (
    POOL,
    SPLITS,
    DataArguments,
    SourceConfig,
    outside_files,
    row_languages,
    row_script,
    source_base_dir,
    source_labels,
    source_parts,
    unread_files,
)
from .votes import vote_by_images

logger = logging.getLogger(__name__)

# Metadata columns that metrics are broken down by.
GROUP_COLUMNS = ("script", "language", "source")
# Which copy of a duplicated image is kept: one in a source's own test split first, so
# that test sets stay whole and no copy of a test image is trained on.
ROLE_PRIORITY = {"test": 0, "validation": 1, "train": 2, POOL: 3}
# Sources this large are checked by several processes.
PARALLEL_FROM = 20_000
CHECK_COLUMNS = ("_hash", "_problem", "_file", "_frames")


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
    indices = np.asarray(indices, dtype=np.int64)
    digest = hashlib.blake2b(dataset._fingerprint.encode() + indices.tobytes(), digest_size=16).hexdigest()
    return dataset.select(indices, new_fingerprint=digest)


def _check_rows(
    images: list, indices: list, *, concepts: np.ndarray, rows: dict, constants: dict, base_dir: str | None
) -> dict:
    batch = check_batch(images, base_dir=base_dir)
    n = len(images)
    batch["label"] = concepts[indices].tolist()
    for name, values in rows.items():
        batch[name] = [values[i] for i in indices]
    for name, value in constants.items():
        batch[name] = [value] * n
    batch["_frames"] = [
        _frames(value, checked, base_dir) if checked is not None else 1
        for value, checked in zip(images, batch["image"])
    ]
    return batch


# Formats that may hold several frames and that a check converts (keeping only the first): their
# files are read a second time to count frames. Other files' frames are counted on the checked copy.
CONVERTED_MULTI_FRAME = (".gif", ".tif", ".tiff", ".webp")


def _frames(value, checked: dict, base_dir: str | None) -> int:
    """Frames in an image as the source holds it, whether or not its checked copy was converted."""
    if isinstance(value, dict) and value.get("bytes") is not None:
        return frame_count(value["bytes"])
    path = value if isinstance(value, str) else (value or {}).get("path")
    if path and str(path).lower().endswith(CONVERTED_MULTI_FRAME):
        data, _, problem = read_bytes(value, base_dir)
        return frame_count(data) if problem is None else 1
    return frame_count(checked["bytes"])


CHECKED_FEATURES = Features(
    {
        "image": Image(),
        "label": Value("int64"),
        "language": Value("string"),
        "script": Value("string"),
        "source": Value("string"),
        "_hash": Value("string"),
        "_problem": Value("string"),
        "_file": Value("string"),
        "_frames": Value("int32"),
    }
)
# Part of the fingerprint of checked images: change it when the checks change, so caches are not reused.
CHECK_VERSION = "images-v2"


def checked_part(dataset: Dataset, source: SourceConfig, concepts: list, data_args: DataArguments) -> Dataset:
    """The unified columns plus `_hash`, `_problem`, `_file` for one part of a source.

    `concepts` holds each row's concept index, or -1 where the row has no usable label.
    The image bytes are copied as they are; only images that need converting are re-encoded.
    The fingerprint is computed here from the input's own and the labels, which is much
    cheaper than letting `datasets` hash the arguments, and lets a second run reuse the cache.
    """
    languages = row_languages(dataset, source)
    dataset = dataset.select_columns([source.image_column])
    if source.image_column != "image":
        dataset = dataset.rename_column(source.image_column, "image")
    dataset = dataset.cast_column("image", Image(decode=False))
    concepts = np.asarray(concepts, dtype=np.int64)
    constants = {"language": source.language, "script": source.script, "source": source.name}
    rows = {}
    if languages is not None:  # the source's own `language` column tags each row
        del constants["language"], constants["script"]
        rows = {"language": languages, "script": [row_script(lang, source) for lang in languages]}
    base_dir = source_base_dir(source)
    digest = hashlib.blake2b(digest_size=16)
    for part in (CHECK_VERSION, dataset._fingerprint, repr(sorted(constants.items())), str(base_dir)):
        digest.update(part.encode())
    for values in rows.values():
        digest.update("\x00".join(values).encode())
    digest.update(concepts.tobytes())
    check = partial(_check_rows, concepts=concepts, rows=rows, constants=constants, base_dir=base_dir)
    return dataset.map(
        check,
        input_columns=["image"],
        with_indices=True,
        batched=True,
        batch_size=500,
        features=CHECKED_FEATURES,
        remove_columns=["image"],
        num_proc=_num_proc(data_args, len(dataset)),
        new_fingerprint=digest.hexdigest(),
        desc=f"Checking images of {printable(source.name, 100)}",  # a progress bar prints it as it is
    )


# ---- unification --------------------------------------------------------------------------------


@dataclass
class Unified:
    dataset: DatasetDict
    report: dict
    label_space: LabelSpace


# Images per label that the image vote reads (training and voting alike).
VOTE_IMAGES = 50


def _image_voter(loaded: dict, raw: dict, data_args: DataArguments, vote):
    """`align_sources`' image hook: reads up to VOTE_IMAGES images of each label and calls `vote`."""
    by_name = {source.name: source for source in data_args.sources}

    def images_of(name: str, label) -> list[bytes]:
        source, found = by_name[name], []
        for role, part in loaded[name].items():
            rows = [i for i, v in enumerate(raw[name][role]) if v == label][: VOTE_IMAGES - len(found)]
            if not rows:
                continue
            values = column(
                select(part, rows).cast_column(source.image_column, Image(decode=False)), source.image_column
            )
            for value in values:
                data, _, problem = read_bytes(value, source_base_dir(source))
                if problem is None:  # only images that pass the checks vote, converted as training sees them
                    data, _, problem = check_image(data)
                if problem is None:
                    found.append(data)
            if len(found) >= VOTE_IMAGES:
                break
        return found

    def voter(train: dict, queries: list) -> dict:
        images = {key: (concept, images_of(*key)) for concept, keys in train.items() for key in keys}
        return vote(images, {key: images_of(*key) for key in queries})

    return voter


def named_in_registry(text: str, *, label_space: LabelSpace, language: str) -> bool:
    """Whether the registry names `text` in `language` (German "null" is zero, not a missing label)."""
    return label_space.resolve(text, language) is not None


def load_and_align(
    data_args: DataArguments,
    label_space: LabelSpace,
    image_votes=None,
    policy: bool = True,
    unread: dict | None = None,
    missing: dict | None = None,
):
    """(loaded parts, raw labels, alignments): every source read and its labels aligned (align, prepare).

    Folders that `datasets` would misread stop the run before loading (`unread_files`); `unread`
    passes that scan's result when the caller made it already. `missing` ({source name: Counter})
    counts the values read as no label, by how they were written.
    """
    if unread is None:
        unread = {source.name: unread_files(source) for source in data_args.sources}
    loaded = {source.name: source_parts(source) for source in data_args.sources}
    missing = {} if missing is None else missing
    raw = {}
    for source in data_args.sources:
        named = partial(named_in_registry, label_space=label_space, language=source.language)
        counter = missing.setdefault(source.name, Counter())
        raw[source.name] = {
            role: source_labels(part, source, counter, named) for role, part in loaded[source.name].items()
        }
    label_counts = {
        name: Counter(v for labels in roles.values() for v in labels if v is not None) for name, roles in raw.items()
    }
    vote = image_votes or (vote_by_images if data_args.image_votes else None)
    voter = _image_voter(loaded, raw, data_args, vote) if vote is not None else None
    languages = {
        source.name: label_languages(loaded[source.name], raw[source.name], source) for source in data_args.sources
    }
    alignments = align_sources(
        label_counts, data_args, label_space, image_votes=voter, policy=policy, label_languages=languages
    )
    return loaded, raw, alignments


def label_languages(parts: dict, raw: dict, source: SourceConfig) -> dict:
    """{label: language} for the labels whose rows all carry one language other than the source's
    (its own `language` column): the registry reads such a label in its rows' language."""
    seen: dict = defaultdict(set)
    for role, part in parts.items():
        languages = row_languages(part, source)
        if languages is not None:
            for label, language in zip(raw[role], languages):
                if label is not None:
                    seen[label].add(language)
    return {
        label: next(iter(langs)) for label, langs in seen.items() if len(langs) == 1 and source.language not in langs
    }


def unify(data_args: DataArguments, label_space: LabelSpace, image_votes=None) -> Unified:
    """Load, align, check, de-duplicate, merge and split every source of a recipe; with the report.

    `image_votes(train, queries)` replaces the built-in image evidence (data/votes.py): `train`
    is {(source, label): (concept, images)} for accepted labels, `queries` {(source, label): images};
    it returns {(source, label): {concept: vote share}}.
    """
    unread_by_source = {s.name: unread_files(s) for s in data_args.sources}
    missing: dict[str, Counter] = {}
    loaded, raw, alignments = load_and_align(
        data_args, label_space, image_votes, unread=unread_by_source, missing=missing
    )
    index = {cid: i for i, cid in enumerate(label_space.ids)}

    pieces, stats = [], {}
    for source in data_args.sources:
        matches = alignments[source.name].matches
        stat = stats[source.name] = {
            "read": 0,
            "bad_images": 0,
            "bad_by_kind": Counter(),
            "unlabelled": 0,
            "dropped_labels": 0,
            "duplicates": 0,
            "conflicts": 0,
            "kept": 0,
            "bad_examples": [],
            "unlabelled_as": dict(missing.get(source.name, {})),
            "multi_frame": 0,
            "multi_frame_examples": [],
            "row_languages": Counter(),
            "outside_files": 0,
        }
        unread = unread_by_source[source.name]
        if unread and data_args.on_bad_image == "error":
            raise UserError(
                f"source '{source.name}': {len(unread)} file(s) without an image ending are not read "
                f"(e.g. {', '.join(unread[:3])}); set `on_bad_image: skip` to leave them out"
            )
        stat["read"] += len(unread)
        stat["bad_images"] += len(unread)
        if unread:
            stat["bad_by_kind"]["not an image file"] += len(unread)
            stat["bad_examples"] += [f"{name} (not an image file)" for name in unread[:3]]
        for role, part in loaded[source.name].items():
            labels = raw[source.name][role]
            concepts = [index[matches[v].concept] if v is not None and matches.get(v) else -1 for v in labels]
            stat["read"] += len(part)
            stat["outside_files"] += outside_files(source, part)
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
                    f"source '{source.name}': image {column(checked, '_file')[first] or f'#{first}'}: "
                    f"{problems[first]} "
                    f"({len(bad)} bad image(s) in this source); set `on_bad_image: skip` to leave them out"
                )
            stat["bad_images"] += len(bad)
            stat["bad_by_kind"].update(problem_kind(problems[i]) for i in bad)
            files = column(checked, "_file")
            stat["bad_examples"] += [f"{files[i] or f'#{i}'} ({problem_kind(problems[i])})" for i in bad[:3]]
            frames = column(checked, "_frames")
            several = [i for i, n in enumerate(frames) if n > 1]
            stat["multi_frame"] += len(several)
            stat["multi_frame_examples"] += [f"{files[i] or f'#{i}'} ({frames[i]} frames)" for i in several[:3]]
            stat["row_languages"].update(column(checked, "language"))
            usable = np.flatnonzero(
                (np.asarray([p is None for p in problems], dtype=bool)) & (np.asarray(concepts) >= 0)
            )
            pieces.append((source, role, select(checked, usable)))
        if stat["unlabelled"] and data_args.on_bad_image == "error":
            raise UserError(
                f"source '{source.name}': {stat['unlabelled']} image(s) without a label in column "
                f"'{source.label_column}' ({_written_as(stat['unlabelled_as'])}); "
                "set `on_bad_image: skip` to leave them out"
            )
        if not sum(len(d) for s, _, d in pieces if s is source):
            if data_args.on_bad_image == "error":
                raise UserError(f"source '{source.name}': no usable images in {source.path}")
            logger.warning("source %s: no usable images in %s", source.name, source.path)
    if not any(len(d) for _, _, d in pieces):
        counts = "; ".join(
            f"{name}: {row['read']} read, {row['bad_images']} bad, {row['unlabelled']} unlabelled, "
            f"{row['dropped_labels']} with dropped labels"
            for name, row in stats.items()
        )
        raise UserError(f"no usable images in any source ({counts})")

    kept, duplicates = deduplicate(pieces, label_space.ids, data_args.on_label_conflict, data_args.deduplicate)
    parts = defaultdict(list)
    for name, row in duplicates.pop("by_source").items():
        stats[name]["duplicates"] = row["duplicates"]
        stats[name]["conflicts"] = row["conflicts"]
    for source, role, dataset in pieces:
        selection = kept[id(dataset)]
        if len(selection) != len(dataset):
            dataset = select(dataset, selection)
        stats[source.name]["kept"] += len(dataset)
        parts[role].append((source, dataset))
    if not any(len(d) for chunks in parts.values() for _, d in chunks):
        raise UserError(
            f"no images left: {duplicates.get('label_conflicts', 0)} label conflicts dropped "
            f"{duplicates.get('conflict_images_dropped', 0)} copies, and nothing else remains"
        )
    dataset = _assemble(parts, data_args, label_space)
    report = build_report(data_args, label_space, alignments, stats, duplicates, dataset)
    return Unified(dataset, report, label_space)


def format_counts(report: dict) -> str:
    """Per source, what became of its images: a table for the console (the report has the details)."""
    conflicts = any(row.get("conflicts") for row in report["sources"].values())
    header = ("source", "read", "unlabelled", "unmapped", "bad", "duplicates", *(("conflicts",) * conflicts), "kept")
    rows = [
        (
            name,
            row["read"],
            row["unlabelled"],
            row["dropped_labels"],
            row["bad_images"],
            row["duplicates"],
            *((row.get("conflicts", 0),) * conflicts),
            row["kept"],
        )
        for name, row in report["sources"].items()
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    ]
    for name, row in report["sources"].items():
        if row["bad_images"]:
            kinds = ", ".join(f"{n} {kind}" for kind, n in row["bad_by_kind"].items())
            lines.append(f"{name}: bad images left out: {kinds}; e.g. {', '.join(row['bad_examples'])}")
    lines += report.get("notes", [])
    dup = report["duplicates"]
    if dup.get("label_conflicts"):
        lines.append(
            f"label conflicts: {dup['label_conflicts']} image(s) under two concepts; "
            f"{dup['conflict_images_dropped']} copies left out (on_label_conflict: {report['on_label_conflict']})"
        )
    return "\n".join(lines)


def deduplicate(pieces: list, names: list[str], conflicts: str = "error", remove: bool = True) -> tuple[dict, dict]:
    """Keep one copy of every image hash across all pieces; ({id(piece): kept row indices}, counts).

    The copy kept is the one in a source's own test split if there is one, else in its own
    validation split, else the first in recipe order; every other copy is removed, so no
    image can sit in train and test at once (`remove=False` keeps every copy). Copies that
    carry different concepts are a conflict, never settled by recipe order: `conflicts`
    (the recipe's `on_label_conflict`) is `error`, `drop` (no copy stays) or `prefer:SOURCE`
    (that source's copy stays; a conflict it takes no part in is an error).
    """
    order = sorted(range(len(pieces)), key=lambda i: ROLE_PRIORITY[pieces[i][1]])
    copies: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)  # hash -> [(piece, row, concept, file)]
    for i in order:
        dataset = pieces[i][2]
        rows = zip(column(dataset, "_hash"), column(dataset, "label"), column(dataset, "_file"))
        for row, (digest, label, name) in enumerate(rows):
            copies[digest].append((i, row, label, name))
    prefer = conflicts.split(":", 1)[1].strip() if conflicts.startswith("prefer:") else None
    kept: dict[int, list[int]] = {id(piece[2]): [] for piece in pieces}
    counts = Counter(within_source=0, across_sources=0, across_splits=0, label_conflicts=0, conflict_images_dropped=0)
    # Per source: copies removed as duplicates, and copies left out by a label conflict; one count each.
    by_source = {piece[0].name: Counter(duplicates=0, conflicts=0) for piece in pieces}
    unsettled = []
    for group in copies.values():
        if len({label for _, _, label, _ in group}) == 1:
            chosen = group if not remove else group[:1]
            for other in group[len(chosen) :]:
                counts["within_source" if pieces[other[0]][0] is pieces[group[0][0]][0] else "across_sources"] += 1
                counts["across_splits"] += pieces[other[0]][1] != pieces[group[0][0]][1]
                by_source[pieces[other[0]][0].name]["duplicates"] += 1
        else:
            counts["label_conflicts"] += 1
            chosen = [c for c in group if pieces[c[0]][0].name == prefer][:1] if prefer else []
            if conflicts == "error" or (prefer and not chosen):
                unsettled.append(group)
            counts["conflict_images_dropped"] += len(group) - len(chosen)
            for left_out in (c for c in group if c not in chosen):
                by_source[pieces[left_out[0]][0].name]["conflicts"] += 1
        for i, row, _, _ in chosen:
            kept[id(pieces[i][2])].append(row)
    if unsettled:
        shown = "; ".join(
            f"{group[0][3] or 'an image'} is "
            + " and ".join(f"{names[c]} in '{pieces[i][0].name}'" for i, _, c, _ in group)
            for group in unsettled[:3]
        )
        raise UserError(
            f"label conflict: {len(unsettled)} image(s) carry different concepts in different places ({shown}); "
            "set `on_label_conflict: drop` to leave them out, or `prefer:SOURCE` to trust one source"
        )
    for rows in kept.values():
        rows.sort()
    counts["removed"] = counts["within_source"] + counts["across_sources"]
    return kept, {**counts, "by_source": {name: dict(row) for name, row in by_source.items()}}


def _assemble(parts: dict, data_args: DataArguments, label_space: LabelSpace) -> DatasetDict:
    """Pool -> stratified train / validation / test; own splits kept; all in the unified schema."""
    features = unified_features(label_space)
    splits: dict[str, list[Dataset]] = {split: [] for split in SPLITS}
    pool = [d for _, d in parts.get(POOL, []) if len(d)]
    if pool:
        for split, part in stratified_split(
            concatenate_datasets(pool), data_args.validation_fraction, data_args.test_fraction, data_args.split_seed
        ).items():
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


def build_report(
    data_args: DataArguments,
    label_space: LabelSpace,
    alignments: dict,
    stats: dict,
    duplicates: dict,
    dataset: DatasetDict,
) -> dict:
    """What `prepare` did, for alignment_report.json / .md and the dataset card."""
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
    weights = dict(
        zip(train_languages, group_probabilities(list(train_languages.values()), data_args.sampler_temperature))
    )
    backend = load_backend(data_args.label_embeddings)
    return {
        "label_space": data_args.label_space,
        "embedding_backend": backend.name if backend is not None else None,
        "text_evidence": describe_text_evidence(backend) if backend is not None else None,
        "embedding_threshold": data_args.embedding_threshold if backend is not None else None,
        "embedding_margin": data_args.embedding_margin if backend is not None else None,
        "image_votes": bool(data_args.image_votes),
        "alignment_file": data_args.alignment_file,
        "unmapped_labels": data_args.unmapped_labels,
        "on_label_conflict": data_args.on_label_conflict,
        "on_bad_image": data_args.on_bad_image,
        "concepts": names,
        "languages": languages,
        "alignment": alignment_rows(alignments),
        "sources": {
            name: {**row, "bad_by_kind": dict(row["bad_by_kind"]), "row_languages": dict(row["row_languages"])}
            for name, row in stats.items()
        },
        "notes": source_notes(data_args, stats),
        "source_info": [
            {
                "name": s.name,
                "path": s.path,
                "language": s.language,
                "script": s.script,
                "license": s.license,
                "weight": s.weight,
                "split": s.split,
            }
            for s in data_args.sources
        ],
        "duplicates": {
            "conflict_images_dropped": 0,
            "removed": 0,
            "within_source": 0,
            "across_sources": 0,
            "across_splits": 0,
            "label_conflicts": 0,
            **duplicates,
        },
        "splits": splits,
        "language_sampling": {
            "temperature": data_args.sampler_temperature,
            "languages": {
                lang: {"images": n, "probability": round(float(weights[lang]), 6)}
                for lang, n in train_languages.items()
            },
        },
    }


def _written_as(values: dict) -> str:
    return "written as " + ", ".join(f"{value} ×{n}" for value, n in sorted(values.items(), key=lambda kv: -kv[1]))


def source_notes(data_args: DataArguments, stats: dict) -> list[str]:
    """What `prepare` decided about each source's data that the counts alone do not say, one line each."""
    notes = []
    for source in data_args.sources:
        row = stats[source.name]
        if row["unlabelled"]:
            notes.append(
                f"{source.name}: {row['unlabelled']} image(s) without a label left out "
                f"({_written_as(row['unlabelled_as'])})"
            )
        if row["multi_frame"]:
            examples = ", ".join(row["multi_frame_examples"][:3])
            notes.append(
                f"{source.name}: {row['multi_frame']} image(s) hold several frames (animated GIF, PNG or WebP, "
                f"multi-page TIFF); the first frame of each is used (e.g. {examples})"
            )
        languages = row["row_languages"]
        if set(languages) - {source.language}:
            shown = ", ".join(f"{lang} {n}" for lang, n in sorted(languages.items(), key=lambda kv: -kv[1]))
            notes.append(
                f"{source.name}: its `language` column tags images {shown}, not all `language: {source.language}` "
                "as the recipe says; images keep their own language, and a label whose images share one is read "
                "in it"
            )
    return notes


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


def save_dataset(
    dataset: DatasetDict, out_dir: str | Path, extra=None, *, overwrite: bool = False, sources=()
) -> Path:
    """`save_to_disk` into a temporary sibling, then swap it in: never a half-written dataset.

    `extra(folder)` writes the files that belong beside the data (report, card) into the
    temporary folder before the swap, so they appear together with it or not at all.
    An existing folder is replaced only if polyglot-vision wrote it (or `overwrite`).
    """
    with atomic_directory(out_dir, overwrite=overwrite, sources=sources, what="dataset folder") as tmp:
        # One shard for an empty split: left to itself, `save_to_disk` writes none, which it cannot load back.
        dataset.save_to_disk(str(tmp), num_shards={name: 1 for name, part in dataset.items() if not len(part)})
        if extra is not None:
            extra(tmp)
    return Path(out_dir)


def split_counts(dataset: DatasetDict) -> dict[str, dict[str, int]]:
    """Images per split and source, for logs and reports."""
    counts: dict[str, dict[str, int]] = {}
    for split, part in dataset.items():
        sources, n = np.unique(column(part, "source"), return_counts=True)
        counts[split] = {str(s): int(c) for s, c in zip(sources, n)}
    return counts


def few_shot(dataset: Dataset, k: int, seed: int) -> Dataset:
    """At most `k` images of each (concept, language), drawn at random with `seed`."""
    strata: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(zip(dataset["label"], dataset["language"])):
        strata[key].append(i)
    rng = np.random.default_rng(seed)
    keep = [int(i) for key in sorted(strata) for i in rng.permutation(strata[key])[:k]]
    return dataset.select(sorted(keep))
