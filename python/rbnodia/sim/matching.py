"""The PSF-matching and subtraction step of a simulated detector-visit:
choose how the kernel is constrained, fit it (`rbnodia.sim.subtract`) and
form the difference image."""

from __future__ import annotations

__all__ = ["Subtraction", "psf_match_and_subtract", "psf_star_kernel"]

from dataclasses import dataclass

import numpy as np

from .subtract import (
    KernelBasis,
    KernelSolution,
    fit_kernel,
    gaussian_basis,
    select_kernel_candidates,
    subtract_images,
)


@dataclass
class Subtraction:
    """A difference image and the kernel that made it."""

    difference: np.ndarray
    variance: np.ndarray
    edge: np.ndarray
    """Pixels where the convolution reached missing data or the border."""
    solution: KernelSolution
    basis: KernelBasis
    mode: str
    """How kernel candidates were chosen: ``stamps``, ``image`` or ``psf``."""


def psf_star_kernel(
    sci_psf, tmpl_psf, jacobian, basis, sigma_s, sigma_t, phot, fwhm_px, rng
) -> KernelSolution:
    """Alard-Lupton kernel fitted on a 2 x 2 grid of bright, isolated
    synthetic stars drawn with the science and template PSFs (positions
    spread over the grid, random sub-pixel phases, sky noise of both
    images): what a fit on the bright stars of a whole detector converges
    to, for sub-images too small to hold enough stars of their own."""
    import galsim

    height, width = sci_psf.shape
    half = basis.half
    r_fit = half + int(np.ceil(1.5 * fwhm_px))
    tile = 2 * (r_fit + half) + 5
    n = 2
    sci = np.zeros((n * tile, n * tile))
    tmp = np.zeros((n * tile, n * tile))
    centres = []
    flux = 300.0 * sigma_s * 1.13 * fwhm_px**2
    for j in range(n):
        for i in range(n):
            px, py = (i + 0.5) * width / n, (j + 0.5) * height / n
            cx = i * tile + tile // 2 + rng.uniform(-0.5, 0.5)
            cy = j * tile + tile // 2 + rng.uniform(-0.5, 0.5)
            for image, psf, scale in ((sci, sci_psf, 1.0), (tmp, tmpl_psf, phot)):
                view = galsim.Image(image, xmin=0, ymin=0, wcs=jacobian)
                psf.galsim_psf(px, py).withFlux(flux * scale).drawImage(
                    view, center=galsim.PositionD(cx, cy), add_to_image=True
                )
            centres.append((cx, cy))
    sci += rng.normal(0.0, sigma_s, sci.shape)
    tmp += rng.normal(0.0, sigma_t, tmp.shape)
    var = np.full(sci.shape, sigma_s**2)
    return fit_kernel(
        sci,
        var,
        tmp,
        basis,
        candidates=np.array(centres),
        spatial_order=0,
        background_order=0,
        fwhm_px=fwhm_px,
    )


def psf_match_and_subtract(
    science,
    science_variance,
    warped,
    warped_variance,
    fit_bad,
    *,
    sci,
    tmpl,
    mode: str,
    spatial_order: int | None,
    rng: np.random.Generator,
) -> Subtraction:
    """Match the warped template to the science PSF and subtract.

    Parameters
    ----------
    science, science_variance, warped, warped_variance : `numpy.ndarray`
        Science exposure and warped template (same grid).
    fit_bad : `numpy.ndarray`
        Pixels the kernel fit must ignore.
    sci : `~rbnodia.sim.science.ScienceFrame`
    tmpl : `~rbnodia.sim.template.Template`
    mode : `str`
        ``auto`` (``stamps`` on images of at least 768^2 pixels, else
        ``image``), ``stamps``, ``image`` or ``psf`` (synthetic stars,
        `psf_star_kernel`).
    spatial_order : `int`, optional
        Kernel variation (default 1 on images of at least 1024^2 pixels).
    rng : `numpy.random.Generator`
        For the synthetic stars of ``psf`` mode.
    """
    height, width = science.shape
    basis = gaussian_basis(sci.fwhm_px, tmpl.fwhm / sci.pixel_scale)
    if mode == "auto":
        mode = "stamps" if height * width >= 768 * 768 else "image"
    if spatial_order is None:
        spatial_order = 1 if height * width >= 1024 * 1024 else 0
    if mode == "psf":
        solution = psf_star_kernel(
            sci.psf,
            tmpl.psf,
            sci.jacobian,
            basis,
            sci.sigma,
            tmpl.sigma,
            tmpl.photometric_scale,
            sci.fwhm_px,
            rng,
        )
        solution.shape = (height, width)
    else:
        candidates = None
        if mode == "stamps":
            candidates = select_kernel_candidates(warped, warped_variance, fit_bad, sci.fwhm_px, basis.half)
        solution = fit_kernel(
            science,
            science_variance,
            warped,
            basis,
            candidates=candidates,
            bad=fit_bad,
            spatial_order=spatial_order,
            background_order=1,
            fwhm_px=sci.fwhm_px,
        )
    difference, difference_var, edge = subtract_images(
        science, science_variance, warped, warped_variance, solution
    )
    if mode == "psf":
        # Differential background: robust mean of the sky pixels.
        sky = np.isfinite(difference) & ~fit_bad & (np.abs(difference) < 3 * np.sqrt(difference_var))
        if sky.sum() > 100:
            level = float(np.median(difference[sky]))
            difference -= np.float32(level)
            solution.background = np.array([level])
    return Subtraction(difference, difference_var, edge, solution, basis, mode)
