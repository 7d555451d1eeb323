"""Simulate one detector of one visit: science exposure, warped deep
template, PSF-matched difference image, detections and their labels.

`simulate_detector` runs named steps, each in its own module:

``scene`` (`rbnodia.sim.sky`)
    The static sky of the detector footprint (shared by its visits).
``template`` (`rbnodia.sim.template`)
    The deep co-add on its own grid (shared by the visits of a band).
``science`` (`rbnodia.sim.science`)
    Grid, PSF and depth of the visit; stars at its epoch; injected
    transients.
``render science`` / ``expose science`` (`rbnodia.sim.science`)
    Noise-free model, then noise, artifacts and ISR.
``warp template`` (`rbnodia.sim.template`)
    Lanczos-3 warp of the template onto the science grid.
``subtract`` (`rbnodia.sim.matching`)
    Alard-Lupton PSF matching and the difference image.
``detect`` (`rbnodia.sim.measure`)
    Detection and PSF photometry on the difference image.
``truth`` (`rbnodia.sim.labelling`)
    Labels and families of the detections; the table of injections.

The static sky and template are cached, so that consecutive visits of a
detector reuse them.
"""

from __future__ import annotations

__all__ = [
    "RUN_OPTIONS",
    "SimulatedDetector",
    "VisitConditions",
    "clear_cache",
    "detection_id",
    "science_wcs",
    "simulate_detector",
    "visit_conditions",
]

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from .conditions import VisitConditions, visit_conditions
from .footprint import science_wcs
from .labelling import label_step
from .matching import psf_match_and_subtract
from .measure import detect_and_measure, detection_id
from .noise_peaks import plant_noise_peaks
from .options import RUN_OPTIONS, split_options
from .presets import Preset, get_preset
from .science import expose_science, place_sources, render_science, science_frame
from .sky import static_scene
from .template import make_template, template_key, warp_template

_log = logging.getLogger(__name__)

MASK_PLANES = ("BAD", "SAT", "CR", "EDGE", "NO_DATA", "DETECTED")


@dataclass
class SimulatedDetector:
    """One simulated detector-visit: images, detections and truth.

    Images are float32 arrays indexed ``[y, x]`` in nJy per pixel (variances
    in nJy^2); masks map plane names to boolean arrays.  ``template`` is the
    template warped onto the science grid, *not* PSF-matched.  ``truth`` rows
    follow ``detections`` rows; ``label`` uses the DES convention
    (0 = real, 1 = bogus).

    Attributes
    ----------
    instrument : `str`
        Instrument name of the preset (``SimDECam``, ``SimLSSTCam``).
    visit, detector : `int`
        Identifiers.
    physical_filter, band : `str`
        Filter of the visit (``<band>_sim``) and its band.
    obs_time : `datetime.datetime`
        Start of the exposure (UTC).
    exposure_time : `float`
        Seconds.
    science, science_variance : `numpy.ndarray`
        Calibrated science image and its variance plane.
    science_mask : `dict` [`str`, `numpy.ndarray`]
        Its mask planes (``BAD``, ``SAT``, ``CR``, ``EDGE``, ``NO_DATA``,
        ``DETECTED``).
    template, template_variance : `numpy.ndarray`
        Template warped onto the science grid and its variance plane.
    template_mask : `dict` [`str`, `numpy.ndarray`]
        Its mask planes.
    difference, difference_variance : `numpy.ndarray`
        Difference image and its variance plane.
    difference_mask : `dict` [`str`, `numpy.ndarray`]
        Its mask planes.
    wcs : `astropy.wcs.WCS`
        WCS of the science grid (shared by all three images).
    detections : `astropy.table.Table`
        Detections on the difference image.
    truth : `astropy.table.Table`
        Label, family and truth of each detection, row by row.
    psf_fwhm_science, psf_fwhm_template : `float`
        PSF FWHMs at the detector centre, arcsec.
    meta : `dict` [`str`, `~typing.Any`]
        Provenance and the simulator's inner state (``injections``: every
        injected transient; ``timings_s``: wall time of each step).
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
        """Butler data ID (``instrument``, ``visit``, ``detector``)."""
        return {"instrument": self.instrument, "visit": self.visit, "detector": self.detector}

    @property
    def shape(self) -> tuple[int, int]:
        """Image ``(height, width)`` in pixels."""
        return self.science.shape


class _Timer:
    """Wall time of each step; long steps are logged at INFO, so that a
    full-size detector logs at least every ~30 s.
    """

    def __init__(self, label: str):
        self.label = label
        self.t0 = time.monotonic()
        self.times: dict[str, float] = {}
        self.last = self.t0

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.times[name] = round(now - self.last, 3)
        self.last = now
        level = logging.INFO if self.times[name] > 5.0 else logging.DEBUG
        _log.log(level, "%s: %s done in %.1f s", self.label, name, self.times[name])


_CACHE: dict[str, tuple[Any, Any]] = {}


def _cached(kind: str, key: Any, make):
    """One-entry-per-kind memo: consecutive visits of a detector reuse its
    scene and template (the loop order of the repo writer and training
    workers makes this effective).
    """
    hit = _CACHE.get(kind)
    if hit is not None and hit[0] == key:
        return hit[1]
    _CACHE.pop(kind, None)
    value = make()
    _CACHE[kind] = (key, value)
    return value


def clear_cache() -> None:
    """Drop the cached static sky and template (a full-size template holds
    several image planes larger than the detector).
    """
    _CACHE.clear()


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
        at the edges); ``threshold`` (detection sigma); ``match_radius``
        (pixels); ``kernel_spatial_order``; ``kernel_candidates``
        (``"auto"``, ``"stamps"`` (bright isolated sources of the image),
        ``"image"`` (whole image) or ``"psf"`` (synthetic bright stars
        drawn with both PSFs, for sub-images)); ``max_stamp_half``
        (largest half-size in pixels of a rendered object);
        ``bright_stars``, ``bright_galaxies`` (mean numbers of extra bright
        stars, r = saturation - 1.5 to m5 - 3, and galaxies, r = 16 to 20.5,
        added to the detector's static sky: sources of subtraction
        artifacts, used by the training mode); ``noise_peaks`` (mean number
        of noise excursions planted just above the threshold,
        `rbnodia.sim.noise_peaks`, used by the training mode).

    Returns
    -------
    sim : `SimulatedDetector`
    """
    from threadpoolctl import threadpool_limits

    # The linear algebra here is on small matrices: BLAS threads only fight
    # over the cores.
    with threadpool_limits(limits=1, user_api="blas"):
        return _simulate_detector(preset, visit=visit, detector=detector, seed=seed, **options)


