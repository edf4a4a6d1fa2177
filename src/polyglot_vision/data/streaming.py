"""`streaming: true`: the sources as `IterableDataset`s, read while training, for sets larger than the disk.

The same alignment (labels/alignment.py), image checks (images.py) and policies as
`data.unify`, applied as examples stream by; sources are mixed with
`interleave_datasets` by their `weight`. What needs the whole set is done
differently: splits come from each image's content hash instead of
stratification, and duplicates are dropped per split and pass.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial

import numpy as np
from datasets import ClassLabel, Features, Image, IterableDataset, Value, interleave_datasets

from ..errors import UserError
from ..images import check_batch
from ..labels import LabelSpace, align_sources
from .sources import SPLITS, DataArguments, SourceConfig, label_value, load_source, source_base_dir
from .unify import unified_features

logger = logging.getLogger(__name__)

# Labels read from the head of a streamed source to align it (a ClassLabel gives them all at once).
STREAM_ALIGN_PEEK = 10_000


def _stream_labels(stream, source: SourceConfig) -> tuple[list, dict]:
    """(labels seen at the head of the stream, how to read a raw value as the community wrote it)."""
    feature = (stream.features or {}).get(source.label_column)
    if isinstance(feature, ClassLabel):
        return list(feature.names), {"names": feature.names}
    head = stream.select_columns([source.label_column]).take(STREAM_ALIGN_PEEK)
    return [label_value(row[source.label_column]) for row in head], {}


def _stream_rows(batch: dict, *, source: SourceConfig, concept_of: dict, names, base_dir, bounds) -> dict:
    labels = batch[source.label_column]
    if names is not None:
        labels = [names[v] if v is not None and v >= 0 else None for v in labels]
    checked = check_batch(batch[source.image_column], base_dir=base_dir)
    n = len(labels)
    concepts = [concept_of.get(label_value(v), -1) if v is not None else -1 for v in labels]
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
    Labels are aligned from a ClassLabel's names or the first labels of a stream; a label
    first met later, after alignment, is left out.
    """
    streams = {}
    for source in data_args.sources:
        if source.own_splits:
            raise UserError(f"source '{source.name}': with `streaming: true`, give `split` as one name")
        streams[source.name] = load_source(source, source.split, streaming=True)
    heads = {source.name: _stream_labels(streams[source.name], source) for source in data_args.sources}
    counts = {name: Counter(v for v in labels if v is not None) for name, (labels, _) in heads.items()}
    if data_args.image_votes and not data_args.alignment_file:
        logger.info(
            "streaming: images do not vote on uncertain labels (nothing is read before training); "
            "`polyglot-vision align RECIPE` lets them vote and writes a file for `alignment_file`"
        )
    alignments = align_sources(counts, data_args, label_space)
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
        concept_of = {label: index[m.concept] for label, m in alignments[source.name].matches.items() if m}
        _, how = heads[source.name]
        rows = partial(
            _stream_rows,
            source=source,
            concept_of=concept_of,
            names=how.get("names"),
            base_dir=source_base_dir(source),
            bounds=bounds,
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
