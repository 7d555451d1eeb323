"""``rbnodia train``: train one real/bogus model from labelled stamp files,
outside a Butler.

Prints the model's metrics and writes the model file, a metrics JSON and
PNG figures.  The training options are generated from
`rbnodia.training.TrainingConfig` (one option per field, same defaults as
the task's ``training`` sub-config); ``--recipe`` applies a named preset
first.  With ``--checkpoint-dir`` the run checkpoints every epoch and a rerun
of the same command resumes it.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "add_train_arguments", "config_from_args", "write_training_plots"]

import argparse
import logging
from pathlib import Path
from typing import Any

from .arguments import Command
from .config_options import add_config_options, apply_config_options
from .reports import format_metrics_table, write_json

_LOG = logging.getLogger(__name__)

CLI_ALIASES = {"architecture": ["--arch"]}
"""Short option strings for `rbnodia.training.TrainingConfig` fields."""


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``rbnodia train``: files, outputs, and one per training setting.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
        The parser to add them to.
    """
    from ..training import TRAINING_RECIPES, TrainingConfig

    files = parser.add_argument_group("data and outputs")
    files.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH",
        help="Training stamp files (.npz) or folders of them.",
    )
    files.add_argument(
        "--test",
        nargs="+",
        metavar="PATH",
        help="Held-out test stamp files or folders (scored after training).",
    )
    files.add_argument(
        "--validation",
        nargs="+",
        metavar="PATH",
        help="Validation stamps (default: a stratified --validation-fraction of --data).",
    )
    files.add_argument("--out", required=True, metavar="MODEL.rbmodel", help="Model file to write.")
    files.add_argument("--overwrite", action="store_true", help="Replace an existing model file.")
    files.add_argument(
        "--plots", metavar="DIR", help="Folder for PNG figures (and a copy of the metrics JSON)."
    )
    files.add_argument(
        "--metrics-json",
        metavar="PATH",
        help="Metrics JSON to write (default: next to the model, MODEL.metrics.json).",
    )
    files.add_argument("--no-progress", action="store_true", help="No progress bar.")
    files.add_argument(
        "--session-epochs",
        type=int,
        metavar="N",
        help="Train at most N epochs in this invocation, then stop; with --checkpoint-dir the "
        "same command resumes later.",
    )
    settings = parser.add_argument_group("training settings (rbnodia.training.TrainingConfig)")
    settings.add_argument(
        "--recipe",
        choices=sorted(TRAINING_RECIPES),
        help="Named preset applied before the other settings (architecture, optimizer, epochs, "
        "patience, augmentation).",
    )
    add_config_options(settings, TrainingConfig, aliases=CLI_ALIASES)


def config_from_args(args: argparse.Namespace) -> Any:
    """Return the validated `~rbnodia.training.TrainingConfig`: the defaults, then
    ``--recipe``, then the options given.

    Parameters
    ----------
    args : `argparse.Namespace`
        The parsed command line.

    Returns
    -------
    config : `rbnodia.training.TrainingConfig`
        The validated settings.
    """
    from ..training import TrainingConfig

    config = TrainingConfig()
    if getattr(args, "recipe", None):
        config.apply_recipe(args.recipe)
    apply_config_options(config, args)
    config.validate()
    return config


def write_training_plots(folder: Path, result, name: str, test=None) -> list[Path]:
    """Write a model's training figures as PNG.

    Parameters
    ----------
    folder : `pathlib.Path`
        Output folder.
    result : `~rbnodia.training.TrainingResult`
        A finished run.
    name : `str`
        Model name (file name prefix).
    test : `tuple`, optional
        ``(labels, scores, metrics)`` on a test set.

    Returns
    -------
    written : `list` [`pathlib.Path`]
        Learning curves, ROC, confusion matrix, score histograms and, for the
        test (else validation) split, the fraction of each family called real
        and ROC AUC per S/N bin.
    """
    from ..core.metrics import confusion_matrix
    from ..plots.families import plot_auc_vs_snr, plot_family_fractions
    from ..plots.training import plot_confusion_matrix, plot_history, plot_roc, plot_score_histograms

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{name}_history.png"]
    plot_history(
        result.history, best_epoch=result.best_epoch, title=f"{name}: learning curves", path=written[-1]
    )
    curves = {}
    if len(result.validation_labels):
        curves[f"{name} validation"] = (result.validation_labels, result.validation_scores)
    if test is not None:
        curves[f"{name} test"] = test[:2]
    if curves:
        written.append(folder / f"{name}_roc.png")
        plot_roc(
            curves,
            operating_points={k: result.threshold for k in curves},
            title=f"{name}: ROC",
            path=written[-1],
        )
        split, (labels, scores) = list(curves.items())[-1]
        written.append(folder / f"{name}_confusion.png")
        plot_confusion_matrix(
            confusion_matrix(labels, scores, result.threshold),
            title=f"{split} (threshold {result.threshold:.3g})",
            path=written[-1],
        )
        written.append(folder / f"{name}_scores.png")
        plot_score_histograms(labels, scores, threshold=result.threshold, title=split, path=written[-1])
    breakdown = test[2] if test is not None else result.validation_metrics
    if breakdown:
        split = "test" if test is not None else "validation"
        written.append(folder / f"{name}_families.png")
        plot_family_fractions(
            {name: breakdown["by_family"]}, title=f"{name} ({split}): fraction called real", path=written[-1]
        )
        written.append(folder / f"{name}_auc_snr.png")
        plot_auc_vs_snr(
            {name: breakdown["auc_by_snr"]}, title=f"{name} ({split}): ROC AUC per S/N bin", path=written[-1]
        )
    return written


