"""Tables held as data (a header and rows of strings) and written as Markdown
for reports or as reStructuredText ``csv-table`` directives for the docs, so
that every output format of a report shows the same cells.
"""

from __future__ import annotations

__all__ = ["format_markdown_table", "format_rst_csv_table"]

from collections.abc import Sequence


def _check_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"Table row {i} has {len(row)} cells; the header has {len(header)}.")


def format_markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format a Markdown (GitHub) table.

    Parameters
    ----------
    header : sequence of `str`
        Column titles.
    rows : sequence of sequence of `str`
        Cells, as many per row as the header has titles.

    Returns
    -------
    table : `str`
        The table, without a trailing newline.

    Raises
    ------
    ValueError
        If a row has more or fewer cells than the header.
    """
    _check_widths(header, rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_rst_csv_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format a reStructuredText ``csv-table`` directive.

    Parameters
    ----------
    title : `str`
        The table's caption.
    header, rows : sequence
        As for `format_markdown_table`; double quotes in cells are escaped.

    Returns
    -------
    directive : `str`
        The directive, without a trailing newline.

    Raises
    ------
    ValueError
        If a row's width differs from the header's.
    """
    _check_widths(header, rows)

    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    lines = [f".. csv-table:: {title}", "   :header: " + ", ".join(cell(h) for h in header), ""]
    lines += ["   " + ", ".join(cell(c) for c in row) for row in rows]
    return "\n".join(lines)
