"""Photon, read and quantisation noise, background estimation, and
constrained noise realisations.

Images are in electrons.  A single exposure is ``Poisson(expected)`` plus
Gaussian read noise, converted to ADU with the gain and rounded (the
quantisation), then back to electrons.  A template co-add of ``N`` epochs
is the mean of ``N`` such exposures; its photon noise is drawn as one
Poisson variate of the summed expectation (a sum of Poisson variables is
Poisson), its read noise as ``sqrt(N)`` times one epoch's.

`constrained_increment` implements the Hoffman & Ribak (1991) construction:
the smallest-variance change of independent white-noise fields that makes a
linear statistic of them take a given value.  Added to an unconstrained
realisation, it turns it into a realisation of the noise *conditioned* on
that value, which is how the generator makes noise excursions at the
detection threshold without searching huge blank areas for them.
"""

from __future__ import annotations

__all__ = [
    "coadd_noise",
    "constrained_increment",
    "estimate_background",
    "exposure_noise",
    "quantise",
    "robust_sigma",
]

import numpy as np
from astropy.stats import sigma_clipped_stats

from .profiles import FourierGrid


def exposure_noise(expected: np.ndarray, read_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Draw the photon plus read noise of one exposure (electrons; zero mean):
    `coadd_noise` of one epoch.

    Parameters
    ----------
    expected, read_noise, rng
        As in `coadd_noise`.

    Returns
    -------
    noise : `numpy.ndarray`
        The noise image.
    """
    return coadd_noise(expected, 1, read_noise, rng)


def coadd_noise(expected: np.ndarray, epochs: int, read_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Draw the noise of the mean of ``epochs`` exposures of ``expected`` electrons.

    Parameters
    ----------
    expected : `numpy.ndarray`
        Expected electrons per pixel in one exposure.
    epochs : `int`
        Exposures averaged.
    read_noise : `float`
        Read noise in electrons.
    rng : `numpy.random.Generator`
        Random numbers.

    Returns
    -------
    noise : `numpy.ndarray`
        The noise image.
    """
    total = np.clip(expected, 0.0, None) * epochs
    counts = rng.poisson(total) - total + rng.normal(0.0, read_noise * np.sqrt(epochs), expected.shape)
    return counts / epochs


def quantise(image: np.ndarray, gain: float) -> np.ndarray:
    """Round electrons to whole ADU (``gain`` electrons per ADU) and back.

    Parameters
    ----------
    image : `numpy.ndarray`
        Image (electrons).
    gain : `float`
        Electrons per ADU.

    Returns
    -------
    image : `numpy.ndarray`
        The quantised image (electrons).
    """
    return np.round(image / gain) * gain


def estimate_background(image: np.ndarray) -> float:
    """Estimate a flat sky as the sigma-clipped (3 sigma, 5 iterations) median of an image
    sky estimate (astropy's `~astropy.stats.sigma_clipped_stats`).

    Parameters
    ----------
    image : `numpy.ndarray`
        Image (electrons).

    Returns
    -------
    background : `float`
        The estimate.
    """
    return float(sigma_clipped_stats(image, sigma=3.0, maxiters=5)[1])


def robust_sigma(image: np.ndarray) -> tuple[float, float]:
    """Compute the median and normalised median absolute deviation (``1.4826 MAD``).

    Parameters
    ----------
    image : `numpy.ndarray`
        Image (electrons).

    Returns
    -------
    median : `float`
        The median.
    sigma : `float`
        The normalised MAD.
    """
    median = float(np.median(image))
    return median, 1.4826 * float(np.median(np.abs(image - median)))


def constrained_increment(
    grid: FourierGrid,
    x: int,
    y: int,
    deficit: float,
    responses: list[tuple[np.ndarray, float]],
) -> list[np.ndarray]:
    """Compute the changes to independent white-noise fields that raise a linear
    statistic by ``deficit`` at pixel ``(x, y)`` (Hoffman & Ribak 1991).

    Parameters
    ----------
    grid : `FourierGrid`
        The periodic patch.
    x, y : `int`
        Where the statistic is evaluated.
    deficit : `float`
        How much the statistic must rise.
    responses : `list` [`tuple` [`numpy.ndarray`, `float`]]
        Per field, the transform ``h`` of the linear filter through which the
        field enters the statistic (``statistic = sum_i (h_i * n_i)(x, y)``)
        and the field's per-pixel variance.

    Returns
    -------
    increments : `list` [`numpy.ndarray`]
        One ``(size, size)`` image per field: ``deficit * var_i *
        h_i(x0 - x) / sum_j var_j |h_j|^2``.
    """
    shapes = []
    total = 0.0
    for transform, variance in responses:
        # Cov(n(p), statistic) = var * h(x0 - p): the mirrored filter moved to x0.
        shape = grid.to_image(np.conj(transform) * grid.phase(x, y))
        shapes.append(shape * variance)
        total += variance * float(np.sum(shape**2))
    if not total > 0:
        raise ValueError("The statistic does not depend on any of the noise fields.")
    return [deficit * shape / total for shape in shapes]
