"""Tables as data, written as Markdown and as reStructuredText (`rbnodia.core.tables`)."""

import pytest

from rbnodia.core.tables import format_markdown_table, format_rst_csv_table


def test_markdown_table():
    assert (
        format_markdown_table(["a", "b"], [["1", "2"], ["x", "y"]])
        == "| a | b |\n|---|---|\n| 1 | 2 |\n| x | y |"
    )


def test_rst_csv_table_quotes_cells():
    text = format_rst_csv_table("T", ["name", "value"], [['say "hi"', "1, 2"]])
    assert text.splitlines() == [
        ".. csv-table:: T",
        '   :header: "name", "value"',
        "",
        '   "say ""hi""", "1, 2"',
    ]


@pytest.mark.parametrize("formatter", [format_markdown_table, lambda h, r: format_rst_csv_table("T", h, r)])
def test_row_width_must_match_header(formatter):
    with pytest.raises(ValueError, match="row 1 has 1 cells; the header has 2"):
        formatter(["a", "b"], [["1", "2"], ["3"]])


def test_family_table_marks_mixed_families():
    from rbnodia.commands.reports import family_table
    from rbnodia.core.group_metrics import metrics_by_group

    labels = [0, 0, 1, 1, 0, 1]
    called_real = [True, False, False, True, True, False]
    groups = ["sn", "sn", "cr", "var", "var", "var"]
    header, rows = family_table({"m": metrics_by_group(labels, called_real, groups)})
    assert header == ["family", "label", "n", "m"]
    # Real families first, then bogus ones; "var" holds both classes (majority bogus).
    assert rows == [["sn", "0", "2", "0.500"], ["cr", "1", "1", "1.000"], ["var", "mixed", "3", "0.667"]]
