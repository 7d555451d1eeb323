"""Detection-catalog adapters: any supported table -> `Detections`.

Supported inputs: `astropy.table.Table` (the ``ArrowAstropy`` storage
class), `pandas.DataFrame`, numpy structured arrays, mappings of column name
to array, and afw ``SourceCatalog`` (through `rbnodia.adapters.afw`).
"""

from __future__ import annotations

__all__ = ["Detections", "to_detections"]

from dataclasses import dataclass
from typing import Any

import numpy as np

from .afw import afw_catalog_columns, is_afw
from .images import UnsupportedInputError

_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Detections:
    """Ids and pixel positions of detections, in input order.

    Attributes
    ----------
    id : `numpy.ndarray`
        int64 ids.
    x, y : `numpy.ndarray`
        float64 pixel positions; NaN for masked or non-finite input (such
        rows get ``NO_DATA`` and NaN sky positions).
    """

    id: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.id)


def _column_names(table: Any) -> list[str]:
    if hasattr(table, "colnames"):
        return list(table.colnames)
    if hasattr(table, "columns"):
        return [str(c) for c in table.columns]
    if isinstance(table, np.ndarray) and table.dtype.names:
        return list(table.dtype.names)
    if isinstance(table, dict):
        return list(table)
    raise UnsupportedInputError(
        f"Unsupported catalog type {type(table).__module__}.{type(table).__qualname__}; expected an astropy "
        "Table, pandas DataFrame, numpy structured array, dict of arrays, or afw SourceCatalog."
    )


def to_detections(table: Any, id_column: str = "id", x_column: str = "x", y_column: str = "y") -> Detections:
    """Extract ids and positions from a detection catalog.

    Parameters
    ----------
    table
        The catalog (see the module docstring).
    id_column, x_column, y_column : `str`
        Column names.

    Returns
    -------
    detections : `Detections`

    Raises
    ------
    KeyError
        If a column is missing; the message lists the available columns.
    ValueError
        If ids are not integers, are masked, or do not fit in int64 (Rubin's
        id type; a uint64 id >= 2**63 is refused rather than wrapped); if
        positions are not numbers; if a column is not 1-d, or the columns
        differ in length.
    """
    if is_afw(table) and hasattr(table, "schema"):
        table = afw_catalog_columns(table, [id_column, x_column, y_column])
    names = _column_names(table)
    missing = [c for c in (id_column, x_column, y_column) if c not in names]
    if missing:
        raise KeyError(f"Detection catalog lacks column(s) {missing}; it has {names}.")
    ids = _id_column(table[id_column], id_column)
    x, y = _float_column(table[x_column], x_column), _float_column(table[y_column], y_column)
    if not len(ids) == len(x) == len(y):
        raise ValueError(f"Columns {id_column!r}, {x_column!r} and {y_column!r} differ in length: "
                         f"{len(ids)}, {len(x)} and {len(y)}.")
    return Detections(id=ids, x=x, y=y)


def _id_column(column: Any, name: str) -> np.ndarray:
    """int64 copy of the id column, refusing what cannot be kept exactly."""
    if np.ma.is_masked(column) or (hasattr(column, "isna") and bool(np.asarray(column.isna()).any())):
        raise ValueError(f"Column {name!r} has masked (missing) ids.")
    ids = np.asarray(column)
    if ids.ndim != 1:
        raise ValueError(f"Column {name!r} must be 1-d, got shape {ids.shape}.")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"Column {name!r} must hold integer ids, got dtype {ids.dtype}.")
    if ids.size and ids.dtype.kind == "u" and ids.max() > _INT64_MAX:
        first = int(ids[np.argmax(ids > _INT64_MAX)])
        raise ValueError(f"Column {name!r} holds unsigned ids >= 2**63 (e.g. {first}) that do not fit in "
                         "int64, the id type of the outputs; they would wrap to negative values.")
    return ids.astype(np.int64)


def _float_column(column: Any, name: str) -> np.ndarray:
    """float64 copy of a position column; masked, missing (None) and
    infinite entries become NaN; text is refused.
    """
    dtype = np.asarray(column).dtype
    if dtype.kind in "SUV":
        raise ValueError(f"Column {name!r} must hold numbers, got dtype {dtype}.")
    try:
        values = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Column {name!r} must hold numbers: {error}") from None
    if values.ndim != 1:
        raise ValueError(f"Column {name!r} must be 1-d, got shape {values.shape}.")
    return np.where(np.isfinite(values), values, np.nan)
