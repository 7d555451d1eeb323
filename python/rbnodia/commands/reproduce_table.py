"""``rbnodia reproduce-paper-table``: one comparison from several
``rbnodia reproduce-paper`` runs made on the same split (e.g. one recipe per
run, in parallel or across sessions).

The rows come from each run's ``results.json``; every saved model is scored
again on the test set for the ROC curves and the per-family and per-S/N
breakdowns.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "merge_reproductions"]

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .arguments import Command
from .reports import (
    PAPER_RESULTS,
    copy_doc_figures,
    format_results_markdown,
    format_results_rst,
    print_comparison,
    write_json,
    write_text_atomically,
)
from .reproduce import write_comparison_plots

DOC_FIGURES = {
    "roc": "ROC curves on the test set.",
    "families": "Fraction of each test family called real, per model.",
    "auc_snr": "ROC AUC per detection S/N bin, per model.",
}
"""Comparison figures copied next to the ``--doc-table`` include, with their captions."""

HISTORY_CAPTION = (
    "{recipe}: loss and accuracy per epoch on the training and validation sets; the dotted line "
    "marks the epoch whose weights were kept."
)
"""Caption of each run's learning curves in the ``--doc-table`` include."""


def _model_file(recipe: str, run_dirs: Sequence[Path]) -> Path:
    for run in run_dirs:
        if (run / f"{recipe}.rbmodel").exists():
            return run / f"{recipe}.rbmodel"
    raise FileNotFoundError(f"No {recipe}.rbmodel in {[str(r) for r in run_dirs]}.")


def merge_reproductions(
    run_dirs: Sequence[str | os.PathLike],
    test_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    doc_table: str | os.PathLike | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Merge `~rbnodia.commands.reproduce.reproduce_paper` runs into one report.

    Parameters
    ----------
    run_dirs : sequence of path-like
        The runs' output folders (same data and seed).
    test_paths : sequence of path-like
        The runs' test stamps.
    out_dir : path-like
        Where ``results.md``, ``results.json`` and the figures go.
    doc_table : path-like, optional
        Also write the tables as a reStructuredText include for the docs,
        with the ROC, per-family and per-S/N figures and every run's
        learning curves copied next to it.
    command : `str`, optional
        The command stated in the include (default: this function's name).

    Returns
    -------
    results : `dict`
        ``rows``, ``metrics`` (test metrics per model, rescored, with
        ``by_family`` and ``auc_by_snr``), ``family_accuracy`` (per model,
        the per-family breakdown), ``paper``, ``data``, ``runs`` and
        ``files``.
    """
    from ..core.stampset import LabelledStamps
    from ..nn.model import load_model
    from ..training import evaluate_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in run_dirs]
    rows: dict[str, dict[str, Any]] = {}
    data = None
    for run in runs:
        result = json.loads((run / "results.json").read_text())
        rows.update(result["rows"])
        data = data or result.get("data")
    test = LabelledStamps.load(test_paths)
    curves, metrics = {}, {}
    for recipe in rows:
        metrics[recipe], scores = evaluate_model(
            load_model(_model_file(recipe, runs)), test, return_scores=True
        )
        curves[recipe] = (test.label, scores)
    files = write_comparison_plots(out, curves, metrics)
    intro = (
        "Our rows: this machine; train CPU hours = process CPU time of training; ms/stamp = wall-clock "
        "prediction time.  Paper rows: DES Y1 autoscan, NERSC CPU hours."
    )
    if data:
        intro = (
            f"Test set: {data['test']['n']} stamps ({data['test']['n_real']} real, {data['test']['n_bogus']} "
            f"bogus); training {data['train']['n']}, validation {data['validation']['n']}.  " + intro
        )
    (out / "results.md").write_text(format_results_markdown(intro, rows, metrics))
    if doc_table is not None:
        doc_table = Path(doc_table)
        sources = {name: (out / f"{name}.png", caption) for name, caption in DOC_FIGURES.items()}
        sources.update(
            {
                f"{recipe}_history": (
                    _model_file(recipe, runs).with_name(f"{recipe}_history.png"),
                    HISTORY_CAPTION.format(recipe=recipe),
                )
                for recipe in rows
            }
        )
        figures = copy_doc_figures(doc_table, sources)
        command = command or f"{__name__}.merge_reproductions"
        write_text_atomically(doc_table, format_results_rst(command, intro, rows, metrics, figures))
        files += [str(doc_table), *(str(doc_table.parent / Path(name).name) for name in figures)]
    merged = {
        "rows": rows,
        "metrics": metrics,
        "paper": PAPER_RESULTS,
        "data": data,
        "family_accuracy": {m: t["by_family"] for m, t in metrics.items()},
        "runs": [str(r) for r in runs],
        "files": files + [str(out / "results.md")],
    }
    write_json(out / "results.json", merged)
    return merged


def _merge(args: argparse.Namespace) -> int:
    import shlex

    command = "rbnodia " + " ".join(shlex.quote(a) for a in args.argv)
    results = merge_reproductions(args.runs, args.test, args.out, doc_table=args.doc_table, command=command)
    print_comparison(results["rows"], Path(args.out) / "results.md")
    return 0


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs", nargs="+", required=True, metavar="DIR", help="reproduce-paper output folders."
    )
    parser.add_argument("--test", nargs="+", required=True, metavar="PATH", help="The runs' test stamps.")
    parser.add_argument("--out", required=True, metavar="DIR", help="Output folder.")
    parser.add_argument(
        "--doc-table",
        type=Path,
        metavar="PATH",
        help="Also write the tables and figures as a reStructuredText include (e.g. "
        "doc/_generated/reproduction_table.rst).",
    )


COMMANDS = (
    Command(
        "reproduce-paper-table",
        help="Merge several reproduce-paper runs (same split, one recipe each) into one table and figures.",
        run=_merge,
        arguments=_merge_arguments,
    ),
)
