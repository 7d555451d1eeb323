"""``rbnodia reproduce-paper``: train several recipes on one split, score
them on one test set, and set them beside Acero-Cuellar et al.'s Table 1
(``benchmarks/reproduce_paper.py`` runs the same code).

The report gives, per model, the paper's columns and, on the test set, the
accuracy and fraction called real of every family found in the data and the
ROC AUC per S/N bin, as markdown tables and PNG figures.
"""

from __future__ import annotations

__all__ = [
    "COMMANDS",
    "REPRODUCE_DEFAULT_RECIPES",
    "add_reproduce_arguments",
    "comparison_row",
    "reproduce_paper",
    "write_comparison_plots",
]

import argparse
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.scaling import Scaling
from .arguments import Command
from .reports import PAPER_RESULTS, format_results_markdown, print_comparison, write_json

_LOG = logging.getLogger(__name__)

REPRODUCE_DEFAULT_RECIPES = ("paper_dia", "paper_nodia", "patch_nodia")
"""Training recipes `reproduce_paper` compares by default: the paper's two and that of the packaged
noDIA model."""


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``rbnodia reproduce-paper`` / ``benchmarks/reproduce_paper.py``.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
        The parser to add them to.
    """
    from ..training import TRAINING_RECIPES

    parser.add_argument(
        "--train", nargs="+", required=True, metavar="PATH", help="Training stamp files/folders."
    )
    parser.add_argument("--test", nargs="+", required=True, metavar="PATH", help="Test stamp files/folders.")
    parser.add_argument(
        "--out",
        default="reproduce_paper",
        metavar="DIR",
        help="Output folder (results JSON/markdown, PNGs, model files).",
    )
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=list(REPRODUCE_DEFAULT_RECIPES),
        choices=sorted(TRAINING_RECIPES),
        help="Models to compare (training presets).",
    )
    parser.add_argument("--epochs", type=int, help="Cap on epochs for every model (default: each recipe's).")
    parser.add_argument("--patience", type=int, help="Override every recipe's early-stopping patience.")
    parser.add_argument(
        "--scaling",
        choices=[s.value for s in Scaling],
        help="Scaling recipe of every model's inputs (rbnodia.core.scaling; default: the paper's).",
    )
    parser.add_argument(
        "--max-train", type=int, metavar="N", help="Use a stratified random N training stamps."
    )
    parser.add_argument("--max-test", type=int, metavar="N", help="Use a stratified random N test stamps.")
    parser.add_argument("--seed", type=int, default=0, help="Seed for subsetting, the split and training.")
    parser.add_argument("--threads", type=int, help="TensorFlow threads.")
    parser.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="Checkpoint every epoch into DIR/<recipe>; rerunning the command resumes.",
    )
    parser.add_argument("--no-progress", action="store_true", help="No progress bars.")


def _stratified_subset(stamps, n: int | None, rng: np.random.Generator):
    if n is None or n >= len(stamps):
        return stamps
    from ..training import split_validation

    _, keep = split_validation(stamps.label, n / len(stamps), rng)
    return stamps.subset(keep)


def comparison_row(result, test_metrics: Mapping[str, Any], model) -> dict[str, Any]:
    """Return one model's row of the comparison table.

    Parameters
    ----------
    result : `rbnodia.training.TrainingResult`
        The training run.
    test_metrics : `~collections.abc.Mapping` [`str`, `object`]
        Its metrics on the test set.
    model : `rbnodia.nn.RealBogusModel`
        The trained model.

    Returns
    -------
    row : `dict` [`str`, `object`]
        The comparison columns.
    """
    from ..training import network_cost

    cost = network_cost(model.network)
    n, acc = test_metrics["n"], test_metrics["accuracy"]
    return {
        "train_accuracy": result.train_metrics.get("accuracy"),
        "test_accuracy": acc,
        "test_accuracy_err": math.sqrt(acc * (1 - acc) / n) if n else None,
        "roc_auc": test_metrics["roc_auc"],
        "tp_rate": test_metrics["tp_rate"],
        "tn_rate": test_metrics["tn_rate"],
        "fpr_at_fnr_1pct": test_metrics["fpr_at_fnr_1pct"],
        "train_cpu_hours": result.cpu_seconds / 3600.0,
        "train_seconds": result.train_seconds,
        "ms_per_stamp": test_metrics["ms_per_stamp"],
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "params": cost["params"],
        "macs": cost["macs"],
        "threshold": result.threshold,
        "version": model.version,
    }


def write_comparison_plots(
    out: Path, curves: Mapping[str, tuple], metrics: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Plot ROC (linear and log FPR), fraction called real per family and ROC AUC
    per S/N bin, every model on one figure each.

    Parameters
    ----------
    out : `pathlib.Path`
        Folder of the PNG files.
    curves : `~collections.abc.Mapping` [`str`, `tuple`]
        Model name -> ROC curve ``(fpr, tpr)``.
    metrics : `~collections.abc.Mapping` [`str`, `~collections.abc.Mapping`]
        Model name -> test metrics with ``by_family`` and ``auc_by_snr``.

    Returns
    -------
    files : `list` [`str`]
        The files written.
    """
    from ..plots.families import plot_auc_vs_snr, plot_family_fractions
    from ..plots.training import plot_roc

    files = [out / "roc.png", out / "roc_log.png", out / "families.png", out / "auc_snr.png"]
    plot_roc(curves, title="test set", path=files[0])
    plot_roc(curves, log_fpr=True, title="test set", path=files[1])
    plot_family_fractions(
        {m: t["by_family"] for m, t in metrics.items()}, title="test set: fraction called real", path=files[2]
    )
    plot_auc_vs_snr(
        {m: t["auc_by_snr"] for m, t in metrics.items()}, title="test set: ROC AUC per S/N bin", path=files[3]
    )
    return [str(f) for f in files]


