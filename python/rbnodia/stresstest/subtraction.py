"""Template warping and image subtraction of the stress-test generator.

Warp
    The template lives on its own pixel grid, offset from the science grid by
    a sub-pixel shift.  It is resampled onto the science grid with a cubic
    B-spline interpolant (`scipy.ndimage.shift`, order 3, periodic), not the
    Lanczos-3 kernel of the training simulator; the resampling correlates the
    template's noise.  An error in the assumed offset (registration error)
    misplaces every template source.

PSF matching
    The matching kernel is computed in Fourier space from the *estimated*
    PSFs: ``K = c P_sci conj(P_tmpl) / (|P_tmpl|^2 + lambda)`` (a Wiener-
    regularised ratio), then cut to a disk of radius ``2.5 x`` the science
    FWHM with a cosine taper and renormalised to sum to ``c``, the estimated
    photometric scale of the template.  The training simulator instead fits
    an Alard-Lupton kernel to the pixels.  Errors in the PSF estimates leave
    rings and cores on bright stars; an error in ``c`` leaves a scaled copy
    of every galaxy.

Subtraction
    ``D = S - K * T_warped``, by FFT on the periodic patch.
"""

from __future__ import annotations

__all__ = ["matching_kernel", "subtract", "warp_template"]

import numpy as np
from scipy import ndimage

from .profiles import FourierGrid
from .psf import PSFModel

REGULARISATION = 1e-4
"""Wiener regularisation of the Fourier kernel (relative to a unit OTF)."""

KERNEL_RADIUS_FWHM = 2.5
"""Kernel support radius in units of the science FWHM."""


def warp_template(template: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Resample a template whose grid is offset by ``(-dx, -dy)`` onto the
    science grid: ``out[y, x] = template(y - dy, x - dx)``, cubic B-spline,
    periodic.

    Parameters
    ----------
    template : `numpy.ndarray`
        Template image.
    dx, dy : `float`
        Offset in pixels.

    Returns
    -------
    warped : `numpy.ndarray`
        The template on the science grid.
    """
    return ndimage.shift(template, (dy, dx), order=3, mode="grid-wrap", prefilter=True)


def matching_kernel(grid: FourierGrid, science: PSFModel, template: PSFModel, scale: float) -> np.ndarray:
    """Transform of the kernel that turns the template's PSF into the
    science's and its flux scale into the science's.

    Parameters
    ----------
    grid : `FourierGrid`
        The periodic patch.
    science, template : `PSFModel`
        The *estimated* PSFs.
    scale : `float`
        Estimated science-to-template flux ratio (the kernel's sum).

    Returns
    -------
    kernel : `numpy.ndarray`
        The kernel's real-FFT transform on ``grid``.
    """
    p_sci = science.otf(grid.kx, grid.ky)
    p_tmpl = template.otf(grid.kx, grid.ky)
    ratio = p_sci * np.conj(p_tmpl) / (np.abs(p_tmpl) ** 2 + REGULARISATION)
    kernel = grid.to_image(ratio)
    radius = KERNEL_RADIUS_FWHM * science.fwhm
    offsets = np.minimum(np.arange(grid.size), grid.size - np.arange(grid.size))
    distance = np.hypot(offsets[:, None], offsets[None, :])
    taper = np.clip((radius - distance) / 2.0 + 0.5, 0.0, 1.0)
    taper = 0.5 - 0.5 * np.cos(np.pi * taper)
    kernel *= taper
    kernel *= scale / kernel.sum()
    return grid.to_transform(kernel)


def subtract(
    grid: FourierGrid, science: np.ndarray, warped_template: np.ndarray, kernel: np.ndarray
) -> np.ndarray:
    """Compute the difference image ``science - kernel * warped_template``.

    Parameters
    ----------
    grid : `FourierGrid`
        The periodic patch.
    science : `numpy.ndarray`
        Science image.
    warped_template : `numpy.ndarray`
        Template on the science grid.
    kernel : `numpy.ndarray`
        Matching kernel's transform.

    Returns
    -------
    difference : `numpy.ndarray`
        The difference image.
    """
    return science - grid.to_image(grid.to_transform(warped_template) * kernel)
