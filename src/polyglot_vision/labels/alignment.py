"""Alignment of every source's labels onto the label space: decisions, evidence, review, policy, report.

Every source label ends in one of three decisions (DESIGN.md, "Alignment decisions"):

- ``accepted``: strong and unambiguous evidence. A reviewed decision (the recipe's
  `alignment_file`), the recipe's `label_map`, or the registry in the source's own
  language (id, name, alias, numeral, number word) are accepted as they are. Text
  evidence (embeddings.py) is accepted only when its score reaches
  `embedding_threshold` and leads both the runner-up concept and the source's other
  labels competing for that concept by `embedding_margin`; image evidence (the
  label's images vote for the accepted concepts they resemble, data/votes.py)
  only as a second witness: when most of its images vote for the concept that
  its text evidence names first, no other label of the source competes for it,
  and the one-to-one assignment agrees. Images alone are never merged: drawings
  of two things by different hands can look alike.
- ``proposed``: some evidence, not enough: shown with its top-3 candidates, each
  with its text and image evidence, ordered by a one-to-one (Hungarian)
  assignment of the source's labels on the combined score; never merged.
  A registry name in another language than the source's ("chat" in an English
  source) is such evidence, never a match.
- ``unmapped``: no evidence at all.

`unmapped_labels` then decides what happens to the labels not accepted: `error`
stops with one line listing them and a `label_map` to fill in (`?` where a person
must choose), `drop` leaves their images out, `keep` makes each a new concept;
no policy ever merges a proposal. `review_document` writes the whole picture as
alignment.yaml (`polyglot-vision align`), which `read_review` reads back.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..errors import UserError
from ..outputs import write_json, write_text
from ..paths import read_yaml
from ..rendering import markdown_table, md
from .embeddings import TextEvidence, load_backend
from .languages import language_key
from .registry import LabelSpace, Match, normalise

logger = logging.getLogger(__name__)

REPORT_JSON = "alignment_report.json"
REPORT_MD = "alignment_report.md"
DECISIONS = ("accepted", "proposed", "unmapped")
# Image evidence: combined score = IMAGE_WEIGHT x vote share + (1 - IMAGE_WEIGHT) x text score (for ranking).
IMAGE_WEIGHT = 0.6
IMAGE_ACCEPT = 0.5  # least share of a label's images voting for the concept that its text names first
TOP_K = 3
# Share of a label's abstaining images counted, in ranking only, for the concepts no accepted source shows.
UNSEEN_PRIOR = 0.5


@dataclass
class Candidate:
    concept: str
    text: float | None  # text score (embedding, or 1.0 for a registry name in another language)
    images: float | None  # share of the label's images voting for the concept
    score: float  # what the one-to-one assignment compared
    name_in: str | None = None  # the language whose registry name the label is, when it is one

    def to_dict(self) -> dict:
        row = {"concept": self.concept, "text": self.text, "images": self.images, "score": round(self.score, 4)}
        return {**row, "name_in": self.name_in} if self.name_in else row


@dataclass
class Decision:
    status: str  # one of DECISIONS
    match: Match | None = None  # the accepted concept, method and score
    candidates: list = field(default_factory=list)  # Candidate, best first
    evidence: str = ""  # what the decision rests on, in words
    reviewed: bool = False


@dataclass
class SourceAlignment:
    """How one source's labels map: {label: Match or None}, the decisions behind them, images per label."""

    source: object  # the recipe's source (name, language, label_map)
    matches: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    decisions: dict = field(default_factory=dict)
    languages: dict = field(default_factory=dict)  # {label: language} where its rows say another than the source

    def language_of(self, label) -> str:
        return self.languages.get(label, self.source.language)

    @property
    def unmapped(self) -> list:
        return [label for label, match in self.matches.items() if match is None]


