"""The stress test's families of detections and how each scene is built.

Labels follow the package convention (DES autoscan): 0 = real, 1 = bogus.
Variable stars are REAL here (Rubin's convention: an astrophysical change of
brightness is a real source), unlike the training simulator's default.

Every builder returns a `~rbnodia.stresstest.scene.Scene`: the family's
object (the *subject*, at unit strength) placed within 2 pixels of the
patch centre, a random population of field galaxies and stars (the
*background*), the conditions (with the family's large error, if it has
one), the target detection significance, and how far from the target the
accepted detection may lie.  Brightnesses of background sources are given
as a nominal aperture signal-to-noise in the science image
(`nominal_flux`); the subject's strength is solved for by
`~rbnodia.stresstest.scene.run_scene`.
"""

from __future__ import annotations

__all__ = ["FAMILIES", "Family", "build_scene", "family_names", "nominal_flux"]

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..core.stampset import BOGUS, REAL
from .artifacts import bad_column, cosmic_ray, hot_pixels, satellite_trail
from .detection import APERTURE_RADIUS_FWHM
from .render import Galaxy, PointSource
from .scene import Components, Scene
from .settings import Conditions, ObservingSetting, draw_conditions

_AREA_REFERENCE = (99 * 0.263) ** 2
"""Patch area (arcsec^2) at which the field densities below are quoted."""
_FIELD_GALAXIES = 3.0
_FIELD_STARS = 1.0


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def nominal_flux(conditions: Conditions, snr: float) -> float:
    """Compute the flux (electrons) of a point source whose light, half of it inside the
    detection aperture, has signal-to-noise ``snr`` against the science
    sky alone.

    Parameters
    ----------
    conditions : `Conditions`
        The scene's conditions.
    snr : `float`
        Signal-to-noise wanted.

    Returns
    -------
    flux : `float`
        Electrons.
    """
    radius = max(1.5, APERTURE_RADIUS_FWHM * conditions.fwhm)
    return 2.0 * snr * math.sqrt(math.pi * radius**2 * conditions.science_variance)


def _draw_galaxy(
    rng: np.random.Generator, conditions: Conditions, x: float, y: float, flux: float, compact: bool = False
) -> Galaxy:
    pixel = conditions.setting.pixel_scale
    scale = _log_uniform(rng, 0.1, 0.5) if compact else _log_uniform(rng, 0.15, 1.2)
    bulge = rng.uniform(0.3, 0.8) if compact or rng.random() < 0.5 else 0.0
    return Galaxy(
        x,
        y,
        flux,
        scale / pixel,
        q=float(rng.uniform(0.25, 1.0)),
        theta=float(rng.uniform(0.0, math.pi)),
        bulge_fraction=float(bulge),
        bulge_alpha=float(rng.uniform(0.08, 0.3) / pixel),
        bulge_beta=float(rng.uniform(1.6, 3.0)),
    )


def _background(
    rng: np.random.Generator,
    conditions: Conditions,
    size: int,
    target: tuple[float, float],
    keep_clear: float,
) -> Components:
    """Field galaxies and stars anywhere except within ``keep_clear`` pixels
    of the target.
    """
    area = (size * conditions.setting.pixel_scale) ** 2 / _AREA_REFERENCE
    part = Components()
    for kind, mean in (("galaxy", _FIELD_GALAXIES), ("star", _FIELD_STARS)):
        for _ in range(rng.poisson(mean * area)):
            while True:
                x, y = rng.uniform(0, size, 2)
                dx = (x - target[0] + size / 2) % size - size / 2
                dy = (y - target[1] + size / 2) % size - size / 2
                if math.hypot(dx, dy) > keep_clear:
                    break
            if kind == "galaxy":
                flux = nominal_flux(conditions, _log_uniform(rng, 2.0, 300.0))
                part.add_static(galaxies=[_draw_galaxy(rng, conditions, x, y, flux)])
            else:
                flux = nominal_flux(conditions, _log_uniform(rng, 3.0, 1000.0))
                part.add_static(points=[PointSource(x, y, flux)])
    return part


