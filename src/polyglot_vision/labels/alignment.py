"""Alignment of every source's labels onto the label space, the unmapped-label policy, and its report.

`align_sources` runs the registry strategies of `LabelSpace.resolve` on each
source's distinct labels, then (when the recipe names an embedding backend)
assigns the labels left over one-to-one by multilingual embedding similarity,
and finally applies `unmapped_labels`: `error` lists every unmapped label with
its closest concepts and a `label_map` to paste into the recipe, `drop` leaves
their images out, `keep` makes each a new concept.

`write_report` writes alignment_report.json and alignment_report.md: each source
label -> concept, method, score and image count, with the image checks,
duplicates and split counts that `data.unify` measured.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError
from .embeddings import load_backend
from .registry import LabelSpace, Match, normalise

logger = logging.getLogger(__name__)

REPORT_JSON = "alignment_report.json"
REPORT_MD = "alignment_report.md"


@dataclass
class SourceAlignment:
    """How one source's labels map: {label: Match or None} and how many images carry each label."""

    source: object  # the recipe's source (name, language, label_map)
    matches: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    @property
    def unmapped(self) -> list:
        return [label for label, match in self.matches.items() if match is None]


def align_sources(label_counts: dict[str, dict], data_args, label_space: LabelSpace) -> dict:
    """{source name: SourceAlignment} for every source, after the `unmapped_labels` policy.

    `label_counts` is {source name: {label: images}}. Under `keep`, new concepts are
    added to `label_space` itself, so that the model built from it has their heads.
    """
    backend = load_backend(data_args.label_embeddings)
    result = {}
    for source in data_args.sources:
        counts = label_counts[source.name]
        labels = sorted(counts, key=str)
        matches = label_space.align(labels, language=source.language, label_map=source.label_map)
        left = [label for label in labels if matches[label] is None]
        if left and backend is not None:
            taken = {m.concept for m in matches.values() if m is not None}
            matches.update(
                label_space.assign_by_embedding(
                    [str(label) for label in left], backend, data_args.embedding_threshold, exclude=taken
                )
            )
            matches = {label: matches.get(label, matches.get(str(label))) for label in labels}
        result[source.name] = SourceAlignment(source, matches, counts)
        methods = sorted({m.method for m in matches.values() if m is not None})
        logger.info(
            "source %s: %d labels aligned by %s",
            source.name,
            len(labels) - len(result[source.name].unmapped),
            methods or "nothing",
        )
    _apply_policy(result, data_args, label_space, backend)
    return result


def _apply_policy(result: dict, data_args, label_space: LabelSpace, backend) -> None:
    unmapped = [(a.source, label) for a in result.values() for label in a.unmapped]
    if not unmapped:
        return
    if data_args.unmapped_labels == "error":
        raise UserError(unmapped_message(unmapped, data_args, label_space, backend))
    if data_args.unmapped_labels == "keep":
        for source, label in unmapped:
            concept_id = str(label).strip()
            existing = [c for c in label_space.ids if normalise(c) == normalise(concept_id)]
            if not existing:
                label_space.add_concept(concept_id, source.language, concept_id)
            result[source.name].matches[label] = Match(existing[0] if existing else concept_id, "new", 1.0)
        return
    for source, label in unmapped:  # drop
        logger.warning(
            "source %s: label %r maps to no concept; its %d images are left out",
            source.name,
            label,
            result[source.name].counts[label],
        )


