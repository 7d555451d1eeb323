"""The template: a deep co-add of a detector footprint rendered on its own
north-up grid (with an astrometric error between its WCS and where its
light lies), and its warp onto a science grid.
"""

from __future__ import annotations

__all__ = [
    "SCIENCE_ONLY_FIELDS",
    "Template",
    "correlated_noise",
    "make_template",
    "template_key",
    "warp_template",
]

import dataclasses
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from .calibration import FluxScaleField
from .footprint import template_grid
from .geometry import AstrometricError, make_tan_wcs, pixel_mapping
from .photometry import band_factor, fast_source_limit, flux_of_mag, m5_of_noise
from .presets import Preset
from .render import PsfModel, Renderer, local_jacobian
from .sky import Scene, dcr_offset, to_pixels
from .warp import warp_image

SCIENCE_ONLY_FIELDS = frozenset(
    {
        "gain",
        "gain_scatter",
        "sky_scatter",
        "seeing_sigma",
        "epoch_start",
        "psf_shape_variation",
        "kernel_width_error",
        "kernel_shape_error",
        "variance_underestimate",
        "convolve_science",
        "detection_filter_factor",
        "background_error",
        "variable_star_label",
        "transient_density",
        "min_transients",
        "hostless_fraction",
        "host_weight_power",
        "host_relative_fraction",
        "transient_mag_bright",
        "transient_mag_faint",
        "cosmic_ray_rate",
        "pixel_size_um",
        "cosmic_ray_track_px",
        "cosmic_ray_repair_fraction",
        "bad_columns",
        "hot_pixels",
        "defect_mask_fraction",
        "satellite_probability",
    }
)
"""Preset fields that only the science exposure (or its processing) reads:
neither the static sky nor the template depends on them."""


def template_key(preset: Preset) -> tuple:
    """Make the cache key of a preset's static sky and template.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        The (overridden) preset.

    Returns
    -------
    key : `tuple`
        ``(name, value)`` of every field not in `SCIENCE_ONLY_FIELDS`:
        visits whose presets differ only in those share a sky and template.
    """
    return tuple(
        (f.name, getattr(preset, f.name))
        for f in dataclasses.fields(preset)
        if f.name not in SCIENCE_ONLY_FIELDS
    )


@dataclass
class Template:
    """A rendered deep co-add on its own grid.

    Images are float32 nJy per pixel (NaN outside the co-add's coverage);
    ``saturated`` marks clipped cores.  ``photometric_scale`` is the
    template's calibration relative to the truth; ``astrometric_error`` the
    displacement of its light from its WCS.
    """

    image: np.ndarray
    """Co-add image."""
    variance: np.ndarray
    """Its (per-pixel) variance plane."""
    model: np.ndarray
    """Noise-free image (nJy per pixel, before saturation clipping)."""
    saturated: np.ndarray
    """Boolean map of clipped cores."""
    no_data: np.ndarray
    """Boolean map of pixels outside the co-add's coverage."""
    wcs: WCS
    """WCS of the template grid (north up)."""
    psf: PsfModel
    """Co-add PSF."""
    jacobian: object
    """`galsim.JacobianWCS` at the grid centre (pixel to arcsec)."""
    fwhm: float
    """Co-add FWHM at the grid centre, arcsec."""
    photometric_scale: float
    """Calibration relative to the truth (``1 + photometric_error``
    draw)."""
    flux_scale: FluxScaleField
    """Flux-scale error field of the template's sources (``epsilon(u, v)``)."""
    astrometric_error: AstrometricError
    """Displacement of the template's light from its WCS."""
    edge: dict | None
    """Angle and position of a co-add boundary, `None` without one."""
    m5: float
    """5-sigma point-source depth."""
    sigma: float
    """Sky noise per pixel, nJy."""
    psf_image: np.ndarray
    """Unit-sum PSF image at the grid centre."""
    n_stars: int
    """Stars drawn."""
    n_galaxies: int
    """Galaxies drawn."""


def _template_psf(preset: Preset, rng: np.random.Generator, fwhm: float, shape) -> PsfModel:
    """Draw the co-add's PSF: half the science ellipticity and spatial variation."""
    tg = rng.normal(0.0, preset.psf_ellipticity / 2, 2)
    return PsfModel(
        fwhm=fwhm,
        model=preset.psf_model,
        beta=preset.moffat_beta,
        optics_fwhm=preset.optics_fwhm,
        g1=float(tg[0]),
        g2=float(tg[1]),
        gradient=preset.psf_fwhm_gradient / 2 * preset.shape[0] / preset.native_shape[0],
        gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        shape=shape,
        curvature=preset.psf_fwhm_curvature * (preset.shape[0] / preset.native_shape[0]) ** 2 / 2,
    )


