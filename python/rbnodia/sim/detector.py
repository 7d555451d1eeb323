"""Simulate one detector of one visit: science exposure, warped deep
template, PSF-matched difference image, detections and their labels.

The pipeline mirrors a survey's:

1. A static sky (stars, galaxies) is drawn per detector footprint, so every
   visit of a detector sees the same sky and uses the same template.
2. The science exposure (single epoch, visit seeing, photon + read noise,
   saturation and bleed trails, cosmic rays, defects, satellite trails,
   residual background) is rendered on the visit's pixel grid, with
   transients injected (real, label 0) and stars moved by their proper
   motions and changed by their variability.
3. The template (deep co-add: ``n_coadd`` times lower variance, better
   seeing) is rendered on its own north-up grid, whose WCS carries a small
   astrometric error, and warped onto the science grid (Lanczos-3).
4. An Alard-Lupton kernel fitted on bright isolated sources matches the
   template to the science PSF and flux scale; the difference is
   ``science - matched template``.
5. Sources above 5 sigma are detected on the difference and labelled from
   the simulation's truth (`rbnodia.sim.truth`).
"""

from __future__ import annotations

__all__ = [
    "SimulatedDetector",
    "VisitConditions",
    "visit_conditions",
    "simulate_detector",
    "science_wcs",
    "detection_id",
    "clear_cache",
]

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from . import ccd
from .detect import detect_sources, matched_filter_significance, psf_photometry
from .geometry import AstrometricError, detector_offset, make_tan_wcs, pixel_mapping
from .presets import AB_NJY_ZERO_POINT, Preset, get_preset
from .render import PsfModel, Renderer, local_jacobian, plane_to_sky
from .scene import (
    TransientCatalog,
    concatenate_catalogs,
    draw_galaxies,
    draw_stars,
    draw_transients,
    galaxy_properties,
    star_properties,
)
from .subtract import fit_kernel, gaussian_basis, select_kernel_candidates, subtract_images
from .truth import TruthContext, label_detections
from .warp import warp_image

_log = logging.getLogger(__name__)

TEMPLATE_MARGIN = 24
"""Pixels of template beyond any science footprint (Lanczos + kernel)."""
MASK_PLANES = ("BAD", "SAT", "CR", "EDGE", "NO_DATA", "DETECTED")
BAND_WAVELENGTH_NM = {"u": 365.0, "g": 480.0, "r": 622.0, "i": 755.0, "z": 869.0, "y": 971.0}
RUN_OPTIONS = {
    "band": None,
    "blank": False,
    "inject": True,
    "artifacts": True,
    "n_transients": None,
    "variable_star_label": 1,
    "threshold": 5.0,
    "match_radius": 2.0,
    "kernel_spatial_order": None,
    "kernel_candidates": "auto",
    "inject_margin": 8,
    "bright_stars": 0.0,
    "max_stamp_half": 400,
    "bright_galaxies": 0.0,
}
"""Per-call options of `simulate_detector` that are not preset fields."""


@dataclass
class SimulatedDetector:
    """One simulated detector-visit: images, detections and truth.

    Images are float32 arrays indexed ``[y, x]`` in nJy per pixel (variances
    in nJy^2); masks map plane names to boolean arrays.  ``template`` is the
    template warped onto the science grid, *not* PSF-matched.  ``truth`` rows
    follow ``detections`` rows; ``label`` uses the DES convention
    (0 = real, 1 = bogus).
    """

    instrument: str
    visit: int
    detector: int
    physical_filter: str
    band: str
    obs_time: datetime.datetime
    exposure_time: float
    science: np.ndarray
    science_variance: np.ndarray
    science_mask: dict[str, np.ndarray]
    template: np.ndarray
    template_variance: np.ndarray
    template_mask: dict[str, np.ndarray]
    difference: np.ndarray
    difference_variance: np.ndarray
    difference_mask: dict[str, np.ndarray]
    wcs: WCS
    detections: Table
    truth: Table
    psf_fwhm_science: float
    psf_fwhm_template: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def data_id(self) -> dict[str, Any]:
        return {"instrument": self.instrument, "visit": self.visit, "detector": self.detector}

    @property
    def shape(self) -> tuple[int, int]:
        return self.science.shape


@dataclass(frozen=True)
class VisitConditions:
    """Observing conditions shared by all detectors of a visit."""

    band: str
    obs_time: datetime.datetime
    exposure_time: float
    fwhm: float
    """Science seeing (arcsec) at the detector centre, before the template floor."""
    sky_mag: float
    dither: tuple[float, float]
    """Pointing offset (arcsec, east and north)."""
    rotation_deg: float
    psf_g: tuple[float, float]
    psf_gradient_angle: float
    airmass: float = 1.0
    parallactic_angle: float = 0.0
    """Radians, from north through east, direction of the zenith."""


def _band_factor(band: str) -> float:
    return (BAND_WAVELENGTH_NM.get(band, 622.0) / 622.0) ** -0.2