def align_sources(
    label_counts: dict[str, dict],
    data_args,
    label_space: LabelSpace,
    image_votes=None,
    policy: bool = True,
    label_languages: dict | None = None,
) -> dict:
    """{source name: SourceAlignment} for every source, after the `unmapped_labels` policy (unless `policy=False`).

    `label_counts` is {source name: {label: images}}. `image_votes(train, queries)` is the
    image evidence: train is {concept: [(source name, label), …]} of accepted labels, queries
    [(source name, label), …]; it returns {(source name, label): {concept: vote share}}.
    Under `keep`, new concepts are added to `label_space` itself, so that the model has their heads.
    `label_languages` ({source name: {label: language}}) names the labels whose rows all carry
    another language than the source's (a manifest's `language` column): the registry reads them
    in that language.
    """
    backend = load_backend(data_args.label_embeddings)
    text = TextEvidence(backend, label_space) if backend is not None else None
    reviewed = read_review(data_args.alignment_file, data_args, label_space, label_counts)
    result, uncertain = {}, {}
    for source in data_args.sources:
        counts = label_counts[source.name]
        labels = sorted(counts, key=str)
        languages = (label_languages or {}).get(source.name, {})
        if source.label_map:
            label_space.align([], label_map=source.label_map)  # checks every target
        decisions = {}
        for label in labels:
            decision = reviewed.get((source.name, str(label)))
            if decision is None:
                match = label_space.resolve(label, languages.get(label, source.language), source.label_map)
                decision = Decision("accepted", match, [], _registry_evidence(match)) if match else None
            if decision is not None:
                decisions[label] = decision
        left = [label for label in labels if label not in decisions]
        taken = {d.match.concept for d in decisions.values() if d.match is not None}
        uncertain[source.name] = _text_round(left, source, label_space, text, taken, data_args, decisions)
        result[source.name] = SourceAlignment(source, {}, counts, decisions, languages)

    queries = [(name, label) for name, rows in uncertain.items() for label in rows["labels"]]
    votes, train = {}, {}
    if image_votes is not None and queries:
        for name, alignment in result.items():
            for label, decision in alignment.decisions.items():
                if decision.status == "accepted" and decision.match is not None:
                    train.setdefault(decision.match.concept, []).append((name, label))
        if len(train) >= 2:
            votes = image_votes(train, queries)
    for name, rows in uncertain.items():
        covered = set(train) if votes else set()
        _final_round(rows, votes, name, covered, result[name].decisions, text is not None)

    for alignment in result.values():
        alignment.decisions = {label: alignment.decisions[label] for label in sorted(alignment.counts, key=str)}
        alignment.matches = {label: d.match for label, d in alignment.decisions.items()}
        methods = sorted({m.method for m in alignment.matches.values() if m is not None})
        logger.info(
            "source %s: %d of %d labels accepted (%s)",
            alignment.source.name,
            sum(m is not None for m in alignment.matches.values()),
            len(alignment.matches),
            ", ".join(methods) or "none",
        )
    if policy:
        _apply_policy(result, data_args, label_space)
    return result


def _registry_evidence(match: Match) -> str:
    return {
        "explicit": "the recipe's label_map",
        "id": "a concept id",
        "name": "a registry name in the source's language",
        "normalised": "a registry name in the source's language (case, accents or plural aside)",
        "numeral": "a numeral's Unicode value",
        "number_word": "a number word in the source's language",
    }.get(match.method, match.method)


