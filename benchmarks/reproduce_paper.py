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


def main(argv=None) -> int:
    """Reproduce the comparison from the command line.

    Parameters
    ----------
    argv : `list` [`str`], optional
        Arguments; default ``sys.argv[1:]``.

    Returns
    -------
    status : `int`
        The exit status.
    """
    from rbnodia.cli import configure_logging
    from rbnodia.commands.reproduce import COMMANDS

    (command,) = COMMANDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     parents=[command.arguments_parser()])
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    return command.run(args)


if __name__ == "__main__":
    sys.exit(main())
