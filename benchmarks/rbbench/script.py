"""The ``main(argv)`` of the scripts in ``benchmarks/``: each script gives its
options and its code, and `script_main` makes the one entry point that
parses the command line and runs it.
"""

from __future__ import annotations

__all__ = ["script_main"]

import argparse
from collections.abc import Callable


def script_main(
    doc: str,
    arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    *,
    epilog: bool = False,
) -> Callable[..., int]:
    """Return the ``main`` function of a benchmark script.

    Parameters
    ----------
    doc : `str`
        The script's module docstring: its first paragraph is the
        description of ``--help``.
    arguments : callable
        Adds the script's options to its `argparse.ArgumentParser`.
    run : callable
        Takes the parsed `argparse.Namespace` and returns the exit status.
    epilog : `bool`, optional
        Also show the whole docstring, as written, at the end of
        ``--help``.

    Returns
    -------
    main : callable
        ``main(argv=None)``: parses ``argv`` (a `list` of `str`; default
        ``sys.argv[1:]``) and returns the `int` exit status of ``run``.
    """
    options = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": doc} if epilog else {}

    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], **options)
        arguments(parser)
        return run(parser.parse_args(argv))

    return main
