"""Noise excursions at the detection threshold, planted by conditioning the
noise of a difference image.

With a correct noise model a matched filter finds a true 5-sigma noise peak
about once per few full detectors, so the small patches of the training
mode would almost never show one, although real surveys detect them
(Gaussian tails, and filters that are not matched to a visit's PSF).  This
step draws them directly: for Gaussian noise ``n`` and a filter ``G``, the
noise given that its filtered significance at a pixel equals ``s`` is

``n + (s - s_0) G / sqrt(sum(G^2 / V))``,

with ``s_0`` the significance that ``n`` has there, so adding that multiple
of ``G`` to the science image (and to the difference image, which holds the
science unconvolved) turns a random position into a noise peak that is an
exact draw of such an excursion.  ``s`` is measured in units of the
significance map's robust noise, so a planted peak passes the threshold
for the true noise, not only for a variance plane that is too low.

Peaks are planted only where the kernel convolved the template (with a
convolved science the difference would hold the bump convolved) and on
pixels with data.
"""

from __future__ import annotations

__all__ = ["NoisePeaks", "plant_noise_peaks"]

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .detect import gaussian_filter_kernel, matched_filter_significance
from .measure import noise_factor


@dataclass
class NoisePeaks:
    """Where noise peaks were planted."""

    x: np.ndarray
    """Column of each peak (pixels)."""
    y: np.ndarray
    """Row of each peak (pixels)."""
    significance: np.ndarray
    """Target significance of each, in units of the map's robust noise."""


def plant_noise_peaks(
    science: np.ndarray,
    difference: np.ndarray,
    variance: np.ndarray,
    no_data: np.ndarray,
    *,
    filter_fwhm_px: float,
    mean_number: float,
    threshold: float,
    margin: int,
    rng: np.random.Generator,
) -> NoisePeaks:
    """Plant noise excursions just above the threshold, in place.

    Parameters
    ----------
    science, difference : `numpy.ndarray`
        Science and difference images on the same grid (nJy per pixel);
        both are changed in place.
    variance : `numpy.ndarray`
        The difference image's variance plane.
    no_data : `numpy.ndarray`
        Pixels without data (never used as peak centres).
    filter_fwhm_px : `float`
        FWHM of the Gaussian detection filter, pixels.
    mean_number : `float`
        Mean number of peaks (Poisson).
    threshold : `float`
        Detection threshold, sigma; each peak's significance is drawn from
        the normal tail above it.
    margin : `int`
        Pixels kept free of peaks at the image edges.
    rng : `numpy.random.Generator`
        Random numbers.

    Returns
    -------
    peaks : `NoisePeaks`
        The planted peaks.
    """
    height, width = difference.shape
    n = int(rng.poisson(max(mean_number, 0.0)))
    kernel = gaussian_filter_kernel(filter_fwhm_px).astype(np.float64)
    kernel /= kernel.max()
    half = kernel.shape[0] // 2
    edge = max(margin, half)
    if n == 0 or height <= 2 * edge or width <= 2 * edge:
        return NoisePeaks(np.zeros(0), np.zeros(0), np.zeros(0))
    significance = matched_filter_significance(difference, variance, no_data, filter_fwhm_px)
    scale = noise_factor(significance, np.zeros(significance.shape, dtype=bool))
    xs = rng.integers(edge, width - edge, size=n)
    ys = rng.integers(edge, height - edge, size=n)
    target = stats.truncnorm.rvs(threshold, threshold + 3.0, random_state=rng, size=n)
    keep = []
    for k in range(n):
        x, y = int(xs[k]), int(ys[k])
        box = np.s_[y - half : y + half + 1, x - half : x + half + 1]
        var = variance[box]
        if no_data[box].any() or not np.all(np.isfinite(var) & (var > 0)):
            continue
        current = significance[y, x]
        if not np.isfinite(current):
            continue
        norm = float(np.sqrt(np.sum(kernel**2 / var)))
        amplitude = (target[k] * scale - current) / norm
        if amplitude <= 0:
            continue
        bump = (amplitude * kernel).astype(science.dtype)
        science[box] += bump
        difference[box] += bump.astype(difference.dtype)
        keep.append(k)
    keep = np.asarray(keep, dtype=int)
    return NoisePeaks(xs[keep].astype(float), ys[keep].astype(float), target[keep])
