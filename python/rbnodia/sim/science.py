"""The science exposure of a detector-visit: its grid, PSF and depth, the
static sky at the visit's epoch, the injected transients, the noise-free
rendering and the exposure itself (noise, artifacts, ISR).
"""

from __future__ import annotations

__all__ = ["Exposure", "ScienceFrame", "Sources", "expose_science", "place_sources", "science_frame"]

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.wcs import WCS

from . import ccd
from .conditions import VisitConditions
from .footprint import science_geometry
from .photometry import fast_source_limit, flux_of_mag, m5_of_noise
from .presets import Preset
from .render import PsfModel, Renderer, local_jacobian
from .scene import TransientCatalog, draw_transients
from .sky import Scene, dcr_offset, to_pixels
from .template import Template


@dataclass
class ScienceFrame:
    """Grid, PSF, calibration and depth of one science exposure."""

    wcs: WCS
    frame: WCS
    jacobian: Any
    psf: PsfModel
    fwhm: float
    """arcsec, at the grid centre."""
    fwhm_px: float
    psf_image: np.ndarray
    nJy_per_e: float
    sky_e: float
    sigma: float
    """Sky noise per pixel, nJy."""
    m5: float
    m5_diff: float
    """5-sigma point-source depth of the difference image."""
    shape: tuple[int, int]
    pixel_scale: float
    """arcsec / pixel."""
    convolve: str
    """Which image the matching kernel convolves: ``template`` (the
    science is the broader) or ``science`` (see
    `~rbnodia.sim.presets.Preset.convolve_science`)."""
    diff_psf: PsfModel
    """PSF of the difference image on this grid: the science PSF, or the
    template's when the science is convolved."""

    @property
    def diff_fwhm_px(self) -> float:
        """FWHM (pixels) of the difference image's PSF at the grid centre."""
        return self.diff_psf.fwhm / self.pixel_scale


@dataclass
class Sources:
    """The sky as this exposure sees it, in its pixel coordinates."""

    star_x: np.ndarray
    star_y: np.ndarray
    star_mag_template: np.ndarray
    star_mag: np.ndarray
    star_flux: np.ndarray
    star_use: np.ndarray
    gal_x: np.ndarray
    gal_y: np.ndarray
    gal_mag: np.ndarray
    gal_flux: np.ndarray
    gal_use: np.ndarray
    transients: TransientCatalog
    tr_x: np.ndarray
    tr_y: np.ndarray
    tr_ra: np.ndarray
    tr_dec: np.ndarray
    tr_flux: np.ndarray


@dataclass
class Exposure:
    """The calibrated science exposure and the truth about its artifacts."""

    image: np.ndarray
    variance: np.ndarray
    mask: dict[str, np.ndarray]
    artifacts: ccd.Artifacts


def science_frame(preset: Preset, detector: int, cond: VisitConditions, tmpl: Template) -> ScienceFrame:
    """The science grid, its PSF, which image the kernel convolves, and
    depths of the science and difference images.

    Without ``preset.convolve_science`` the science seeing is floored at
    1.05 x the template's, so the template is always the one convolved.
    """
    height, width = preset.shape
    scale = preset.pixel_scale
    band = cond.band
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    sci_wcs, frame = science_geometry(preset, detector, cond)
    jac = local_jacobian(sci_wcs, *centre, frame)
    fwhm_s = float(cond.fwhm if preset.convolve_science else max(cond.fwhm, 1.05 * tmpl.fwhm))
    psf = PsfModel(
        fwhm=fwhm_s,
        model=preset.psf_model,
        beta=preset.moffat_beta,
        optics_fwhm=preset.optics_fwhm,
        g1=cond.psf_g[0],
        g2=cond.psf_g[1],
        gradient=preset.psf_fwhm_gradient * height / preset.native_shape[0],
        gradient_angle=cond.psf_gradient_angle,
        shape=(height, width),
        curvature=preset.psf_fwhm_curvature * (height / preset.native_shape[0]) ** 2,
        shape_curvature=tuple(c * (height / preset.native_shape[0]) ** 2 for c in cond.psf_shape_curvature),
    )
    size = tmpl.psf_image.shape[0]
    psf_img = psf.image(*centre, jac, size)
    cal = preset.nJy_per_electron(band)
    sky_e = preset.sky_electrons(band, cond.sky_mag)
    sigma = float(np.sqrt(sky_e + preset.read_noise**2) * cal)
    if fwhm_s >= tmpl.fwhm:
        convolve, diff_psf, diff_img = "template", psf, psf_img
        diff_sigma = np.sqrt(sigma**2 + tmpl.sigma**2 * np.sum(psf_img**2) / np.sum(tmpl.psf_image**2))
    else:
        convolve = "science"
        diff_psf = dataclasses.replace(tmpl.psf, shape=(height, width))
        diff_img = diff_psf.image(*centre, jac, size)
        diff_sigma = np.sqrt(tmpl.sigma**2 + sigma**2 * np.sum(diff_img**2) / np.sum(psf_img**2))
    return ScienceFrame(
        wcs=sci_wcs,
        frame=frame,
        jacobian=jac,
        psf=psf,
        fwhm=fwhm_s,
        fwhm_px=fwhm_s / scale,
        psf_image=psf_img,
        nJy_per_e=cal,
        sky_e=sky_e,
        sigma=sigma,
        m5=m5_of_noise(sigma, psf_img),
        m5_diff=m5_of_noise(diff_sigma, diff_img),
        shape=(height, width),
        pixel_scale=scale,
        convolve=convolve,
        diff_psf=diff_psf,
    )


def _in_footprint(shape, x, y, pad):
    height, width = shape
    return (x > -pad) & (x < width - 1 + pad) & (y > -pad) & (y < height - 1 + pad)