def _sky_and_template(preset: Preset, seed: int, detector: int, cond: VisitConditions, run: dict):
    """Run the ``scene`` and ``template`` steps (cached across visits)."""
    blank = bool(run["blank"])
    with_artifacts = bool(run["artifacts"]) and not blank
    max_half = int(run["max_stamp_half"])
    extras = (float(run["bright_stars"]), float(run["bright_galaxies"]))
    key = template_key(preset)
    scene = _cached(
        "scene",
        (key, seed, detector, blank, extras),
        lambda: static_scene(preset, seed, detector, blank, *extras),
    )
    tmpl = _cached(
        "template",
        (key, seed, detector, cond.band, blank, with_artifacts, extras, max_half),
        lambda: make_template(preset, seed, detector, cond.band, scene, blank, with_artifacts, max_half),
    )
    return scene, tmpl


def _simulate_detector(preset, *, visit: int, detector: int, seed: int, **options) -> SimulatedDetector:
    """Run the steps of `simulate_detector`, in order."""
    run, overrides = split_options(options)
    preset = get_preset(preset, **overrides)
    timer = _Timer(f"{preset.instrument} visit={visit} detector={detector}")
    cond = visit_conditions(preset, visit, seed, run["band"])
    blank = bool(run["blank"])
    scene, tmpl = _sky_and_template(preset, seed, detector, cond, run)
    timer.step("template")
    sci = science_frame(preset, detector, cond, tmpl)
    src = place_sources(
        preset,
        cond,
        scene,
        tmpl,
        sci,
        np.random.default_rng([seed, visit, detector, 202]),
        inject=bool(run["inject"]) and not blank,
        n_transients=run["n_transients"],
        inject_margin=float(run["inject_margin"]),
    )
    timer.step("scene")
    static, model = render_science(preset, scene, sci, src, int(run["max_stamp_half"]))
    timer.step("render science")
    artifacts = bool(run["artifacts"]) and not blank
    exposure = expose_science(
        preset, model, sci, seed=seed, visit=visit, detector=detector, blank=blank, artifacts=artifacts
    )
    del model
    timer.step("expose science")
    warped, warped_var, warped_nodata, warped_sat = warp_template(tmpl, sci.wcs, sci.shape)
    timer.step("warp template")
    mask = exposure.mask
    sub = psf_match_and_subtract(
        exposure.image,
        exposure.variance,
        warped,
        warped_var,
        mask["SAT"] | mask["BAD"] | mask["CR"] | warped_nodata | warped_sat,
        sci=sci,
        tmpl=tmpl,
        mode=run["kernel_candidates"],
        spatial_order=run["kernel_spatial_order"],
        rng=np.random.default_rng([seed, visit, detector, 606]),
        kernel_errors=(preset.kernel_width_error, preset.kernel_shape_error),
    )
    timer.step("subtract")
    planted = 0
    if run["noise_peaks"] > 0 and sub.convolve == "template":
        planted = len(
            plant_noise_peaks(
                exposure.image,
                sub.difference,
                sub.variance,
                warped_nodata | sub.edge,
                filter_fwhm_px=sci.diff_fwhm_px * preset.detection_filter_factor,
                mean_number=float(run["noise_peaks"]),
                threshold=float(run["threshold"]),
                margin=int(run["inject_margin"]),
                rng=np.random.default_rng([seed, visit, detector, 909]),
            ).x
        )
    meas = detect_and_measure(
        sub.difference,
        sub.variance,
        warped_nodata,
        sci=sci,
        visit=visit,
        detector=detector,
        threshold=float(run["threshold"]),
        filter_factor=preset.detection_filter_factor,
    )
    timer.step("detect")
    truth, injections = label_step(
        preset,
        scene,
        sci,
        src,
        exposure,
        warped_sat,
        sub,
        meas,
        tmpl,
        static,
        visit=visit,
        detector=detector,
        run=run,
    )
    del static
    timer.step("truth")
    _log.debug(
        '%s: band %s, seeing %.2f" (template %.2f"), m5 %.2f, %d detections (%d real) in %.1f s',
        timer.label,
        cond.band,
        sci.fwhm,
        tmpl.fwhm,
        sci.m5_diff,
        len(truth),
        int((truth["label"] == 0).sum()),
        time.monotonic() - timer.t0,
    )
    masks = _masks(exposure.mask, warped_nodata, warped_sat, sub.edge, meas.detected)
    return SimulatedDetector(
        instrument=preset.instrument,
        visit=int(visit),
        detector=int(detector),
        physical_filter=f"{cond.band}_sim",
        band=cond.band,
        obs_time=cond.obs_time,
        exposure_time=float(cond.exposure_time),
        science=exposure.image,
        science_variance=exposure.variance,
        science_mask=exposure.mask,
        template=warped,
        template_variance=warped_var,
        template_mask=masks["template"],
        difference=sub.difference,
        difference_variance=sub.variance,
        difference_mask=masks["difference"],
        wcs=sci.wcs,
        detections=meas.detections,
        truth=truth,
        psf_fwhm_science=sci.fwhm,
        psf_fwhm_template=tmpl.fwhm,
        meta=_meta(preset, seed, cond, sci, tmpl, src, sub, meas, exposure, injections, timer)
        | {"noise_peaks_planted": planted},
    )


