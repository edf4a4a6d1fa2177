"""Helpers every report, card and plot shares: Markdown tables and escaping, percentages, a headless pyplot.

Names and ids come from registries, sources and recipes that anyone may have written; a
card the Hub renders must show them as text, never as markup or a link: `md` escapes them
for Markdown and HTML, and `markdown_table` escapes every cell that is not already `Markdown`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence


class Markdown(str):
    """Text that is already Markdown (escaped, or written by the tool): `md` and tables leave it as it is."""


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]{}#!|~])")
_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def md(value: Any) -> Markdown:
    """`value` as literal text in Markdown and HTML: markup, links, table pipes and line breaks disarmed."""
    if isinstance(value, Markdown):
        return value
    text = _BREAKS.sub(" ", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return Markdown(_MARKDOWN_SPECIAL.sub(r"\\\1", text))


def md_code(value: Any) -> Markdown:
    """`value` as an inline code span (shown literally) that no backtick or line break can end early."""
    text = _BREAKS.sub(" ", str(value)).replace("`", "'")
    return Markdown(f"`{text}`")


def fenced(text: str, info: str = "") -> list[str]:
    """A fenced code block holding `text` whatever it contains: the fence is longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> list[str]:
    """Lines of a Markdown table; the columns whose indices are in `numeric` are right-aligned.

    Every cell is escaped with `md` unless it is `Markdown` already.
    """
    lines = [
        "| " + " | ".join(map(md, header)) + " |",
        "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join("–" if cell is None else md(cell) for cell in row) + " |" for row in rows]
    return lines


def percent(value, digits: int = 2) -> str:
    """0.9738 -> "97.38 %"-style text ("97.38%"); "–" for a missing value."""
    return f"{value:.{digits}%}" if isinstance(value, (int, float)) else "–"


def pyplot():
    """matplotlib's pyplot on the Agg backend: plots are written to files, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def group_table(per_value: dict, column: str, describe=None) -> list[str]:
    """Accuracy and image count for each value of a group column (language, script, source)."""
    rows = [
        (describe(value) if describe else value, percent(row["accuracy"]), row["n"])
        for value, row in per_value.items()
    ]
    return markdown_table([column, "accuracy", "images"], rows, numeric=(1, 2))


def annotate(ax, values, text, dark_above: float | None = None, fontsize: int = 7) -> None:
    """Write `text(value)` in each non-empty cell of a heat map; white where the cell is darker than `dark_above`."""
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if value is None or value != value:  # no value, or NaN
                continue
            color = "white" if dark_above is not None and value > dark_above else "black"
            ax.text(j, i, text(i, j), ha="center", va="center", fontsize=fontsize, color=color)


def save_figure(fig, path, dpi: int = 110) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    fig.clf()
    pyplot().close(fig)
