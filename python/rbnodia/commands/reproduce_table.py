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
from .reports import PAPER_RESULTS, format_results_markdown, print_comparison, write_json
from .reproduce import write_comparison_plots


def _model_file(recipe: str, run_dirs: Sequence[Path]) -> Path:
    for run in run_dirs:
        if (run / f"{recipe}.rbmodel").exists():
            return run / f"{recipe}.rbmodel"
    raise FileNotFoundError(f"No {recipe}.rbmodel in {[str(r) for r in run_dirs]}.")


def merge_reproductions(
    run_dirs: Sequence[str | os.PathLike], test_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike
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
    results = merge_reproductions(args.runs, args.test, args.out)
    print_comparison(results["rows"], Path(args.out) / "results.md")
    return 0


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs", nargs="+", required=True, metavar="DIR", help="reproduce-paper output folders."
    )
    parser.add_argument("--test", nargs="+", required=True, metavar="PATH", help="The runs' test stamps.")
    parser.add_argument("--out", required=True, metavar="DIR", help="Output folder.")


COMMANDS = (
    Command(
        "reproduce-paper-table",
        help="Merge several reproduce-paper runs (same split, one recipe each) into one table and figures.",
        run=_merge,
        arguments=_merge_arguments,
    ),
)
