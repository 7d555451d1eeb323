"""Observing conditions of a visit: band, epoch, seeing, sky, pointing,
rotation and PSF shape, shared by all detectors of the visit.
"""

from __future__ import annotations

__all__ = ["VisitConditions", "visit_conditions"]

import datetime
from dataclasses import dataclass

import numpy as np

from .photometry import band_factor
from .presets import Preset


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
    psf_shape_curvature: tuple[float, float] = (0.0, 0.0)
    """Quadratic change of the PSF ``(g1, g2)`` from the centre to the
    corners of a full detector."""


def visit_conditions(preset: Preset, visit: int, seed: int, band: str | None = None) -> VisitConditions:
    """Draw the conditions of a visit (deterministic in ``seed`` and ``visit``).

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Survey preset (bands, seeing, sky, pointing and PSF scatter).
    visit : `int`
        Visit number.
    seed : `int`
        Master seed.
    band : `str`, optional
        Force the band (default: drawn from the preset's bands).

    Returns
    -------
    conditions : `VisitConditions`
        The visit's conditions.

    Raises
    ------
    ValueError
        Raised if ``band`` is not one of the preset's bands.
    """
    rng = np.random.default_rng([seed, visit, 11])
    choice = preset.bands[int(rng.integers(len(preset.bands)))]
    band = band or choice
    if band not in preset.zero_point:
        raise ValueError(f"Band {band!r} is not in preset {preset.name!r} ({preset.bands}).")
    fwhm = max(
        preset.seeing_min, preset.seeing_median * np.exp(rng.normal(0.0, preset.seeing_sigma))
    ) * band_factor(band)
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
        psf_shape_curvature=tuple(float(c) for c in rng.normal(0.0, preset.psf_shape_variation, 2)),
    )
