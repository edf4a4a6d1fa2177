"""Helpers every report, card and plot shares: Markdown tables, percentages, a headless pyplot."""

from __future__ import annotations

from typing import Any, Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> list[str]:
    """Lines of a Markdown table; the columns whose indices are in `numeric` are right-aligned."""
    lines = [
        "| " + " | ".join(map(str, header)) + " |",
        "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join("–" if cell is None else str(cell) for cell in row) + " |" for row in rows]
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
