#!/usr/bin/env python
r"""Reproduce Acero-Cuellar et al.'s DIA vs noDIA comparison on our data.

Trains ``paper_dia``, ``paper_nodia`` and ``improved_nodia`` (or the
``--recipes`` given) on the same training/validation split, scores them on
the same test set, and prints a table beside the paper's numbers (train and
test accuracy, ROC AUC, TP and TN rates, training CPU time, prediction time
per stamp).  Writes ``results.json``, ``results.md``, ROC and confusion-matrix
PNGs and the model files into ``--out``.

Examples
--------
Quick check on small sets::

    python benchmarks/reproduce_paper.py --train stamps/train --test stamps/test \
        --epochs 5 --max-train 2000 --out /tmp/repro

The same is available as ``rbnodia reproduce-paper``.
"""

import argparse
import sys

from rbbench.script import script_main


def _arguments(parser: argparse.ArgumentParser) -> None:
    from rbnodia.commands.reproduce import add_reproduce_arguments

    add_reproduce_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")


def _run(args: argparse.Namespace) -> int:
    """Reproduce the comparison as ``rbnodia reproduce-paper`` does."""
    from rbnodia.cli import configure_logging
    from rbnodia.commands.reproduce import COMMANDS

    (command,) = COMMANDS
    configure_logging(args.verbose)
    return command.run(args)


main = script_main(__doc__, _arguments, _run)

if __name__ == "__main__":
    sys.exit(main())