def _train_recipe(recipe, fit_set, val_set, test, out, settings, paths, progress):
    """Train, score and save one recipe; return (row, test metrics, scores, files)."""
    from ..core.metrics import confusion_matrix
    from ..plots.training import plot_confusion_matrix, plot_history
    from ..training import TrainingConfig, evaluate_model, finalize_model, train_model

    checkpoints = settings["checkpoint_dir"]
    config = TrainingConfig.from_recipe(
        recipe,
        epochs=settings["epochs"],
        patience=settings["patience"],
        scaling=settings["scaling"],
        seed=settings["seed"],
        threads=settings["threads"],
        name=recipe,
        checkpointDir=str(Path(checkpoints) / recipe) if checkpoints else None,
    )
    result = train_model(fit_set, config, validation=val_set, progress=progress)
    test_metrics, scores = evaluate_model(result.model, test, return_scores=True)
    model = finalize_model(
        result,
        test_metrics,
        test_summary=test.summary(),
        extra={"data_files": paths[0], "test_files": paths[1]},
    )
    files = [
        model.save(out / f"{recipe}.rbmodel"),
        out / f"{recipe}_confusion.png",
        out / f"{recipe}_history.png",
    ]
    plot_confusion_matrix(
        confusion_matrix(test.label, scores, result.threshold), title=f"{recipe}: test", path=files[1]
    )
    plot_history(result.history, best_epoch=result.best_epoch, title=recipe, path=files[2])
    _LOG.info("%s: test accuracy %.4f, AUC %.4f", recipe, test_metrics["accuracy"], test_metrics["roc_auc"])
    return comparison_row(result, test_metrics, model), test_metrics, scores, [str(f) for f in files]