def _print_summary(model, result, out: Path, test_metrics: dict[str, Any]) -> None:
    from ..training import network_cost

    cost = network_cost(model.network)
    print(f"model {model.version} -> {out}")
    print(
        f"architecture {result.config.architecture}: {cost['params']} parameters, {cost['macs'] / 1e6:.2f} M "
        "multiply-adds per stamp"
    )
    resumed = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
    print(
        f"{result.epochs_run} epochs (best {result.best_epoch}{resumed}) in {result.train_seconds:.1f} s "
        f"wall, {result.cpu_seconds:.1f} CPU s; threshold {model.threshold:.4f} "
        f"({model.metadata.threshold_method})"
    )
    print(
        format_metrics_table(
            {"train": result.train_metrics, "validation": result.validation_metrics, "test": test_metrics}
        )
    )


def _train(args: argparse.Namespace) -> int:
    from ..core.stampset import LabelledStamps
    from ..training import evaluate_model, finalize_model, label_families_real, network_cost, train_model

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; use --overwrite to replace it.")
    config = config_from_args(args)
    data = LabelledStamps.load(args.data)
    validation = LabelledStamps.load(args.validation) if args.validation else None
    test = LabelledStamps.load(args.test) if args.test else None
    for stamps in (data, validation, test):
        if stamps is not None and config.realFamilies:
            changed = label_families_real(stamps, config.realFamilies)
            _LOG.info("Labelled %d stamps of %s real (realFamilies).", changed, list(config.realFamilies))
    _LOG.info("Training data: %s", data.summary())
    result = train_model(
        data, config, validation=validation, progress=not args.no_progress, session_epochs=args.session_epochs
    )
    if not result.finished:
        print(
            f"stopped after epoch {result.epochs_run} of {config.epochs}; the checkpoint in "
            f"{config.checkpointDir} resumes it: run the same command again"
        )
        return 0
    test_metrics, test_scores = (
        evaluate_model(result.model, test, return_scores=True) if test is not None else ({}, None)
    )
    model = finalize_model(
        result,
        test_metrics or None,
        test_summary=test.summary() if test is not None else None,
        extra={"data_files": [str(p) for p in args.data], "test_files": [str(p) for p in args.test or []]},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    _print_summary(model, result, out, test_metrics)
    report = {
        "model": str(out),
        "version": model.version,
        "cost": network_cost(model.network),
        "training": model.metadata.training,
        "metrics": model.metadata.metrics,
        "threshold": model.threshold,
        "threshold_method": model.metadata.threshold_method,
        "history": result.history,
    }
    json_path = Path(args.metrics_json) if args.metrics_json else out.with_name(out.stem + ".metrics.json")
    write_json(json_path, report)
    print(f"metrics -> {json_path}")
    if args.plots:
        folder = Path(args.plots)
        test_curve = (test.label, test_scores, test_metrics) if test is not None else None
        written = write_training_plots(folder, result, model.metadata.name, test_curve)
        write_json(folder / f"{model.metadata.name}_metrics.json", report)
        print(f"plots -> {folder} ({', '.join(p.name for p in written)})")
    return 0


COMMANDS = (
    Command(
        "train",
        help="Train a real/bogus model from labelled stamp files.",
        description="Train a real/bogus network from labelled stamp files (.npz shards or folders), print "
        "its metrics, and write the model file, a metrics JSON and PNG diagnostics.  With --checkpoint-dir "
        "the run checkpoints every epoch and the same command resumes it.",
        run=_train,
        arguments=add_train_arguments,
    ),
)
