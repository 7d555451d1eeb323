"""The static sky of a detector footprint (stars and galaxies shared by all
its visits), and the mapping of tangent-plane positions to pixels with
differential chromatic refraction.
"""

from __future__ import annotations

__all__ = ["Scene", "dcr_offset", "static_scene", "to_pixels"]

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from .conditions import VisitConditions
from .footprint import science_geometry, template_grid
from .photometry import nominal_template_m5, saturation_mag
from .presets import Preset
from .render import plane_to_sky
from .scene import (
    GalaxyCatalog,
    StarCatalog,
    concatenate_catalogs,
    draw_galaxies,
    draw_stars,
    galaxy_properties,
    star_properties,
)


@dataclass
class Scene:
    """The static sky of one detector footprint.

    Attributes
    ----------
    stars : `~rbnodia.sim.scene.StarCatalog`
        Stars, at the template epoch.
    galaxies : `~rbnodia.sim.scene.GalaxyCatalog`
        Galaxies.
    frame : `astropy.wcs.WCS`
        Tangent-plane frame whose ``crval`` is the footprint centre.
    box : `tuple` [`float`, `float`]
        Half width and half height (arcsec) of the drawn area.
    """

    stars: StarCatalog
    galaxies: GalaxyCatalog
    frame: WCS
    box: tuple[float, float]


def static_scene(
    preset: Preset,
    seed: int,
    detector: int,
    blank: bool,
    bright_stars: float = 0.0,
    bright_galaxies: float = 0.0,
) -> Scene:
    """Draw the stars and galaxies of a detector footprint.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Detector geometry, source counts and depths.
    seed, detector : `int`
        The scene depends on these only (not on the visit).
    blank : `bool`
        No sources at all.
    bright_stars, bright_galaxies : `float`
        Mean numbers of extra bright stars (saturation - 1.5 to m5 - 3 in r)
        and bulge-dominated galaxies (r = 16 to 20.5, bulge fraction 0.3 to
        1) inside the nominal footprint: the sources of subtraction
        artifacts.

    Returns
    -------
    scene : `Scene`
        Sources over the template grid's area.
    """
    height, width = preset.shape
    scale = preset.pixel_scale
    cond0 = VisitConditions(
        "r", preset.epoch_start, preset.exposure_time, 1.0, 21.0, (0.0, 0.0), 0.0, (0.0, 0.0), 0.0
    )
    frame = science_geometry(preset, detector, cond0)[1]
    t_shape, _ = template_grid(preset)
    box = (t_shape[1] / 2.0 * scale, t_shape[0] / 2.0 * scale)
    srng = np.random.default_rng([seed, detector, 101])
    if blank:
        stars = draw_stars(srng, preset.with_options(star_density=0.0), *box)
        galaxies = draw_galaxies(srng, preset.with_options(galaxy_density=0.0), *box, 0.0)
    else:
        stars = draw_stars(srng, preset, *box)
        deepest = max(nominal_template_m5(preset, b) - preset.band_offset.get(b, 0.0) for b in preset.bands)
        galaxies = draw_galaxies(srng, preset, *box, deepest + preset.galaxy_depth_beyond_template)
    if not blank and (bright_stars > 0 or bright_galaxies > 0):
        brng = np.random.default_rng([seed, detector, 102])
        hw, hh = (width - 1) / 2.0 * scale, (height - 1) / 2.0 * scale
        m_sat = saturation_mag(preset)
        n = brng.poisson(bright_stars)
        mag = brng.uniform(m_sat - 1.5, nominal_template_m5(preset, "r", coadd=False) - 3.0, n)
        extra = star_properties(brng, preset, mag, brng.uniform(-hw, hw, n), brng.uniform(-hh, hh, n))
        stars = concatenate_catalogs(stars, extra)
        n = brng.poisson(bright_galaxies)
        mag = brng.uniform(16.0, 20.5, n)
        extra = galaxy_properties(brng, mag, brng.uniform(-hw, hw, n), brng.uniform(-hh, hh, n))
        # Bulge-dominated: compact cores are what leaves residuals.
        extra.bulge_fraction = brng.uniform(0.3, 1.0, n)
        galaxies = concatenate_catalogs(galaxies, extra)
    return Scene(stars=stars, galaxies=galaxies, frame=frame, box=box)


def dcr_offset(preset: Preset, band: str, airmass: float, angle: float, colour: np.ndarray):
    """Compute the differential chromatic refraction of objects.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        ``dcr_arcsec_per_mag`` per band.
    band : `str`
        Band.
    airmass : `float`
        Airmass of the image.
    angle : `float`
        Parallactic angle, radians from north through east (direction of
        the zenith).
    colour : `numpy.ndarray`
        Colour deviation from the reference colour, mag.

    Returns
    -------
    du, dv : `numpy.ndarray`
        Tangent-plane shift towards the zenith, arcsec (east, north).
    """
    tan_z = np.sqrt(max(airmass**2 - 1.0, 0.0))
    shift = preset.dcr_arcsec_per_mag.get(band, 0.0) * tan_z * np.asarray(colour)
    return shift * np.sin(angle), shift * np.cos(angle)


def to_pixels(wcs: WCS, frame: WCS, u, v):
    """Map tangent-plane positions to pixels.

    Parameters
    ----------
    wcs : `astropy.wcs.WCS`
        WCS of the pixel grid.
    frame : `astropy.wcs.WCS`
        Frame whose ``crval`` is the tangent point.
    u, v : `float` or `numpy.ndarray`
        Tangent-plane positions (east, north), arcsec.

    Returns
    -------
    x, y : `numpy.ndarray`
        Pixel positions on ``wcs``'s grid.
    ra, dec : `numpy.ndarray`
        Sky positions, degrees.
    """
    ra, dec = plane_to_sky(u, v, frame)
    x, y = wcs.world_to_pixel_values(ra, dec)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float), ra, dec
