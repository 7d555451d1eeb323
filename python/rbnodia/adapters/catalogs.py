"""Detection-catalog adapters: any supported table -> `Detections`.

Supported inputs: `astropy.table.Table` (the ``ArrowAstropy`` storage
class), `pandas.DataFrame`, numpy structured arrays, mappings of column name
to array, and afw ``SourceCatalog`` (recognised by ``asAstropy``).
"""

from __future__ import annotations

__all__ = ["Detections", "to_detections"]

from dataclasses import dataclass
from typing import Any

import numpy as np

from .images import UnsupportedInputError


@dataclass(frozen=True)
class Detections:
    """Ids and pixel positions of detections, in input order.

    Attributes
    ----------
    id : `numpy.ndarray`
        int64 ids.
    x, y : `numpy.ndarray`
        float64 pixel positions (NaN allowed: such rows get NO_DATA).
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
        If ids are not integers.
    """
    if hasattr(table, "asAstropy") and not hasattr(table, "colnames"):  # afw catalog
        table = table.asAstropy()
    names = _column_names(table)
    missing = [c for c in (id_column, x_column, y_column) if c not in names]
    if missing:
        raise KeyError(f"Detection catalog lacks column(s) {missing}; it has {names}.")
    ids = np.asarray(table[id_column])
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"Column {id_column!r} must hold integer ids, got dtype {ids.dtype}.")
    if np.ma.is_masked(table[id_column]):
        raise ValueError(f"Column {id_column!r} has masked (missing) ids.")
    return Detections(id=ids.astype(np.int64), x=_float_column(table[x_column]), y=_float_column(table[y_column]))


def _float_column(column: Any) -> np.ndarray:
    """float64 copy of a column; masked entries become NaN."""
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
