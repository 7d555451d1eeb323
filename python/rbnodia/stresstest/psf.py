"""Point-spread functions of the stress-test generator, as optical transfer
functions (OTFs) on a `~rbnodia.stresstest.profiles.FourierGrid`.

Three families, none of which the training simulator uses as its PSF
(`rbnodia.sim` draws a Kolmogorov profile convolved with Gaussian optics):

``moffat``
    Elliptical Moffat profile with a random ``beta`` (2 to 5: broad to
    narrow wings).
``double_gaussian``
    Elliptical Gaussian core plus a wider round Gaussian halo holding 5-30 %
    of the light, offset by up to half a pixel (a coma-like asymmetry).
``obscured_airy``
    Diffraction by a circular aperture with a central obstruction (10-60 %)
    convolved with elliptical Gaussian jitter; the diffraction pattern is
    given 35-60 % of the FWHM, larger than any ground-based telescope's, so
    that its rings show in the stamps.

Each `PSFModel` knows its FWHM (geometric mean over axes) and can return a
perturbed copy, which the generator uses as the pipeline's *estimate* of the
PSF: the difference between truth and estimate is what leaves PSF-matching
residuals in the difference image.
"""

from __future__ import annotations

__all__ = ["PSF_FAMILIES", "PSFModel", "draw_psf"]

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .profiles import FWHM_PER_SIGMA, annular_pupil_otf, gaussian_ft, moffat_ft, stretched_frequency

PSF_FAMILIES = ("moffat", "double_gaussian", "obscured_airy")
"""Names of the PSF families `draw_psf` chooses from."""