def _masks(science_mask, warped_nodata, warped_sat, edge, detected) -> dict[str, dict[str, np.ndarray]]:
    """Mask planes of the warped template and of the difference image."""
    shape = warped_nodata.shape
    template_mask = {p: np.zeros(shape, dtype=bool) for p in MASK_PLANES}
    template_mask["NO_DATA"] = warped_nodata
    template_mask["SAT"] = warped_sat
    difference_mask = {p: np.zeros(shape, dtype=bool) for p in MASK_PLANES}
    for plane in ("BAD", "SAT", "CR"):
        difference_mask[plane] = science_mask[plane] | template_mask[plane]
    difference_mask["NO_DATA"] = warped_nodata.copy()
    difference_mask["EDGE"] = edge
    difference_mask["DETECTED"] = detected
    return {"template": template_mask, "difference": difference_mask}


def _meta(preset, seed, cond, sci, tmpl, src, sub, meas, exposure, injections, timer) -> dict[str, Any]:
    """Provenance and the simulator's inner state of a detector-visit."""
    solution = sub.solution
    artifacts = exposure.artifacts
    return {
        "preset": preset.name,
        "seed": seed,
        "band": cond.band,
        "sky_mag": cond.sky_mag,
        "sky_electrons": sci.sky_e,
        "nJy_per_electron": sci.nJy_per_e,
        "gain": preset.gain,
        "read_noise": preset.read_noise,
        "template_n_coadd": preset.template_n_coadd,
        "sigma_sky_science": sci.sigma,
        "sigma_sky_template": tmpl.sigma,
        "m5_science": float(sci.m5),
        "m5_template": tmpl.m5,
        "m5_difference": float(sci.m5_diff),
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
        "flux_scale_error_rms": preset.flux_scale_error,
        "variance_underestimate": preset.variance_underestimate,
        "detection_filter_factor": preset.detection_filter_factor,
        "noise_factor": meas.noise_factor,
        "kernel": {
            "convolved": sub.convolve,
            "errors": dict(solution.info),
            "mode": solution.mode,
            "half_width": sub.basis.half,
            "n_basis": len(sub.basis),
            "spatial_order": solution.spatial_order,
            "n_candidates": solution.n_candidates,
            "n_used": solution.n_used,
            "chi2_per_dof": solution.chi2_per_dof,
            "kernel_sum": solution.kernel_sum(),
        },
        "n_stars": int(src.star_use.sum()),
        "n_galaxies": int(src.gal_use.sum()),
        "n_injected": len(src.transients),
        "n_injected_detected": int(np.sum(injections["detected"])),
        "artifacts": {
            "cosmic_rays": artifacts.n_cosmic_rays,
            "bad_columns": artifacts.n_bad_columns,
            "hot_pixels": artifacts.n_hot_pixels,
            "satellites": artifacts.n_satellites,
        },
        "injections": injections,
        "psf_science": sci.psf,
        "psf_template": tmpl.psf,
        "jacobian_science": sci.jacobian,
        "timings_s": timer.times,
    }