def visit_conditions(preset: Preset, visit: int, seed: int, band: str | None = None) -> VisitConditions:
    """Draw the conditions of a visit (deterministic in ``seed`` and ``visit``)."""
    rng = np.random.default_rng([seed, visit, 11])
    choice = preset.bands[int(rng.integers(len(preset.bands)))]
    band = band or choice
    if band not in preset.zero_point:
        raise ValueError(f"Band {band!r} is not in preset {preset.name!r} ({preset.bands}).")
    fwhm = max(
        preset.seeing_min, preset.seeing_median * np.exp(rng.normal(0.0, preset.seeing_sigma))
    ) * _band_factor(band)
    sky_mag = preset.sky_brightness[band] - abs(rng.normal(0.0, preset.sky_scatter))
    obs_time = preset.epoch_start + datetime.timedelta(
        days=int(rng.integers(0, 180)), seconds=float(rng.uniform(0, 8 * 3600))
    )
    dither = tuple(rng.uniform(-preset.dither_arcsec, preset.dither_arcsec, 2))
    rotation = float(rng.uniform(-preset.max_rotation_deg, preset.max_rotation_deg))
    g = tuple(rng.normal(0.0, preset.psf_ellipticity, 2))
    return VisitConditions(
        band=band,
        obs_time=obs_time,
        exposure_time=preset.exposure_time,
        fwhm=float(fwhm),
        sky_mag=float(sky_mag),
        dither=(float(dither[0]), float(dither[1])),
        rotation_deg=rotation,
        psf_g=(float(g[0]), float(g[1])),
        psf_gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        airmass=float(1.0 + abs(rng.normal(0.0, 0.3))),
        parallactic_angle=float(rng.uniform(0, 2 * np.pi)),
    )


def detection_id(visit: int, detector: int, index: np.ndarray) -> np.ndarray:
    """Repository-unique detection ids: ``(visit * 1000 + detector) * 10^6 + index``."""
    return (np.int64(visit) * 1000 + np.int64(detector)) * 1_000_000 + np.asarray(index, dtype=np.int64)


def _flux5(m5: float) -> float:
    """Flux (nJy) of a 5-sigma point source."""
    return 10.0 ** (-0.4 * (m5 - AB_NJY_ZERO_POINT))


def _m5(sigma_pixel: float, psf_image: np.ndarray) -> float:
    """5-sigma point-source depth for white noise ``sigma_pixel`` (nJy)."""
    n_eff = 1.0 / np.sum(psf_image**2)
    return AB_NJY_ZERO_POINT - 2.5 * np.log10(5.0 * sigma_pixel * np.sqrt(n_eff))


class _Timer:
    def __init__(self, label: str):
        self.label = label
        self.t0 = time.monotonic()
        self.times: dict[str, float] = {}
        self.last = self.t0

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.times[name] = round(now - self.last, 3)
        self.last = now
        # Long stages (full-size detectors) are reported at INFO, so a log
        # line appears at least every ~30 s.
        level = logging.INFO if self.times[name] > 5.0 else logging.DEBUG
        _log.log(level, "%s: %s done in %.1f s", self.label, name, self.times[name])


@dataclass
class _Scene:
    """The static sky of one detector footprint."""

    stars: Any
    galaxies: Any
    frame: WCS
    box: tuple[float, float]


@dataclass
class _Template:
    """A rendered deep co-add on its own grid."""

    image: np.ndarray
    variance: np.ndarray
    saturated: np.ndarray
    no_data: np.ndarray
    wcs: WCS
    psf: PsfModel
    jacobian: Any
    fwhm: float
    photometric_scale: float
    astrometric_error: AstrometricError
    edge: dict | None
    m5: float
    sigma: float
    psf_image: np.ndarray
    n_stars: int
    n_galaxies: int


_CACHE: dict[str, tuple[Any, Any]] = {}


def _cached(kind: str, key: Any, make):
    """One-entry-per-kind memo: consecutive visits of a detector reuse its
    scene and template (the loop order of the repo writer and training
    workers makes this effective)."""
    hit = _CACHE.get(kind)
    if hit is not None and hit[0] == key:
        return hit[1]
    _CACHE.pop(kind, None)
    value = make()
    _CACHE[kind] = (key, value)
    return value


def clear_cache() -> None:
    """Drop the cached static sky and template (a full-size LSST template
    holds ~300 MB)."""
    _CACHE.clear()


def _template_grid(preset: Preset) -> tuple[tuple[int, int], tuple[float, float]]:
    """Shape and centre of the template grid that covers every visit of a
    detector (any allowed rotation and dither) plus the warping margin."""
    height, width = preset.shape
    theta = np.deg2rad(preset.max_rotation_deg)
    pad = 2 * (1.5 * preset.dither_arcsec / preset.pixel_scale + TEMPLATE_MARGIN)
    t_width = int(np.ceil(width * np.cos(theta) + height * np.sin(theta) + pad))
    t_height = int(np.ceil(height * np.cos(theta) + width * np.sin(theta) + pad))
    return (t_height, t_width), ((t_width - 1) / 2.0, (t_height - 1) / 2.0)