@dataclass(frozen=True)
class PSFModel:
    """One PSF, defined by its family and shape parameters.

    Attributes
    ----------
    family : `str`
        One of `PSF_FAMILIES`.
    fwhm : `float`
        Full width at half maximum in pixels (geometric mean of the axes;
        for ``obscured_airy`` the quadrature sum of diffraction and jitter
        widths, an approximation).
    q, theta : `float`
        Axis ratio (<= 1) and major-axis angle (radians) of the elliptical
        part (the Moffat, the Gaussian core, or the jitter).
    beta : `float`
        Moffat index (``moffat``).
    halo_fraction, halo_ratio, halo_dx, halo_dy : `float`
        Halo flux fraction, halo-to-core width ratio and halo offset in
        pixels (``double_gaussian``).
    obscuration, diffraction_share : `float`
        Obstruction ratio and the diffraction core's share of the FWHM
        (``obscured_airy``).
    """

    family: str
    fwhm: float
    q: float = 1.0
    theta: float = 0.0
    beta: float = 3.0
    halo_fraction: float = 0.0
    halo_ratio: float = 2.5
    halo_dx: float = 0.0
    halo_dy: float = 0.0
    obscuration: float = 0.3
    diffraction_share: float = 0.5

    def __post_init__(self) -> None:
        if self.family not in PSF_FAMILIES:
            raise ValueError(f"Unknown PSF family {self.family!r}; known: {PSF_FAMILIES}.")
        if not self.fwhm > 0 or not 0 < self.q <= 1:
            raise ValueError(f"PSF needs fwhm > 0 and 0 < q <= 1, got fwhm={self.fwhm}, q={self.q}.")

    def otf(self, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
        """Return the PSF's transform at frequencies ``(kx, ky)`` (cycles/pixel),
        without the pixel response; complex for ``double_gaussian``.

        Parameters
        ----------
        kx, ky : `numpy.ndarray`
            Frequencies (cycles/pixel).

        Returns
        -------
        otf : `numpy.ndarray`
            The optical transfer function.
        """
        rho = stretched_frequency(kx, ky, self.q, self.theta)
        if self.family == "moffat":
            alpha = self.fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / self.beta) - 1.0))
            return moffat_ft(rho, alpha, self.beta)
        if self.family == "double_gaussian":
            core_sigma = self.fwhm / FWHM_PER_SIGMA
            halo = gaussian_ft(np.hypot(kx, ky), core_sigma * self.halo_ratio)
            halo = halo * np.exp(-2j * np.pi * (kx * self.halo_dx + ky * self.halo_dy))
            return (1.0 - self.halo_fraction) * gaussian_ft(rho, core_sigma) + self.halo_fraction * halo
        diffraction_fwhm = self.diffraction_share * self.fwhm
        jitter_sigma = math.sqrt(max(self.fwhm**2 - diffraction_fwhm**2, 1e-6)) / FWHM_PER_SIGMA
        cutoff = 1.029 / diffraction_fwhm  # D / lambda in cycles per pixel
        diffraction = annular_pupil_otf(np.hypot(kx, ky) / cutoff, self.obscuration)
        return diffraction * gaussian_ft(rho, jitter_sigma)

    def scaled(self, factor: float) -> PSFModel:
        """Return the same shape with the FWHM multiplied by ``factor``.

        Parameters
        ----------
        factor : `float`
            FWHM multiplier.

        Returns
        -------
        psf : `PSFModel`
            The scaled PSF.
        """
        return dataclasses.replace(self, fwhm=self.fwhm * factor)

    def perturbed(self, rng: np.random.Generator, fwhm_error: float, shape_error: float) -> PSFModel:
        """Return a PSF estimate that misses this one.

        Parameters
        ----------
        rng : `numpy.random.Generator`
            Random numbers for the shape errors.
        fwhm_error : `float`
            Fractional FWHM error of the estimate (signed).
        shape_error : `float`
            Scale of the errors on ellipticity, orientation, ``beta``, halo
            fraction and obscuration.

        Returns
        -------
        psf : `PSFModel`
            The estimate.
        """
        changes = {
            "fwhm": self.fwhm * (1.0 + fwhm_error),
            "q": float(np.clip(self.q + rng.normal(0.0, shape_error), 0.3, 1.0)),
            "theta": self.theta + rng.normal(0.0, shape_error * math.pi / 2),
        }
        if self.family == "moffat":
            changes["beta"] = float(np.clip(self.beta * (1.0 + rng.normal(0.0, 2 * shape_error)), 1.6, 8.0))
        elif self.family == "double_gaussian":
            changes["halo_fraction"] = float(
                np.clip(self.halo_fraction * (1.0 + rng.normal(0.0, 3 * shape_error)), 0.0, 0.5)
            )
        else:
            changes["obscuration"] = float(np.clip(self.obscuration + rng.normal(0.0, shape_error), 0.0, 0.7))
        return dataclasses.replace(self, **changes)


def draw_psf(rng: np.random.Generator, fwhm: float, family: str | None = None) -> PSFModel:
    """Return a random PSF of the given FWHM (pixels).

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    fwhm : `float`
        FWHM in pixels.
    family : `str`, optional
        One of `PSF_FAMILIES`; drawn uniformly if `None`.

    Returns
    -------
    psf : `PSFModel`
        The PSF.
    """
    if family is None:
        family = PSF_FAMILIES[int(rng.integers(len(PSF_FAMILIES)))]
    q = float(1.0 - rng.uniform(0.0, 0.25))
    theta = float(rng.uniform(0.0, math.pi))
    if family == "moffat":
        shape = {"beta": float(rng.uniform(2.0, 5.0))}
    elif family == "double_gaussian":
        shift = rng.uniform(0.0, 0.5)
        angle = rng.uniform(0.0, 2 * math.pi)
        shape = {
            "halo_fraction": float(rng.uniform(0.05, 0.3)),
            "halo_ratio": float(rng.uniform(1.8, 3.2)),
            "halo_dx": float(shift * math.cos(angle)),
            "halo_dy": float(shift * math.sin(angle)),
        }
    else:
        shape = {
            "obscuration": float(rng.uniform(0.1, 0.6)),
            "diffraction_share": float(rng.uniform(0.35, 0.6)),
        }
    return PSFModel(family, fwhm, q, theta, **shape)
