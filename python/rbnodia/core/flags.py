"""Per-detection quality flags shared by the stamp cutter, the scaler and the
output catalog.
"""

from __future__ import annotations

__all__ = ["FLAG_COLUMNS", "StampFlag", "flag_columns"]

import enum

import numpy as np


class StampFlag(enum.IntFlag):
    """Bits describing problems with one detection's stamps.

    A flagged detection still gets a catalog row; the flag tells the user how
    much to trust its score.
    """

    NONE = 0
    EDGE = 1
    """The stamp extends past the edge of at least one image; the missing
    pixels were filled (see `rbnodia.core.scaling`)."""
    BAD_PIXELS = 2
    """At least one pixel inside the image is NaN, infinite, a sentinel
    (``|value| >= 1e30``) or in a bad mask plane; such pixels were filled
    and the stamp scored.  This includes the detection's own centre pixel."""
    SCALING_FAILED = 4
    """At least one stamp had fewer than two usable pixels or zero spread, so
    it could not be scaled and was set to a constant 0."""
    NO_DATA = 8
    """No score could be computed: the detection has no finite position, its
    centre lies outside an image, a stamp has no usable pixel at all, or the
    network gave no finite output.  ``score`` is NaN and ``is_real`` False in
    the full catalog; the AP output gives such rows a documented finite
    score instead (`rbnodia.tasks.compute_reliability`)."""


FLAG_COLUMNS: dict[str, tuple[StampFlag, str]] = {
    "flag_edge": (StampFlag.EDGE, "Stamp extends past an image edge; missing pixels filled."),
    "flag_bad_pixels": (StampFlag.BAD_PIXELS, "Stamp contains NaN/inf or masked pixels; they were filled."),
    "flag_scaling_failed": (StampFlag.SCALING_FAILED, "A stamp had no spread or too few usable pixels."),
    "flag_no_data": (StampFlag.NO_DATA, "Not scored (no finite position, centre off-image, no usable "
                     "pixel, or no finite network output); score is NaN."),
}
"""Catalog column name -> (flag bit, description)."""


def flag_columns(flags: np.ndarray) -> dict[str, np.ndarray]:
    """Expand an array of `StampFlag` bits into one boolean array per column.

    Parameters
    ----------
    flags : `numpy.ndarray`
        Integer array of `StampFlag` bits, one per detection.

    Returns
    -------
    columns : `dict` [`str`, `numpy.ndarray`]
        Boolean arrays keyed by the names in `FLAG_COLUMNS`.
    """
    flags = np.asarray(flags)
    return {name: (flags & int(bit)) != 0 for name, (bit, _) in FLAG_COLUMNS.items()}