@dataclass(frozen=True)
class _Draw:
    """What every builder starts from."""

    rng: np.random.Generator
    setting: ObservingSetting
    size: int

    def target(self) -> tuple[float, float]:
        centre = self.size // 2
        return tuple(float(v) for v in centre + self.rng.uniform(-2.0, 2.0, 2))

    def conditions(self, **options) -> Conditions:
        return draw_conditions(self.rng, self.setting, **options)

    def scene(
        self,
        family: str,
        conditions: Conditions,
        subject: Components,
        target: tuple[float, float],
        accept: float,
        snr: float,
        clear: float | None = None,
        background: Components | None = None,
        **details,
    ) -> Scene:
        if background is None:
            background = _background(
                self.rng, conditions, self.size, target, clear if clear is not None else 3.0 * conditions.fwhm
            )
        return Scene(
            family=family,
            label=FAMILIES[family].label,
            conditions=conditions,
            background=background,
            subject=subject,
            target=target,
            accept_radius=accept,
            target_snr=snr,
            excursion=family.startswith("noise_"),
            details=details,
        )

    def point_scene(
        self, family: str, conditions: Conditions, subject: Components, target: tuple[float, float], **options
    ) -> Scene:
        """`scene` of a point source at the target: accepted within half a
        FWHM (at least 1.5 pixels), S/N log-uniform in 5-80.
        """
        return self.scene(
            family,
            conditions,
            subject,
            target,
            max(1.5, 0.5 * conditions.fwhm),
            _log_uniform(self.rng, 5.0, 80.0),
            **options,
        )


