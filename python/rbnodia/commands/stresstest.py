"""``rbnodia stress-test``: score real/bogus models on the independent
stress set (`rbnodia.stresstest`) and report how they generalise.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

import argparse
from pathlib import Path

from .arguments import Command
from .reports import copy_doc_figures, write_text_atomically

DEFAULT_MODELS = ("nodia_default", "dia_default")
"""Models scored when no ``--model`` is given."""


DOC_FIGURES = {
    "roc": "ROC curves: stress set (solid) and own test split (dashed) per model.",
    "families": "Fraction of each stress-set family called real, per model (real families hatched).",
}
"""Report figures copied next to the ``--doc-table`` include, with their captions."""


def _stress_test(args: argparse.Namespace) -> int:
    import shlex

    from ..stresstest import format_markdown, format_rst, run_stress_report

    options = {"settings": args.settings} if args.settings else {}
    report = run_stress_report(
        args.model or list(DEFAULT_MODELS),
        args.out,
        n=args.n,
        seed=args.seed,
        own_test=args.own_test or (),
        **options,
        workers=args.workers,
        progress=not args.no_progress,
        regenerate=args.regenerate,
    )
    print(format_markdown(report))
    if args.doc_table:
        command = "rbnodia " + " ".join(shlex.quote(a) for a in args.argv if a != "--no-progress")
        figures = copy_doc_figures(
            args.doc_table, {plot: (report["files"][plot], caption) for plot, caption in DOC_FIGURES.items()}
        )
        report["files"].update(
            {
                f"doc_{plot}": str(args.doc_table.parent / Path(name).name)
                for plot, name in zip(DOC_FIGURES, figures)
            }
        )
        write_text_atomically(args.doc_table, format_rst(report, command, figures))
        report["files"]["doc_table"] = str(args.doc_table)
    print("Files:", ", ".join(report["files"].values()))
    return 0


def _stress_test_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        action="append",
        help=f"Model file or packaged model name (repeatable; default: {' and '.join(DEFAULT_MODELS)}).",
    )
    parser.add_argument(
        "--n", type=int, default=20_000, help="Stamps in the stress set, split evenly over settings."
    )
    parser.add_argument("--seed", type=int, default=16, help="Stress-set seed.")
    parser.add_argument(
        "--out", required=True, type=Path, help="Report folder; the set lives in OUT/stress_set."
    )
    parser.add_argument(
        "--own-test",
        action="append",
        type=Path,
        metavar="PATH",
        help="Labelled-stamps file or folder of our own test split (what make-training-set writes; "
        "repeatable). Default: the test AUC stored in each model file.",
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        metavar="NAME",
        help="Observing settings (names in rbnodia.stresstest.SETTINGS; default: all of them).",
    )
    parser.add_argument("--workers", type=int, default=2, help="Processes generating the stress set.")
    parser.add_argument(
        "--regenerate", action="store_true", help="Replace a stress set made with another recipe."
    )
    parser.add_argument(
        "--doc-table",
        type=Path,
        metavar="PATH",
        help="Also write the tables as a reStructuredText include for the docs, with "
        "copies of roc.png and families.png beside it (PATH's stem + _roc.png, ...), "
        "shown by the include for a document in PATH's grandparent folder.",
    )
    parser.add_argument("--no-progress", action="store_true")


COMMANDS = (
    Command(
        "stress-test",
        help="Score models on the independent stress set and write a report.",
        description="Make (or reuse, if OUT holds it) a stress set of labelled stamps from a generator "
        "independent of the training simulator, score each model on it, and print and write "
        "report.json, report.md, roc.png, families.png, snr_auc.png and examples.png in OUT.",
        run=_stress_test,
        arguments=_stress_test_arguments,
    ),
)
