"""The PSF-matching and subtraction step of a simulated detector-visit:
choose which image the kernel convolves and how it is constrained, fit it
(`rbnodia.sim.subtract`) and form the difference image.

The difference is ``D = S - K * T - b`` when the template ``T`` is
convolved (the science ``S`` has the broader PSF) and
``D = K * S + b - T`` when the science is convolved; either way a new
source in the science image is positive.
"""

from __future__ import annotations

__all__ = ["Subtraction", "psf_match_and_subtract", "psf_star_kernel"]

import dataclasses
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
    """Difference image (nJy per pixel; a new source is positive)."""
    variance: np.ndarray
    """Its variance plane."""
    edge: np.ndarray
    """Pixels where the convolution reached missing data or the border."""
    solution: KernelSolution
    """The fitted kernel."""
    basis: KernelBasis
    """Its basis."""
    mode: str
    """How the kernel was constrained: ``stamps``, ``image`` or ``psf``."""
    convolve: str
    """The convolved image: ``template`` or ``science``."""


def psf_star_kernel(
    target_psf,
    source_psf,
    jacobian,
    basis,
    sigma_target,
    sigma_source,
    source_scale,
    fwhm_px,
    rng,
    *,
    width_error: float = 0.0,
    shape_error: float = 0.0,
) -> KernelSolution:
    """Fit an Alard-Lupton kernel on synthetic stars.

    The stars are a 2 x 2 grid of bright, isolated synthetic stars drawn
    with the target and source PSFs (positions spread over the grid, random
    sub-pixel phases, sky noise of both images): what a fit on the bright
    stars of a whole detector converges to, for sub-images too small to hold
    enough stars of their own.

    The kernel convolves the source image (flux scale ``source_scale``
    relative to the target) to match the target.  A whole-detector solution
    is not exact at every source: the target PSF it matches differs from
    the local one by a fractional FWHM error and an ellipticity error drawn
    with rms ``width_error`` and ``shape_error`` (recorded in
    ``solution.info``).

    Parameters
    ----------
    target_psf, source_psf : `~rbnodia.sim.render.PsfModel`
        PSFs of the image the kernel matches and of the image it convolves.
    jacobian : `galsim.JacobianWCS`
        Local pixel-to-arcsec mapping of the science grid.
    basis : `~rbnodia.sim.subtract.KernelBasis`
        Kernel basis.
    sigma_target, sigma_source : `float`
        Sky noise per pixel of the two images.
    source_scale : `float`
        Flux scale of the source image relative to the target.
    fwhm_px : `float`
        FWHM of the target PSF in pixels (star flux, fit radius).
    rng : `numpy.random.Generator`
        Random numbers (PSF errors, sub-pixel phases, noise).
    width_error : `float`, optional
        The rms fractional FWHM error of the matched target PSF.
    shape_error : `float`, optional
        The rms of each ellipticity component of that error.

    Returns
    -------
    solution : `~rbnodia.sim.subtract.KernelSolution`
        Spatially constant kernel without background.
    """
    import galsim

    height, width = target_psf.shape
    d_width = float(rng.normal(0.0, width_error)) if width_error > 0 else 0.0
    d_g = rng.normal(0.0, shape_error, 2) if shape_error > 0 else np.zeros(2)
    seen = dataclasses.replace(
        target_psf,
        fwhm=target_psf.fwhm * (1.0 + d_width),
        g1=target_psf.g1 + float(d_g[0]),
        g2=target_psf.g2 + float(d_g[1]),
    )
    half = basis.half
    r_fit = half + int(np.ceil(1.5 * fwhm_px))
    tile = 2 * (r_fit + half) + 5
    n = 2
    tgt = np.zeros((n * tile, n * tile))
    src = np.zeros((n * tile, n * tile))
    centres = []
    flux = 300.0 * sigma_target * 1.13 * fwhm_px**2
    for j in range(n):
        for i in range(n):
            px, py = (i + 0.5) * width / n, (j + 0.5) * height / n
            cx = i * tile + tile // 2 + rng.uniform(-0.5, 0.5)
            cy = j * tile + tile // 2 + rng.uniform(-0.5, 0.5)
            for image, psf, scale in ((tgt, seen, 1.0), (src, source_psf, source_scale)):
                view = galsim.Image(image, xmin=0, ymin=0, wcs=jacobian)
                psf.galsim_psf(px, py).withFlux(flux * scale).drawImage(
                    view, center=galsim.PositionD(cx, cy), add_to_image=True
                )
            centres.append((cx, cy))
    tgt += rng.normal(0.0, sigma_target, tgt.shape)
    src += rng.normal(0.0, sigma_source, src.shape)
    var = np.full(tgt.shape, sigma_target**2)
    solution = fit_kernel(
        tgt,
        var,
        src,
        basis,
        candidates=np.array(centres),
        spatial_order=0,
        background_order=0,
        fwhm_px=fwhm_px,
    )
    solution.info.update(width_error=d_width, shape_error=[float(d_g[0]), float(d_g[1])])
    return solution