def unmapped_message(unmapped: list, data_args, label_space: LabelSpace, backend) -> str:
    """One line: every unmapped label with its closest concepts, and the label_map to paste."""
    parts, maps = [], {}
    for source, label in unmapped:
        suggestions = label_space.suggest(label, k=3, backend=backend)
        closest = ", ".join(f"{cid!r} {score:.2f}" for cid, score in suggestions)
        parts.append(f"{label!r} (source '{source.name}', closest: {closest})")
        maps.setdefault(source.name, {})[label] = suggestions[0][0] if suggestions else "?"
    snippet = "; ".join(
        f"sources '{name}': label_map: "
        + yaml.safe_dump(mapping, default_flow_style=True, allow_unicode=True, width=10**6).strip()
        for name, mapping in maps.items()
    )
    return (
        f"unmappable label(s) for registry {data_args.label_space}: {', '.join(parts)}; "
        f"add them to the registry, or paste into the recipe (and check) {snippet}; "
        "or set `unmapped_labels: drop` / `keep`"
    )


# ---- the report ---------------------------------------------------------------------------------


def alignment_rows(alignments: dict) -> list[dict]:
    rows = []
    for name, alignment in alignments.items():
        for label, match in alignment.matches.items():
            rows.append(
                {
                    "source": name,
                    "language": alignment.source.language,
                    "label": label if isinstance(label, (int, float)) else str(label),
                    "concept": match.concept if match else None,
                    "method": match.method if match else "dropped",
                    "score": match.score if match else None,
                    "images": int(alignment.counts.get(label, 0)),
                }
            )
    return rows


def write_report(out_dir: str | Path, report: dict) -> None:
    """alignment_report.json (everything) and alignment_report.md (tables a person reads) in `out_dir`."""
    out_dir = Path(out_dir)
    (out_dir / REPORT_JSON).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")


def render_markdown(report: dict) -> str:
    lines = [
        "# Alignment report",
        "",
        f"Label registry: `{report['label_space']}`"
        + (f"; embedding backend: {report['embedding_backend']}" if report.get("embedding_backend") else ""),
        "",
    ]
    lines += [
        "## Source labels → concepts",
        "",
        "| source | language | label | concept | method | score | images |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for row in report["alignment"]:
        score = "–" if row["score"] is None else f"{row['score']:.3f}"
        lines.append(
            f"| {row['source']} | {row['language']} | {row['label']} | {row['concept'] or '–'} | "
            f"{row['method']} | {score} | {row['images']} |"
        )
    lines += [
        "",
        "## Images per source",
        "",
        "| source | read | bad images skipped | duplicates removed | kept |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in report["sources"].items():
        lines.append(f"| {name} | {row['read']} | {row['bad_images']} | {row['duplicates']} | {row['kept']} |")
    bad = {kind: n for row in report["sources"].values() for kind, n in row["bad_by_kind"].items()}
    if bad:
        lines += ["", "## Bad images", "", "| source | problem | images |", "|---|---|---:|"]
        for name, row in report["sources"].items():
            for kind, n in row["bad_by_kind"].items():
                lines.append(f"| {name} | {kind} | {n} |")
    dup = report["duplicates"]
    lines += [
        "",
        "## Duplicates",
        "",
        f"Identical images found: {dup['removed']} extra copies removed "
        f"({dup['within_source']} within a source, {dup['across_sources']} across sources; "
        f"{dup['across_splits']} of them sat in another split than the copy kept, so none leaks into test); "
        f"{dup['label_conflicts']} copies carried a different concept than the copy kept.",
        "",
    ]
    lines += [
        "## Splits",
        "",
        "| split | images | " + " | ".join(report["languages"]) + " |",
        "|---|---:|" + "---:|" * len(report["languages"]),
    ]
    for split, row in report["splits"].items():
        cells = [str(row["by_language"].get(lang, 0)) for lang in report["languages"]]
        lines.append(f"| {split} | {row['images']} | " + " | ".join(cells) + " |")
    weights = report.get("language_sampling", {})
    if weights:
        lines += [
            "",
            f"## Language sampling (p ∝ n^τ, τ = {weights['temperature']})",
            "",
            "| language | train images | share of draws |",
            "|---|---:|---:|",
        ]
        for lang, row in weights["languages"].items():
            lines.append(f"| {lang} | {row['images']} | {row['probability']:.3f} |")
    return "\n".join(lines) + "\n"
