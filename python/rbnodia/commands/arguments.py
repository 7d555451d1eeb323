"""Argument types shared by the ``rbnodia`` subcommands: counts are checked
when the command line is parsed, so a bad value is a usage error (exit 2)
that names the option, never an empty result.
"""

from __future__ import annotations

__all__ = ["non_negative_int", "positive_int"]

import argparse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    """Parse an integer of at least 1 (argparse ``type``).

    Parameters
    ----------
    text : `str`
        The command-line value.

    Returns
    -------
    value : `int`
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        If it is not an integer >= 1.
    """
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """Parse an integer of at least 0 (argparse ``type``).

    Parameters
    ----------
    text : `str`
        The command-line value.

    Returns
    -------
    value : `int`
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        If it is not an integer >= 0.
    """
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value
