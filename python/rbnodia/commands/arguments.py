"""What the ``rbnodia`` subcommands share: `Command`, the declaration of a
subcommand that `rbnodia.cli` adds to its parser, and argument types that
check counts when the command line is parsed, so a bad value is a usage
error (exit 2) that names the option, never an empty result.
"""

from __future__ import annotations

__all__ = ["Command", "int_at_least", "non_negative_int", "positive_int"]

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One ``rbnodia`` subcommand; each command module lists its own in
    ``COMMANDS``.

    Attributes
    ----------
    name : `str`
        The subcommand's name on the command line.
    help : `str`
        One line for ``rbnodia --help``.
    run : callable
        Takes the parsed `argparse.Namespace` and returns the exit status.
    arguments : callable, optional
        Adds the subcommand's arguments to its `argparse.ArgumentParser`.
    description : `str`, optional
        The text of ``rbnodia NAME --help`` (default: none).
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None

    def arguments_parser(self) -> argparse.ArgumentParser:
        """Return a parser, without ``--help``, that holds the subcommand's arguments.

        Returns
        -------
        parser : `argparse.ArgumentParser`
            The arguments, to pass to `add_to`.

        Raises
        ------
        ImportError
            If the arguments need an extra that is not installed.
        """
        parser = argparse.ArgumentParser(add_help=False)
        if self.arguments is not None:
            self.arguments(parser)
        return parser

    def add_to(
        self, subparsers: argparse._SubParsersAction, arguments: argparse.ArgumentParser | None = None
    ) -> argparse.ArgumentParser:
        """Add the subcommand to a parser.

        Parameters
        ----------
        subparsers : `argparse._SubParsersAction`
            The ``rbnodia`` parser's subcommands.
        arguments : `argparse.ArgumentParser`, optional
            What `arguments_parser` returned (default: made here).

        Returns
        -------
        parser : `argparse.ArgumentParser`
            The subcommand's parser, its arguments added and ``func`` set to
            `run`.
        """
        parser = subparsers.add_parser(
            self.name, help=self.help, description=self.description,
            parents=[self.arguments_parser() if arguments is None else arguments],
        )
        parser.set_defaults(func=self.run)
        return parser


def int_at_least(minimum: int) -> Callable[[str], int]:
    """Return an argparse ``type`` that parses an integer of at least ``minimum``.

    Parameters
    ----------
    minimum : `int`
        The smallest value accepted.

    Returns
    -------
    parse : callable
        Takes the command-line text and returns the value; raises
        `argparse.ArgumentTypeError` if it is not an integer >= ``minimum``.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = parse.__qualname__ = f"int_at_least_{minimum}"
    return parse


positive_int = int_at_least(1)
"""Parse an integer of at least 1 (argparse ``type``)."""

non_negative_int = int_at_least(0)
"""Parse an integer of at least 0 (argparse ``type``)."""