def _static_scene(
    preset: Preset,
    seed: int,
    detector: int,
    blank: bool,
    bright_stars: float = 0.0,
    bright_galaxies: float = 0.0,
) -> _Scene:
    height, width = preset.shape
    scale = preset.pixel_scale
    cond0 = VisitConditions(
        "r", preset.epoch_start, preset.exposure_time, 1.0, 21.0, (0.0, 0.0), 0.0, (0.0, 0.0), 0.0
    )
    frame = _science_geometry(preset, detector, cond0)[1]
    t_shape, _ = _template_grid(preset)
    box = (t_shape[1] / 2.0 * scale, t_shape[0] / 2.0 * scale)
    srng = np.random.default_rng([seed, detector, 101])
    if blank:
        stars = draw_stars(srng, preset.with_options(star_density=0.0), *box)
        galaxies = draw_galaxies(srng, preset.with_options(galaxy_density=0.0), *box, 0.0)
    else:
        stars = draw_stars(srng, preset, *box)
        deepest = max(_nominal_template_m5(preset, b) - preset.band_offset.get(b, 0.0) for b in preset.bands)
        galaxies = draw_galaxies(srng, preset, *box, deepest + preset.galaxy_depth_beyond_template)
    if not blank and (bright_stars > 0 or bright_galaxies > 0):
        # Extra bright stars (saturated to ~m5 - 3) and galaxies inside the
        # nominal footprint: the sources of subtraction artifacts.
        brng = np.random.default_rng([seed, detector, 102])
        hw, hh = (width - 1) / 2.0 * scale, (height - 1) / 2.0 * scale
        m_sat = _saturation_mag(preset)
        n = brng.poisson(bright_stars)
        mag = brng.uniform(m_sat - 1.5, _nominal_template_m5(preset, "r", coadd=False) - 3.0, n)
        extra = star_properties(brng, preset, mag, brng.uniform(-hw, hw, n), brng.uniform(-hh, hh, n))
        stars = concatenate_catalogs(stars, extra)
        n = brng.poisson(bright_galaxies)
        mag = brng.uniform(17.0, 21.0, n)
        extra = galaxy_properties(brng, mag, brng.uniform(-hw, hw, n), brng.uniform(-hh, hh, n))
        galaxies = concatenate_catalogs(galaxies, extra)
    return _Scene(stars=stars, galaxies=galaxies, frame=frame, box=box)


def _dcr_offset(preset: Preset, band: str, airmass: float, angle: float, colour: np.ndarray):
    """Tangent-plane shift (arcsec) of objects of colour deviation
    ``colour`` (mag) relative to the reference colour, towards the zenith."""
    tan_z = np.sqrt(max(airmass**2 - 1.0, 0.0))
    shift = preset.dcr_arcsec_per_mag.get(band, 0.0) * tan_z * np.asarray(colour)
    return shift * np.sin(angle), shift * np.cos(angle)


def _to_pixels(wcs: WCS, frame: WCS, u, v):
    ra, dec = plane_to_sky(u, v, frame)
    x, y = wcs.world_to_pixel_values(ra, dec)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float), ra, dec


