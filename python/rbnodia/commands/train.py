"""``rbnodia train`` and ``rbnodia reproduce-paper``: train real/bogus models
from labelled stamp files, outside a Butler.

``rbnodia train`` trains one network, prints its metrics, and writes the
model file, a metrics JSON and diagnostic PNGs.  ``rbnodia reproduce-paper``
trains the paper's DIA and noDIA networks and the improved noDIA network on
the same split, scores them on the same test set, and sets the results beside
Acero-Cuellar et al.'s Table 1 (``benchmarks/reproduce_paper.py`` runs the
same code).
"""

from __future__ import annotations

__all__ = [
    "register",
    "PAPER_RESULTS",
    "REPRODUCE_DEFAULT_RECIPES",
    "add_train_arguments",
    "add_reproduce_arguments",
    "run_train",
    "run_reproduce",
    "reproduce_paper",
    "format_metrics_table",
    "format_comparison_table",
]

import argparse
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_LOG = logging.getLogger(__name__)

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
    },
}
"""Acero-Cuellar et al., DES Y1 autoscan, 20,000 test stamps (their Table 1
and confusion matrices; train cost in NERSC CPU hours, prediction in ms per
stamp on their hardware)."""

REPRODUCE_DEFAULT_RECIPES = ("paper_dia", "paper_nodia", "patch_nodia")
"""Training recipes `reproduce_paper` compares by default: the paper's two and that of the packaged
noDIA model."""


# ---------------------------------------------------------------------------
# Formatting.


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


