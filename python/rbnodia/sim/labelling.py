"""The truth step of a simulated detector-visit: gather what the simulator
knows about the difference image, label every detection
(`rbnodia.sim.truth`) and tabulate the injections.
"""

from __future__ import annotations

__all__ = ["INJECTION_ID_OFFSET", "label_step"]

import numpy as np
from astropy.table import Table

from .measure import detection_id
from .photometry import flux5
from .residuals import ResidualProbe
from .truth import TruthContext, label_detections

INJECTION_ID_OFFSET = 900_000
"""Injection ``k`` of a detector-visit has id
``detection_id(visit, detector, INJECTION_ID_OFFSET + k)``, so injection
and detection ids never collide."""


def _context(preset, scene, sci, src, exposure, warped_sat, sub, meas, tmpl, static, threshold):
    """Gather the `~rbnodia.sim.truth.TruthContext` of a detector-visit."""
    galaxies, stars = scene.galaxies, scene.stars
    fwhm_px = sci.diff_fwhm_px
    f5 = flux5(sci.m5)
    visible_star = src.star_use & (np.minimum(src.star_mag, src.star_mag_template) < sci.m5 + 1.0)
    visible_gal = src.gal_use & (src.gal_mag < sci.m5 + 0.5)
    hlr_px = galaxies.disk_hlr / preset.pixel_scale
    artifacts = exposure.artifacts
    probe = ResidualProbe(
        static, tmpl.model, sci.wcs, tmpl.wcs, sub.solution, sub.convolve, sub.variance, fwhm_px
    )
    return TruthContext(
        transient_x=src.tr_x,
        transient_y=src.tr_y,
        transient_mag=src.transients.mag,
        transient_family=np.asarray(src.transients.family, dtype="U16"),
        # Repaired (masked and interpolated) cosmic rays and known defects
        # leave no signal of their own.
        cosmic_rays=artifacts.cosmic_rays & ~artifacts.cr_repaired,
        bad_columns=artifacts.bad_columns & ~artifacts.defect_masked,
        hot_pixels=artifacts.hot_pixels & ~artifacts.defect_masked,
        satellite=artifacts.satellite,
        edge=sub.edge,
        saturated=exposure.mask["SAT"] | warped_sat,
        star_x=src.star_x[visible_star],
        star_y=src.star_y[visible_star],
        star_variable=stars.variable[visible_star],
        star_mag=src.star_mag[visible_star],
        star_flux_change=10.0 ** (-0.4 * stars.dmag[visible_star]) - 1.0,
        star_scale_error=tmpl.flux_scale(stars.u[visible_star], stars.v[visible_star]),
        star_radius_px=fwhm_px
        * np.clip(1.0 + 0.75 * np.log10(np.maximum(src.star_flux[visible_star] / f5, 1.0)), 1.0, 5.0),
        galaxy_x=src.gal_x[visible_gal],
        galaxy_y=src.gal_y[visible_gal],
        galaxy_radius_px=np.clip(hlr_px[visible_gal], 0, 3 * fwhm_px)
        * np.clip(1.0 + 0.5 * np.log10(np.maximum(src.gal_flux[visible_gal] / f5, 1.0)), 1.0, 3.0),
        peak=meas.peak,
        peak_x=meas.peak_x,
        peak_y=meas.peak_y,
        residual=probe,
        noise_factor=meas.noise_factor,
        threshold=float(threshold),
        fwhm_px=fwhm_px,
        variable_star_label=int(preset.variable_star_label),
    )


def _injections(visit, detector, sci, src, matched, det_ids) -> Table:
    """Every injected transient of a detector-visit, detected or not."""
    n = len(src.transients)
    detected = np.zeros(n, dtype=bool)
    detected[matched[matched >= 0]] = True
    detection = np.full(n, -1, dtype=np.int64)
    detection[matched[matched >= 0]] = np.asarray(det_ids)[matched >= 0]
    host = np.asarray(src.transients.host, dtype=np.int64)
    host_mag = np.full(n, np.nan)
    hosted = host >= 0
    if hosted.any():
        host_mag[hosted] = src.gal_mag[host[hosted]]
    table = Table(
        {
            "id": detection_id(visit, detector, INJECTION_ID_OFFSET + np.arange(n)),
            "x": src.tr_x,
            "y": src.tr_y,
            "ra": src.tr_ra,
            "dec": src.tr_dec,
            "mag": src.transients.mag,
            "flux": src.tr_flux,
            "snr_expected": 5.0 * src.tr_flux / flux5(sci.m5_diff),
            "family": np.asarray(src.transients.family, dtype=str),
            "hosted": hosted,
            "host": host,
            "host_mag": host_mag,
            "detected": detected,
            "detection_id": detection,
        }
    )
    for name, unit in (("flux", "nJy"), ("ra", "deg"), ("dec", "deg"), ("x", "pix"), ("y", "pix")):
        table[name].unit = unit
    return table


def label_step(
    preset, scene, sci, src, exposure, warped_sat, sub, meas, tmpl, static, *, visit, detector, run
):
    """Label the detections and tabulate the injections.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        The (overridden) preset of the run.
    scene : `~rbnodia.sim.sky.Scene`
        The detector's static sky.
    sci : `~rbnodia.sim.science.ScienceFrame`
        The visit's science grid, PSF and depth.
    src : `~rbnodia.sim.science.Sources`
        Sources placed on the science grid, injections included.
    exposure : `~rbnodia.sim.science.Exposure`
        The science exposure and the truth of its artifacts.
    warped_sat : `numpy.ndarray`
        Saturated template pixels on the science grid.
    sub : `~rbnodia.sim.matching.Subtraction`
        The difference image and its kernel.
    meas : `~rbnodia.sim.measure.Measurement`
        The detections.
    tmpl : `~rbnodia.sim.template.Template`
        The template on its own grid (its noise-free model and flux-scale
        error).
    static : `numpy.ndarray`
        Noise-free science model of the static sky.
    visit : `int`
        Visit number.
    detector : `int`
        Detector number.
    run : `dict`
        Run options (``threshold``, ``match_radius``).

    Returns
    -------
    truth : `astropy.table.Table`
        ``id``, ``label``, ``family``, ``mag``, ``snr`` per detection.
    injections : `astropy.table.Table`
        Every injected transient, detected or not: ``id``, ``x``, ``y``,
        ``ra``, ``dec``, ``mag``, ``flux``, ``snr_expected``, ``family``,
        ``hosted``, ``host``, ``host_mag``, ``detected``,
        ``detection_id``.
    """
    det = meas.detections
    context = _context(
        preset, scene, sci, src, exposure, warped_sat, sub, meas, tmpl, static, run["threshold"]
    )
    x = np.asarray(det["x"], dtype=np.float64)
    y = np.asarray(det["y"], dtype=np.float64)
    label, family, mag, matched = label_detections(x, y, context, float(run["match_radius"]))
    truth = Table(
        {
            "id": np.asarray(det["id"]).copy(),
            "label": label.astype(np.int8),
            "family": family.astype(str),
            "mag": mag.astype(np.float64),
            "snr": np.asarray(det["snr"], dtype=np.float64),
        }
    )
    truth.meta["label_convention"] = "DES autoscan: 0 = real, 1 = bogus"
    truth.meta["variable_star_label"] = int(preset.variable_star_label)
    return truth, _injections(visit, detector, sci, src, matched, det["id"])