def _text_round(labels, source, label_space, text, taken, data_args, decisions) -> dict:
    """Text evidence for the labels the registry did not settle; accepts the strong, unambiguous ones."""
    concepts = [cid for cid in label_space.ids if cid not in taken]
    scores = np.zeros((len(labels), len(concepts)))
    if text is not None and labels and concepts:
        all_scores, ids = text.scores(list(labels), source.language)
        column = {cid: j for j, cid in enumerate(ids)}
        for j, cid in enumerate(concepts):
            scores[:, j] = all_scores[:, column[cid]] if cid in column else -1.0
    names = {label: label_space.other_language_names(label, source.language) for label in labels}
    named = np.zeros_like(scores, dtype=bool)
    for i, label in enumerate(labels):
        for cid, _ in names[label]:
            if cid in concepts:
                named[i, concepts.index(cid)] = True
    scores = np.where(named, 1.0, scores)
    rows = {"labels": [], "concepts": concepts, "text": {}, "names": names, "language": source.language}
    for i, label in enumerate(labels):
        row = scores[i]
        if text is not None and len(concepts) and not named[i].any():
            j = int(row.argmax())
            runner_up = np.delete(row, j).max() if len(row) > 1 else -1.0
            rivals = np.delete(scores[:, j], i)
            rival = rivals.max() if rivals.size else -1.0
            margin = data_args.embedding_margin
            if row[j] >= data_args.embedding_threshold and row[j] - runner_up >= margin and row[j] - rival >= margin:
                decisions[label] = Decision(
                    "accepted",
                    Match(concepts[j], "embedding", round(float(row[j]), 4)),
                    [Candidate(concepts[j], round(float(row[j]), 4), None, float(row[j]))],
                    f"text score {row[j]:.2f}, {row[j] - runner_up:.2f} ahead of the next concept",
                )
                continue
        rows["labels"].append(label)
        rows["text"][label] = row if (text is not None or named[i].any()) else None
    return rows


def _final_round(rows, votes, name, covered, decisions, has_text) -> None:
    """Image evidence combined with text for the labels still open: accept, propose or leave unmapped.

    Images that resemble no accepted concept are evidence too: such a label more likely names a
    concept that no accepted source shows (not in `covered`), so its proposals rank those first.
    """
    labels, concepts = rows["labels"], rows["concepts"]
    if not labels:
        return
    text = np.zeros((len(labels), len(concepts)))
    image = np.zeros_like(text)
    voted = np.zeros(len(labels), dtype=bool)
    for i, label in enumerate(labels):
        if rows["text"][label] is not None:
            text[i] = np.clip(rows["text"][label], 0.0, 1.0)
        shares = votes.get((name, label))
        if shares is not None:
            voted[i] = True
            for j, cid in enumerate(concepts):
                image[i, j] = shares.get(cid, 0.0)
    combined = np.where(voted[:, None], IMAGE_WEIGHT * image + (1 - IMAGE_WEIGHT) * text, text)
    unseen = np.array([c not in covered for c in concepts], dtype=float)
    abstained = np.clip(1.0 - image.sum(axis=1), 0.0, 1.0) * voted
    ranking = combined + IMAGE_WEIGHT * UNSEEN_PRIOR * abstained[:, None] * unseen[None, :]
    first = {}
    if concepts:
        from scipy.optimize import linear_sum_assignment

        assigned_rows, assigned_cols = linear_sum_assignment(ranking, maximize=True)
        first = dict(zip(assigned_rows.tolist(), assigned_cols.tolist()))
    for i, label in enumerate(labels):
        row, ranked = combined[i], ranking[i]
        order = [int(j) for j in np.argsort(-ranked, kind="stable")]
        if i in first and ranked[first[i]] > 0:
            order = [first[i], *(j for j in order if j != first[i])]
        order = [j for j in order if ranked[j] > 0 or text[i, j] > 0 or image[i, j] > 0][:TOP_K]
        other_names = rows["names"][label]

        def candidate(j: int, i: int = i, scores=rows["text"][label], names=rows["names"][label]) -> Candidate:
            text_score = round(float(scores[j]), 4) if scores is not None else None
            shown_image = round(float(image[i, j]), 4) if voted[i] else None
            name_in = next((lang for cid, lang in names if cid == concepts[j]), None)
            return Candidate(concepts[j], text_score, shown_image, float(ranking[i, j]), name_in)

        candidates = [candidate(j) for j in order]
        if voted[i] and concepts and has_text and rows["text"][label] is not None:
            # Two witnesses: most of the images vote for the concept that the text names first, no other label of
            # the source has as many votes for it, and the one-to-one assignment gives it this label.
            j = int(image[i].argmax())
            rivals = np.delete(image[:, j], i)
            if (
                image[i, j] >= IMAGE_ACCEPT
                and j == int(np.argmax(rows["text"][label]))
                and (not rivals.size or rivals.max() < image[i, j])
                and first.get(i) == j
            ):
                method = "images"
                decisions[label] = Decision(
                    "accepted",
                    Match(concepts[j], method, round(float(row[j]), 4)),
                    [candidate(j), *(c for c in candidates if c.concept != concepts[j])][:TOP_K],
                    f"{image[i, j]:.0%} of its images vote for it"
                    + (f", text score {rows['text'][label][j]:.2f}" if rows["text"][label] is not None else ""),
                )
                continue
        parts = []
        if other_names:
            parts.append("a registry name in another language: " + ", ".join(f"{c}@{lang}" for c, lang in other_names))
        if has_text:
            parts.append("text evidence too weak or ambiguous")
        if voted[i]:
            parts.append(
                "image votes "
                + (", ".join(f"{c.concept} {c.images:.0%}" for c in candidates if c.images) or "abstained")
            )
        status = "proposed" if candidates and (other_names or has_text or image[i].any()) else "unmapped"
        decisions[label] = Decision(status, None, candidates, "; ".join(parts) or "no evidence")


