"""Resampling a template onto the science pixel grid.

A Lanczos-3 interpolant (the default of the LSST warper) is applied at the
source-grid position of every destination pixel centre.  The variance plane
is propagated with the squared weights (``var_out = sum w^2 var_in``), so the
warped variance reflects the noise actually left in each pixel; a
destination pixel whose footprint touches a missing source pixel is NO_DATA.
Work is done in blocks of rows to bound memory on 4k x 4k detectors.
"""

from __future__ import annotations

__all__ = ["lanczos_weights", "warp_image"]

import logging
import time

import numpy as np

_log = logging.getLogger(__name__)

LANCZOS_ORDER = 3


def lanczos_weights(frac: np.ndarray, order: int = LANCZOS_ORDER) -> np.ndarray:
    """Compute normalised 1-d Lanczos weights.

    Parameters
    ----------
    frac : `numpy.ndarray`
        Position minus ``floor(position)``, in [0, 1).
    order : `int`, optional
        Lanczos order ``n`` (``2 n`` taps).

    Returns
    -------
    weights : `numpy.ndarray`
        ``(2 order, *frac.shape)`` weights for the taps at offsets
        ``-order + 1 ... order`` from ``floor(position)``, summing to one.
    """
    frac = np.asarray(frac, dtype=np.float32)
    taps = np.arange(-order + 1, order + 1)
    # sin(pi (f - k)) = (-1)^k sin(pi f), and sin(pi (f - k) / n) by angle
    # subtraction: three trigonometric evaluations instead of 4 n.  For f in
    # [0, 1) every tap has |f - k| < n; f = k needs the limit 1, for k = 0
    # and for k = 1 (a float64 fraction just below 1 rounds to 1 in float32).
    pf = np.float32(np.pi) * frac
    s1 = np.sin(pf)
    sa, ca = np.sin(pf / order), np.cos(pf / order)
    w = np.empty((len(taps),) + frac.shape, dtype=np.float32)
    for i, k in enumerate(taps):
        t = frac - np.float32(k)
        c, s = np.float32(np.cos(np.pi * k / order)), np.float32(np.sin(np.pi * k / order))
        num = np.float32(order * (-1.0) ** k) * s1 * (sa * c - ca * s)
        if k in (0, 1):
            tiny = np.abs(t) < 1e-6
            w[i] = np.where(
                tiny, np.float32(1.0), num / np.where(tiny, np.float32(1.0), np.float32(np.pi**2) * t * t)
            )
        else:
            w[i] = num / (np.float32(np.pi**2) * t * t)
    w /= w.sum(axis=0, keepdims=True)
    return w


def warp_image(
    image: np.ndarray,
    variance: np.ndarray,
    bad: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    block_rows: int = 256,
    order: int = LANCZOS_ORDER,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp ``image`` (and its variance) to the positions ``(xs, ys)``.

    Parameters
    ----------
    image, variance : `numpy.ndarray`
        Source planes ``(h, w)``.
    bad : `numpy.ndarray`
        Source pixels that hold no data (bool ``(h, w)``).
    xs, ys : `numpy.ndarray`
        ``(H, W)`` source coordinates of each destination pixel.
    block_rows : `int`, optional
        Destination rows processed at a time (bounds the memory).
    order : `int`, optional
        Lanczos order.

    Returns
    -------
    warped, warped_variance : `numpy.ndarray`
        ``(H, W)`` float32; NaN where no data.
    no_data : `numpy.ndarray`
        ``(H, W)`` bool.
    """
    h, w = image.shape
    src = np.where(bad, 0.0, image).astype(np.float32).ravel()
    src_var = np.where(bad, 0.0, variance).astype(np.float32).ravel()
    src_bad = np.asarray(bad, dtype=bool).ravel()
    any_bad = bool(src_bad.any())
    out = np.empty(xs.shape, dtype=np.float32)
    out_var = np.empty(xs.shape, dtype=np.float32)
    out_bad = np.empty(xs.shape, dtype=bool)
    offsets = np.arange(-order + 1, order + 1)
    last = time.monotonic()
    for r0 in range(0, xs.shape[0], block_rows):
        if time.monotonic() - last > 30:
            _log.info("Warped %d of %d rows.", r0, xs.shape[0])
            last = time.monotonic()
        bx = xs[r0 : r0 + block_rows]
        by = ys[r0 : r0 + block_rows]
        fx = np.floor(bx)
        fy = np.floor(by)
        wx = lanczos_weights(bx - fx, order)
        wy = lanczos_weights(by - fy, order)
        ix = fx.astype(np.int64)
        iy = fy.astype(np.int64)
        acc = np.zeros(bx.shape, dtype=np.float32)
        acc_var = np.zeros(bx.shape, dtype=np.float32)
        # Taps with negligible weight do not spoil a pixel.
        missing = (ix - order + 1 < 0) | (ix + order > w - 1) | (iy - order + 1 < 0) | (iy + order > h - 1)
        for j, dy in enumerate(offsets):
            row = np.clip(iy + dy, 0, h - 1) * w
            for i, dx in enumerate(offsets):
                flat = row + np.clip(ix + dx, 0, w - 1)
                weight = wy[j] * wx[i]
                acc += weight * src.take(flat)
                acc_var += weight * weight * src_var.take(flat)
                if any_bad:
                    missing |= src_bad.take(flat) & (np.abs(weight) > 1e-3)
        out[r0 : r0 + block_rows] = np.where(missing, np.nan, acc)
        out_var[r0 : r0 + block_rows] = np.where(missing, np.nan, acc_var)
        out_bad[r0 : r0 + block_rows] = missing
    return out, out_var, out_bad