def place_sources(
    preset: Preset,
    cond: VisitConditions,
    scene: Scene,
    tmpl: Template,
    sci: ScienceFrame,
    rng: np.random.Generator,
    *,
    inject: bool,
    n_transients: int | None,
    inject_margin: float,
) -> Sources:
    """Stars at the visit's epoch (proper motions, variability, DCR),
    galaxies, and the injected transients (drawn with ``rng``), on the
    science grid.
    """
    band = cond.band
    height, width = sci.shape
    stars, galaxies = scene.stars, scene.galaxies
    dt_years = (cond.obs_time - preset.template_epoch).total_seconds() / (365.25 * 86400.0)
    star_mag_t = stars.mag(band, preset)
    star_mag_s = star_mag_t + stars.dmag
    du, dv = dcr_offset(preset, band, cond.airmass, cond.parallactic_angle, stars.colour)
    sx, sy, _, _ = to_pixels(
        sci.wcs,
        scene.frame,
        stars.u + stars.pm_u * dt_years / 1000.0 + du,
        stars.v + stars.pm_v * dt_years / 1000.0 + dv,
    )
    gal_mag = galaxies.mag(band, preset)
    du, dv = dcr_offset(preset, band, cond.airmass, cond.parallactic_angle, galaxies.colour)
    gx, gy, _, _ = to_pixels(sci.wcs, scene.frame, galaxies.u + du, galaxies.v + dv)
    if inject:
        n_tr = n_transients
        if n_tr is None:
            n_tr = max(rng.poisson(preset.transient_density * height * width / 1e6), preset.min_transients)

        def inside(u, v):
            x, y, _, _ = to_pixels(sci.wcs, scene.frame, u, v)
            return _in_footprint(sci.shape, x, y, -float(inject_margin))

        transients = draw_transients(
            rng, preset, galaxies, int(n_tr), sci.m5_diff, inside, band, tmpl.m5, scene.box
        )
    else:
        transients = TransientCatalog(
            np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype="U16")
        )
    trx, try_, tr_ra, tr_dec = to_pixels(sci.wcs, scene.frame, transients.u, transients.v)
    return Sources(
        star_x=sx,
        star_y=sy,
        star_mag_template=star_mag_t,
        star_mag=star_mag_s,
        star_flux=flux_of_mag(star_mag_s),
        star_use=_in_footprint(sci.shape, sx, sy, 100),
        gal_x=gx,
        gal_y=gy,
        gal_mag=gal_mag,
        gal_flux=flux_of_mag(gal_mag),
        gal_use=_in_footprint(sci.shape, gx, gy, 20)
        & (gal_mag < tmpl.m5 + preset.galaxy_depth_beyond_template),
        transients=transients,
        tr_x=trx,
        tr_y=try_,
        tr_ra=np.asarray(tr_ra, dtype=float),
        tr_dec=np.asarray(tr_dec, dtype=float),
        tr_flux=flux_of_mag(transients.mag),
    )


def render_science(
    preset: Preset, scene: Scene, sci: ScienceFrame, src: Sources, max_half: int
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free science models (nJy per pixel).

    Returns
    -------
    static, model : `numpy.ndarray`
        The static sky (galaxies and stars, as they are at this epoch) and
        the same with the injected transients.
    """
    render = Renderer(
        sci.shape,
        sci.jacobian,
        sci.psf,
        preset.pixel_scale,
        sci.sigma,
        brighter_fatter=preset.brighter_fatter,
        full_well=preset.full_well * sci.nJy_per_e,
        max_half=max_half,
    )
    galaxies, stars = scene.galaxies, scene.stars
    use = src.gal_use
    fast = galaxies.mag_r > fast_source_limit(preset)
    render.add_galaxies(
        src.gal_x[use], src.gal_y[use], src.gal_flux[use], galaxies, np.flatnonzero(use), fast[use]
    )
    use = src.star_use
    faint = stars.mag_r > fast_source_limit(preset)
    render.add_points(src.star_x[use], src.star_y[use], src.star_flux[use], faint[use])
    static = render.array.copy()
    render.add_points(src.tr_x, src.tr_y, src.tr_flux)
    return static, render.array


def expose_science(
    preset: Preset,
    model: np.ndarray,
    sci: ScienceFrame,
    *,
    seed: int,
    visit: int,
    detector: int,
    blank: bool,
    artifacts: bool,
) -> Exposure:
    """Photon and read noise, residual background, defects, cosmic rays,
    satellite trail, saturation and ISR (`rbnodia.sim.ccd.expose`).
    """
    height, width = sci.shape
    amps = ccd.Amplifiers.draw(np.random.default_rng([seed, detector, 404]), preset, (height, width))
    nrng = np.random.default_rng([seed, visit, detector, 303])
    area_cm2 = height * width * (preset.pixel_size_um * 1e-4) ** 2
    background = (
        ccd.smooth_background(nrng, (height, width), preset.background_error * np.sqrt(sci.sky_e))
        if not blank
        else 0.0
    )
    image, variance, mask, truth = ccd.expose(
        nrng,
        model,
        preset=preset,
        amps=amps,
        nJy_per_e=sci.nJy_per_e,
        sky_e=sci.sky_e,
        background_residual_e=background,
        cosmic_rays=preset.cosmic_ray_rate * area_cm2 * preset.exposure_time if artifacts else 0.0,
        satellite=artifacts and nrng.uniform() < preset.satellite_probability,
        fwhm_px=sci.fwhm_px,
        defect_rng=np.random.default_rng([seed, detector, 505]) if artifacts else None,
    )
    if preset.variance_underestimate:
        # The variance plane misses part of the noise.
        variance *= np.float32(1.0 - preset.variance_underestimate)
    return Exposure(image=image, variance=variance, mask=mask, artifacts=truth)