def _apply_policy(result: dict, data_args, label_space: LabelSpace) -> None:
    open_labels = [
        (a.source, label, d) for a in result.values() for label, d in a.decisions.items() if d.status != "accepted"
    ]
    if not open_labels:
        return
    undecided = [(source, label, d) for source, label, d in open_labels if not d.reviewed]
    if data_args.unmapped_labels == "error" and undecided:
        raise UserError(unmapped_message(undecided, data_args))
    if data_args.unmapped_labels == "keep":
        language = {(source.name, label): result[source.name].language_of(label) for source, label, _ in open_labels}
        ids = kept_concept_ids([(language[(s.name, label)], label) for s, label, _ in open_labels], label_space)
        for source, label, decision in open_labels:
            concept_id = ids[(language_key(language[(source.name, label)]), _spelling(label))]
            if concept_id not in label_space.ids:
                label_space.add_concept(concept_id, language[(source.name, label)], str(label).strip())
            match = Match(concept_id, "new", 1.0)
            result[source.name].matches[label] = match
            decision.match = match
        return
    for source, label, decision in open_labels:  # drop, or labels a person reviewed as unmapped
        logger.warning(
            "source %s: label %r is %s; its %d images are left out",
            source.name,
            label,
            decision.status,
            result[source.name].counts[label],
        )


def _spelling(label) -> str:
    return unicodedata.normalize("NFC", str(label).strip()).casefold()


def kept_concept_ids(labels: list[tuple[str, object]], label_space: LabelSpace) -> dict[tuple[str, str], str]:
    """{(language, spelling): new concept id} for labels kept as new concepts (`unmapped_labels: keep`).

    Kept labels are joined only on the evidence that would accept them: the same spelling in the
    same language (case aside). The same word in two languages ("pomme" in French, "Pomme" in
    German; "gift" and "Gift") may name two things, so where spellings meet across languages, or
    meet a concept the registry already has, each keeps its language in its id: "Pomme@de".
    """
    spelt: dict[str, set[str]] = {}
    first: dict[tuple[str, str], tuple[str, str]] = {}
    for language, label in labels:
        key = (language_key(language), _spelling(label))
        first.setdefault(key, (str(label).strip(), language))
        spelt.setdefault(normalise(label), set()).add(key[0])
    taken = {normalise(cid) for cid in label_space.ids}
    ids = {}
    for key, (text, language) in first.items():
        shared = len(spelt[normalise(text)]) > 1 or normalise(text) in taken
        ids[key] = f"{text}@{language}" if shared else text
    return ids