def format_metrics_table(columns: dict[str, dict[str, Any]]) -> str:
    """Plain-text table: one row per metric, one column per data split.

    Parameters
    ----------
    columns : `dict` [`str`, `dict`]
        Split name (e.g. ``train``, ``validation``, ``test``) -> metrics from
        `rbnodia.core.metrics.evaluate`; empty dicts are skipped.
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
    ("train_cpu_hours", "train CPU h", 4),
    ("ms_per_stamp", "predict ms/stamp", 3),
)


def format_comparison_table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown table of models (ours and the paper's) side by side."""
    header = ["model"] + [label for _, label, _ in _COMPARISON_COLUMNS] + ["epochs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name]
        for key, _, digits in _COMPARISON_COLUMNS:
            text = _fmt(row.get(key), digits)
            if key == "test_accuracy" and row.get("test_accuracy_err") is not None and text != "n/a":
                text += f" +- {row['test_accuracy_err']:.{digits}f}"
            cells.append(text)
        cells.append(_fmt(row.get("epochs")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_family_table(families: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown table of `rbnodia.core.metrics.accuracy_by_group` results:
    one row per family, one accuracy column per model."""
    models = list(families)
    names = sorted({name for groups in families.values() for name in groups})
    lines = ["| family | label | n | " + " | ".join(models) + " |", "|---|---|---|" + "---|" * len(models)]
    for name in names:
        first = next(groups[name] for groups in families.values() if name in groups)
        cells = [f"{families[m][name]['accuracy']:.3f}" if name in families[m] else "" for m in models]
        lines.append(f"| {name} | {first['label']} | {first['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_json(path: Path, data: Any) -> Path:
    from ..training import jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------
# rbnodia train.


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rbnodia train``."""
    from ..core.metrics import THRESHOLD_METHODS
    from ..training import BALANCE_METHODS, TRAINING_RECIPES

    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH",
        help="Training stamp files (.npz) or folders of them.",
    )
    parser.add_argument(
        "--test",
        nargs="+",
        metavar="PATH",
        help="Held-out test stamp files or folders (scored after training).",
    )
    parser.add_argument(
        "--validation",
        nargs="+",
        metavar="PATH",
        help="Validation stamps (default: a stratified --validation-fraction of --data).",
    )
    parser.add_argument(
        "--arch", help="Registered architecture (see `rbnodia info`); required without --recipe."
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(TRAINING_RECIPES),
        help="Named preset (architecture, optimizer, epochs, patience, augmentation); "
        "other options override it.",
    )
    parser.add_argument("--out", required=True, metavar="MODEL.rbmodel", help="Model file to write.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing model file.")
    parser.add_argument("--name", help="Model name recorded in the file (default: the architecture).")
    parser.add_argument(
        "--epochs", type=int, help="Maximum epochs (default 500, the paper's; or the recipe's)."
    )
    parser.add_argument("--batch-size", type=int, help="Minibatch size (default 200, the paper's).")
    parser.add_argument(
        "--optimizer", help="Optimizer recipe: paper_sgd (default), sgd_momentum, adam, adam_cosine."
    )
    parser.add_argument("--learning-rate", type=float, help="Override the optimizer's learning rate.")
    parser.add_argument(
        "--patience", type=int, help="Early-stopping patience on val_loss (0 = none; default 30)."
    )
    parser.add_argument("--validation-fraction", type=float, help="Held-out fraction (default 0.2).")
    parser.add_argument(
        "--augment",
        action="store_true",
        default=None,
        help="Random flips and 90-degree rotations, the same for all segments of a stamp.",
    )
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="Disable augmentation.")
    parser.add_argument("--balance", choices=BALANCE_METHODS, help="Class balancing (default none).")
    parser.add_argument("--seed", type=int, help="Random seed (default 0).")
    parser.add_argument(
        "--threshold-method",
        metavar="METHOD",
        help="Threshold tuned on the validation split: "
        + "; ".join(f"{k}: {v}" for k, v in THRESHOLD_METHODS.items())
        + " (default fixed).",
    )
    parser.add_argument("--threads", type=int, help="TensorFlow threads (default: all cores).")
    parser.add_argument(
        "--plots", metavar="DIR", help="Folder for PNG figures (and a copy of the metrics JSON)."
    )
    parser.add_argument(
        "--metrics-json",
        metavar="PATH",
        help="Metrics JSON to write (default: next to the model, MODEL.metrics.json).",
    )
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")


def _config_from_args(args: argparse.Namespace):
    from ..training import TrainingConfig

    overrides = {
        "architecture": args.arch,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "learning_rate": args.learning_rate,
        "patience": args.patience,
        "validation_fraction": args.validation_fraction,
        "augment": args.augment,
        "balance": args.balance,
        "seed": args.seed,
        "threshold_method": args.threshold_method,
        "name": args.name,
        "threads": args.threads,
    }
    if args.recipe:
        return TrainingConfig.from_recipe(args.recipe, **overrides)
    if not args.arch:
        raise ValueError("Give --arch (an architecture) or --recipe (a preset).")
    return TrainingConfig(**{k: v for k, v in overrides.items() if v is not None})


def _training_plots(folder: Path, result, name: str, test=None) -> list[Path]:
    """History, ROC, confusion-matrix and score-histogram PNGs for one model."""
    from ..core.metrics import confusion_matrix
    from ..plots.training import plot_confusion_matrix, plot_history, plot_roc, plot_score_histograms

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig = plot_history(result.history, best_epoch=result.best_epoch, title=f"{name}: training history")
    written.append(_save(fig, folder / f"{name}_history.png"))
    curves, points = {}, {}
    if len(result.validation_labels):
        curves[f"{name} validation"] = (result.validation_labels, result.validation_scores)
        points[f"{name} validation"] = result.threshold
    if test is not None:
        curves[f"{name} test"] = test
        points[f"{name} test"] = result.threshold
    if curves:
        written.append(
            _save(plot_roc(curves, operating_points=points, title=f"{name}: ROC"), folder / f"{name}_roc.png")
        )
        split, (labels, scores) = list(curves.items())[-1]
        matrix = confusion_matrix(labels, scores, result.threshold)
        written.append(
            _save(
                plot_confusion_matrix(matrix, title=f"{split} (threshold {result.threshold:.3g})"),
                folder / f"{name}_confusion.png",
            )
        )
        written.append(
            _save(
                plot_score_histograms(labels, scores, threshold=result.threshold, title=split),
                folder / f"{name}_scores.png",
            )
        )
    return written


def _save(fig, path: Path) -> Path:
    from ..plots.training import save_figure

    save_figure(fig, path)
    return path


def run_train(args: argparse.Namespace) -> int:
    """Body of ``rbnodia train``."""
    from ..core.stampset import LabelledStamps
    from ..training import evaluate_model, finalize_model, network_cost, train_model

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; use --overwrite to replace it.")
    config = _config_from_args(args)
    config.validate()
    data = LabelledStamps.load(args.data)
    validation = LabelledStamps.load(args.validation) if args.validation else None
    test = LabelledStamps.load(args.test) if args.test else None
    _LOG.info("Training data: %s", data.summary())
    result = train_model(data, config, validation=validation, progress=not args.no_progress)
    test_metrics, test_scores = ({}, None)
    if test is not None:
        test_metrics, test_scores = evaluate_model(result.model, test, return_scores=True)
    model = finalize_model(
        result,
        test_metrics or None,
        test_summary=test.summary() if test is not None else None,
        extra={"data_files": [str(p) for p in args.data], "test_files": [str(p) for p in args.test or []]},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    cost = network_cost(model.network)
    print(f"model {model.version} -> {out}")
    print(
        f"architecture {config.architecture}: {cost['params']} parameters, {cost['macs'] / 1e6:.2f} M "
        f"multiply-adds per stamp"
    )
    print(
        f"{result.epochs_run} epochs (best {result.best_epoch}) in {result.train_seconds:.1f} s wall, "
        f"{result.cpu_seconds:.1f} CPU s; threshold {model.threshold:.4f} ({model.metadata.threshold_method})"
    )
    print(
        format_metrics_table(
            {"train": result.train_metrics, "validation": result.validation_metrics, "test": test_metrics}
        )
    )
    report = {
        "model": str(out),
        "version": model.version,
        "cost": cost,
        "training": model.metadata.training,
        "metrics": model.metadata.metrics,
        "threshold": model.threshold,
        "threshold_method": model.metadata.threshold_method,
        "history": result.history,
    }
    json_path = Path(args.metrics_json) if args.metrics_json else out.with_name(out.stem + ".metrics.json")
    _write_json(json_path, report)
    print(f"metrics -> {json_path}")
    if args.plots:
        folder = Path(args.plots)
        test_curve = (test.label, test_scores) if test is not None else None
        written = _training_plots(folder, result, model.metadata.name, test_curve)
        _write_json(folder / f"{model.metadata.name}_metrics.json", report)
        print(f"plots -> {folder} ({', '.join(p.name for p in written)})")
    return 0


# ---------------------------------------------------------------------------
# rbnodia reproduce-paper.


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rbnodia reproduce-paper`` / ``benchmarks/reproduce_paper.py``."""
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
        "--max-train", type=int, metavar="N", help="Use a stratified random N training stamps."
    )
    parser.add_argument("--max-test", type=int, metavar="N", help="Use a stratified random N test stamps.")
    parser.add_argument("--seed", type=int, default=0, help="Seed for subsetting, the split and training.")
    parser.add_argument("--threads", type=int, help="TensorFlow threads.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bars.")


def _stratified_subset(stamps, n: int | None, rng: np.random.Generator):
    if n is None or n >= len(stamps):
        return stamps
    from ..training import split_validation

    _, keep = split_validation(stamps.label, n / len(stamps), rng)
    return stamps.subset(keep)


def reproduce_paper(
    train_paths: Sequence[str | os.PathLike],
    test_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    recipes: Sequence[str] = REPRODUCE_DEFAULT_RECIPES,
    epochs: int | None = None,
    patience: int | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train several recipes on one split, score them on one test set, and
    compare with the paper.

    Parameters
    ----------
    train_paths, test_paths : sequence of path-like
        Labelled stamp files or folders.
    out_dir : path-like
        Where ``results.json``, ``results.md``, ``roc.png``,
        ``<recipe>_confusion.png``, ``<recipe>_history.png`` and
        ``<recipe>.rbmodel`` go.
    recipes : sequence of `str`
        Names in `rbnodia.training.TRAINING_RECIPES`.
    epochs, patience : `int`, optional
        Override every recipe's maximum epochs / patience (quick runs).
    max_train, max_test : `int`, optional
        Stratified random subsets.
    seed : `int`
        Seed of the subsets, the validation split and the training.
    threads : `int`, optional
        TensorFlow threads.
    progress : `bool`
        tqdm bars over epochs.

    Returns
    -------
    results : `dict`
        ``rows`` (per model, the comparison columns), ``metrics`` (full
        test metrics per model), ``paper`` (`PAPER_RESULTS`), ``data``
        (set summaries) and ``files``.
    """
    from ..core.metrics import confusion_matrix
    from ..core.stampset import LabelledStamps
    from ..plots.training import plot_confusion_matrix, plot_history, plot_roc
    from ..training import (
        TrainingConfig,
        evaluate_model,
        finalize_model,
        network_cost,
        split_validation,
        train_model,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_all = _stratified_subset(LabelledStamps.load(train_paths), max_train, rng)
    test = _stratified_subset(LabelledStamps.load(test_paths), max_test, rng)
    # One split for every model: the same stamps train and validate each.
    fit_index, val_index = split_validation(train_all.label, 0.2, rng)
    fit_set, val_set = train_all.subset(fit_index), train_all.subset(val_index)
    _LOG.info(
        "Reproducing the paper on %d training (%d validation) and %d test stamps.",
        len(fit_set),
        len(val_set),
        len(test),
    )

    rows: dict[str, dict[str, Any]] = {}
    metrics: dict[str, dict[str, Any]] = {}
    curves: dict[str, tuple] = {}
    files: list[str] = []
    for recipe in recipes:
        config = TrainingConfig.from_recipe(
            recipe, epochs=epochs, patience=patience, seed=seed, threads=threads, name=recipe
        )
        result = train_model(fit_set, config, validation=val_set, progress=progress)
        test_metrics, scores = evaluate_model(result.model, test, return_scores=True)
        model = finalize_model(
            result,
            test_metrics,
            test_summary=test.summary(),
            extra={"data_files": [str(p) for p in train_paths], "test_files": [str(p) for p in test_paths]},
        )
        model_path = model.save(out / f"{recipe}.rbmodel")
        cost = network_cost(model.network)
        n = test_metrics["n"]
        acc = test_metrics["accuracy"]
        rows[recipe] = {
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
        metrics[recipe] = test_metrics
        curves[recipe] = (test.label, scores)
        files.append(str(model_path))
        matrix = confusion_matrix(test.label, scores, result.threshold)
        files.append(
            str(
                _save(plot_confusion_matrix(matrix, title=f"{recipe}: test"), out / f"{recipe}_confusion.png")
            )
        )
        files.append(
            str(
                _save(
                    plot_history(result.history, best_epoch=result.best_epoch, title=recipe),
                    out / f"{recipe}_history.png",
                )
            )
        )
        _LOG.info("%s: test accuracy %.4f, AUC %.4f", recipe, acc, test_metrics["roc_auc"])
    files.append(str(_save(plot_roc(curves, title="test set"), out / "roc.png")))
    files.append(str(_save(plot_roc(curves, log_fpr=True, title="test set"), out / "roc_log.png")))

    table_rows = dict(rows)
    table_rows.update(PAPER_RESULTS)
    table = format_comparison_table(table_rows)
    data = {"train": fit_set.summary(), "validation": val_set.summary(), "test": test.summary()}
    results = {
        "rows": rows,
        "metrics": metrics,
        "paper": PAPER_RESULTS,
        "data": data,
        "files": files,
        "settings": {
            "recipes": list(recipes),
            "epochs": epochs,
            "patience": patience,
            "max_train": max_train,
            "max_test": max_test,
            "seed": seed,
            "threads": threads,
        },
    }
    markdown = (
        "# Reproducing Acero-Cuellar et al. (DIA vs noDIA)\n\n"
        f"Training {len(fit_set)} stamps, validation {len(val_set)}, test {len(test)} "
        f"({data['test']['n_real']} real, {data['test']['n_bogus']} bogus).  Our rows: this machine; "
        "train CPU hours = process CPU time of training; ms/stamp = wall-clock prediction time.  "
        "Paper rows: DES Y1 autoscan, 80,000/20,000 stamps, NERSC CPU hours.\n\n" + table + "\n"
    )
    (out / "results.md").write_text(markdown)
    _write_json(out / "results.json", results)
    files.extend([str(out / "results.md"), str(out / "results.json")])
    return results


def merge_reproductions(
    run_dirs: Sequence[str | os.PathLike], test_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike
) -> dict[str, Any]:
    """One comparison table from several `reproduce_paper` runs made on the
    same split (same data and seed), e.g. one recipe per run.

    Rows are taken from each run's ``results.json``; the ROC figure is redrawn
    by scoring every run's saved models on ``test_paths``.

    Returns
    -------
    results : `dict`
        ``rows``, ``metrics``, ``paper``, ``runs`` and ``files``.
    """
    from ..core.metrics import accuracy_by_group
    from ..core.stampset import LabelledStamps
    from ..nn.model import load_model
    from ..plots.training import plot_roc
    from ..training import evaluate_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    metrics: dict[str, dict[str, Any]] = {}
    data = None
    for run in map(Path, run_dirs):
        result = json.loads((run / "results.json").read_text())
        rows.update(result["rows"])
        metrics.update(result["metrics"])
        data = data or result.get("data")
    test = LabelledStamps.load(test_paths)
    curves = {}
    families = {}
    for recipe in rows:
        model_file = next(Path(r) / f"{recipe}.rbmodel" for r in run_dirs if (Path(r) / f"{recipe}.rbmodel").exists())
        model = load_model(model_file)
        _, scores = evaluate_model(model, test, return_scores=True)
        curves[recipe] = (test.label, scores)
        families[recipe] = accuracy_by_group(test.label, scores, test.family, model.threshold)
    files = [str(_save(plot_roc(curves, title="test set"), out / "roc.png")),
             str(_save(plot_roc(curves, log_fpr=True, title="test set"), out / "roc_log.png"))]
    table_rows = dict(rows)
    table_rows.update(PAPER_RESULTS)
    table = format_comparison_table(table_rows)
    (out / "results.md").write_text(
        "# Reproducing Acero-Cuellar et al. (DIA vs noDIA)\n\n"
        + (f"Test set: {data['test']['n']} stamps ({data['test']['n_real']} real, {data['test']['n_bogus']} "
           f"bogus); training {data['train']['n']}, validation {data['validation']['n']}.  " if data else "")
        + "Our rows: this machine; train CPU hours = process CPU time of training; ms/stamp = wall-clock "
        "prediction time.  Paper rows: DES Y1 autoscan, NERSC CPU hours.\n\n" + table + "\n\n"
        "## Test accuracy per family (label 0 = real, 1 = bogus)\n\n" + format_family_table(families) + "\n"
    )
    merged = {"rows": rows, "metrics": metrics, "paper": PAPER_RESULTS, "data": data,
              "family_accuracy": families,
              "runs": [str(r) for r in run_dirs], "files": files + [str(out / "results.md")]}
    _write_json(out / "results.json", merged)
    return merged


def run_merge(args: argparse.Namespace) -> int:
    """Body of ``rbnodia reproduce-paper-table``."""
    results = merge_reproductions(args.runs, args.test, args.out)
    table_rows = dict(results["rows"])
    table_rows.update(PAPER_RESULTS)
    print(format_comparison_table(table_rows))
    print(f"results -> {Path(args.out) / 'results.md'}")
    return 0


def run_reproduce(args: argparse.Namespace) -> int:
    """Body of ``rbnodia reproduce-paper``."""
    results = reproduce_paper(
        args.train,
        args.test,
        args.out,
        recipes=args.recipes,
        epochs=args.epochs,
        patience=args.patience,
        max_train=args.max_train,
        max_test=args.max_test,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
    )
    table_rows = dict(results["rows"])
    table_rows.update(PAPER_RESULTS)
    print(format_comparison_table(table_rows))
    print(f"results -> {Path(args.out) / 'results.md'}, {Path(args.out) / 'results.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``reproduce-paper`` to the ``rbnodia`` CLI."""
    train = subparsers.add_parser(
        "train",
        help="Train a real/bogus model from labelled stamp files.",
        description="Train a real/bogus network from labelled stamp files (.npz shards or folders), "
        "print its metrics, and write the model file, a metrics JSON and PNG diagnostics.",
    )
    add_train_arguments(train)
    train.set_defaults(func=run_train)
    reproduce = subparsers.add_parser(
        "reproduce-paper",
        help="Train the paper's DIA/noDIA and the improved noDIA on one split and compare with the paper.",
        description="Train several recipes on the same split, score them on the same test set, and print "
        "them beside Acero-Cuellar et al.'s results.",
    )
    add_reproduce_arguments(reproduce)
    reproduce.set_defaults(func=run_reproduce)
    merge = subparsers.add_parser(
        "reproduce-paper-table",
        help="Merge several reproduce-paper runs (same split, one recipe each) into one table and ROC plot.",
    )
    merge.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="reproduce-paper output folders.")
    merge.add_argument("--test", nargs="+", required=True, metavar="PATH", help="The runs' test stamps.")
    merge.add_argument("--out", required=True, metavar="DIR", help="Output folder.")
    merge.set_defaults(func=run_merge)
