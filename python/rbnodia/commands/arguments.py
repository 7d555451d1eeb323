"""Argument types shared by the ``rbnodia`` subcommands: counts are checked
when the command line is parsed, so a bad value is a usage error (exit 2)
that names the option, never an empty result.
"""

from __future__ import annotations

__all__ = ["int_at_least", "non_negative_int", "positive_int"]

import argparse
from collections.abc import Callable


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
