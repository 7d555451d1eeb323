"""Flux-scale error of a template relative to the science exposures: a
smooth random field over the sky.

Photometric calibration is never perfect across a detector: star-flat and
illumination-correction errors, and the patchy transparency of thin cloud
during the template's input epochs, make the ratio of template to science
flux scale vary by a few per cent over arcminutes.  The PSF-matching kernel
fits one photometric scaling (varying at most linearly across a detector),
so the rest of the variation leaves a scaled copy of every bright star and
galaxy core in the difference image.

The field is a sum of random Fourier modes (a Gaussian random field of
rms ``rms`` with a Gaussian power spectrum of correlation length
``length``), evaluated at source positions in the tangent plane.
"""

from __future__ import annotations

__all__ = ["FluxScaleField"]

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FluxScaleField:
    """``epsilon(u, v)``: fractional flux-scale error at tangent-plane
    positions (arcsec).

    Attributes
    ----------
    kx, ky : `numpy.ndarray`
        Wave vectors (radians per arcsec).
    phase : `numpy.ndarray`
        Phase of each mode (radians).
    amplitude : `float`
        Per-mode amplitude, ``rms sqrt(2 / n_modes)``.
    """

    kx: np.ndarray
    ky: np.ndarray
    phase: np.ndarray
    amplitude: float

    @classmethod
    def draw(cls, rng: np.random.Generator, rms: float, length: float, n_modes: int = 16) -> FluxScaleField:
        """Draw a random field.

        Parameters
        ----------
        rng : `numpy.random.Generator`
            Random numbers.
        rms : `float`
            Root mean square of the fractional error.
        length : `float`
            Correlation length in arcsec (the rms wave number is
            ``1 / length``).
        n_modes : `int`, optional
            Number of Fourier modes summed.

        Returns
        -------
        field : `FluxScaleField`
            The field.
        """
        k = rng.normal(0.0, 1.0 / max(length, 1e-6), (2, n_modes))
        phase = rng.uniform(0.0, 2 * np.pi, n_modes)
        return cls(kx=k[0], ky=k[1], phase=phase, amplitude=float(rms) * np.sqrt(2.0 / n_modes))

    @classmethod
    def none(cls) -> FluxScaleField:
        """Make a field that is zero everywhere.

        Returns
        -------
        field : `FluxScaleField`
            A field without modes.
        """
        return cls(kx=np.zeros(0), ky=np.zeros(0), phase=np.zeros(0), amplitude=0.0)

    def __call__(self, u, v) -> np.ndarray:
        """Evaluate the fractional error at positions ``(u, v)`` (arcsec)."""
        u = np.asarray(u, dtype=float)
        v = np.asarray(v, dtype=float)
        if self.amplitude == 0.0 or len(self.kx) == 0:
            return np.zeros(np.broadcast(u, v).shape)
        arg = u[..., None] * self.kx + v[..., None] * self.ky + self.phase
        return self.amplitude * np.cos(arg).sum(axis=-1)