def _make_template(
    preset: Preset,
    seed: int,
    detector: int,
    band: str,
    scene: _Scene,
    blank: bool,
    edges: bool,
    max_half: int = 400,
) -> _Template:
    """Render the deep co-add of a detector footprint in one band."""
    scale = preset.pixel_scale
    height, width = preset.shape
    trng = np.random.default_rng([seed, detector, preset.bands.index(band), 21])
    fwhm_t = float(
        max(preset.seeing_min * 0.9, preset.seeing_median * preset.template_seeing_factor)
        * _band_factor(band)
        * np.exp(trng.normal(0.0, preset.template_seeing_sigma))
    )
    phot = float(1.0 + trng.normal(0.0, preset.photometric_error)) if not blank else 1.0
    t_shape, t_centre = _template_grid(preset)
    t_height, t_width = t_shape
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
    tg = trng.normal(0.0, preset.psf_ellipticity / 2, 2)
    psf = PsfModel(
        fwhm=fwhm_t,
        model=preset.psf_model,
        beta=preset.moffat_beta,
        optics_fwhm=preset.optics_fwhm,
        g1=float(tg[0]),
        g2=float(tg[1]),
        gradient=preset.psf_fwhm_gradient / 2 * preset.shape[0] / preset.native_shape[0],
        gradient_angle=float(trng.uniform(0, 2 * np.pi)),
        shape=t_shape,
        curvature=preset.psf_fwhm_curvature * (preset.shape[0] / preset.native_shape[0]) ** 2 / 2,
    )
    cal = preset.nJy_per_electron(band)
    sky_e = preset.sky_electrons(band)
    rn2 = preset.read_noise**2
    sigma = float(np.sqrt(sky_e + rn2) * cal / np.sqrt(preset.template_n_coadd))
    psf_size = 2 * int(np.ceil(3 * fwhm_t / scale)) + 1
    psf_img = psf.image(*t_centre, jac, psf_size)
    m5 = _m5(sigma, psf_img)

    def usable(x, y, pad):
        return (x > -pad) & (x < t_width - 1 + pad) & (y > -pad) & (y < t_height - 1 + pad)

    stars, galaxies = scene.stars, scene.galaxies
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
    gal_mag = galaxies.mag(band, preset)
    t_angle = float(trng.uniform(0, 2 * np.pi))
    du, dv = _dcr_offset(preset, band, preset.template_airmass, t_angle, galaxies.colour)
    gx, gy, _, _ = _to_pixels(wcs, scene.frame, galaxies.u + du, galaxies.v + dv)
    ex, ey = astrom(gx, gy)
    gx, gy = gx + ex, gy + ey
    use_g = usable(gx, gy, 20) & (gal_mag < m5 + preset.galaxy_depth_beyond_template)
    gal_flux = 10.0 ** (-0.4 * (gal_mag - AB_NJY_ZERO_POINT)) * phot
    fast = galaxies.mag_r > _fast_galaxy_limit(preset)
    render.add_galaxies(gx[use_g], gy[use_g], gal_flux[use_g], galaxies, np.flatnonzero(use_g), fast[use_g])
    star_mag = stars.mag(band, preset)
    du, dv = _dcr_offset(preset, band, preset.template_airmass, t_angle, stars.colour)
    sx, sy, _, _ = _to_pixels(wcs, scene.frame, stars.u + du, stars.v + dv)
    ex, ey = astrom(sx, sy)
    sx, sy = sx + ex, sy + ey
    use_s = usable(sx, sy, 100)
    star_flux = 10.0 ** (-0.4 * (star_mag - AB_NJY_ZERO_POINT)) * phot
    faint = stars.mag_r > _fast_galaxy_limit(preset)
    render.add_points(sx[use_s], sy[use_s], star_flux[use_s], faint[use_s])
    model = render.array
    del render
    model_e = np.maximum(model / cal, 0.0)
    variance = ((sky_e + model_e + rn2) * cal**2 / preset.template_n_coadd).astype(np.float32)
    nrng = np.random.default_rng([seed, detector, preset.bands.index(band), 31])
    image = (model + nrng.standard_normal(t_shape, dtype=np.float32) * np.sqrt(variance)).astype(np.float32)
    saturated = model_e + sky_e > preset.full_well
    if saturated.any():
        # Saturated cores of the input epochs stay clipped in the co-add.
        image[saturated] = np.float32((preset.full_well - sky_e) * cal)
    del model, model_e
    no_data = np.zeros(t_shape, dtype=bool)
    edge = None
    if edges and trng.uniform() < preset.template_edge_probability:
        # A co-add (patch/tract) boundary cuts 5-30 % of the nominal footprint.
        phi = trng.uniform(0, 2 * np.pi)
        cx = t_centre[0] + np.array([-1, 1, 1, -1]) * width / 2.0
        cy = t_centre[1] + np.array([-1, -1, 1, 1]) * height / 2.0
        proj = cx * np.cos(phi) + cy * np.sin(phi)
        cut = proj.max() - trng.uniform(0.05, 0.3) * (proj.max() - proj.min())
        yy, xx = np.ogrid[0:t_height, 0:t_width]
        no_data = (xx * np.cos(phi) + yy * np.sin(phi)) > cut
        edge = {"angle_rad": float(phi), "cut_px": float(cut)}
        image[no_data] = np.nan
        variance[no_data] = np.nan
    return _Template(
        image=image,
        variance=variance,
        saturated=saturated,
        no_data=no_data,
        wcs=wcs,
        psf=psf,
        jacobian=jac,
        fwhm=fwhm_t,
        photometric_scale=phot,
        astrometric_error=astrom,
        edge=edge,
        m5=float(m5),
        sigma=sigma,
        psf_image=psf_img,
        n_stars=int(use_s.sum()),
        n_galaxies=int(use_g.sum()),
    )


class _PsfStamps:
    """Unit-sum PSF images on a grid of sub-pixel offsets and detector cells
    (for fast PSF photometry of many detections)."""

    def __init__(self, psf: PsfModel, jacobian, n_sub: int = 5, n_cells: int = 3):
        self.psf = psf
        self.jacobian = jacobian
        self.n_sub = n_sub
        self.n_cells = n_cells
        self.cache: dict[tuple, np.ndarray] = {}

    def __call__(self, x, y, size, offset):
        height, width = self.psf.shape
        cx = min(int(x * self.n_cells / width), self.n_cells - 1)
        cy = min(int(y * self.n_cells / height), self.n_cells - 1)
        qx = int(np.clip(np.round((offset[0] + 0.5) * (self.n_sub - 1)), 0, self.n_sub - 1))
        qy = int(np.clip(np.round((offset[1] + 0.5) * (self.n_sub - 1)), 0, self.n_sub - 1))
        key = (cx, cy, qx, qy, size)
        if key not in self.cache:
            px = (cx + 0.5) * width / self.n_cells
            py = (cy + 0.5) * height / self.n_cells
            off = (qx / (self.n_sub - 1) - 0.5, qy / (self.n_sub - 1) - 0.5)
            self.cache[key] = self.psf.image(px, py, self.jacobian, size, off)
        return self.cache[key]


