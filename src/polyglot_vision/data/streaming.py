"""`streaming: true`: the sources as `IterableDataset`s, read while training, for sets larger than the disk.

The same alignment (labels/alignment.py), image checks (images.py) and policies as
`data.unify`: every label is read first, in one pass over the label column alone, and
aligned before training; images are checked as they stream by; sources are mixed with
`interleave_datasets` by their `weight`. What needs the whole set is done
differently: splits come from each image's content hash instead of
stratification, and duplicates are dropped per split and pass.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from functools import partial

import numpy as np
from datasets import ClassLabel, Features, Image, IterableDataset, Value, interleave_datasets
from tqdm.auto import tqdm

from ..errors import UserError
from ..images import check_batch
from ..labels import LabelSpace, align_sources
from .sources import (
    SPLITS,
    DataArguments,
    LabelReader,
    SourceConfig,
    label_column_stream,
    load_source,
    source_base_dir,
)
from .unify import named_in_registry, unified_features

logger = logging.getLogger(__name__)

# Rows read at a time in the label pass (the label column only: a few bytes a row).
LABEL_PASS_BATCH = 10_000


def label_pass(stream, source: SourceConfig, read: LabelReader) -> tuple[Counter, dict]:
    """(rows per label over the source's whole stream, how to read a raw value as the community wrote it).

    Every label is read before anything is aligned, from the label column alone (a parquet
    source reads nothing else; other sources are read through without decoding an image), so a label whose first row
    comes late in the stream is aligned with the others and its rows are counted: none is
    met for the first time while training.
    """
    feature = (stream.features or {}).get(source.label_column)
    names = feature.names if isinstance(feature, ClassLabel) else None
    counts: Counter = Counter()
    column = label_column_stream(source, stream)
    with tqdm(desc=f"Reading the labels of {source.name}", unit=" rows", leave=False) as bar:
        for batch in column.iter(batch_size=LABEL_PASS_BATCH):
            values = batch[source.label_column]
            if names is not None:
                values = [names[v] if v is not None and v >= 0 else None for v in values]
            counts.update(label for label in map(read, values) if label is not None)
            bar.update(len(values))
    return counts, {"names": names} if names is not None else {}


def label_pass_lines(alignments: dict, policy: str) -> list[str]:
    """One line per streamed source: rows and labels read, how many were aligned (or kept as new concepts under
    `unmapped_labels: keep`), and what was left out with how many rows."""
    lines = []
    for name, alignment in alignments.items():
        counts = alignment.counts
        out = {label: counts[label] for label, match in alignment.matches.items() if match is None}
        kept = sum(1 for match in alignment.matches.values() if match is not None and match.method == "new")
        line = (
            f"source {name}: labels read from all {sum(counts.values()):,} labelled rows of the stream: "
            f"{len(counts)} labels, {len(counts) - len(out)} aligned"
        )
        if kept:
            line += f" ({kept} kept as new concepts)"
        if out:
            shown = ", ".join(f"{label!r} ({n:,} rows)" for label, n in sorted(out.items(), key=lambda kv: -kv[1]))
            line += f"; {len(out)} left out, {sum(out.values()):,} rows (unmapped_labels: {policy}): {shown}"
        lines.append(line)
    return lines


class LateLabels:
    """Labels of a source that the label pass did not see: the source changed after it was read.

    Each is aligned as the others were (`align_sources`, for this source alone) and under the
    same `unmapped_labels` policy: `error` stops the run in one line naming it, `drop` leaves
    its images out with a warning. `keep` cannot add a class once the model is built, so a
    new label under `keep` is one line as well.
    """

    def __init__(self, source: SourceConfig, data_args: DataArguments, label_space: LabelSpace, concept_of: dict):
        self.source, self.label_space = source, label_space
        self.data_args = copy.copy(data_args)
        self.data_args.sources = [source]
        self.concept_of = dict(concept_of)  # label -> concept index, or -1 for a label decided as left out
        self.index = {cid: i for i, cid in enumerate(label_space.ids)}

    def __call__(self, label) -> int:
        concept = self.concept_of.get(label)
        if concept is None:
            concept = self.concept_of[label] = self._align(label)
        return concept

    def _align(self, label) -> int:
        known = len(self.label_space.ids)
        try:
            alignment = align_sources({self.source.name: Counter({label: 1})}, self.data_args, self.label_space)
        except UserError as err:
            raise UserError(
                f"source '{self.source.name}': label {label!r}, which the label pass over the stream did not see "
                f"(the source changed since): {err}"
            ) from None
        match = alignment[self.source.name].matches.get(label)
        if len(self.label_space.ids) != known or (match is not None and match.concept not in self.index):
            raise UserError(
                f"source '{self.source.name}': label {label!r}, which the label pass over the stream did not see "
                "(the source changed since), is no concept of the registry; `unmapped_labels: keep` cannot add a "
                "class to a model already built: add it to the registry or the source's label_map, pin the "
                "source's `revision`, or set `unmapped_labels: drop`"
            )
        if match is None:
            logger.warning(
                "source %s: label %r, which the label pass over the stream did not see (the source changed "
                "since), is left out with its images (unmapped_labels: %s)",
                self.source.name,
                label,
                self.data_args.unmapped_labels,
            )
            return -1
        logger.info(
            "source %s: label %r, not seen by the label pass (the source changed since), is %s",
            self.source.name,
            label,
            match.concept,
        )
        return self.index[match.concept]


def _stream_rows(
    batch: dict, *, source: SourceConfig, read: LabelReader, concept_of, names, base_dir, bounds, on_bad_image
) -> dict:
    labels = batch[source.label_column]
    if names is not None:
        labels = [names[v] if v is not None and v >= 0 else None for v in labels]
    labels = [read(v) if v is not None else None for v in labels]
    checked = check_batch(batch[source.image_column], base_dir=base_dir)
    if on_bad_image == "error":
        _refuse_bad_rows(source, labels, checked)
    n = len(labels)
    concepts = [concept_of(v) if v is not None else -1 for v in labels]
    # A stable split from the content hash: copies of one image always fall in the same split.
    splits = [None if h is None else _hash_split(h, bounds) for h in checked["_hash"]]
    return {
        "image": checked["image"],
        "label": concepts,
        "language": [source.language] * n,
        "script": [source.script] * n,
        "source": [source.name] * n,
        "_hash": checked["_hash"],
        "_problem": checked["_problem"],
        "_split": splits,
    }


def _refuse_bad_rows(source: SourceConfig, labels: list, checked: dict) -> None:
    """`on_bad_image: error`, as `unify` applies it: a bad image or a row without a label stops the run."""
    problems = checked["_problem"]
    bad = [i for i, problem in enumerate(problems) if problem is not None]
    if bad:
        first = bad[0]
        raise UserError(
            f"source '{source.name}': image {checked['_file'][first] or 'in the stream'}: {problems[first]} "
            "(met while streaming); set `on_bad_image: skip` to leave such images out"
        )
    if any(label is None for label in labels):
        raise UserError(
            f"source '{source.name}': an image without a label in column '{source.label_column}' met while "
            "streaming; set `on_bad_image: skip` to leave such images out"
        )


def _hash_split(digest: str, bounds: tuple[float, float]) -> str:
    position = int(digest[:8], 16) / 0x1_0000_0000
    return "test" if position < bounds[0] else "validation" if position < bounds[1] else "train"


def _first_copies(stream):
    """Rows of `stream` whose content hash has not passed yet; a new pass starts with an empty memory."""
    seen: set[str] = set()
    for row in stream:
        if row["_hash"] not in seen:
            seen.add(row["_hash"])
            yield row


def streaming_splits(data_args: DataArguments, label_space: LabelSpace) -> dict:
    """{train, validation, test}: `IterableDataset`s with the unified columns, read while training.

    The same alignment, image checks and policies as `unify`; sources are mixed with
    `interleave_datasets` in proportion to their `weight`. Splits come from each image's
    content hash (so a copy never crosses splits), not from stratification, which needs
    the whole set; bad images are skipped and duplicates dropped as they stream by.
    Every label of every source is read first, from its label column alone (`label_pass`),
    and aligned as `unify` aligns them, so the `unmapped_labels` policy is applied before
    training with each label's rows counted (one line per source in the log). A label the
    pass did not see (the source changed since) follows the same policy as it comes
    (`LateLabels`). `on_bad_image: error` stops at the first bad image or unlabelled row.
    """
    streams = {}
    for source in data_args.sources:
        if source.own_splits:
            raise UserError(f"source '{source.name}': with `streaming: true`, give `split` as one name")
        streams[source.name] = load_source(source, source.split, streaming=True)
    readers = {
        source.name: LabelReader(source, partial(named_in_registry, label_space=label_space, language=source.language))
        for source in data_args.sources
    }
    passes = {
        source.name: label_pass(streams[source.name], source, readers[source.name]) for source in data_args.sources
    }
    counts = {name: labels for name, (labels, _) in passes.items()}
    if data_args.image_votes and not data_args.alignment_file:
        logger.info(
            "streaming: images do not vote on uncertain labels (no image is read before training); "
            "`polyglot-vision align RECIPE` lets them vote and writes a file for `alignment_file`"
        )
    alignments = align_sources(counts, data_args, label_space)
    for line in label_pass_lines(alignments, data_args.unmapped_labels):
        logger.info(line)
    unified = unified_features(label_space)
    features = Features(
        {
            **unified,
            "image": Image(decode=False),
            "_hash": Value("string"),
            "_problem": Value("string"),
            "_split": Value("string"),
        }
    )
    bounds = (data_args.test_fraction, data_args.test_fraction + data_args.validation_fraction)
    index = {cid: i for i, cid in enumerate(label_space.ids)}
    mapped = []
    for source in data_args.sources:
        concept_of = {label: index[m.concept] if m else -1 for label, m in alignments[source.name].matches.items()}
        _, how = passes[source.name]
        rows = partial(
            _stream_rows,
            source=source,
            read=readers[source.name],
            concept_of=LateLabels(source, data_args, label_space, concept_of),
            names=how.get("names"),
            base_dir=source_base_dir(source),
            bounds=bounds,
            on_bad_image=data_args.on_bad_image,
        )
        stream = streams[source.name]
        if isinstance((stream.features or {}).get(source.image_column), Image):
            stream = stream.cast_column(source.image_column, Image(decode=False))  # bytes, checked as in `unify`
        stream = stream.map(rows, batched=True, batch_size=256, remove_columns=stream.column_names, features=features)
        mapped.append(
            stream.filter(lambda problem, label: problem is None and label >= 0, input_columns=["_problem", "label"])
        )
    weights = np.asarray([s.weight for s in data_args.sources], dtype=np.float64)
    mixed = (
        mapped[0]
        if len(mapped) == 1
        else interleave_datasets(
            mapped,
            probabilities=(weights / weights.sum()).tolist(),
            seed=data_args.split_seed,
            stopping_strategy="all_exhausted",
        )
    )
    splits = {}
    for split in SPLITS:
        part = mixed.filter(lambda s, wanted=split: s == wanted, input_columns=["_split"])
        if data_args.deduplicate:  # copies share a hash, hence a split: each split drops its own repeats
            part = IterableDataset.from_generator(_first_copies, features=features, gen_kwargs={"stream": part})
        splits[split] = part.remove_columns(["_hash", "_problem", "_split"]).cast_column("image", Image())
    return splits
