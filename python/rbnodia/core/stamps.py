"""Vectorised square cutouts ("stamps") around detections.

Positions follow the LSST convention: pixel centres sit at integer
coordinates, and an image may start at a non-zero origin ``(x0, y0)`` (its
bounding-box minimum).  A stamp is centred on the pixel nearest the detection.
Stamps that reach past the image edge are kept: the missing pixels are marked
unusable (and filled later by the scaler), and the detection is flagged.
"""

from __future__ import annotations

__all__ = ["POSITION_LIMIT", "Cutouts", "RowStrip", "cut_stamps", "nearest_pixel", "plan_row_strips",
           "usable_positions"]

from dataclasses import dataclass

import numpy as np

from .flags import StampFlag
from .scaling import usable_pixels

POSITION_LIMIT = 1e9
"""Positions with ``|x|`` or ``|y|`` at or beyond this are treated as
non-finite (off every image; far from overflowing the integer pixel
index)."""


def usable_positions(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the mask of the positions that can be used: finite and within `POSITION_LIMIT`.

    Parameters
    ----------
    x, y : `numpy.ndarray`
        Positions in pixels.

    Returns
    -------
    usable : `numpy.ndarray`
        Boolean array, one per position.
    """
    with np.errstate(invalid="ignore"):
        return (np.abs(x) < POSITION_LIMIT) & (np.abs(y) < POSITION_LIMIT)


@dataclass(frozen=True)
class Cutouts:
    """Stamps cut from one image around many detections.

    Attributes
    ----------
    pixels : `numpy.ndarray`
        ``(n, size, size)`` float32 pixel values, row-major (y, x); unusable
        pixels hold NaN.
    usable : `numpy.ndarray`
        ``(n, size, size)`` bool: True where the pixel lies on the image, is
        finite and is not in a bad mask plane.
    flags : `numpy.ndarray`
        ``(n,)`` int32 `~rbnodia.core.StampFlag` bits (EDGE, BAD_PIXELS,
        NO_DATA).
    """

    pixels: np.ndarray
    usable: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return self.pixels.shape[0]


def nearest_pixel(coord: np.ndarray) -> np.ndarray:
    """Return the index of the pixel whose centre is nearest to each coordinate.

    Halves round up (``floor(c + 0.5)``), as afw does, so that the result does
    not depend on numpy's round-half-to-even rule.

    Parameters
    ----------
    coord : `numpy.ndarray`
        Coordinates in pixels (finite).

    Returns
    -------
    index : `numpy.ndarray`
        Pixel indices (int64).
    """
    return np.floor(np.asarray(coord, dtype=np.float64) + 0.5).astype(np.int64)


def cut_stamps(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    size: int = 51,
    *,
    bad: np.ndarray | None = None,
    origin: tuple[int, int] = (0, 0),
) -> Cutouts:
    """Cut ``size x size`` stamps centred on each ``(x, y)``.

    Parameters
    ----------
    image : `numpy.ndarray`
        2-d image array indexed ``[y, x]``.
    x, y : array-like
        Detection positions in the image's pixel coordinates (including the
        origin offset).  Non-finite positions (and those beyond
        `POSITION_LIMIT`) give an all-unusable stamp flagged ``NO_DATA``.
    size : `int`
        Stamp width and height in pixels; must be odd and positive.
    bad : `numpy.ndarray`, optional
        Boolean array shaped like ``image``; True marks pixels that must not
        be used (e.g. NO_DATA).  NaN, infinite and sentinel pixels
        (`rbnodia.core.scaling.PIXEL_LIMIT`) are always unusable.
    origin : `tuple` [`int`, `int`]
        ``(x0, y0)``: the pixel coordinates of ``image[0, 0]``.

    Returns
    -------
    cutouts : `Cutouts`
        The stamps, their usable-pixel masks and flags.

    Raises
    ------
    ValueError
        If ``size`` is not a positive odd integer, the image is not 2-d, or
        ``x``, ``y`` and ``bad`` have inconsistent shapes.
    """
    if not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"Stamp size must be a positive odd integer, got {size!r}.")
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"Image must be 2-d, got shape {image.shape}.")
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d arrays of equal length, got {x.shape} and {y.shape}.")
    if bad is not None and np.shape(bad) != image.shape:
        raise ValueError(f"Bad-pixel mask shape {np.shape(bad)} differs from image shape {image.shape}.")

    n = x.size
    height, width = image.shape
    half = size // 2
    finite_position = usable_positions(x, y)
    cx = np.where(finite_position, nearest_pixel(np.where(finite_position, x, 0.0)) - origin[0], -(10**9))
    cy = np.where(finite_position, nearest_pixel(np.where(finite_position, y, 0.0)) - origin[1], -(10**9))
    bad = None if bad is None else np.asarray(bad, dtype=bool)

    # Stamps wholly on the image (nearly all of them) are copied as blocks
    # from a sliding-window view: one gather of contiguous rows, no index
    # arrays of the stamps' size.
    inside = (cx >= half) & (cx < width - half) & (cy >= half) & (cy < height - half)
    pixels = np.empty((n, size, size), dtype=np.float32)
    if bad is not None:
        bad_pixels = np.zeros((n, size, size), dtype=bool)
    rows_in = np.flatnonzero(inside)
    if len(rows_in):
        windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
        pixels[rows_in] = windows[cy[rows_in] - half, cx[rows_in] - half]
        if bad is not None:
            bad_pixels[rows_in] = np.lib.stride_tricks.sliding_window_view(bad, (size, size))[
                cy[rows_in] - half, cx[rows_in] - half
            ]

    # Stamps that reach past an edge (or lie off the image) are gathered with
    # clipped indices and their off-image pixels marked.
    offsets = np.arange(-half, half + 1)
    rows = cy[:, None] + offsets[None, :]  # (n, size)
    cols = cx[:, None] + offsets[None, :]
    row_in = (rows >= 0) & (rows < height)
    col_in = (cols >= 0) & (cols < width)
    on_image_count = row_in.sum(axis=1) * col_in.sum(axis=1)
    rows_out = np.flatnonzero(~inside)
    off_image = None
    if len(rows_out):
        off_image = ~(row_in[rows_out][:, :, None] & col_in[rows_out][:, None, :])
        if image.size:
            r = np.clip(rows[rows_out], 0, height - 1)[:, :, None]
            c = np.clip(cols[rows_out], 0, width - 1)[:, None, :]
            pixels[rows_out] = image[r, c]
            if bad is not None:
                bad_pixels[rows_out] = bad[r, c]
        else:  # an image without pixels: every stamp lies off it
            pixels[rows_out] = 0.0
            if bad is not None:
                bad_pixels[rows_out] = False

    good = usable_pixels(pixels)
    if bad is not None:
        good &= ~bad_pixels
    if off_image is not None:
        good[rows_out] &= ~off_image
    good_count = np.count_nonzero(good.reshape(n, size * size), axis=1)
    partial = np.flatnonzero(good_count < size * size)
    if len(partial):
        pixels[partial] = np.where(good[partial], pixels[partial], np.float32(np.nan))

    flags = np.zeros(n, dtype=np.int32)
    flags[on_image_count < size * size] |= StampFlag.EDGE
    flags[good_count < on_image_count] |= StampFlag.BAD_PIXELS
    centre_on_image = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    flags[~centre_on_image | (good_count == 0)] |= StampFlag.NO_DATA
    return Cutouts(pixels=pixels, usable=good, flags=flags)


@dataclass(frozen=True)
class RowStrip:
    """A horizontal band of an image and the detections whose stamps it holds.

    Attributes
    ----------
    rows : `numpy.ndarray`
        Indices (int64, increasing) of the detections cut from this strip.
    begin, end : `int`
        Image rows to read, ``begin <= y < end`` in pixel coordinates (with
        the origin): the band's own rows padded by half a stamp on each side
        and clipped to the image.
    """

    rows: np.ndarray
    begin: int
    end: int


def plan_row_strips(
    x: np.ndarray, y: np.ndarray, y0: int, height: int, strip_rows: int, size: int
) -> list[RowStrip]:
    """Group detections into horizontal strips of an image.

    The image rows ``y0 <= y < y0 + height`` are cut into bands of
    ``strip_rows`` rows; a detection belongs to the band of its nearest
    pixel row (rows above or below the image go to the last or first band).
    Each band is read with half a stamp of padding on both sides, so that
    `cut_stamps` on the strip gives exactly the stamps (pixels, usable masks
    and flags) it gives on the whole image.  Detections with no usable
    position need no pixels; they join the first band that is read.

    Parameters
    ----------
    x, y : `numpy.ndarray`
        Detection positions in pixel coordinates.
    y0 : `int`
        First row of the image.
    height : `int`
        Number of rows of the image.
    strip_rows : `int`
        Rows per band; 0 (or at least ``height``) gives one band, the whole
        image.
    size : `int`
        Stamp size (odd).

    Returns
    -------
    strips : `list` [`RowStrip`]
        The bands that hold at least one detection, top to bottom; every
        detection is in exactly one of them.
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if len(y) == 0:
        return []
    half = size // 2
    strip_rows = height if strip_rows <= 0 or strip_rows >= height else strip_rows
    n_bands = max(1, -(-height // max(strip_rows, 1)))
    usable = usable_positions(x, y)
    band = np.zeros(len(y), dtype=np.int64)
    if usable.any():
        row = nearest_pixel(y[usable]) - y0
        band[usable] = np.clip(row // max(strip_rows, 1), 0, n_bands - 1)
        band[~usable] = band[usable].min()
    strips = []
    for b in np.unique(band):
        begin = max(y0, y0 + int(b) * strip_rows - half)
        end = min(y0 + height, y0 + (int(b) + 1) * strip_rows + half)
        strips.append(RowStrip(rows=np.flatnonzero(band == b), begin=begin, end=max(begin, end)))
    return strips