def reproduce_paper(
    train_paths: Sequence[str | os.PathLike],
    test_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    recipes: Sequence[str] = REPRODUCE_DEFAULT_RECIPES,
    epochs: int | None = None,
    patience: int | None = None,
    scaling: str | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train several recipes on one split, score them on one test set, and
    compare with the paper.

    Parameters
    ----------
    train_paths, test_paths : sequence of path-like
        Labelled stamp files or folders.
    out_dir : path-like
        Where ``results.json``, ``results.md``, ``roc.png``, ``roc_log.png``,
        ``families.png``, ``auc_snr.png``, ``<recipe>_confusion.png``,
        ``<recipe>_history.png`` and ``<recipe>.rbmodel`` go.
    recipes : sequence of `str`
        Names in `rbnodia.training.TRAINING_RECIPES`.
    epochs, patience : `int`, optional
        Override every recipe's maximum epochs / patience (quick runs).
    scaling : `str`, optional
        Scaling recipe of every model (`rbnodia.core.scaling.Scaling`); the
        paper's if `None`.
    max_train, max_test : `int`, optional
        Stratified random subsets.
    seed : `int`
        Seed of the subsets, the validation split and the training.
    threads : `int`, optional
        TensorFlow threads.
    checkpoint_dir : path-like, optional
        Checkpoint each recipe into ``checkpoint_dir/<recipe>`` (resumed).
    progress : `bool`
        Show tqdm progress bars over batches.

    Returns
    -------
    results : `dict`
        ``rows`` (per model, the comparison columns), ``metrics`` (full
        test metrics per model, with ``by_family`` and ``auc_by_snr``),
        ``paper`` (`PAPER_RESULTS`), ``data`` (set summaries), ``settings``
        and ``files``.
    """
    from ..core.stampset import LabelledStamps
    from ..training import split_validation

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_all = _stratified_subset(LabelledStamps.load(train_paths), max_train, rng)
    test = _stratified_subset(LabelledStamps.load(test_paths), max_test, rng)
    # One split for every model: the same stamps train and validate each.
    fit_index, val_index = split_validation(train_all.label, 0.2, rng)
    fit_set, val_set = train_all.subset(fit_index), train_all.subset(val_index)
    del train_all  # the two subsets are copies: keep one set of stamps in memory
    _LOG.info(
        "Reproducing the paper on %d training (%d validation) and %d test stamps.",
        len(fit_set),
        len(val_set),
        len(test),
    )
    settings = {
        "recipes": list(recipes),
        "epochs": epochs,
        "patience": patience,
        "scaling": scaling,
        "max_train": max_train,
        "max_test": max_test,
        "seed": seed,
        "threads": threads,
        "checkpoint_dir": str(checkpoint_dir) if checkpoint_dir else None,
    }
    paths = ([str(p) for p in train_paths], [str(p) for p in test_paths])
    rows, metrics, curves, files = {}, {}, {}, []
    for recipe in recipes:
        rows[recipe], metrics[recipe], scores, written = _train_recipe(
            recipe, fit_set, val_set, test, out, settings, paths, progress
        )
        curves[recipe] = (test.label, scores)
        files += written
    files += write_comparison_plots(out, curves, metrics)
    data = {"train": fit_set.summary(), "validation": val_set.summary(), "test": test.summary()}
    intro = (
        f"Training {len(fit_set)} stamps, validation {len(val_set)}, test {len(test)} "
        f"({data['test']['n_real']} real, {data['test']['n_bogus']} bogus).  Our rows: this machine; train "
        "CPU hours = process CPU time of training; ms/stamp = wall-clock prediction time.  Paper rows: DES "
        "Y1 autoscan, 80,000/20,000 stamps, NERSC CPU hours."
    )
    (out / "results.md").write_text(format_results_markdown(intro, rows, metrics))
    files += [str(out / "results.md"), str(out / "results.json")]
    results = {
        "rows": rows,
        "metrics": metrics,
        "paper": PAPER_RESULTS,
        "data": data,
        "files": files,
        "settings": settings,
    }
    write_json(out / "results.json", results)
    return results


def _reproduce(args: argparse.Namespace) -> int:
    results = reproduce_paper(
        args.train,
        args.test,
        args.out,
        recipes=args.recipes,
        epochs=args.epochs,
        patience=args.patience,
        scaling=args.scaling,
        max_train=args.max_train,
        max_test=args.max_test,
        seed=args.seed,
        threads=args.threads,
        checkpoint_dir=args.checkpoint_dir,
        progress=not args.no_progress,
    )
    print_comparison(results["rows"], Path(args.out) / "results.md", Path(args.out) / "results.json")
    return 0


COMMANDS = (
    Command(
        "reproduce-paper",
        help="Train the paper's DIA/noDIA and the improved noDIA on one split and compare with the paper.",
        description="Train several recipes on the same split, score them on the same test set, and print "
        "them beside Acero-Cuellar et al.'s results, with per-family and per-S/N breakdowns.",
        run=_reproduce,
        arguments=add_reproduce_arguments,
    ),
)
