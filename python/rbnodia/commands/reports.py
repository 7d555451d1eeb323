"""Text reports of training and evaluation results: metric tables, the
comparison with the paper, per-family and per-S/N tables, and strict JSON
files written atomically.
"""

from __future__ import annotations

__all__ = [
    "PAPER_RESULTS",
    "comparison_table",
    "copy_doc_figures",
    "family_table",
    "format_metrics_table",
    "format_results_markdown",
    "format_results_rst",
    "print_comparison",
    "snr_table",
    "write_json",
    "write_text_atomically",
]

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.tables import format_markdown_table, format_rst_csv_table

PAPER_RESULTS: dict[str, dict[str, Any]] = {
    "DIA (paper)": {
        "train_accuracy": 0.962,
        "test_accuracy": 0.959,
        "test_accuracy_err": 0.004,
        "roc_auc": 0.992,
        "tp_rate": 0.95,
        "tn_rate": 0.97,
        "train_cpu_hours": 35.0,
        "ms_per_stamp": 1.00,
        "confusion_matrix": [[9564, 514], [306, 9616]],
        "epochs": "up to 500 (+250)",
    },
    "noDIA (paper)": {
        "train_accuracy": 0.915,
        "test_accuracy": 0.916,
        "test_accuracy_err": 0.007,
        "roc_auc": 0.973,
        "tp_rate": 0.91,
        "tn_rate": 0.92,
        "train_cpu_hours": 56.0,
        "ms_per_stamp": 0.30,
        "confusion_matrix": [[9163, 915], [775, 9147]],
        "epochs": "up to 500 (+250)",
    },
}
"""Acero-Cuellar et al., DES Y1 autoscan, 20,000 test stamps (their Table 1
and confusion matrices; train cost in NERSC CPU hours, prediction in ms per
stamp on their hardware)."""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_TABLE_ROWS = (
    ("accuracy", "accuracy"),
    ("roc_auc", "ROC AUC"),
    ("tp_rate", "TP rate (reals kept)"),
    ("tn_rate", "TN rate (bogus rejected)"),
    ("fpr", "FPR"),
    ("fnr", "FNR (missed reals)"),
    ("fpr_at_fnr_1pct", "FPR at 1% FNR"),
    ("fpr_at_fnr_5pct", "FPR at 5% FNR"),
    ("mdr_at_fpr_1pct", "MDR at 1% FPR"),
    ("threshold", "threshold"),
    ("n", "stamps"),
    ("n_real", "real"),
    ("n_bogus", "bogus"),
    ("confusion_matrix", "[[TP, FN], [FP, TN]]"),
    ("ms_per_stamp", "predict ms/stamp"),
)