def simulate_detector(
    preset: str | Preset, *, visit: int, detector: int, seed: int, **options
) -> SimulatedDetector:
    """Simulate one detector of one visit.

    Parameters
    ----------
    preset : `str` or `~rbnodia.sim.presets.Preset`
        ``"des"``, ``"lsst"`` or a preset.
    visit, detector : `int`
        Identifiers; with ``seed`` they fix every random draw.  All visits of
        a detector share its sky and (per band) its template; all detectors
        of a visit share its band, seeing and epoch.
    seed : `int`
        Master seed.
    **options
        Preset field overrides (e.g. ``image_size=(512, 512)``,
        ``cosmic_ray_rate=0``) and run options: ``band``; ``blank`` (no
        sources or artifacts: pure sky noise); ``inject`` (transients);
        ``artifacts`` (cosmic rays, defects, trails, template edges);
        ``n_transients``; ``inject_margin`` (pixels kept free of injections
        at the edges); ``variable_star_label`` (1 = bogus, the DES
        convention); ``threshold`` (detection sigma); ``match_radius``
        (pixels); ``kernel_spatial_order``; ``kernel_candidates``
        (``"auto"``, ``"stamps"`` (bright isolated sources of the image),
        ``"image"`` (whole image) or ``"psf"`` (synthetic bright stars
        drawn with both PSFs, for sub-images)); ``max_stamp_half``
        (largest half-size in pixels of a rendered object);
        ``bright_stars``, ``bright_galaxies`` (mean numbers of extra bright
        stars, r = saturation - 1.5 to m5 - 3, and galaxies, r = 17 to 21,
        added to the detector's static sky: sources of subtraction
        artifacts, used by the training mode).

    Returns
    -------
    sim : `SimulatedDetector`
    """
    from threadpoolctl import threadpool_limits

    # The linear algebra here is on small matrices: BLAS threads only fight
    # over the cores (20x slower on a loaded 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        return _simulate_detector(preset, visit=visit, detector=detector, seed=seed, **options)


