"""Detector and sky artifacts drawn in pixel space (not through the
optics' Fourier rendering): cosmic-ray tracks, hot pixels, bad columns and
satellite trails.

Each function returns a ``(size, size)`` image of *unit* strength (total
charge 1 for a cosmic ray or hot-pixel cluster, 1 electron per pixel for a
column, 1 electron per pixel of length for a trail); the scene scales it to
the significance it wants.  Images are periodic patches, as everywhere in
`rbnodia.stresstest`.
"""

from __future__ import annotations

__all__ = ["bad_column", "cosmic_ray", "hot_pixels", "satellite_trail"]

import math

import numpy as np

from .psf import PSFModel


def _splat(size: int, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Bilinear deposit of charges at sub-pixel positions (periodic)."""
    image = np.zeros((size, size))
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for ox, oy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(image, ((y0 + oy) % size, (x0 + ox) % size), weight * w)
    return image


def cosmic_ray(
    size: int, x: float, y: float, length: float, angle: float, rng: np.random.Generator
) -> np.ndarray:
    """Return a straight track of ``length`` pixels centred on ``(x, y)``.

    The charge along the track fluctuates (log-normal, 40 % per 0.2 pixel
    step, as energy loss does) and is deposited bilinearly; a track shorter
    than a pixel is a one-to-four-pixel spot.

    Parameters
    ----------
    size : `int`
        Patch size in pixels.
    x, y : `float`
        Track centre in pixels.
    length : `float`
        Track length in pixels.
    angle : `float`
        Track direction in radians from +x.
    rng : `numpy.random.Generator`
        Random numbers.

    Returns
    -------
    image : `numpy.ndarray`
        ``(size, size)`` unit-charge image.
    """
    steps = max(2, int(math.ceil(length / 0.2)))
    t = np.linspace(-0.5, 0.5, steps) * length
    xs = x + t * math.cos(angle)
    ys = y + t * math.sin(angle)
    weight = rng.lognormal(0.0, 0.4, steps)
    image = _splat(size, xs, ys, weight)
    return image / image.sum()


def hot_pixels(size: int, x: int, y: int, rng: np.random.Generator) -> np.ndarray:
    """Return one hot pixel at ``(x, y)``, with (half the time) a weaker neighbour
    along the readout direction, as charge-transfer inefficiency leaves.

    Parameters
    ----------
    size : `int`
        Patch size in pixels.
    x, y : `int`
        The pixel.
    rng : `numpy.random.Generator`
        Random numbers.

    Returns
    -------
    image : `numpy.ndarray`
        ``(size, size)`` unit-charge image.
    """
    image = np.zeros((size, size))
    image[y % size, x % size] = 1.0
    if rng.random() < 0.5:
        image[(y + int(rng.choice([-1, 1]))) % size, x % size] = rng.uniform(0.1, 0.5)
    return image / image.sum()


def bad_column(size: int, x: int, y_start: int, length: int) -> np.ndarray:
    """Return a column segment with 1 electron of excess charge per pixel, rows
    ``y_start`` to ``y_start + length - 1`` (wrapping).

    Parameters
    ----------
    size : `int`
        Patch size in pixels.
    x : `int`
        The column.
    y_start : `int`
        First row.
    length : `int`
        Rows covered.

    Returns
    -------
    image : `numpy.ndarray`
        ``(size, size)`` excess-charge image.
    """
    image = np.zeros((size, size))
    rows = np.arange(y_start, y_start + min(length, size)) % size
    image[rows, x % size] = 1.0
    return image


def satellite_trail(size: int, x: float, y: float, angle: float, psf: PSFModel) -> np.ndarray:
    """Return a straight trail through ``(x, y)`` across the whole patch, 1 electron
    per pixel of length, with the PSF's line-spread function across it.

    The line-spread function is the 1-d inverse transform of the PSF's OTF
    along the trail's normal (projection-slice theorem), times the pixel
    response along that direction.  The trail is not periodic: it ends at
    the patch border, far outside the stamp.

    Parameters
    ----------
    size : `int`
        Patch size in pixels.
    x, y : `float`
        A point on the trail, in pixels.
    angle : `float`
        Trail direction in radians from +x.
    psf : `PSFModel`
        The PSF spreading the trail.

    Returns
    -------
    image : `numpy.ndarray`
        ``(size, size)`` image.
    """
    nx, ny = -math.sin(angle), math.cos(angle)
    step, n = 0.125, 512
    freqs = np.fft.fftfreq(n, d=step)
    otf = psf.otf(freqs * nx, freqs * ny) * np.sinc(freqs * nx) * np.sinc(freqs * ny)
    lsf = np.fft.fftshift(np.fft.ifft(otf).real) / step
    offsets = (np.arange(n) - n // 2) * step
    yy, xx = np.mgrid[0:size, 0:size]
    distance = (xx - x) * nx + (yy - y) * ny
    return np.interp(distance, offsets, lsf, left=0.0, right=0.0)
