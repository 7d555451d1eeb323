"""Source detection on difference images for the stress test.

The algorithm (not the training simulator's SEP on an inverse-variance
matched filter):

1. Sum the difference image in a circular top-hat aperture of radius
   ``0.7 x`` the estimated science FWHM around every pixel (FFT on the
   periodic patch).
2. Measure that image's noise empirically: median and normalised median
   absolute deviation over the patch, so correlated noise (resampling,
   convolution) is accounted for without a variance plane.
3. Mark pixels above ``threshold`` sigma; keep connected regions
   (8-connectivity, `scipy.ndimage.label`) of at least ``min_pixels``.
4. Peaks are the local maxima of the significance within a ``(2r+1)^2``
   box (``r`` half the FWHM) inside kept regions, so a long trail or column
   yields several peaks, as after deblending.
5. Each peak is moved to the nearest pixel of the centroid of the positive
   difference-image pixels inside its aperture (a top-hat sum has a flat
   top for sources narrower than the aperture, such as hot pixels).

A detection's significance (``snr``) is its peak aperture sum over the
measured noise.
"""

from __future__ import annotations

__all__ = ["APERTURE_RADIUS_FWHM", "Detections", "aperture_filter", "detect"]

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .noise import robust_sigma
from .profiles import FourierGrid

APERTURE_RADIUS_FWHM = 0.7
"""Top-hat detection aperture radius in units of the science FWHM."""


@dataclass(frozen=True)
class Detections:
    """Peaks found on one difference image.

    Attributes
    ----------
    x, y : `numpy.ndarray`
        Integer pixel positions.
    snr : `numpy.ndarray`
        Significance at each peak (before the centroid step).
    significance : `numpy.ndarray`
        The whole ``(size, size)`` significance image.
    """

    x: np.ndarray
    y: np.ndarray
    snr: np.ndarray
    significance: np.ndarray

    def nearest(self, x: float, y: float, radius: float, size: int) -> int | None:
        """Return the index of the detection nearest to ``(x, y)`` within ``radius``
        (periodic distance), or `None`.

        Parameters
        ----------
        x, y : `float`
            Position in pixels.
        radius : `float`
            Acceptance radius in pixels.
        size : `int`
            Patch size (distances are periodic).

        Returns
        -------
        index : `int` or `None`
            The detection's index.
        """
        if not len(self.x):
            return None
        dx = (self.x - x + size / 2) % size - size / 2
        dy = (self.y - y + size / 2) % size - size / 2
        distance = np.hypot(dx, dy)
        best = int(np.argmin(distance))
        return best if distance[best] <= radius else None


def aperture_filter(grid: FourierGrid, fwhm: float) -> np.ndarray:
    """Compute the transform of the top-hat aperture (radius ``APERTURE_RADIUS_FWHM x
    fwhm``, at least 1.5 pixels) centred on the origin of ``grid``.

    Parameters
    ----------
    grid : `FourierGrid`
        The periodic patch.
    fwhm : `float`
        Science FWHM in pixels.

    Returns
    -------
    transform : `numpy.ndarray`
        The aperture's transform.
    """
    radius = max(1.5, APERTURE_RADIUS_FWHM * fwhm)
    offsets = np.minimum(np.arange(grid.size), grid.size - np.arange(grid.size))
    disk = (np.hypot(offsets[:, None], offsets[None, :]) <= radius).astype(np.float64)
    return grid.to_transform(disk)


def detect(
    grid: FourierGrid,
    difference: np.ndarray,
    fwhm: float,
    threshold: float = 5.0,
    min_pixels: int = 1,
) -> Detections:
    """Find positive sources on a difference image.

    Parameters
    ----------
    grid : `FourierGrid`
        The periodic patch.
    difference : `numpy.ndarray`
        ``(size, size)`` difference image.
    fwhm : `float`
        Estimated science FWHM in pixels.
    threshold : `float`
        Detection threshold in sigma of the aperture-summed image.
    min_pixels : `int`
        Smallest connected region above threshold that counts.

    Returns
    -------
    detections : `Detections`
        Positions, S/N and the significance image.
    """
    summed = grid.to_image(grid.to_transform(difference) * aperture_filter(grid, fwhm))
    median, sigma = robust_sigma(summed)
    significance = (summed - median) / sigma if sigma > 0 else np.zeros_like(summed)
    above = significance > threshold
    labels, count = ndimage.label(above, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        empty = np.zeros(0, dtype=int)
        return Detections(empty, empty, np.zeros(0), significance)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = (sizes >= min_pixels)[labels] & above
    box = 2 * max(1, math.ceil(0.5 * fwhm)) + 1
    peaks = keep & (significance == ndimage.maximum_filter(significance, size=box, mode="wrap"))
    y, x = np.nonzero(peaks)
    snr = significance[y, x]
    x, y = _centroids(difference, x, y, max(1.5, APERTURE_RADIUS_FWHM * fwhm))
    return Detections(x, y, snr, significance)


def _centroids(difference: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> tuple:
    """Nearest pixels to the centroids of the positive pixels within
    ``radius`` of each ``(x, y)`` (periodic); a peak without positive pixels
    stays put.
    """
    size = difference.shape[0]
    reach = int(math.ceil(radius))
    oy, ox = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    inside = np.hypot(ox, oy) <= radius
    ox, oy = ox[inside], oy[inside]
    values = np.clip(difference[(y[:, None] + oy) % size, (x[:, None] + ox) % size], 0.0, None)
    total = values.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    cx = np.where(total > 0, np.rint((values * ox).sum(axis=1) / safe), 0).astype(int)
    cy = np.where(total > 0, np.rint((values * oy).sum(axis=1) / safe), 0).astype(int)
    return (x + cx) % size, (y + cy) % size