def _simulate_detector(preset, *, visit: int, detector: int, seed: int, **options) -> SimulatedDetector:
    run = dict(RUN_OPTIONS)
    for key in list(options):
        if key in RUN_OPTIONS:
            run[key] = options.pop(key)
    preset = get_preset(preset, **options)
    timer = _Timer(f"{preset.instrument} visit={visit} detector={detector}")
    height, width = preset.shape
    scale = preset.pixel_scale
    cond = visit_conditions(preset, visit, seed, run["band"])
    band = cond.band
    blank = bool(run["blank"])
    with_artifacts = bool(run["artifacts"]) and not blank
    cal = preset.nJy_per_electron(band)
    sky_e = preset.sky_electrons(band, cond.sky_mag)
    rn2 = preset.read_noise**2

    # --- Static sky and template (shared by the visits of a detector) ---
    extras = (float(run["bright_stars"]), float(run["bright_galaxies"]))
    scene = _cached(
        "scene",
        (preset, seed, detector, blank, extras),
        lambda: _static_scene(preset, seed, detector, blank, *extras),
    )
    tmpl = _cached(
        "template",
        (preset, seed, detector, band, blank, with_artifacts, extras, int(run["max_stamp_half"])),
        lambda: _make_template(
            preset, seed, detector, band, scene, blank, with_artifacts, int(run["max_stamp_half"])
        ),
    )
    timer.step("template")
    frame = scene.frame
    stars, galaxies = scene.stars, scene.galaxies

    # --- Science exposure geometry, PSF and depth ---
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    sci_wcs, _ = _science_geometry(preset, detector, cond)
    jac_s = local_jacobian(sci_wcs, *centre, frame)
    fwhm_t = tmpl.fwhm
    fwhm_s = float(max(cond.fwhm, 1.05 * fwhm_t))
    sci_psf = PsfModel(
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
    )
    fwhm_s_px, fwhm_t_px = fwhm_s / scale, fwhm_t / scale
    psf_size = tmpl.psf_image.shape[0]
    psf_s_img = sci_psf.image(*centre, jac_s, psf_size)
    sigma_s = float(np.sqrt(sky_e + rn2) * cal)
    m5_sci = _m5(sigma_s, psf_s_img)
    neff_ratio = np.sum(psf_s_img**2) / np.sum(tmpl.psf_image**2)
    m5_diff = _m5(np.sqrt(sigma_s**2 + tmpl.sigma**2 * neff_ratio), psf_s_img)
    dt_years = (cond.obs_time - preset.template_epoch).total_seconds() / (365.25 * 86400.0)

    def in_footprint(x, y, pad):
        return (x > -pad) & (x < width - 1 + pad) & (y > -pad) & (y < height - 1 + pad)

    # Stars at the science epoch: proper motions and variability.
    star_mag_t = stars.mag(band, preset)
    star_mag_s = star_mag_t + stars.dmag
    du, dv = _dcr_offset(preset, band, cond.airmass, cond.parallactic_angle, stars.colour)
    sx, sy, _, _ = _to_pixels(
        sci_wcs,
        frame,
        stars.u + stars.pm_u * dt_years / 1000.0 + du,
        stars.v + stars.pm_v * dt_years / 1000.0 + dv,
    )
    star_flux_s = 10.0 ** (-0.4 * (star_mag_s - AB_NJY_ZERO_POINT))
    star_use = in_footprint(sx, sy, 100)
    gal_mag = galaxies.mag(band, preset)
    du, dv = _dcr_offset(preset, band, cond.airmass, cond.parallactic_angle, galaxies.colour)
    gx, gy, _, _ = _to_pixels(sci_wcs, frame, galaxies.u + du, galaxies.v + dv)
    gal_flux = 10.0 ** (-0.4 * (gal_mag - AB_NJY_ZERO_POINT))
    gal_use = in_footprint(gx, gy, 20) & (gal_mag < tmpl.m5 + preset.galaxy_depth_beyond_template)

    # --- Transients (per visit and detector) ---
    vrng = np.random.default_rng([seed, visit, detector, 202])
    if run["inject"] and not blank:
        n_tr = run["n_transients"]
        if n_tr is None:
            n_tr = vrng.poisson(preset.transient_density * height * width / 1e6)
        pad = -float(run["inject_margin"])

        def inside(u, v):
            x, y, _, _ = _to_pixels(sci_wcs, frame, u, v)
            return in_footprint(x, y, pad)

        transients = draw_transients(
            vrng, preset, galaxies, int(n_tr), m5_diff, inside, band, tmpl.m5, scene.box
        )
    else:
        transients = TransientCatalog(
            np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype="U16")
        )
    trx, try_, tr_ra, tr_dec = _to_pixels(sci_wcs, frame, transients.u, transients.v)
    tr_flux = 10.0 ** (-0.4 * (transients.mag - AB_NJY_ZERO_POINT))
    timer.step("scene")

    # --- Science exposure ---
    sci_render = Renderer(
        (height, width),
        jac_s,
        sci_psf,
        scale,
        sigma_s,
        brighter_fatter=preset.brighter_fatter,
        full_well=preset.full_well * cal,
        max_half=int(run["max_stamp_half"]),
    )
    fast = galaxies.mag_r > _fast_galaxy_limit(preset)
    sci_render.add_galaxies(
        gx[gal_use], gy[gal_use], gal_flux[gal_use], galaxies, np.flatnonzero(gal_use), fast[gal_use]
    )
    faint = stars.mag_r > _fast_galaxy_limit(preset)
    sci_render.add_points(sx[star_use], sy[star_use], star_flux_s[star_use], faint[star_use])
    sci_render.add_points(trx, try_, tr_flux)
    timer.step("render science")
    amps = ccd.Amplifiers.draw(np.random.default_rng([seed, detector, 404]), preset, (height, width))
    nrng = np.random.default_rng([seed, visit, detector, 303])
    area_cm2 = height * width * (preset.pixel_size_um * 1e-4) ** 2
    background = (
        ccd.smooth_background(nrng, (height, width), preset.background_error * np.sqrt(sky_e))
        if not blank
        else 0.0
    )
    science, science_var, science_mask, artifacts = ccd.expose(
        nrng,
        sci_render.array,
        preset=preset,
        amps=amps,
        nJy_per_e=cal,
        sky_e=sky_e,
        background_residual_e=background,
        cosmic_rays=preset.cosmic_ray_rate * area_cm2 * preset.exposure_time if with_artifacts else 0.0,
        satellite=with_artifacts and nrng.uniform() < preset.satellite_probability,
        fwhm_px=fwhm_s_px,
        defect_rng=np.random.default_rng([seed, detector, 505]) if with_artifacts else None,
    )
    del sci_render, background
    timer.step("expose science")

    # --- Warp the template onto the science grid ---
    t_height, t_width = tmpl.image.shape
    map_x, map_y = pixel_mapping(sci_wcs, (height, width), tmpl.wcs)
    warped, warped_var, warped_nodata = warp_image(tmpl.image, tmpl.variance, tmpl.no_data, map_x, map_y)
    nx = np.clip(np.floor(map_x + 0.5).astype(np.int64), 0, t_width - 1)
    ny = np.clip(np.floor(map_y + 0.5).astype(np.int64), 0, t_height - 1)
    warped_sat = tmpl.saturated[ny, nx] & ~warped_nodata
    del map_x, map_y, nx, ny
    timer.step("warp template")

    # --- PSF matching and subtraction ---
    basis = gaussian_basis(fwhm_s_px, fwhm_t_px)
    fit_bad = science_mask["SAT"] | science_mask["BAD"] | science_mask["CR"] | warped_nodata | warped_sat
    mode = run["kernel_candidates"]
    if mode == "auto":
        mode = "stamps" if height * width >= 768 * 768 else "image"
    spatial_order = run["kernel_spatial_order"]
    if spatial_order is None:
        spatial_order = 1 if height * width >= 1024 * 1024 else 0
    if mode == "psf":
        solution = _psf_star_kernel(
            sci_psf,
            tmpl.psf,
            jac_s,
            basis,
            sigma_s,
            tmpl.sigma,
            tmpl.photometric_scale,
            fwhm_s_px,
            np.random.default_rng([seed, visit, detector, 606]),
        )
        solution.shape = (height, width)
    else:
        candidates = None
        if mode == "stamps":
            candidates = select_kernel_candidates(warped, warped_var, fit_bad, fwhm_s_px, basis.half)
        solution = fit_kernel(
            science,
            science_var,
            warped,
            basis,
            candidates=candidates,
            bad=fit_bad,
            spatial_order=spatial_order,
            background_order=1,
            fwhm_px=fwhm_s_px,
        )
    difference, difference_var, diff_edge = subtract_images(
        science, science_var, warped, warped_var, solution
    )
    if mode == "psf":
        # Differential background: robust mean of the sky pixels.
        sky = np.isfinite(difference) & ~fit_bad & (np.abs(difference) < 3 * np.sqrt(difference_var))
        if sky.sum() > 100:
            level = float(np.median(difference[sky]))
            difference -= np.float32(level)
            solution.background = np.array([level])
    timer.step("subtract")

    # --- Masks ---
    template_mask = {p: np.zeros((height, width), dtype=bool) for p in MASK_PLANES}
    template_mask["NO_DATA"] = warped_nodata
    template_mask["SAT"] = warped_sat
    difference_mask = {p: np.zeros((height, width), dtype=bool) for p in MASK_PLANES}
    for plane in ("BAD", "SAT", "CR"):
        difference_mask[plane] = science_mask[plane] | template_mask[plane]
    difference_mask["NO_DATA"] = warped_nodata.copy()
    difference_mask["EDGE"] = diff_edge

    # --- Detection and measurement ---
    significance = matched_filter_significance(difference, difference_var, warped_nodata, fwhm_s_px)
    objects, segmentation = detect_sources(
        difference,
        difference_var,
        warped_nodata,
        fwhm_s_px,
        threshold=float(run["threshold"]),
        significance=significance,
    )
    difference_mask["DETECTED"] = segmentation > 0
    del segmentation
    x = np.asarray(objects["x"], dtype=np.float64)
    y = np.asarray(objects["y"], dtype=np.float64)
    flux, flux_err = psf_photometry(
        difference, difference_var, x, y, _PsfStamps(sci_psf, jac_s), int(np.ceil(1.5 * fwhm_s_px))
    )
    ra, dec = sci_wcs.pixel_to_world_values(x, y)
    ids = detection_id(visit, detector, np.arange(len(x)))
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = flux / flux_err
    timer.step("detect")

    # --- Truth ---
    visible_star = star_use & (np.minimum(star_mag_s, star_mag_t) < m5_sci + 1.0)
    visible_gal = gal_use & (gal_mag < m5_sci + 0.5)
    hlr_px = galaxies.disk_hlr / scale
    context = TruthContext(
        transient_x=trx,
        transient_y=try_,
        transient_mag=transients.mag,
        transient_family=np.asarray(transients.family, dtype="U16"),
        cosmic_rays=artifacts.cosmic_rays,
        bad_columns=artifacts.bad_columns,
        hot_pixels=artifacts.hot_pixels,
        satellite=artifacts.satellite,
        edge=diff_edge,
        saturated=science_mask["SAT"] | warped_sat,
        star_x=sx[visible_star],
        star_y=sy[visible_star],
        star_variable=stars.variable[visible_star],
        star_radius_px=fwhm_s_px
        * np.clip(
            1.0 + 0.75 * np.log10(np.maximum(star_flux_s[visible_star] / _flux5(m5_sci), 1.0)), 1.0, 5.0
        ),
        galaxy_x=gx[visible_gal],
        galaxy_y=gy[visible_gal],
        galaxy_radius_px=np.clip(hlr_px[visible_gal], 0, 3 * fwhm_s_px)
        * np.clip(1.0 + 0.5 * np.log10(np.maximum(gal_flux[visible_gal] / _flux5(m5_sci), 1.0)), 1.0, 3.0),
        significance=significance,
        fwhm_px=fwhm_s_px,
        variable_star_label=int(run["variable_star_label"]),
    )
    label, family, mag, matched = label_detections(x, y, context, float(run["match_radius"]))
    del significance
    detections = Table(
        {
            "id": ids,
            "x": x,
            "y": y,
            "ra": np.asarray(ra, dtype=np.float64),
            "dec": np.asarray(dec, dtype=np.float64),
            "flux": np.asarray(flux, dtype=np.float64),
            "flux_err": np.asarray(flux_err, dtype=np.float64),
            "snr": np.asarray(snr, dtype=np.float64),
        }
    )
    detections["flux"].unit = "nJy"
    detections["flux_err"].unit = "nJy"
    detections["ra"].unit = "deg"
    detections["dec"].unit = "deg"
    truth = Table(
        {
            "id": ids.copy(),
            "label": label.astype(np.int8),
            "family": family.astype(str),
            "mag": mag.astype(np.float64),
            "snr": np.asarray(snr, dtype=np.float64),
        }
    )
    truth.meta["label_convention"] = "DES autoscan: 0 = real (injected transient), 1 = bogus"
    detected = np.zeros(len(transients), dtype=bool)
    detected[matched[matched >= 0]] = True
    injections = Table(
        {
            "x": trx,
            "y": try_,
            "ra": np.asarray(tr_ra, dtype=float),
            "dec": np.asarray(tr_dec, dtype=float),
            "mag": transients.mag,
            "flux": tr_flux,
            "family": np.asarray(transients.family, dtype=str),
            "host": transients.host,
            "detected": detected,
        }
    )
    timer.step("truth")
    _log.debug(
        '%s: band %s, seeing %.2f" (template %.2f"), m5 %.2f, %d detections (%d real, %d bogus) in %.1f s',
        timer.label,
        band,
        fwhm_s,
        fwhm_t,
        m5_diff,
        len(x),
        int((label == 0).sum()),
        int((label == 1).sum()),
        time.monotonic() - timer.t0,
    )
    meta = {
        "preset": preset.name,
        "seed": seed,
        "band": band,
        "sky_mag": cond.sky_mag,
        "sky_electrons": sky_e,
        "nJy_per_electron": cal,
        "gain": preset.gain,
        "read_noise": preset.read_noise,
        "template_n_coadd": preset.template_n_coadd,
        "sigma_sky_science": sigma_s,
        "sigma_sky_template": tmpl.sigma,
        "m5_science": float(m5_sci),
        "m5_template": tmpl.m5,
        "m5_difference": float(m5_diff),
        "rotation_deg": cond.rotation_deg,
        "airmass": cond.airmass,
        "dither_arcsec": cond.dither,
        "template_shape": tmpl.image.shape,
        "template_wcs": tmpl.wcs.to_header_string(),
        "template_photometric_scale": tmpl.photometric_scale,
        "astrometric_error_px": {
            "a": tmpl.astrometric_error.a.tolist(),
            "b": tmpl.astrometric_error.b.tolist(),
        },
        "template_edge": tmpl.edge,
        "kernel": {
            "mode": solution.mode,
            "half_width": basis.half,
            "n_basis": len(basis),
            "spatial_order": solution.spatial_order,
            "n_candidates": solution.n_candidates,
            "n_used": solution.n_used,
            "chi2_per_dof": solution.chi2_per_dof,
            "kernel_sum": solution.kernel_sum(),
        },
        "n_stars": int(star_use.sum()),
        "n_galaxies": int(gal_use.sum()),
        "n_injected": len(transients),
        "n_injected_detected": int(detected.sum()),
        "artifacts": {
            "cosmic_rays": artifacts.n_cosmic_rays,
            "bad_columns": artifacts.n_bad_columns,
            "hot_pixels": artifacts.n_hot_pixels,
            "satellites": artifacts.n_satellites,
        },
        "injections": injections,
        "psf_science": sci_psf,
        "psf_template": tmpl.psf,
        "jacobian_science": jac_s,
        "timings_s": timer.times,
    }
    return SimulatedDetector(
        instrument=preset.instrument,
        visit=int(visit),
        detector=int(detector),
        physical_filter=f"{band}_sim",
        band=band,
        obs_time=cond.obs_time,
        exposure_time=float(cond.exposure_time),
        science=science,
        science_variance=science_var,
        science_mask=science_mask,
        template=warped,
        template_variance=warped_var,
        template_mask=template_mask,
        difference=difference,
        difference_variance=difference_var,
        difference_mask=difference_mask,
        wcs=sci_wcs,
        detections=detections,
        truth=truth,
        psf_fwhm_science=fwhm_s,
        psf_fwhm_template=fwhm_t,
        meta=meta,
    )