def format_metrics_table(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """Format a plain-text table: one row per metric, one column per data split.

    Parameters
    ----------
    columns : `~collections.abc.Mapping` [`str`, `dict`]
        Split name (e.g. ``train``, ``validation``, ``test``) -> metrics from
        `rbnodia.core.metrics.evaluate`; empty dicts are skipped.

    Returns
    -------
    table : `str`
        The table.
    """
    columns = {k: v for k, v in columns.items() if v}
    width = max(len(label) for _, label in _TABLE_ROWS)
    cells = {name: [_fmt(m.get(key)) for key, _ in _TABLE_ROWS] for name, m in columns.items()}
    widths = {name: max(len(name), *(len(c) for c in cells[name])) for name in columns}
    lines = ["  ".join([" " * width] + [name.rjust(widths[name]) for name in columns])]
    for i, (_, label) in enumerate(_TABLE_ROWS):
        lines.append(
            "  ".join([label.ljust(width)] + [cells[name][i].rjust(widths[name]) for name in columns])
        )
    return "\n".join(lines)


_COMPARISON_COLUMNS = (
    ("train_accuracy", "train acc", 3),
    ("test_accuracy", "test acc", 3),
    ("roc_auc", "ROC AUC", 3),
    ("tp_rate", "TP rate", 2),
    ("tn_rate", "TN rate", 2),
    ("fpr_at_fnr_1pct", "FPR@1%FNR", 3),
    ("train_cpu_hours", "train CPU h", 2),
    ("ms_per_stamp", "predict ms/stamp", 3),
)


def comparison_table(rows: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Return the table of models (ours and the paper's) side by side, as data.

    Parameters
    ----------
    rows : `~collections.abc.Mapping` [`str`, `~collections.abc.Mapping`]
        Model name -> its comparison columns (`comparison_row`).

    Returns
    -------
    header : `list` [`str`]
        Column titles.
    cells : `list` [`list` [`str`]]
        One row of cells per model.
    """
    header = ["model"] + [label for _, label, _ in _COMPARISON_COLUMNS] + ["epochs", "best epoch", "params"]
    cells = []
    for name, row in rows.items():
        line = [name]
        for key, _, digits in _COMPARISON_COLUMNS:
            text = _fmt(row.get(key), digits)
            if key == "test_accuracy" and row.get("test_accuracy_err") is not None and text != "n/a":
                text += f" +- {row['test_accuracy_err']:.{digits}f}"
            line.append(text)
        line += [_fmt(row.get(key)) for key in ("epochs", "best_epoch", "params")]
        cells.append(line)
    return header, cells


def family_table(
    families: Mapping[str, Mapping[str, Mapping[str, Any]]], key: str = "accuracy"
) -> tuple[list[str], list[list[str]]]:
    """Return a table of per-family metrics, one column per model, as data.

    Parameters
    ----------
    families : `~collections.abc.Mapping`
        Model name -> `rbnodia.core.group_metrics.metrics_by_group` result.
    key : `str`
        The per-family figure shown: ``accuracy`` or ``fraction_called_real``.

    Returns
    -------
    header : `list` [`str`]
        Column titles.
    cells : `list` [`list` [`str`]]
        One row per family, real families (label 0) first; the label of a
        family that holds both classes shows as ``mixed`` (it is sorted by
        its majority label).
    """
    models = list(families)
    names = sorted(
        {name for groups in families.values() for name in groups},
        key=lambda name: (next(g[name]["label"] for g in families.values() if name in g), name),
    )
    cells = []
    for name in names:
        first = next(groups[name] for groups in families.values() if name in groups)
        values = [f"{families[m][name][key]:.3f}" if name in families[m] else "" for m in models]
        label = "mixed" if first["n_real"] and first["n_bogus"] else str(first["label"])
        cells.append([name, label, str(first["n"]), *values])
    return ["family", "label", "n", *models], cells


def snr_table(bins: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Return the table of ROC AUC per S/N bin, one column per model, as data.

    Parameters
    ----------
    bins : `~collections.abc.Mapping`
        Model name -> `rbnodia.core.group_metrics.auc_by_bin` result (all on
        the same stamps and edges); at least one model.  Bins without both
        classes show ``one class``.

    Returns
    -------
    header : `list` [`str`]
        Column titles.
    cells : `list` [`list` [`str`]]
        One row per bin.
    """
    models = list(bins)
    cells = []
    for i, row in enumerate(bins[models[0]]["bins"]):
        values = [
            _fmt(bins[m]["bins"][i]["roc_auc"], 4) if row["both_classes"] else "one class" for m in models
        ]
        cells.append([row["label"], str(row["n"]), str(row["n_real"]), str(row["n_bogus"]), *values])
    return ["S/N", "n", "real", "bogus", *models], cells


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write strict JSON (NaN and inf as null) atomically.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The file to write.
    data : `object`
        JSON-serialisable data (numpy scalars and arrays allowed).

    Returns
    -------
    path : `pathlib.Path`
        The file written.
    """
    from ..training import jsonable

    return write_text_atomically(path, json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write a text file through a ``.partial`` file renamed into place, so
    that it is either whole or absent, never cut short.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The file to write; its folder is made if missing.
    text : `str`
        The contents.

    Returns
    -------
    path : `pathlib.Path`
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def format_results_markdown(
    intro: str, rows: Mapping[str, Mapping[str, Any]], test_metrics: Mapping[str, Mapping[str, Any]]
) -> str:
    """Return the markdown report of a comparison of models on one test set.

    Parameters
    ----------
    intro : `str`
        Paragraph describing the data and the columns.
    rows : `~collections.abc.Mapping`
        Model name -> comparison row (`comparison_table`); the
        paper's rows are appended.
    test_metrics : `~collections.abc.Mapping`
        Model name -> test metrics with ``by_family`` and ``auc_by_snr``
        (`rbnodia.training.evaluate_model`).

    Returns
    -------
    markdown : `str`
        Title, intro, comparison table, and the tables of accuracy and
        fraction called real per family and ROC AUC per S/N bin.
    """
    parts = ["# Reproducing Acero-Cuellar et al. (DIA vs noDIA)", intro]
    for k, (title, table) in enumerate(_results_tables(rows, test_metrics)):
        parts += ([] if k == 0 else [f"## {title}"]) + [format_markdown_table(*table)]
    return "\n\n".join(parts) + "\n"


def _results_tables(
    rows: Mapping[str, Mapping[str, Any]], test_metrics: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    families = {m: t["by_family"] for m, t in test_metrics.items() if t.get("by_family")}
    snr = {m: t["auc_by_snr"] for m, t in test_metrics.items() if t.get("auc_by_snr")}
    tables = [("Comparison with the paper", comparison_table({**rows, **PAPER_RESULTS}))]
    if families:
        tables += [
            ("Test accuracy per family (label 0 = real, 1 = bogus)", family_table(families)),
            ("Fraction called real per family", family_table(families, "fraction_called_real")),
        ]
    if snr:
        tables.append(("Test ROC AUC per detection S/N bin", snr_table(snr)))
    return tables


def format_results_rst(
    command: str,
    intro: str,
    rows: Mapping[str, Mapping[str, Any]],
    test_metrics: Mapping[str, Mapping[str, Any]],
    figures: Mapping[str, str] | None = None,
) -> str:
    """Return a comparison of models on one test set as reStructuredText, for the docs.

    Parameters
    ----------
    command : `str`
        The command that wrote it (stated above the tables).
    intro : `str`
        Paragraph describing the data and the columns.
    rows : `~collections.abc.Mapping`
        Model name -> comparison row (`comparison_table`); the paper's rows
        are appended.
    test_metrics : `~collections.abc.Mapping`
        Model name -> test metrics with ``by_family`` and ``auc_by_snr``.
    figures : `~collections.abc.Mapping` [`str`, `str`], optional
        Image paths (relative to the including document) and their
        captions, shown after the comparison table.

    Returns
    -------
    text : `str`
        The same tables as `format_results_markdown`, one ``csv-table``
        directive each, and the figures.
    """
    lines = [f".. Generated by ``{command}``; do not edit.", "", intro, "", f"Regenerate with ``{command}``."]
    for k, (title, table) in enumerate(_results_tables(rows, test_metrics)):
        lines += ["", format_rst_csv_table(title, *table)]
        if k == 0:
            for name, caption in (figures or {}).items():
                lines += ["", f".. figure:: {name}", "   :width: 100%", "", f"   {caption}"]
    return "\n".join(lines) + "\n"


def copy_doc_figures(doc_table: Path, figures: Mapping[str, tuple[str | os.PathLike, str]]) -> dict[str, str]:
    """Copy a report's figures next to its ``--doc-table`` include.

    Parameters
    ----------
    doc_table : `pathlib.Path`
        The reStructuredText include; ``NAME`` is copied to
        ``<its folder>/<its stem>_NAME.png``.
    figures : `~collections.abc.Mapping` [`str`, `tuple`]
        ``NAME`` -> (PNG file to copy, caption).

    Returns
    -------
    figures : `dict` [`str`, `str`]
        Image path for the including document -> caption.  Sphinx resolves
        an image path against the including document, which is expected in
        the include's parent folder (as ``doc/reproduction.rst`` includes
        ``doc/_generated/*.rst``).
    """
    import shutil

    doc_table.parent.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (source, caption) in figures.items():
        copy = doc_table.with_name(f"{doc_table.stem}_{name}.png")
        shutil.copyfile(source, copy)
        written[f"{copy.parent.name}/{copy.name}"] = caption
    return written


def print_comparison(rows: Mapping[str, Mapping[str, Any]], *written: str | os.PathLike) -> None:
    """Print our rows beside the paper's (`comparison_table`, as Markdown), then
    the files the results went to.

    Parameters
    ----------
    rows : `~collections.abc.Mapping` [`str`, `~collections.abc.Mapping`]
        Our rows, by name.
    *written : `str` or `os.PathLike`
        The result files, named on one line.
    """
    print(format_markdown_table(*comparison_table({**rows, **PAPER_RESULTS})))
    print(f"results -> {', '.join(str(path) for path in written)}")
