"""The truth step of a simulated detector-visit: gather what the simulator
knows about the difference image, label every detection
(`rbnodia.sim.truth`) and tabulate the injections."""

from __future__ import annotations

__all__ = ["label_step"]

import numpy as np
from astropy.table import Table

from .photometry import flux5
from .truth import TruthContext, label_detections


def label_step(
    preset, scene, sci, src, exposure, warped_sat, sub, meas, *, variable_star_label, match_radius
):
    """Labels of the detections and the table of injections.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
    scene : `~rbnodia.sim.sky.Scene`
    sci : `~rbnodia.sim.science.ScienceFrame`
    src : `~rbnodia.sim.science.Sources`
    exposure : `~rbnodia.sim.science.Exposure`
    warped_sat : `numpy.ndarray`
        Saturated template pixels on the science grid.
    sub : `~rbnodia.sim.matching.Subtraction`
    meas : `~rbnodia.sim.measure.Measurement`
    variable_star_label : `int`
        Label of variable stars.
    match_radius : `float`
        Pixels.

    Returns
    -------
    truth : `astropy.table.Table`
        ``id``, ``label``, ``family``, ``mag``, ``snr`` per detection.
    injections : `astropy.table.Table`
        Every injected transient, detected or not.
    """
    galaxies, stars = scene.galaxies, scene.stars
    det = meas.detections
    fwhm_px = sci.fwhm_px
    f5 = flux5(sci.m5)
    visible_star = src.star_use & (np.minimum(src.star_mag, src.star_mag_template) < sci.m5 + 1.0)
    visible_gal = src.gal_use & (src.gal_mag < sci.m5 + 0.5)
    hlr_px = galaxies.disk_hlr / preset.pixel_scale
    artifacts = exposure.artifacts
    context = TruthContext(
        transient_x=src.tr_x,
        transient_y=src.tr_y,
        transient_mag=src.transients.mag,
        transient_family=np.asarray(src.transients.family, dtype="U16"),
        cosmic_rays=artifacts.cosmic_rays,
        bad_columns=artifacts.bad_columns,
        hot_pixels=artifacts.hot_pixels,
        satellite=artifacts.satellite,
        edge=sub.edge,
        saturated=exposure.mask["SAT"] | warped_sat,
        star_x=src.star_x[visible_star],
        star_y=src.star_y[visible_star],
        star_variable=stars.variable[visible_star],
        star_radius_px=fwhm_px
        * np.clip(1.0 + 0.75 * np.log10(np.maximum(src.star_flux[visible_star] / f5, 1.0)), 1.0, 5.0),
        galaxy_x=src.gal_x[visible_gal],
        galaxy_y=src.gal_y[visible_gal],
        galaxy_radius_px=np.clip(hlr_px[visible_gal], 0, 3 * fwhm_px)
        * np.clip(1.0 + 0.5 * np.log10(np.maximum(src.gal_flux[visible_gal] / f5, 1.0)), 1.0, 3.0),
        significance=meas.significance,
        fwhm_px=fwhm_px,
        variable_star_label=int(variable_star_label),
    )
    x = np.asarray(det["x"], dtype=np.float64)
    y = np.asarray(det["y"], dtype=np.float64)
    label, family, mag, matched = label_detections(x, y, context, float(match_radius))
    truth = Table(
        {
            "id": np.asarray(det["id"]).copy(),
            "label": label.astype(np.int8),
            "family": family.astype(str),
            "mag": mag.astype(np.float64),
            "snr": np.asarray(det["snr"], dtype=np.float64),
        }
    )
    truth.meta["label_convention"] = "DES autoscan: 0 = real (injected transient), 1 = bogus"
    detected = np.zeros(len(src.transients), dtype=bool)
    detected[matched[matched >= 0]] = True
    injections = Table(
        {
            "x": src.tr_x,
            "y": src.tr_y,
            "ra": src.tr_ra,
            "dec": src.tr_dec,
            "mag": src.transients.mag,
            "flux": src.tr_flux,
            "family": np.asarray(src.transients.family, dtype=str),
            "host": src.transients.host,
            "detected": detected,
        }
    )
    return truth, injections
