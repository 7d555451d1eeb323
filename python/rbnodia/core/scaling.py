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

Beyond the paper: statistics use the usable pixels only (finite, below
`PIXEL_LIMIT`, and not masked); unusable pixels are
filled with the value the stamp's mean maps to (0 for a standardised
difference stamp); a stamp with fewer than two usable pixels or no spread is
set to 0 everywhere and reported as failed, never raising and never returning
NaN.

A second recipe, `Scaling.SHARED_SPAN`, puts the science and template stamps
on one flux scale: each minus its own median, both divided by the science
stamp's interval span ``hi - lo``.  The paper's recipe maps each stamp by
its own interval, so the two stamps of a detection are on different scales
(a transient on a bright core widens the science interval and shrinks its
own excess); on one scale the science stamp exceeds the template by the
transient's flux, whatever the two skies.  A model records its recipe
(`Scaling`) and is fed only stamps scaled by it.
"""

from __future__ import annotations

__all__ = [
    "PIXEL_LIMIT",
    "SCALING_VERSION",
    "Scaling",
    "interval_scale",
    "shared_span_scale",
    "standardize",
    "usable_pixels",
]

import enum
import functools
import warnings
from collections.abc import Callable

import numpy as np


class Scaling(enum.StrEnum):
    """The scaling recipes.

    The value is stored in model metadata so that a model is never fed
    stamps scaled differently from its training data.
    """

    PAPER = "acero-cuellar-2023/v1"
    """The paper's: each science and template stamp by its own 3-sigma
    interval (`interval_scale`)."""
    SHARED_SPAN = "shared-span/v1"
    """Science and template stamps on one flux scale (`shared_span_scale`)."""


SCALING_VERSION = Scaling.PAPER.value
"""The paper's recipe, the default of models and of the scalers' callers."""


PIXEL_LIMIT = 1e30
"""Pixels with ``|value| >= PIXEL_LIMIT`` are unusable, like NaN and inf.

Such values are missing-data sentinels (float32's +-3.4e38 is a common
one), never fluxes; left in a stamp they dominate its mean and spread and
overflow the scaled float32 values."""


def usable_pixels(pixels: np.ndarray) -> np.ndarray:
    """Return the mask of the pixels the scalers may use: finite and below `PIXEL_LIMIT`.

    Parameters
    ----------
    pixels : `numpy.ndarray`
        Pixel values.

    Returns
    -------
    usable : `numpy.ndarray`
        Boolean array of the same shape.
    """
    with np.errstate(invalid="ignore"):
        return np.abs(pixels) < PIXEL_LIMIT


CHUNK = 64
"""Stamps scaled per pass.  Working chunk by chunk keeps every temporary
array in the CPU's L2 cache, which makes the scalers several times faster
on a full detector than whole-array passes (the arithmetic is the same)."""


def _prepare(pixels: np.ndarray, usable: np.ndarray | None, out: np.ndarray | None) -> tuple:
    pixels = np.asarray(pixels)
    if pixels.ndim != 3:
        raise ValueError(f"Stamps must be a (n, h, w) array, got shape {pixels.shape}.")
    if usable is not None:
        usable = np.asarray(usable, dtype=bool)
        if usable.shape != pixels.shape:
            raise ValueError(f"Usable mask shape {usable.shape} differs from stamps shape {pixels.shape}.")
    if out is None:
        out = np.empty(pixels.shape, dtype=np.float32)
    elif out.shape != pixels.shape or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {pixels.shape}.")
    return pixels, usable, out


def _chunk_values(pixels: np.ndarray, usable: np.ndarray | None) -> tuple:
    """float64 copy of a chunk with unusable pixels zeroed, and the mask
    (None when every pixel is usable).
    """
    good = usable_pixels(pixels)
    if usable is not None:
        good &= usable
    values = pixels.astype(np.float64)
    if good.all():
        return values, None
    values[~good] = 0.0
    return values, good


def _chunk_moments(values: np.ndarray, good: np.ndarray | None) -> tuple:
    """Count, mean and population std (float64) of the good pixels; ``values``
    is float64 with the bad pixels zeroed (``good`` None: all pixels good).
    Leaves ``values - mean`` (0 on bad pixels) in ``deviation``.
    """
    if good is None:
        count = np.full(len(values), values.shape[1] * values.shape[2])
    else:
        count = np.count_nonzero(good.reshape(len(values), values.shape[1] * values.shape[2]), axis=1)
    safe = np.maximum(count, 1)
    mean = values.sum(axis=(1, 2)) / safe
    deviation = values - mean[:, None, None]
    if good is not None:
        deviation[~good] = 0.0
    std = np.sqrt(np.einsum("ijk,ijk->i", deviation, deviation) / safe)
    return count, mean, std, deviation


def _scale_by_chunk(pixels: np.ndarray, usable: np.ndarray | None, out: np.ndarray | None,
                    scale_chunk: Callable[..., np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Check the arguments, then scale the stamps `CHUNK` at a time.

    ``scale_chunk(values, good, count, mean, std, deviation, out)`` gets one
    chunk's `_chunk_values` and `_chunk_moments` and the chunk's view of
    ``out``; it writes the scaled stamps there and returns their failed
    flags.  Returns ``(out, failed)`` of the whole array.
    """
    pixels, usable, out = _prepare(pixels, usable, out)
    failed = np.zeros(len(pixels), dtype=bool)
    for start in range(0, len(pixels), CHUNK):
        chunk = slice(start, start + CHUNK)
        values, good = _chunk_values(pixels[chunk], None if usable is None else usable[chunk])
        failed[chunk] = scale_chunk(values, good, *_chunk_moments(values, good), out[chunk])
    return out, failed