def _psf_mode_kernel(sci, tmpl, basis, rng, preset_errors) -> KernelSolution:
    """Run `psf_star_kernel` in the direction of ``sci.convolve``."""
    if sci.convolve == "template":
        target, source = (sci.psf, sci.sigma, 1.0), (tmpl.psf, tmpl.sigma, tmpl.photometric_scale)
        fwhm_px = sci.fwhm_px
    else:
        target, source = (tmpl.psf, tmpl.sigma, 1.0), (sci.psf, sci.sigma, 1.0 / tmpl.photometric_scale)
        fwhm_px = tmpl.fwhm / sci.pixel_scale
    return psf_star_kernel(
        target[0],
        source[0],
        sci.jacobian,
        basis,
        target[1],
        source[1],
        source[2],
        fwhm_px,
        rng,
        width_error=preset_errors[0],
        shape_error=preset_errors[1],
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
    kernel_errors: tuple[float, float] = (0.0, 0.0),
) -> Subtraction:
    """Match one image's PSF to the other's and subtract.

    Parameters
    ----------
    science, science_variance, warped, warped_variance : `numpy.ndarray`
        Science exposure and warped template (same grid).
    fit_bad : `numpy.ndarray`
        Pixels the kernel fit must ignore.
    sci : `~rbnodia.sim.science.ScienceFrame`
        Its ``convolve`` says which image is convolved.
    tmpl : `~rbnodia.sim.template.Template`
        The template (its PSF, noise and photometric scale).
    mode : `str`
        ``auto`` (``stamps`` on images of at least 768^2 pixels, else
        ``image``), ``stamps``, ``image`` or ``psf`` (synthetic stars,
        `psf_star_kernel`).
    spatial_order : `int`, optional
        Kernel variation (default 1 on images of at least 1024^2 pixels).
    rng : `numpy.random.Generator`
        For the synthetic stars of ``psf`` mode.
    kernel_errors : `tuple` [`float`, `float`]
        The rms width and shape errors of a ``psf``-mode kernel.

    Returns
    -------
    subtraction : `Subtraction`
        The difference image and its kernel.
    """
    height, width = science.shape
    t_fwhm_px = tmpl.fwhm / sci.pixel_scale
    if sci.convolve == "template":
        target, target_var, source, source_var = science, science_variance, warped, warped_variance
        basis = gaussian_basis(sci.fwhm_px, t_fwhm_px)
    else:
        target, target_var, source, source_var = warped, warped_variance, science, science_variance
        basis = gaussian_basis(t_fwhm_px, sci.fwhm_px)
    if mode == "auto":
        mode = "stamps" if height * width >= 768 * 768 else "image"
    if spatial_order is None:
        spatial_order = 1 if height * width >= 1024 * 1024 else 0
    if mode == "psf":
        solution = _psf_mode_kernel(sci, tmpl, basis, rng, kernel_errors)
        solution.shape = (height, width)
    else:
        candidates = None
        if mode == "stamps":
            candidates = select_kernel_candidates(warped, warped_variance, fit_bad, sci.fwhm_px, basis.half)
        solution = fit_kernel(
            target,
            target_var,
            source,
            basis,
            candidates=candidates,
            bad=fit_bad,
            spatial_order=spatial_order,
            background_order=1,
            fwhm_px=max(sci.fwhm_px, t_fwhm_px),
        )
    difference, difference_var, edge = subtract_images(target, target_var, source, source_var, solution)
    if sci.convolve == "science":
        difference = -difference
    if mode == "psf":
        # Differential background: robust mean of the sky pixels.
        sky = np.isfinite(difference) & ~fit_bad & (np.abs(difference) < 3 * np.sqrt(difference_var))
        if sky.sum() > 100:
            level = float(np.median(difference[sky]))
            difference -= np.float32(level)
            solution.background = np.array([level if sci.convolve == "template" else -level])
    return Subtraction(difference, difference_var, edge, solution, basis, mode, sci.convolve)
