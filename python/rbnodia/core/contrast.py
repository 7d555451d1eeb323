"""Host-to-transient contrast of labelled stamps.

A transient on a bright galaxy core is hard for a real/bogus network: the
science stamp is dominated by the host, and a galaxy-core residual of a
flux-scale error looks alike.  Survey efficiency studies therefore quote
completeness against host brightness.  `host_contrast` measures it from the
stamps themselves, so it works for any labelled set (our simulator, the
stress set, real survey stamps) without the generator's truth: the template
flux over the difference flux, both summed over the central pixels after
subtracting the stamp border's median.  Isolated transients give about 0,
a transient as bright as its host's central pixels about 1, one on a bright
core 10 or more.
"""

from __future__ import annotations

__all__ = ["CONTRAST_BIN_EDGES", "host_contrast"]

import math
import warnings

import numpy as np

CONTRAST_BIN_EDGES = (-math.inf, 0.3, 1.0, 3.0, 10.0, math.inf)
"""Default `host_contrast` bin edges (the first bin holds isolated
transients, whose contrast scatters about 0)."""


def _central_flux(stamps: np.ndarray, radius: int, border: int) -> np.ndarray:
    # Slice first, then convert: only the border rows and the central box are copied.
    n, height, width = stamps.shape
    cy, cx = height // 2, width // 2
    edge = np.concatenate(
        [stamps[:, :border, :].reshape(n, -1), stamps[:, -border:, :].reshape(n, -1)], axis=1
    ).astype(np.float64)
    box = (slice(None), slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1))
    core = np.asarray(stamps[box], dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN borders: NaN, as documented
        level = np.nanmedian(edge, axis=1)
        return np.nansum(core, axis=(1, 2)) - level * (2 * radius + 1) ** 2


def host_contrast(tmpl: np.ndarray, diff: np.ndarray, *, radius: int = 2, border: int = 5) -> np.ndarray:
    """Measure the host-to-transient contrast of each stamp.

    Parameters
    ----------
    tmpl : `numpy.ndarray`
        ``(n, h, w)`` template stamps (not PSF-matched), science flux units.
    diff : `numpy.ndarray`
        ``(n, h, w)`` difference stamps, aligned with ``tmpl``.
    radius : `int`, optional
        Half-width of the central box summed (``2 radius + 1`` pixels wide).
    border : `int`, optional
        Rows at the top and bottom of the stamp whose median is the
        background subtracted first.

    Returns
    -------
    contrast : `numpy.ndarray`
        Template over difference flux in the central box; NaN where the
        difference flux there is not positive or a stamp has no finite
        pixels.

    Raises
    ------
    ValueError
        If the stamps are not ``(n, h, w)`` arrays of one shape, or too small
        for ``radius`` and ``border``.
    """
    tmpl = np.asarray(tmpl)
    diff = np.asarray(diff)
    if tmpl.ndim != 3 or tmpl.shape != diff.shape:
        raise ValueError(f"Need two (n, h, w) stamp arrays of one shape, got {tmpl.shape} and {diff.shape}.")
    if radius < 0 or border < 1 or min(tmpl.shape[1:]) < max(2 * radius + 1, 2 * border + 1):
        raise ValueError(f"Stamps of {tmpl.shape[1:]} are too small for radius {radius} and border {border}.")
    host = _central_flux(tmpl, radius, border)
    transient = _central_flux(diff, radius, border)
    with np.errstate(all="ignore"):
        return np.where(transient > 0, host / transient, np.nan)