def _science_geometry(preset: Preset, detector: int, cond: VisitConditions) -> tuple[WCS, WCS]:
    """The science WCS of a detector-visit and the tangent-plane frame of
    the detector's nominal footprint (whose ``crval`` is its centre)."""
    height, width = preset.shape
    scale = preset.pixel_scale
    dx, dy = detector_offset(detector, preset.shape, preset.focal_plane_columns, preset.detector_gap_px)
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    nominal = make_tan_wcs(preset.field_center, (centre[0] - dx, centre[1] - dy), scale)
    ra0, dec0 = (float(v) for v in nominal.pixel_to_world_values(*centre))
    frame = make_tan_wcs((ra0, dec0), (0.0, 0.0), 1.0)
    ra_p, dec_p = plane_to_sky(cond.dither[0], cond.dither[1], frame)
    return make_tan_wcs((float(ra_p), float(dec_p)), centre, scale, cond.rotation_deg), frame


def science_wcs(preset: str | Preset, *, visit: int, detector: int, seed: int, **options) -> WCS:
    """The WCS `simulate_detector` will give a detector-visit, without
    simulating it (for registering visit regions up front)."""
    run_band = options.pop("band", None)
    for key in list(options):
        if key in RUN_OPTIONS:
            options.pop(key)
    preset = get_preset(preset, **options)
    cond = visit_conditions(preset, visit, seed, run_band)
    return _science_geometry(preset, detector, cond)[0]