def _render_model(preset, band, scene: Scene, wcs, astrom, render: Renderer, rng, m5, phot, field):
    """Draw the scene's galaxies and stars (template epoch, template DCR,
    astrometric error, flux scale ``phot (1 + field(u, v))``) into
    ``render``; returns the numbers drawn.
    """
    t_height, t_width = render.shape
    stars, galaxies = scene.stars, scene.galaxies

    def usable(x, y, pad):
        return (x > -pad) & (x < t_width - 1 + pad) & (y > -pad) & (y < t_height - 1 + pad)

    gal_mag = galaxies.mag(band, preset)
    t_angle = float(rng.uniform(0, 2 * np.pi))
    du, dv = dcr_offset(preset, band, preset.template_airmass, t_angle, galaxies.colour)
    gx, gy, _, _ = to_pixels(wcs, scene.frame, galaxies.u + du, galaxies.v + dv)
    ex, ey = astrom(gx, gy)
    gx, gy = gx + ex, gy + ey
    use_g = usable(gx, gy, 20) & (gal_mag < m5 + preset.galaxy_depth_beyond_template)
    gal_flux = flux_of_mag(gal_mag) * phot * (1.0 + field(galaxies.u, galaxies.v))
    fast = galaxies.mag_r > fast_source_limit(preset)
    render.add_galaxies(gx[use_g], gy[use_g], gal_flux[use_g], galaxies, np.flatnonzero(use_g), fast[use_g])
    star_mag = stars.mag(band, preset)
    du, dv = dcr_offset(preset, band, preset.template_airmass, t_angle, stars.colour)
    sx, sy, _, _ = to_pixels(wcs, scene.frame, stars.u + du, stars.v + dv)
    ex, ey = astrom(sx, sy)
    sx, sy = sx + ex, sy + ey
    use_s = usable(sx, sy, 100)
    star_flux = flux_of_mag(star_mag) * phot * (1.0 + field(stars.u, stars.v))
    faint = stars.mag_r > fast_source_limit(preset)
    render.add_points(sx[use_s], sy[use_s], star_flux[use_s], faint[use_s])
    return int(use_s.sum()), int(use_g.sum())


