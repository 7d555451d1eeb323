"""The ``rbnodia`` command line.

Each subcommand lives with the code it drives and declares itself as a
`rbnodia.commands.arguments.Command` in the ``COMMANDS`` of a module listed
in `_COMMAND_MODULES`; this module only assembles them, so adding a command
never touches the others.
"""

from __future__ import annotations

__all__ = ["build_parser", "configure_logging", "main"]

import argparse
import importlib
import logging
import sys

_COMMAND_MODULES = (
    "rbnodia.commands.demo",
    "rbnodia.commands.info",
    "rbnodia.commands.model",
    "rbnodia.commands.put_model",
    "rbnodia.commands.train",
    "rbnodia.commands.reproduce",
    "rbnodia.commands.reproduce_table",
    "rbnodia.commands.saliency",
    "rbnodia.commands.simulate",
    "rbnodia.commands.stresstest",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered subcommand.

    Returns
    -------
    parser : `argparse.ArgumentParser`
        The parser; commands whose modules cannot be imported (a missing
        extra) are listed in its epilog.
    """
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="rbnodia",
        description="Real/bogus classification without difference imaging (noDIA), for LSST pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"rbnodia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    unavailable = []
    for module_name in _COMMAND_MODULES:
        try:
            commands = importlib.import_module(module_name).COMMANDS
            arguments = [command.arguments_parser() for command in commands]  # all or none of them
            for command, command_arguments in zip(commands, arguments, strict=True):
                command.add_to(subparsers, command_arguments)
        except ImportError as err:  # an install without the extra the commands need
            unavailable.append(f"the commands of {module_name} ({err}; see the README's install table)")
    if unavailable:
        parser.epilog = "Unavailable in this install: " + "; ".join(unavailable) + "."
    return parser


def configure_logging(verbose: bool) -> None:
    """Send log messages to standard error as the ``rbnodia`` commands show them.

    Parameters
    ----------
    verbose : `bool`
        Show debug messages (``--verbose``); otherwise from ``INFO`` up.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the ``rbnodia`` console script.

    Parameters
    ----------
    argv : `list` [`str`], optional
        The command line after ``rbnodia``: a command and its options;
        default ``sys.argv[1:]``.

    Returns
    -------
    status : `int`
        The exit status: the command's, 2 without a command, 130 on Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given, for provenance
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"rbnodia {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