def _psf_star_kernel(sci_psf, tmpl_psf, jacobian, basis, sigma_s, sigma_t, phot, fwhm_px, rng):
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


def _saturation_mag(preset: Preset, band: str = "r") -> float:
    """Magnitude of a star whose peak pixel reaches the full well in median
    seeing (Gaussian estimate)."""
    sigma_px = preset.seeing_median * _band_factor(band) / preset.pixel_scale / 2.3548
    flux_e = preset.full_well * 2 * np.pi * sigma_px**2
    return float(AB_NJY_ZERO_POINT - 2.5 * np.log10(flux_e * preset.nJy_per_electron(band)))


def _fast_galaxy_limit(preset: Preset) -> float:
    """r magnitude beyond which galaxies and stars are drawn as Gaussians:
    half a magnitude brighter than the nominal single-epoch r-band depth
    (such sources are below ~8 sigma; the science and template draw each
    source the same way)."""
    return _nominal_template_m5(preset, "r", coadd=False) - 0.5


def _nominal_template_m5(preset: Preset, band: str, coadd: bool = True) -> float:
    """Template (or, with ``coadd=False``, single-epoch) depth at median
    seeing (Gaussian-PSF estimate)."""
    factor = preset.template_seeing_factor if coadd else 1.0
    fwhm_px = preset.seeing_median * factor * _band_factor(band) / preset.pixel_scale
    n_eff = 2.266 * fwhm_px**2  # 4 pi sigma^2
    sigma = np.sqrt(preset.sky_electrons(band) + preset.read_noise**2) * preset.nJy_per_electron(band)
    if coadd:
        sigma /= np.sqrt(preset.template_n_coadd)
    return float(AB_NJY_ZERO_POINT - 2.5 * np.log10(5.0 * sigma * np.sqrt(n_eff)))