def unmapped_message(undecided: list, data_args) -> str:
    """One line: every label not accepted with its candidates, and a label_map to fill in and paste."""
    parts, maps = [], {}
    for source, label, decision in undecided:
        shown = ", ".join(_candidate_text(c) for c in decision.candidates) or "no candidate"
        parts.append(f"{label!r} (source '{source.name}', {decision.status}: {shown})")
        maps.setdefault(source.name, {})[label] = "?"
    snippet = "; ".join(
        f"sources '{name}': label_map: "
        + yaml.safe_dump(mapping, default_flow_style=True, allow_unicode=True, width=10**6).strip()
        for name, mapping in maps.items()
    )
    return (
        f"{len(undecided)} label(s) not aligned with confidence to registry {data_args.label_space}: "
        f"{', '.join(parts)}; review them with `polyglot-vision align RECIPE` (then `alignment_file:`), "
        f"add them to the registry, or paste into the recipe with each '?' replaced by a concept id: {snippet}; "
        "or set `unmapped_labels: drop` / `keep`"
    )


def _candidate_text(candidate: Candidate) -> str:
    if candidate.name_in:
        evidence = [f"its name in {candidate.name_in}" if candidate.name_in != "id" else "its id"]
    else:
        evidence = [f"text {candidate.text:.2f}"] if candidate.text is not None else []
    evidence += [f"images {candidate.images:.0%}"] if candidate.images is not None else []
    return f"{candidate.concept!r} " + " ".join(evidence) if evidence else repr(candidate.concept)


# ---- review: alignment.yaml ---------------------------------------------------------------------

REVIEW_HEADER = """\
# Label alignment for review (polyglot-vision align). For each source label:
#   decision: accepted | proposed | unmapped      concept: the concept id when accepted
# Edit a decision to `accepted` with the concept you choose (or to `unmapped`), then
# name this file in the recipe as `alignment_file: {path}`: prepare and train read it back,
# and what is `accepted` or `unmapped` here is never guessed again. `proposed` labels
# are aligned afresh on every run.
"""


def review_document(alignments: dict, data_args, label_space: LabelSpace, path: str | Path, text_evidence=None) -> str:
    """alignment.yaml: every source label, its decision, concept, method and top-3 candidates with evidence."""
    sources = {}
    for name, alignment in alignments.items():
        entries = []
        for label, decision in alignment.decisions.items():
            entry = {
                "label": label if isinstance(label, (int, float)) else str(label),
                "decision": decision.status,
                "concept": decision.match.concept if decision.status == "accepted" and decision.match else None,
                "method": decision.match.method if decision.match else None,
                "evidence": decision.evidence,
                "images": int(alignment.counts.get(label, 0)),
                "candidates": [c.to_dict() for c in decision.candidates],
            }
            entries.append(entry)
        sources[name] = {"language": alignment.source.language, "labels": entries}
    body = {
        "label_space": data_args.label_space,
        "registry": {"name": label_space.name, "concepts": concepts_fingerprint(label_space)},
        "text_evidence": text_evidence,
        "sources": sources,
    }
    return REVIEW_HEADER.format(path=path) + yaml.safe_dump(
        body, allow_unicode=True, sort_keys=False, width=110, default_flow_style=None
    )


def concepts_fingerprint(label_space: LabelSpace) -> str:
    """A short hash of the registry's concept ids, in order: a review is read back only against the same ids."""
    return hashlib.blake2b("\n".join(label_space.ids).encode("utf-8"), digest_size=8).hexdigest()


