"""Per-stamp scaling, exactly as Acero-Cuellar et al. scale their inputs,
made robust to unusable pixels and degenerate stamps.

For a stamp with only finite, usable pixels the results equal the paper's
code:

- difference stamps are standardised, ``(x - mean) / std`` (population std,
  no clipping);
- science ("srch") and template ("tmpl") stamps are mapped by the 3-sigma
  interval rule: with the stamp mean ``m`` and std ``s``, the pixels with
  ``m - 3s < x < m + 3s`` (strict) give ``lo`` and ``hi`` (their min and max),
  and every pixel becomes ``(x - lo) / (hi - lo)``.  Pixels outside the
  interval land below 0 or above 1 and are kept.

Beyond the paper: statistics use the usable pixels only; unusable pixels are
filled with the value the stamp's mean maps to (0 for a standardised
difference stamp); a stamp with fewer than two usable pixels or no spread is
set to 0 everywhere and reported as failed, never raising and never returning
NaN.
"""

from __future__ import annotations

__all__ = ["SCALING_VERSION", "standardize", "interval_scale"]

import numpy as np

SCALING_VERSION = "acero-cuellar-2023/v1"
"""Identifier of this scaling recipe, stored in model metadata so that a model
is never fed stamps scaled differently from its training data."""


def _masked_moments(pixels: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and population std of the usable pixels of each stamp."""
    values = np.where(usable, pixels, 0.0).astype(np.float64)
    count = usable.sum(axis=(1, 2))
    safe = np.maximum(count, 1)
    mean = values.sum(axis=(1, 2)) / safe
    deviation = np.where(usable, values - mean[:, None, None], 0.0)
    std = np.sqrt((deviation * deviation).sum(axis=(1, 2)) / safe)
    return count, mean, std


def standardize(pixels: np.ndarray, usable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Standardise each stamp to zero mean and unit standard deviation.

    Parameters
    ----------
    pixels : `numpy.ndarray`
        ``(n, h, w)`` stamps.
    usable : `numpy.ndarray`, optional
        ``(n, h, w)`` bool; defaults to the finite pixels.

    Returns
    -------
    scaled : `numpy.ndarray`
        ``(n, h, w)`` float32; unusable pixels are 0.
    failed : `numpy.ndarray`
        ``(n,)`` bool; True where the stamp could not be scaled (then all 0).
    """
    pixels = np.asarray(pixels)
    usable = np.isfinite(pixels) if usable is None else (np.asarray(usable, dtype=bool) & np.isfinite(pixels))
    count, mean, std = _masked_moments(pixels, usable)
    failed = (count < 2) | ~(std > 0) | ~np.isfinite(std)
    safe_std = np.where(failed, 1.0, std)
    scaled = (np.where(usable, pixels, 0.0) - mean[:, None, None]) / safe_std[:, None, None]
    scaled = np.where(usable & ~failed[:, None, None], scaled, 0.0)
    return scaled.astype(np.float32), failed


def interval_scale(
    pixels: np.ndarray, usable: np.ndarray | None = None, nsigma: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Map each stamp's ``mean +- nsigma * std`` pixel range onto 0-1.

    Parameters
    ----------
    pixels : `numpy.ndarray`
        ``(n, h, w)`` stamps.
    usable : `numpy.ndarray`, optional
        ``(n, h, w)`` bool; defaults to the finite pixels.
    nsigma : `float`
        Half-width of the interval in standard deviations (the paper: 3).

    Returns
    -------
    scaled : `numpy.ndarray`
        ``(n, h, w)`` float32; unusable pixels get the value of the stamp
        mean.
    failed : `numpy.ndarray`
        ``(n,)`` bool; True where the stamp could not be scaled (then all 0).
    """
    pixels = np.asarray(pixels)
    usable = np.isfinite(pixels) if usable is None else (np.asarray(usable, dtype=bool) & np.isfinite(pixels))
    count, mean, std = _masked_moments(pixels, usable)
    values = np.where(usable, pixels, 0.0).astype(np.float64)
    m = mean[:, None, None]
    s = std[:, None, None]
    inside = usable & (values > m - nsigma * s) & (values < m + nsigma * s)
    lo = np.where(inside, values, np.inf).min(axis=(1, 2))
    hi = np.where(inside, values, -np.inf).max(axis=(1, 2))
    span = hi - lo
    failed = (count < 2) | ~(std > 0) | ~np.isfinite(span) | ~(span > 0)
    safe_lo = np.where(failed, 0.0, lo)[:, None, None]
    safe_span = np.where(failed, 1.0, span)[:, None, None]
    filled = np.where(usable, values, m)
    scaled = (filled - safe_lo) / safe_span
    scaled = np.where(failed[:, None, None], 0.0, scaled)
    return scaled.astype(np.float32), failed
