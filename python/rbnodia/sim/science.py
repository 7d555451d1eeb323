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
    """WCS of the science grid."""
    frame: WCS
    """Tangent-plane frame of the detector's nominal footprint."""
    jacobian: Any
    """`galsim.JacobianWCS` at the grid centre (pixel to arcsec)."""
    psf: PsfModel
    """Science PSF."""
    fwhm: float
    """Science FWHM in arcsec, at the grid centre."""
    fwhm_px: float
    """The same in pixels."""
    psf_image: np.ndarray
    """Unit-sum science PSF image at the grid centre."""
    nJy_per_e: float
    """Calibration, nJy per electron."""
    sky_e: float
    """Sky level, electrons per pixel."""
    sigma: float
    """Sky noise per pixel, nJy."""
    m5: float
    """5-sigma point-source depth of the science image."""
    m5_diff: float
    """5-sigma point-source depth of the difference image."""
    shape: tuple[int, int]
    """Grid ``(height, width)``."""
    pixel_scale: float
    """Arcsec per pixel."""
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
    """The sky as this exposure sees it, in its pixel coordinates.

    Rows follow the scene's star and galaxy catalogues and the transient
    catalogue.
    """

    star_x: np.ndarray
    """Star positions at the visit's epoch, pixels."""
    star_y: np.ndarray
    """Star positions at the visit's epoch, pixels."""
    star_mag_template: np.ndarray
    """Star magnitudes in the band at the template epoch."""
    star_mag: np.ndarray
    """Star magnitudes in the band at the visit (variability)."""
    star_flux: np.ndarray
    """Star fluxes at the visit, nJy."""
    star_use: np.ndarray
    """Boolean: the star is rendered (on or near the grid)."""
    gal_x: np.ndarray
    """Galaxy positions, pixels."""
    gal_y: np.ndarray
    """Galaxy positions, pixels."""
    gal_mag: np.ndarray
    """Galaxy magnitudes in the band."""
    gal_flux: np.ndarray
    """Galaxy fluxes, nJy."""
    gal_use: np.ndarray
    """Boolean: the galaxy is rendered (near the grid, bright enough)."""
    transients: TransientCatalog
    """The injections."""
    tr_x: np.ndarray
    """Injection positions, pixels."""
    tr_y: np.ndarray
    """Injection positions, pixels."""
    tr_ra: np.ndarray
    """Injection right ascensions, degrees."""
    tr_dec: np.ndarray
    """Injection declinations, degrees."""
    tr_flux: np.ndarray
    """Injection fluxes, nJy."""


@dataclass
class Exposure:
    """The calibrated science exposure and the truth about its artifacts."""

    image: np.ndarray
    """Calibrated image, nJy per pixel."""
    variance: np.ndarray
    """Its variance plane (short by ``variance_underestimate``)."""
    mask: dict[str, np.ndarray]
    """Its mask planes."""
    artifacts: ccd.Artifacts
    """What was added and repaired."""


def science_frame(preset: Preset, detector: int, cond: VisitConditions, tmpl: Template) -> ScienceFrame:
    """Set up the science grid, its PSF, which image the kernel convolves,
    and the depths of the science and difference images.

    Without ``preset.convolve_science`` the science seeing is floored at
    1.05 x the template's, so the template is always the one convolved.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Detector, PSF and calibration settings.
    detector : `int`
        Detector number.
    cond : `~rbnodia.sim.conditions.VisitConditions`
        The visit's conditions.
    tmpl : `~rbnodia.sim.template.Template`
        The template (its PSF and noise set the difference image's).

    Returns
    -------
    sci : `ScienceFrame`
        The science frame.
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
    """Place the stars at the visit's epoch (proper motions, variability,
    DCR), the galaxies and the injected transients on the science grid.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Band offsets, DCR, template epoch, injection settings.
    cond : `~rbnodia.sim.conditions.VisitConditions`
        The visit's band, epoch, airmass and parallactic angle.
    scene : `~rbnodia.sim.sky.Scene`
        The detector's static sky.
    tmpl : `~rbnodia.sim.template.Template`
        The template (its depth limits the galaxies and hosts).
    sci : `ScienceFrame`
        The science grid.
    rng : `numpy.random.Generator`
        Draws the injections.
    inject : `bool`
        Inject transients.
    n_transients : `int` or `None`
        Number of injections (default: ``transient_density`` per megapixel,
        at least ``min_transients``).
    inject_margin : `float`
        Pixels kept free of injections at the edges.

    Returns
    -------
    sources : `Sources`
        Positions, magnitudes and fluxes on the science grid.
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
    """Render the noise-free science models (nJy per pixel).

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Brighter-fatter, full well, the faint-source limit.
    scene : `~rbnodia.sim.sky.Scene`
        The detector's static sky.
    sci : `ScienceFrame`
        The science grid, PSF and noise.
    src : `Sources`
        What to draw where.
    max_half : `int`
        Largest half-size, pixels, of an object's drawing stamp.

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
    """Expose the noise-free model: photon and read noise, residual
    background, defects, cosmic rays, satellite trail, saturation and ISR
    (`rbnodia.sim.ccd.expose`).

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Detector and artifact settings.
    model : `numpy.ndarray`
        Noise-free model, nJy per pixel.
    sci : `ScienceFrame`
        Calibration, sky level and PSF width.
    seed : `int`
        Master seed.
    visit : `int`
        Visit number (noise and cosmic rays).
    detector : `int`
        Detector number (amplifiers and static defects).
    blank : `bool`
        No residual background.
    artifacts : `bool`
        Add cosmic rays, defects and satellite trails.

    Returns
    -------
    exposure : `Exposure`
        The calibrated exposure and the truth of its artifacts.
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