def _check_registry(path: Path, data: dict, label_space: LabelSpace) -> None:
    """A review written against another registry (another name, or other concept ids) is refused in one line."""
    registry = data.get("registry")
    if registry is None:  # written before reviews recorded their registry: nothing to compare
        return
    if not isinstance(registry, dict):
        raise UserError(f"alignment_file {path}: `registry` must be a mapping with `name` and `concepts`")
    name, fingerprint = registry.get("name"), registry.get("concepts")
    if name != label_space.name or fingerprint != concepts_fingerprint(label_space):
        raise UserError(
            f"alignment_file {path}: reviewed against the label registry {name!r} "
            f"(concepts {fingerprint}), not {label_space.name!r} (concepts {concepts_fingerprint(label_space)}, "
            f"{label_space.source}); review again with `polyglot-vision align RECIPE`"
        )


def read_review(path, data_args, label_space: LabelSpace, label_counts: dict) -> dict:
    """{(source name, label as text): Decision} of the accepted and unmapped entries of an alignment file.

    A label decided twice in different ways (accepted as two concepts, or accepted and unmapped)
    is refused, naming it; so is a review written against another label registry.
    """
    if not path:
        return {}
    path = Path(path)
    data = read_yaml(path, "alignment_file", hint=" (write it with `polyglot-vision align RECIPE`)")
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(sources, dict):
        raise UserError(f"alignment_file {path}: expected a mapping with `sources`")
    _check_registry(path, data, label_space)
    known = {source.name for source in data_args.sources}
    reviewed, decided = {}, {}
    for name, entry in sources.items():
        if name not in known:
            raise UserError(
                f"alignment_file {path}: source {name!r} is not in the recipe ({', '.join(sorted(known))})"
            )
        labels = {str(label) for label in label_counts.get(name, {})}
        for item in (entry or {}).get("labels") or []:
            label = str(item.get("label")) if isinstance(item, dict) else None
            if label is None or label not in labels:
                raise UserError(
                    f"alignment_file {path}: source '{name}' has no label {label!r} "
                    f"(it has {', '.join(sorted(labels)[:10])}{', …' if len(labels) > 10 else ''})"
                )
            status = item.get("decision")
            concept = None if item.get("concept") is None else str(item.get("concept"))
            said = (status, concept if status == "accepted" else None)
            earlier = decided.setdefault((name, label), said)
            if earlier != said:
                raise UserError(
                    f"alignment_file {path}: label {label!r} of source '{name}' is decided twice "
                    f"({_said(earlier)} and {_said(said)}); keep one decision"
                )
            if status not in DECISIONS:
                raise UserError(
                    f"alignment_file {path}: label {label!r} of source '{name}': decision {status!r}; "
                    f"use one of {', '.join(DECISIONS)}"
                )
            if status == "accepted":
                if concept not in label_space.ids:
                    raise UserError(
                        f"alignment_file {path}: label {label!r} of source '{name}' is accepted as {concept!r}, "
                        f"which is not a concept of {label_space.name!r} ({label_space.source})"
                    )
                reviewed[(name, label)] = Decision(
                    "accepted", Match(concept, "reviewed", 1.0), [], f"reviewed in {path.name}", True
                )
            elif status == "unmapped":
                reviewed[(name, label)] = Decision("unmapped", None, [], f"reviewed in {path.name}", True)
    return reviewed


def _said(decision: tuple) -> str:
    status, concept = decision
    return f"{status} as {concept!r}" if status == "accepted" else str(status)


# ---- the report ---------------------------------------------------------------------------------


def alignment_rows(alignments: dict) -> list[dict]:
    rows = []
    for name, alignment in alignments.items():
        for label, match in alignment.matches.items():
            decision = alignment.decisions.get(label)
            rows.append(
                {
                    "source": name,
                    "language": alignment.language_of(label),
                    "label": label if isinstance(label, (int, float)) else str(label),
                    "concept": match.concept if match else None,
                    "decision": decision.status if decision else ("accepted" if match else "unmapped"),
                    "method": match.method if match else "dropped",
                    "score": match.score if match else None,
                    "evidence": decision.evidence if decision else "",
                    "candidates": [c.to_dict() for c in decision.candidates] if decision else [],
                    "images": int(alignment.counts.get(label, 0)),
                }
            )
    return rows