def standardize(
    pixels: np.ndarray, usable: np.ndarray | None = None, *, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise each stamp to zero mean and unit standard deviation.

    Parameters
    ----------
    pixels : `numpy.ndarray`
        ``(n, h, w)`` stamps.
    usable : `numpy.ndarray`, optional
        ``(n, h, w)`` bool, pixels that may be used; pixels that are not
        finite or not below `PIXEL_LIMIT` are never used.
    out : `numpy.ndarray`, optional
        ``(n, h, w)`` float32 array (or view) to write the result into.

    Returns
    -------
    scaled : `numpy.ndarray`
        ``(n, h, w)`` float32 (``out`` if given); unusable pixels are 0.
    failed : `numpy.ndarray`
        ``(n,)`` bool; True where the stamp could not be scaled (then all 0).
    """
    return _scale_by_chunk(pixels, usable, out, _standardize_chunk)


def _standardize_chunk(values, good, count, mean, std, deviation, out) -> np.ndarray:
    """`standardize` one chunk (see `_scale_by_chunk`)."""
    bad_stamp = (count < 2) | ~(std > 0) | ~np.isfinite(std)
    deviation[bad_stamp] = 0.0
    scale = np.where(bad_stamp, 1.0, std)[:, None, None]
    np.divide(deviation, scale, out=out, casting="same_kind")
    return bad_stamp


def interval_scale(
    pixels: np.ndarray,
    usable: np.ndarray | None = None,
    nsigma: float = 3.0,
    *,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Map each stamp's ``mean +- nsigma * std`` pixel range onto 0-1.

    Parameters
    ----------
    pixels, usable
        As for `standardize`.
    nsigma : `float`
        Half-width of the interval in standard deviations (the paper: 3).
    out : `numpy.ndarray`, optional
        As for `standardize`.

    Returns
    -------
    scaled : `numpy.ndarray`
        ``(n, h, w)`` float32 (``out`` if given); unusable pixels get the
        value of the stamp mean.
    failed : `numpy.ndarray`
        ``(n,)`` bool; True where the stamp could not be scaled (then all 0).
    """
    return _scale_by_chunk(pixels, usable, out, functools.partial(_interval_chunk, nsigma=nsigma))


def _interval_chunk(values, good, count, mean, std, deviation, out, *, nsigma: float) -> np.ndarray:
    """`interval_scale` one chunk (see `_scale_by_chunk`)."""
    lo, span, bad_stamp = _interval(values, good, count, mean, std, nsigma)
    if good is not None:
        np.copyto(values, mean[:, None, None], where=~good)  # unusable pixels take the mean's value
    values -= np.where(bad_stamp, 0.0, lo)[:, None, None]
    values[bad_stamp] = 0.0
    np.divide(values, np.where(bad_stamp, 1.0, span)[:, None, None], out=out, casting="same_kind")
    return bad_stamp


def _interval(values, good, count, mean, std, nsigma: float) -> tuple:
    """Return the paper's interval of each stamp of a chunk.

    That is ``lo``, the span ``hi - lo`` and whether the stamp cannot be
    scaled by it (see `_scale_by_chunk` for the arguments).
    """
    m = mean[:, None, None]
    s = std[:, None, None]
    inside = values > m - nsigma * s
    inside &= values < m + nsigma * s
    if good is not None:
        inside &= good
    lo = np.min(values, axis=(1, 2), where=inside, initial=np.inf)
    hi = np.max(values, axis=(1, 2), where=inside, initial=-np.inf)
    span = hi - lo
    bad_stamp = (count < 2) | ~(std > 0) | ~np.isfinite(span) | ~(span > 0)
    return lo, span, bad_stamp


def _median(values: np.ndarray, good: np.ndarray | None) -> np.ndarray:
    """Median of each stamp's good pixels (0 for a stamp without any)."""
    if good is None:
        return np.median(values, axis=(1, 2))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN stamps; flagged by the caller
        median = np.nanmedian(np.where(good, values, np.nan), axis=(1, 2))
    return np.where(np.isfinite(median), median, 0.0)


def shared_span_scale(
    srch: np.ndarray,
    tmpl: np.ndarray,
    usable_srch: np.ndarray | None = None,
    usable_tmpl: np.ndarray | None = None,
    nsigma: float = 3.0,
    *,
    out_srch: np.ndarray | None = None,
    out_tmpl: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Put science and template stamps on one flux scale (`Scaling.SHARED_SPAN`).

    Each stamp minus the median of its usable pixels, divided by the span
    ``hi - lo`` of the science stamp's paper interval (`interval_scale`);
    unusable pixels are 0 (the median's value).

    Parameters
    ----------
    srch, tmpl : `numpy.ndarray`
        ``(n, h, w)`` science and template stamps of the same detections.
    usable_srch, usable_tmpl : `numpy.ndarray`, optional
        Their usable-pixel masks, as for `standardize`.
    nsigma : `float`
        Half-width of the science interval in standard deviations.
    out_srch, out_tmpl : `numpy.ndarray`, optional
        Float32 ``(n, h, w)`` arrays (or views) to write the results into.

    Returns
    -------
    scaled_srch, scaled_tmpl : `numpy.ndarray`
        ``(n, h, w)`` float32 (the ``out`` arrays if given).
    failed_srch, failed_tmpl : `numpy.ndarray`
        ``(n,)`` bool, True where a stamp could not be scaled (then all 0):
        a science stamp without a usable interval, which fails its template
        too, or a template with fewer than two usable pixels or no spread.
    """
    srch, usable_srch, out_srch = _prepare(srch, usable_srch, out_srch)
    tmpl, usable_tmpl, out_tmpl = _prepare(tmpl, usable_tmpl, out_tmpl)
    if tmpl.shape != srch.shape:
        raise ValueError(f"Template stamps {tmpl.shape} and science stamps {srch.shape} differ in shape.")
    failed_srch = np.zeros(len(srch), dtype=bool)
    failed_tmpl = np.zeros(len(srch), dtype=bool)
    for start in range(0, len(srch), CHUNK):
        chunk = slice(start, start + CHUNK)
        values, good = _chunk_values(srch[chunk], None if usable_srch is None else usable_srch[chunk])
        count, mean, std, _ = _chunk_moments(values, good)
        _, span, failed_srch[chunk] = _interval(values, good, count, mean, std, nsigma)
        span[failed_srch[chunk]] = 1.0
        tmpl_usable = None if usable_tmpl is None else usable_tmpl[chunk]
        tmpl_values, tmpl_good = _chunk_values(tmpl[chunk], tmpl_usable)
        tmpl_count, _, tmpl_std, _ = _chunk_moments(tmpl_values, tmpl_good)
        failed_tmpl[chunk] = failed_srch[chunk] | (tmpl_count < 2) | ~(tmpl_std > 0)
        for v, g, failed, out in (
            (values, good, failed_srch[chunk], out_srch[chunk]),
            (tmpl_values, tmpl_good, failed_tmpl[chunk], out_tmpl[chunk]),
        ):
            v -= _median(v, g)[:, None, None]
            if g is not None:
                v[~g] = 0.0
            v[failed] = 0.0
            np.divide(v, span[:, None, None], out=out, casting="same_kind")
    return out_srch, out_tmpl, failed_srch, failed_tmpl
