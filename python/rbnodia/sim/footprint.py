"""Where a detector-visit lies: its science WCS, the detector's nominal
footprint frame, and the template grid that covers every visit of it.
"""

from __future__ import annotations

__all__ = ["TEMPLATE_MARGIN", "science_geometry", "science_wcs", "template_grid"]

import numpy as np
from astropy.wcs import WCS

from .conditions import VisitConditions, visit_conditions
from .geometry import detector_offset, make_tan_wcs
from .options import split_options
from .presets import Preset, get_preset
from .render import plane_to_sky

TEMPLATE_MARGIN = 24
"""Pixels of template beyond any science footprint (Lanczos + kernel)."""


def template_grid(preset: Preset) -> tuple[tuple[int, int], tuple[float, float]]:
    """Size the template grid of a detector.

    The grid covers every visit of the detector (any allowed rotation and
    dither) plus the warping margin, `TEMPLATE_MARGIN`.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Detector shape, pixel scale, largest rotation and dither.

    Returns
    -------
    shape : `tuple` [`int`, `int`]
        Template ``(height, width)`` in pixels.
    centre : `tuple` [`float`, `float`]
        Its central pixel ``(x, y)``, 0-based.
    """
    height, width = preset.shape
    theta = np.deg2rad(preset.max_rotation_deg)
    pad = 2 * (1.5 * preset.dither_arcsec / preset.pixel_scale + TEMPLATE_MARGIN)
    t_width = int(np.ceil(width * np.cos(theta) + height * np.sin(theta) + pad))
    t_height = int(np.ceil(height * np.cos(theta) + width * np.sin(theta) + pad))
    return (t_height, t_width), ((t_width - 1) / 2.0, (t_height - 1) / 2.0)


def science_geometry(preset: Preset, detector: int, cond: VisitConditions) -> tuple[WCS, WCS]:
    """Place a detector-visit on the sky.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Detector shape, pixel scale, field centre and focal-plane layout.
    detector : `int`
        Detector number (its place on the focal plane).
    cond : `~rbnodia.sim.conditions.VisitConditions`
        The visit's dither and rotation.

    Returns
    -------
    wcs : `astropy.wcs.WCS`
        The science WCS of the detector-visit.
    frame : `astropy.wcs.WCS`
        The tangent-plane frame (arcsec) of the detector's nominal
        footprint, whose ``crval`` is its centre.
    """
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
    """Compute the WCS `~rbnodia.sim.simulate_detector` will give a
    detector-visit, without simulating it (for registering visit regions up
    front).

    Parameters
    ----------
    preset : `str` or `~rbnodia.sim.presets.Preset`
        ``"des"``, ``"lsst"`` or a preset.
    visit : `int`
        Visit number.
    detector : `int`
        Detector number.
    seed : `int`
        Master seed.
    **options
        The options of `~rbnodia.sim.simulate_detector`.

    Returns
    -------
    wcs : `astropy.wcs.WCS`
        The science WCS.
    """
    run, overrides = split_options(options)
    preset = get_preset(preset, **overrides)
    cond = visit_conditions(preset, visit, seed, run["band"])
    return science_geometry(preset, detector, cond)[0]