def write_report(out_dir: str | Path, report: dict) -> None:
    """alignment_report.json (everything) and alignment_report.md (tables a person reads) in `out_dir`."""
    out_dir = Path(out_dir)
    write_json(out_dir / REPORT_JSON, report)
    write_text(out_dir / REPORT_MD, render_markdown(report))


def render_markdown(report: dict) -> str:
    lines = [
        "# Alignment report",
        "",
        f"Label registry: {md(report['label_space'])}"
        + (f"; text evidence: {report['text_evidence']}" if report.get("text_evidence") else "; no text embeddings")
        + ("; image votes: on" if report.get("image_votes") else "; image votes: off"),
        "",
    ]
    rows = [
        (
            row["source"],
            row["language"],
            row["label"],
            row.get("decision", ""),
            row["concept"] or "–",
            row["method"],
            "–" if row["score"] is None else f"{row['score']:.3f}",
            ", ".join(_candidate_text(Candidate(**c)) for c in row.get("candidates", [])) or "–",
            row.get("evidence", ""),
            row["images"],
        )
        for row in report["alignment"]
    ]
    header = ["source", "language", "label", "decision", "concept", "method", "score"]
    header += ["candidates (text, images)", "evidence", "images"]
    lines += ["## Source labels → concepts", "", *markdown_table(header, rows, numeric=(6, 9))]
    rows = [
        (name, row["read"], row["bad_images"], row["duplicates"], row.get("conflicts", 0), row["kept"])
        for name, row in report["sources"].items()
    ]
    header = ["source", "read", "bad images skipped", "duplicates removed", "label conflicts left out", "kept"]
    lines += ["", "## Images per source", "", *markdown_table(header, rows, numeric=(1, 2, 3, 4, 5))]
    lines += outside_files_lines(report)
    bad = {kind: n for row in report["sources"].values() for kind, n in row["bad_by_kind"].items()}
    if bad:
        rows = [(name, kind, n) for name, row in report["sources"].items() for kind, n in row["bad_by_kind"].items()]
        lines += ["", "## Bad images", "", *markdown_table(["source", "problem", "images"], rows, numeric=(2,))]
    if report.get("notes"):
        lines += ["", "## Notes", "", *(f"- {note}" for note in report["notes"])]
    dup = report["duplicates"]
    lines += [
        "",
        "## Duplicates",
        "",
        f"Identical images found: {dup['removed']} extra copies removed "
        f"({dup['within_source']} within a source, {dup['across_sources']} across sources; "
        f"{dup['across_splits']} of them sat in another split than the copy kept, so none leaks into test); "
        f"{dup['label_conflicts']} image(s) carried different concepts in different places "
        f"({dup['conflict_images_dropped']} copies of them left out).",
        "",
    ]
    languages = report["languages"]
    rows = [
        (split, row["images"], *(row["by_language"].get(lang, 0) for lang in languages))
        for split, row in report["splits"].items()
    ]
    lines += ["## Splits", "", *markdown_table(["split", "images", *languages], rows, range(1, len(languages) + 2))]
    weights = report.get("language_sampling", {})
    if weights:
        lines += [
            "",
            f"## Language sampling (p ∝ n^τ, τ = {weights['temperature']})",
            "",
            *markdown_table(
                ["language", "train images", "share of draws"],
                [(lang, row["images"], f"{row['probability']:.3f}") for lang, row in weights["languages"].items()],
                numeric=(1, 2),
            ),
        ]
    return "\n".join(lines) + "\n"


def outside_files_lines(report: dict) -> list[str]:
    """Markdown lines counting, per source, the files read from outside its own folder (none: no line)."""
    outside = {name: row["outside_files"] for name, row in report["sources"].items() if row.get("outside_files")}
    if not outside:
        return []
    counts = ", ".join(f"{md(name)} {n}" for name, n in outside.items())
    return ["", f"Files read from outside their source's folder (the recipe set `allow_outside: true`): {counts}."]
