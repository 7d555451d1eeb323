"""Command-line options generated from a `lsst.pex.config.Config`.

Each field becomes one option named after it (``batchSize`` ->
``--batch-size``), typed by its dtype, with its choices, and with its
documentation and default as help; a `bool` field becomes a
``--flag/--no-flag`` pair.  An option left out keeps the config's value, so
the config class stays the one source of every default.
"""

from __future__ import annotations

__all__ = ["add_config_options", "apply_config_options", "config_fields", "option_name"]

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lsst.pex.config as pexConfig


def option_name(field_name: str) -> str:
    """Return the option of a field: ``batchSize`` -> ``--batch-size``.

    Parameters
    ----------
    field_name : `str`
        A camelCase config field name.

    Returns
    -------
    option : `str`
        The command-line option.
    """
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", field_name).lower()


def config_fields(config_class: type[pexConfig.Config]) -> dict[str, pexConfig.Field]:
    """Return the fields of a config class, by name, in definition order.

    Parameters
    ----------
    config_class : `type` [`lsst.pex.config.Config`]
        The config class.

    Returns
    -------
    fields : `dict` [`str`, `lsst.pex.config.Field`]
        Field name -> field.
    """
    return {name: getattr(config_class, name) for name in config_class().keys()}


def _choices(field: pexConfig.Field) -> dict[Any, str]:
    """Return a choice field's choices (without the `None` of optional ones)."""
    return {k: v for k, v in (getattr(field, "allowed", None) or {}).items() if k is not None}


def _help(field: pexConfig.Field) -> str:
    text = " ".join(str(field.doc).split())
    allowed = _choices(field)
    if allowed:
        text += " Choices: " + "; ".join(f"{key}: {value}" for key, value in allowed.items()) + "."
    default = field.default
    return text.replace("%", "%%") + (" (default: unset)" if default is None else f" (default: {default})")


def add_config_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config_class: type[pexConfig.Config],
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
    exclude: Iterable[str] = (),
) -> list[str]:
    """Add one option per field of ``config_class``.

    Parameters
    ----------
    parser : `argparse.ArgumentParser` or argument group
        Where the options go.
    config_class : `type`
        A `lsst.pex.config.Config` subclass.
    aliases : `~collections.abc.Mapping` [`str`, sequence of `str`], optional
        Extra option strings per field name (e.g. ``{"architecture":
        ["--arch"]}``).
    exclude : iterable of `str`
        Fields to leave out.

    Returns
    -------
    names : `list` [`str`]
        The fields given an option; each option's ``dest`` is the field name,
        and its parsed value is `None` when the option is not given.
    """
    aliases = aliases or {}
    excluded = set(exclude)
    added = []
    for name, field in config_fields(config_class).items():
        if name in excluded:
            continue
        flags = [option_name(name), *aliases.get(name, ())]
        if field.dtype is bool:
            parser.add_argument(
                *flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=_help(field)
            )
        elif isinstance(field, pexConfig.ListField):
            parser.add_argument(*flags, dest=name, type=field.itemtype, nargs="*", default=None,
                                metavar=flags[0][2:].upper().replace("-", "_"), help=_help(field))
        else:
            allowed = _choices(field)
            parser.add_argument(
                *flags,
                dest=name,
                type=field.dtype,
                default=None,
                choices=sorted(allowed) if allowed else None,
                metavar=None if allowed else flags[0][2:].upper().replace("-", "_"),
                help=_help(field),
            )
        added.append(name)
    return added


def apply_config_options(config: pexConfig.Config, args: argparse.Namespace) -> dict[str, Any]:
    """Set the fields whose options were given.

    Parameters
    ----------
    config : `lsst.pex.config.Config`
        Config to change (its values stay for options not given).
    args : `argparse.Namespace`
        Parsed options of `add_config_options`.

    Returns
    -------
    given : `dict` [`str`, `typing.Any`]
        The fields set.

    Raises
    ------
    lsst.pex.config.FieldValidationError
        If a value is invalid for its field (a `ValueError`).
    """
    given = {name: getattr(args, name) for name in config.keys() if getattr(args, name, None) is not None}
    config.update(**given)
    return given