def _transient_hostless(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    subject = Components(science_points=[PointSource(*t, 1.0)])
    return d.point_scene("transient_hostless", c, subject, t, clear=max(8.0, 2.5 * c.fwhm))


def _transient_hosted(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    host = _draw_galaxy(d.rng, c, 0.0, 0.0, nominal_flux(c, _log_uniform(d.rng, 5.0, 2000.0)))
    # Offset drawn from the disk's light: radius ~ Gamma(2) scale lengths, then sheared like the host.
    radius = host.scale_length * d.rng.gamma(2.0) * d.rng.uniform(0.0, 1.5)
    angle = d.rng.uniform(0.0, 2 * math.pi)
    u, v = radius * math.cos(angle) / math.sqrt(host.q), radius * math.sin(angle) * math.sqrt(host.q)
    cos, sin = math.cos(host.theta), math.sin(host.theta)
    ox, oy = cos * u - sin * v, sin * u + cos * v
    background = _background(d.rng, c, d.size, t, max(8.0, 2.5 * c.fwhm))
    background.add_static(galaxies=[host.moved(t[0] - ox, t[1] - oy)])
    subject = Components(science_points=[PointSource(*t, 1.0)])
    return d.point_scene(
        "transient_hosted",
        c,
        subject,
        t,
        background=background,
        host_offset_arcsec=math.hypot(ox, oy) * c.setting.pixel_scale,
    )


def _variable_star(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    change = _log_uniform(d.rng, 0.1, 3.0)
    subject = Components(
        science_points=[PointSource(*t, (1.0 + change) / change)],
        template_points=[PointSource(*t, 1.0 / change)],
    )
    return d.point_scene("variable_star", c, subject, t, brightening=change)


def _noise(d: _Draw, family: str, epochs: int) -> Scene:
    c, t = d.conditions(epochs=epochs), d.target()
    t = (float(round(t[0])), float(round(t[1])))
    snr = float(stats.truncnorm.rvs(5.0, np.inf, random_state=d.rng))
    return d.scene(family, c, Components(), t, max(1.5, 0.5 * c.fwhm), snr, template_epochs=epochs)


def _galaxy_scale_residual(d: _Draw) -> Scene:
    error = _log_uniform(d.rng, 0.01, 0.15)
    c = dataclasses.replace(d.conditions(), flux_scale_error=error)
    t = d.target()
    subject = Components()
    subject.add_static(galaxies=[_draw_galaxy(d.rng, c, *t, 1.0, compact=True)])
    return d.scene(
        "galaxy_scale_residual",
        c,
        subject,
        t,
        max(2.0, c.fwhm),
        _log_uniform(d.rng, 5.0, 40.0),
        flux_scale_error=error,
    )


def _psf_mismatch_star(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    error = float(d.rng.choice([-1.0, 1.0]) * d.rng.uniform(0.03, 0.12))
    c = dataclasses.replace(c, psf_science_estimate=c.psf_science.perturbed(d.rng, error, 0.05))
    subject = Components()
    subject.add_static(points=[PointSource(*t, 1.0)])
    return d.scene(
        "psf_mismatch_star", c, subject, t, 1.5 * c.fwhm, _log_uniform(d.rng, 5.0, 60.0), fwhm_error=error
    )


def _dipole(d: _Draw, family: str) -> Scene:
    c, t = d.conditions(), d.target()
    shift = d.rng.uniform(0.08, 0.3 if family == "dipole_star" else 0.35) * c.fwhm
    angle = d.rng.uniform(0.0, 2 * math.pi)
    sx, sy = shift * math.cos(angle), shift * math.sin(angle)
    if family == "dipole_star":
        subject = Components(
            science_points=[PointSource(*t, 1.0)], template_points=[PointSource(t[0] - sx, t[1] - sy, 1.0)]
        )
    else:
        galaxy = _draw_galaxy(d.rng, c, *t, 1.0, compact=True)
        subject = Components(science_galaxies=[galaxy], template_galaxies=[galaxy.moved(-sx, -sy)])
    return d.scene(
        family,
        c,
        subject,
        t,
        max(2.0, c.fwhm),
        _log_uniform(d.rng, 5.0, 60.0),
        shift_arcsec=shift * c.setting.pixel_scale,
    )


def _cosmic_ray(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    length = min(25.0, 0.3 + d.rng.exponential(3.0))
    track = cosmic_ray(d.size, *t, length, d.rng.uniform(0.0, math.pi), d.rng)
    return d.scene(
        "cosmic_ray",
        c,
        Components(science_artifact=track),
        t,
        0.5 * length + 1.5,
        _log_uniform(d.rng, 5.0, 200.0),
        length_px=length,
    )


def _hot_pixel(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    t = (float(round(t[0])), float(round(t[1])))
    pixels = hot_pixels(d.size, int(t[0]), int(t[1]), d.rng)
    return d.scene(
        "hot_pixel", c, Components(science_artifact=pixels), t, 1.5, _log_uniform(d.rng, 5.0, 200.0)
    )


def _bad_column(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    length = int(d.rng.integers(15, d.size + 1))
    column = bad_column(d.size, int(round(t[0])), int(round(t[1])) - length // 2, length)
    return d.scene(
        "bad_column",
        c,
        Components(science_artifact=column),
        (float(round(t[0])), t[1]),
        6.0,
        _log_uniform(d.rng, 5.0, 60.0),
        length_px=length,
    )


def _satellite_trail(d: _Draw) -> Scene:
    c, t = d.conditions(), d.target()
    trail = satellite_trail(d.size, *t, d.rng.uniform(0.0, math.pi), c.psf_science)
    return d.scene(
        "satellite_trail", c, Components(science_artifact=trail), t, 6.0, _log_uniform(d.rng, 5.0, 80.0)
    )


@dataclass(frozen=True)
class Family:
    """One kind of detection.

    Attributes
    ----------
    name : `str`
        Family name (the ``family`` column of the stamps).
    label : `int`
        0 real / 1 bogus.
    weight : `float`
        Share of the stress set.
    description : `str`
        What it is and how it is made.
    builder : `~collections.abc.Callable`
        Makes a scene from a `_Draw`.
    """

    name: str
    label: int
    weight: float
    description: str
    builder: Callable[[_Draw], Scene]


def _families() -> dict[str, Family]:
    rows = [
        (
            "transient_hostless",
            REAL,
            0.15,
            "point source in the science image only, >= 2.5 FWHM from field sources",
            _transient_hostless,
        ),
        (
            "transient_hosted",
            REAL,
            0.25,
            "point source on a disk(+bulge) galaxy of nominal S/N 5-2000, offset "
            "drawn from the disk light (0 to a few scale lengths)",
            _transient_hosted,
        ),
        (
            "variable_star",
            REAL,
            0.10,
            "star in both images, brighter in the science by 10-300 %",
            _variable_star,
        ),
        (
            "noise_white",
            BOGUS,
            0.05,
            "noise constrained to a threshold excursion, deep template (2x the setting's deepest)",
            lambda d: _noise(d, "noise_white", 2 * d.setting.template_epochs[1]),
        ),
        (
            "noise_correlated",
            BOGUS,
            0.05,
            "noise constrained to a threshold excursion, 1-2 epoch template: the "
            "warped, kernel-convolved template noise dominates",
            lambda d: _noise(d, "noise_correlated", int(d.rng.integers(1, 3))),
        ),
        (
            "galaxy_scale_residual",
            BOGUS,
            0.06,
            "compact bright galaxy with the template flux scale 1-15 % too low",
            _galaxy_scale_residual,
        ),
        (
            "psf_mismatch_star",
            BOGUS,
            0.06,
            "bright star with the science PSF estimate 3-12 % too wide or "
            "narrow (and shape errors): core or ring residual",
            _psf_mismatch_star,
        ),
        (
            "dipole_star",
            BOGUS,
            0.05,
            "star displaced between template and science by 0.08-0.3 FWHM",
            lambda d: _dipole(d, "dipole_star"),
        ),
        (
            "dipole_galaxy",
            BOGUS,
            0.05,
            "compact galaxy displaced by 0.08-0.35 FWHM",
            lambda d: _dipole(d, "dipole_galaxy"),
        ),
        ("cosmic_ray", BOGUS, 0.05, "unrepaired straight track of 0.3-25 pixels in the science", _cosmic_ray),
        ("hot_pixel", BOGUS, 0.04, "unmasked hot pixel, half with a weaker neighbour", _hot_pixel),
        (
            "bad_column",
            BOGUS,
            0.04,
            "unmasked column segment (15 pixels to the whole patch) with excess charge",
            _bad_column,
        ),
        (
            "satellite_trail",
            BOGUS,
            0.05,
            "straight trail across the patch, PSF line-spread profile",
            _satellite_trail,
        ),
    ]
    return {name: Family(name, label, weight, text, builder) for name, label, weight, text, builder in rows}


FAMILIES: dict[str, Family] = _families()
"""All families by name, in table order; weights sum to 1 (half real)."""


def family_names() -> list[str]:
    """Return the family names in table order.

    Returns
    -------
    names : `list` [`str`]
        The names.
    """
    return list(FAMILIES)


def build_scene(family: str, rng: np.random.Generator, setting: ObservingSetting, size: int) -> Scene:
    """Return a random scene of ``family`` on a ``size x size`` periodic patch.

    Parameters
    ----------
    family : `str`
        Family name.
    rng : `numpy.random.Generator`
        Random numbers.
    setting : `ObservingSetting`
        Camera and site.
    size : `int`
        Patch size in pixels.

    Returns
    -------
    scene : `Scene`
        The scene.
    """
    try:
        spec = FAMILIES[family]
    except KeyError:
        raise ValueError(f"Unknown stress-test family {family!r}; known: {family_names()}.") from None
    return spec.builder(_Draw(rng, setting, size))
