"""What an evaluation could not measure: groups with no image in the evaluated split.

A test table lists the languages, scripts, sources and concepts it has images of; one
that has none simply vanishes from it. `not_evaluated` names them instead, so that the
console, `metrics.json` and the model card can say what the numbers do not cover.
"""

from __future__ import annotations

from ..errors import printable

COVERAGE_COLUMNS = ("language", "script", "concept", "source")
# More names than this on one console line are counted, not listed.
SHOWN_PER_COLUMN = 12


def _values(part, column: str, labels: list[str]) -> set[str]:
    if part is None or not len(part):
        return set()
    if column == "source" and column not in part.column_names:
        return set()
    plain = part.with_format(None)
    if column == "concept":
        return {labels[int(c)] for c in plain["label"] if 0 <= int(c) < len(labels)}
    return {str(v) for v in plain[column]}


def not_evaluated(evaluated, others, labels: list[str], sources=()) -> dict[str, list[str]]:
    """{column: values present elsewhere but with no image in `evaluated`}, only the columns with any.

    `others` are the other splits (train, validation…) the values may come from; every
    concept of `labels` (the model's concepts) counts as present, since the model answers it.
    `sources` are the recipe's sources: one left with no image at all (all its images were
    copies of another's, or unreadable) is named with its language and script.
    """
    parts = [part for part in (evaluated, *others) if part is not None]
    present = set().union(*(_values(part, "source", labels) for part in parts))
    emptied = [source for source in sources if source.name not in present]
    missing = {}
    for column in COVERAGE_COLUMNS:
        known = set(labels) if column == "concept" else set()
        if column != "concept":
            field = "name" if column == "source" else column
            known |= {str(getattr(source, field)) for source in emptied if getattr(source, field, None)}
        for part in others:
            known |= _values(part, column, labels)
        absent = known - _values(evaluated, column, labels)
        if absent:
            order = {label: i for i, label in enumerate(labels)}
            missing[column] = sorted(absent, key=lambda v: (order.get(v, len(order)), v))
    return missing


def format_not_evaluated(missing: dict[str, list[str]], split: str = "test") -> str:
    """One console line: `not evaluated (no test image): language: km; concept: 3, 4`; empty when none."""
    if not missing:
        return ""
    parts = []
    for column, values in missing.items():
        shown = ", ".join(printable(v, 100) for v in values[:SHOWN_PER_COLUMN])
        more = len(values) - SHOWN_PER_COLUMN
        parts.append(f"{column}: {shown}" + (f" and {more} more" if more > 0 else ""))
    return f"not evaluated (no {split} image): " + "; ".join(parts)
