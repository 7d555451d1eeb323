"""Observing settings of the stress test and the per-scene conditions drawn
from them.

Two settings, a DES-like one (DECam: 0.263"/pixel, 90 s) and an LSST-like
one (LSSTCam: 0.2"/pixel, 30 s).  Their numbers are round public values
(pixel scales, typical gains and read noise, r-band zero points and dark-sky
brightness), chosen for this generator; seeing, template depth and the
other per-scene conditions are drawn *uniformly* within the ranges below,
unlike the training simulator's log-normal seeing and fixed co-add depths.
"""

from __future__ import annotations

__all__ = ["SETTINGS", "Conditions", "ObservingSetting", "draw_conditions", "get_setting"]

import math
from dataclasses import dataclass

import numpy as np

from .psf import PSF_FAMILIES, PSFModel, draw_psf


@dataclass(frozen=True)
class ObservingSetting:
    """Camera and site numbers of one setting.

    Attributes
    ----------
    name : `str`
        ``des`` or ``lsst``.
    pixel_scale : `float`
        Arcseconds per pixel.
    gain : `float`
        Electrons per ADU.
    read_noise : `float`
        Electrons per pixel per exposure.
    exposure_time : `float`
        Seconds.
    zero_point : `float`
        Magnitude giving 1 electron per second.
    sky_brightness : `float`
        Sky, magnitudes per square arcsecond.
    seeing : `tuple` [`float`, `float`]
        Range of science FWHM in arcseconds.
    template_epochs : `tuple` [`int`, `int`]
        Range of the number of exposures in the template co-add.
    template_seeing_ratio : `tuple` [`float`, `float`]
        Range of template FWHM over science FWHM.
    """

    name: str
    pixel_scale: float
    gain: float
    read_noise: float
    exposure_time: float
    zero_point: float
    sky_brightness: float
    seeing: tuple[float, float]
    template_epochs: tuple[int, int]
    template_seeing_ratio: tuple[float, float] = (0.65, 0.95)

    @property
    def sky_electrons(self) -> float:
        """Sky electrons per pixel in one exposure."""
        rate = 10.0 ** (-0.4 * (self.sky_brightness - self.zero_point)) * self.pixel_scale**2
        return rate * self.exposure_time

    def magnitude(self, flux: float) -> float:
        """Return the AB-like magnitude of ``flux`` electrons in one exposure.

        Parameters
        ----------
        flux : `float`
            Electrons.

        Returns
        -------
        magnitude : `float`
            NaN for a non-positive flux.
        """
        return self.zero_point - 2.5 * math.log10(flux / self.exposure_time) if flux > 0 else math.nan


SETTINGS: dict[str, ObservingSetting] = {
    "des": ObservingSetting(
        name="des",
        pixel_scale=0.263,
        gain=4.5,
        read_noise=6.5,
        exposure_time=90.0,
        zero_point=26.3,
        sky_brightness=20.9,
        seeing=(0.8, 1.6),
        template_epochs=(3, 10),
    ),
    "lsst": ObservingSetting(
        name="lsst",
        pixel_scale=0.2,
        gain=1.7,
        read_noise=8.0,
        exposure_time=30.0,
        zero_point=28.0,
        sky_brightness=21.2,
        seeing=(0.55, 1.2),
        template_epochs=(6, 30),
    ),
}
"""The settings by name."""


def get_setting(name: str) -> ObservingSetting:
    """Return the setting called ``name``.

    Parameters
    ----------
    name : `str`
        Setting name.

    Returns
    -------
    setting : `ObservingSetting`
        The setting.

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    try:
        return SETTINGS[name]
    except KeyError:
        raise ValueError(f"Unknown stress-test setting {name!r}; known: {sorted(SETTINGS)}.") from None


@dataclass(frozen=True)
class Conditions:
    """Everything about one scene's pair of images except its sources.

    Attributes
    ----------
    setting : `ObservingSetting`
        Camera and site.
    psf_science, psf_template : `PSFModel`
        True PSFs.
    psf_science_estimate, psf_template_estimate : `PSFModel`
        The pipeline's estimates (used for the matching kernel and the
        detection aperture).
    sky_science, sky_template : `float`
        Sky electrons per pixel (template: per epoch, in template units).
    epochs : `int`
        Exposures in the template co-add.
    transparency : `float`
        Science flux of a static source over its template flux.
    flux_scale_error : `float`
        Fraction by which the template's estimated photometric scale falls
        short (positive: template calibrated too faint).
    grid_offset : `tuple` [`float`, `float`]
        True offset of the template grid (pixels).
    registration_error : `tuple` [`float`, `float`]
        Error of the offset the warp assumes (pixels).
    """

    setting: ObservingSetting
    psf_science: PSFModel
    psf_template: PSFModel
    psf_science_estimate: PSFModel
    psf_template_estimate: PSFModel
    sky_science: float
    sky_template: float
    epochs: int
    transparency: float
    flux_scale_error: float
    grid_offset: tuple[float, float]
    registration_error: tuple[float, float]

    @property
    def fwhm(self) -> float:
        """True science FWHM in pixels."""
        return self.psf_science.fwhm

    @property
    def science_variance(self) -> float:
        """Per-pixel noise variance of the science sky (electrons^2)."""
        return self.sky_science + self.setting.read_noise**2 + self.setting.gain**2 / 12.0


def draw_conditions(
    rng: np.random.Generator,
    setting: ObservingSetting,
    *,
    epochs: int | None = None,
    registration_sigma: float = 0.03,
    flux_scale_sigma: float = 0.005,
    fwhm_error_sigma: float = 0.01,
) -> Conditions:
    """Draw the random conditions of one scene.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    setting : `ObservingSetting`
        Camera and site.
    epochs : `int`, optional
        Template depth; drawn from the setting's range if `None`.
    registration_sigma, flux_scale_sigma, fwhm_error_sigma : `float`
        Scales of the everyday pipeline errors (pixels, fraction, fraction)
        that every scene carries; families that need large errors replace
        the drawn values.

    Returns
    -------
    conditions : `Conditions`
        The conditions.
    """
    fwhm = rng.uniform(*setting.seeing) / setting.pixel_scale
    psf_science = draw_psf(rng, fwhm)
    template_family = psf_science.family if rng.random() < 0.5 else PSF_FAMILIES[int(rng.integers(3))]
    psf_template = draw_psf(rng, fwhm * rng.uniform(*setting.template_seeing_ratio), template_family)
    if epochs is None:
        epochs = int(rng.integers(setting.template_epochs[0], setting.template_epochs[1] + 1))
    return Conditions(
        setting=setting,
        psf_science=psf_science,
        psf_template=psf_template,
        psf_science_estimate=psf_science.perturbed(rng, rng.normal(0.0, fwhm_error_sigma), 0.01),
        psf_template_estimate=psf_template.perturbed(rng, rng.normal(0.0, fwhm_error_sigma), 0.01),
        sky_science=setting.sky_electrons * rng.uniform(0.9, 1.6),
        sky_template=setting.sky_electrons * rng.uniform(0.8, 1.2),
        epochs=epochs,
        transparency=float(rng.uniform(0.75, 1.0)),
        flux_scale_error=float(rng.normal(0.0, flux_scale_sigma)),
        grid_offset=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))),
        registration_error=(
            float(rng.normal(0.0, registration_sigma)),
            float(rng.normal(0.0, registration_sigma)),
        ),
    )