def correlated_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Draw unit-variance Gaussian noise correlated by a Gaussian kernel:
    the noise of a co-add whose input epochs were resampled onto its grid.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    shape : `tuple` [`int`, `int`]
        Image ``(height, width)``.
    sigma : `float`
        Sigma of the correlating Gaussian, pixels (white noise for 0).

    Returns
    -------
    noise : `numpy.ndarray`
        Float32 noise of unit variance per pixel.
    """
    from scipy import ndimage

    noise = rng.standard_normal(shape, dtype=np.float32)
    if sigma <= 0:
        return noise
    delta = np.zeros(2 * int(np.ceil(4 * sigma)) + 1)
    delta[len(delta) // 2] = 1.0
    weights = ndimage.gaussian_filter1d(delta, sigma)
    # The 2-d kernel's sum of squares is (sum of the 1-d weights^2)^2.
    norm = np.float32(1.0 / np.sum(weights**2))
    return ndimage.gaussian_filter(noise, sigma) * norm


def _noisy_coadd(preset: Preset, model, cal: float, sky_e: float, rng: np.random.Generator):
    """Co-add image, variance plane and saturated-core map of a noise-free
    model (nJy per pixel): photon and read noise of ``template_n_coadd``
    epochs, correlated by their resampling.
    """
    model_e = np.maximum(model / cal, 0.0)
    variance = ((sky_e + model_e + preset.read_noise**2) * cal**2 / preset.template_n_coadd).astype(
        np.float32
    )
    noise = correlated_noise(rng, model.shape, preset.template_noise_correlation)
    image = (model + noise * np.sqrt(variance)).astype(np.float32)
    del noise
    saturated = model_e + sky_e > preset.full_well
    if saturated.any():
        # Saturated cores of the input epochs stay clipped in the co-add.
        image[saturated] = np.float32((preset.full_well - sky_e) * cal)
    return image, variance, saturated


def _coadd_edge(preset: Preset, rng, shape, centre):
    """Draw a co-add (patch/tract) boundary cutting 5-30 % of the nominal
    footprint: the NO_DATA map and its description.
    """
    height, width = preset.shape
    t_height, t_width = shape
    phi = rng.uniform(0, 2 * np.pi)
    cx = centre[0] + np.array([-1, 1, 1, -1]) * width / 2.0
    cy = centre[1] + np.array([-1, -1, 1, 1]) * height / 2.0
    proj = cx * np.cos(phi) + cy * np.sin(phi)
    cut = proj.max() - rng.uniform(0.05, 0.3) * (proj.max() - proj.min())
    yy, xx = np.ogrid[0:t_height, 0:t_width]
    no_data = (xx * np.cos(phi) + yy * np.sin(phi)) > cut
    return no_data, {"angle_rad": float(phi), "cut_px": float(cut)}


def make_template(
    preset: Preset,
    seed: int,
    detector: int,
    band: str,
    scene: Scene,
    blank: bool,
    edges: bool,
    max_half: int = 400,
) -> Template:
    """Render the deep co-add of a detector footprint in one band.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Template depth, seeing, calibration and astrometric errors.
    seed : `int`
        Master seed.
    detector : `int`
        Detector number.
    band : `str`
        Band of the co-add.
    scene : `~rbnodia.sim.sky.Scene`
        The detector's static sky.
    blank : `bool`
        Pure sky noise: no calibration or astrometric error.
    edges : `bool`
        Allow a co-add boundary (``template_edge_probability``).
    max_half : `int`
        Largest half-size (pixels) of a rendered object.

    Returns
    -------
    template : `Template`
        The co-add on its own grid.
    """
    scale = preset.pixel_scale
    trng = np.random.default_rng([seed, detector, preset.bands.index(band), 21])
    fwhm_t = float(
        max(preset.seeing_min * 0.9, preset.seeing_median * preset.template_seeing_factor)
        * band_factor(band)
        * np.exp(trng.normal(0.0, preset.template_seeing_sigma))
    )
    phot = float(1.0 + trng.normal(0.0, preset.photometric_error)) if not blank else 1.0
    t_shape, t_centre = template_grid(preset)
    ra0, dec0 = (float(v) for v in scene.frame.wcs.crval)
    wcs = make_tan_wcs((ra0, dec0), t_centre, scale, 0.0)
    if blank:
        astrom = AstrometricError.none(t_shape)
        trng.normal(size=12)
    else:
        astrom = AstrometricError.draw(
            trng, t_shape, preset.astrometric_error_arcsec / scale, preset.astrometric_gradient_arcsec / scale
        )
    jac = local_jacobian(wcs, *t_centre, scene.frame)
    psf = _template_psf(preset, trng, fwhm_t, t_shape)
    cal = preset.nJy_per_electron(band)
    sky_e = preset.sky_electrons(band)
    rn2 = preset.read_noise**2
    sigma = float(np.sqrt(sky_e + rn2) * cal / np.sqrt(preset.template_n_coadd))
    psf_img = psf.image(*t_centre, jac, 2 * int(np.ceil(3 * fwhm_t / scale)) + 1)
    m5 = m5_of_noise(sigma, psf_img)
    render = Renderer(
        t_shape,
        jac,
        psf,
        scale,
        sigma,
        brighter_fatter=preset.brighter_fatter,
        full_well=preset.full_well * cal,
        max_half=max_half,
    )
    field = (
        FluxScaleField.none()
        if blank
        else FluxScaleField.draw(trng, preset.flux_scale_error, preset.flux_scale_length_arcsec)
    )
    n_stars, n_galaxies = _render_model(preset, band, scene, wcs, astrom, render, trng, m5, phot, field)
    model = render.array
    del render
    nrng = np.random.default_rng([seed, detector, preset.bands.index(band), 31])
    image, variance, saturated = _noisy_coadd(preset, model, cal, sky_e, nrng)
    no_data = np.zeros(t_shape, dtype=bool)
    edge = None
    if edges and trng.uniform() < preset.template_edge_probability:
        no_data, edge = _coadd_edge(preset, trng, t_shape, t_centre)
        image[no_data] = np.nan
        variance[no_data] = np.nan
    return Template(
        image=image,
        variance=variance,
        model=model,
        saturated=saturated,
        no_data=no_data,
        wcs=wcs,
        psf=psf,
        jacobian=jac,
        fwhm=fwhm_t,
        photometric_scale=phot,
        flux_scale=field,
        astrometric_error=astrom,
        edge=edge,
        m5=float(m5),
        sigma=sigma,
        psf_image=psf_img,
        n_stars=n_stars,
        n_galaxies=n_galaxies,
    )


def warp_template(tmpl: Template, sci_wcs: WCS, shape: tuple[int, int]):
    """Warp the template onto a science grid (Lanczos-3).

    Parameters
    ----------
    tmpl : `Template`
        The template on its own grid.
    sci_wcs : `astropy.wcs.WCS`
        WCS of the science grid.
    shape : `tuple` [`int`, `int`]
        Science ``(height, width)``.

    Returns
    -------
    warped, variance : `numpy.ndarray`
        Float32, NaN where no data.
    no_data, saturated : `numpy.ndarray`
        Boolean maps on the science grid.
    """
    t_height, t_width = tmpl.image.shape
    map_x, map_y = pixel_mapping(sci_wcs, shape, tmpl.wcs)
    warped, warped_var, warped_nodata = warp_image(tmpl.image, tmpl.variance, tmpl.no_data, map_x, map_y)
    nx = np.clip(np.floor(map_x + 0.5).astype(np.int64), 0, t_width - 1)
    ny = np.clip(np.floor(map_y + 0.5).astype(np.int64), 0, t_height - 1)
    warped_sat = tmpl.saturated[ny, nx] & ~warped_nodata
    return warped, warped_var, warped_nodata, warped_sat
