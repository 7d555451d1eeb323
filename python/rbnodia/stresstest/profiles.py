"""Fourier transforms of light profiles, sampled on the frequency grid of a
periodic square patch.

The stress-test generator draws every smooth light distribution (PSFs,
galaxies, point sources) directly in Fourier space: a profile's transform is
multiplied by the pixel response (``sinc(kx) sinc(ky)``, exact integration
over square pixels) and a phase ramp for its sub-pixel position, and one
inverse real FFT gives the pixelised image.  This is a different rendering
method from the training simulator (`rbnodia.sim` draws with GalSim in real
space) and needs only numpy and scipy.

Profiles are evaluated on the transform of a *periodic* patch (odd size, so
that there is no Nyquist frequency to mishandle); light that leaves one side
re-enters on the other, identically in every image of a scene, so no image
edge ever enters a stamp.  Frequencies beyond the grid's Nyquist limit are
not folded back (aliasing): with the PSF widths the generator uses (FWHM of
at least 2.7 pixels) the transforms there are below 1 % of their peak.

Conventions: frequencies ``kx``, ``ky`` are in cycles per pixel; lengths in
pixels; every profile has unit total flux (its transform is 1 at k = 0).
"""

from __future__ import annotations

__all__ = [
    "FourierGrid",
    "annular_pupil_otf",
    "exponential_disk_ft",
    "gaussian_ft",
    "moffat_ft",
    "stretched_frequency",
]

import functools
from dataclasses import dataclass

import numpy as np
from scipy import special

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
"""FWHM of a Gaussian in units of its sigma."""


@dataclass(frozen=True)
class FourierGrid:
    """The real-FFT frequency grid of a ``size x size`` periodic patch.

    Attributes
    ----------
    size : `int`
        Patch width and height in pixels; must be odd.
    """

    size: int

    def __post_init__(self) -> None:
        if self.size < 3 or self.size % 2 == 0:
            raise ValueError(f"Patch size must be odd and >= 3, got {self.size}.")

    @functools.cached_property
    def ky(self) -> np.ndarray:
        """``(size, 1)`` frequencies along y (cycles per pixel)."""
        return np.fft.fftfreq(self.size)[:, None]

    @functools.cached_property
    def kx(self) -> np.ndarray:
        """``(1, size // 2 + 1)`` non-negative frequencies along x."""
        return np.fft.rfftfreq(self.size)[None, :]

    @functools.cached_property
    def pixel_response(self) -> np.ndarray:
        """Transform of a unit square pixel: ``sinc(kx) sinc(ky)``."""
        return np.sinc(self.ky) * np.sinc(self.kx)

    def phase(self, x: float, y: float) -> np.ndarray:
        """Compute the transform of a unit impulse at pixel position ``(x, y)`` (pixel
        centres at integers, ``[0, 0]`` the first pixel).

        Parameters
        ----------
        x, y : `float`
            Position in pixels.

        Returns
        -------
        transform : `numpy.ndarray`
            Complex transform on the grid.
        """
        return np.exp(-2j * np.pi * self.ky * y) * np.exp(-2j * np.pi * self.kx * x)

    def to_image(self, transform: np.ndarray) -> np.ndarray:
        """Compute the inverse real FFT to a ``(size, size)`` float64 image.

        Parameters
        ----------
        transform : `numpy.ndarray`
            Half-plane transform.

        Returns
        -------
        image : `numpy.ndarray`
            The image.
        """
        return np.fft.irfft2(transform, s=(self.size, self.size))

    def to_transform(self, image: np.ndarray) -> np.ndarray:
        """Compute the forward real FFT of a ``(size, size)`` image.

        Parameters
        ----------
        image : `numpy.ndarray`
            The image.

        Returns
        -------
        transform : `numpy.ndarray`
            Half-plane transform.
        """
        return np.fft.rfft2(image)


def stretched_frequency(kx: np.ndarray, ky: np.ndarray, q: float, theta: float) -> np.ndarray:
    """Compute the frequency radius seen by a circular profile sheared into an ellipse.

    The elliptical profile is ``f(x) = g(M^-1 x)`` with
    ``M = R(theta) diag(1/sqrt(q), sqrt(q))`` (area preserving, major axis
    at angle ``theta`` from +x, axis ratio ``q`` <= 1); its transform is
    ``G(|M^T k|)``.

    Parameters
    ----------
    kx, ky : `numpy.ndarray`
        Frequencies (cycles/pixel).
    q : `float`
        Axis ratio (<= 1).
    theta : `float`
        Major-axis angle in radians from +x.

    Returns
    -------
    rho : `numpy.ndarray`
        The stretched radial frequency.
    """
    c, s = np.cos(theta), np.sin(theta)
    root_q = np.sqrt(q)
    u = (c * kx + s * ky) / root_q
    v = (-s * kx + c * ky) * root_q
    return np.hypot(u, v)


def gaussian_ft(rho: np.ndarray, sigma: float) -> np.ndarray:
    """Compute the transform of a unit-flux circular Gaussian of width ``sigma``.

    Parameters
    ----------
    rho : `numpy.ndarray`
        Radial frequency (cycles/pixel).
    sigma : `float`
        Width in pixels.

    Returns
    -------
    transform : `numpy.ndarray`
        The transform.
    """
    return np.exp(-2.0 * np.pi**2 * sigma**2 * rho**2)


def moffat_ft(rho: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Compute the transform of a unit-flux circular Moffat profile
    ``(beta - 1) / (pi alpha^2) (1 + r^2 / alpha^2)^-beta``.

    Its Hankel transform is ``2 / Gamma(nu) (z / 2)^nu K_nu(z)`` with
    ``nu = beta - 1`` and ``z = 2 pi alpha rho`` (``K`` the modified Bessel
    function of the second kind), which tends to 1 as ``z -> 0``.

    Parameters
    ----------
    rho : `numpy.ndarray`
        Radial frequency (cycles/pixel).
    alpha : `float`
        Core width in pixels.
    beta : `float`
        Power-law index (> 1).

    Returns
    -------
    transform : `numpy.ndarray`
        The transform.

    Raises
    ------
    ValueError
        If ``beta <= 1`` (infinite flux).
    """
    if not beta > 1.0:
        raise ValueError(f"Moffat beta must exceed 1, got {beta}.")
    z = 2.0 * np.pi * alpha * np.asarray(rho, dtype=np.float64)
    z_max = float(np.max(z)) if z.size else 0.0
    if z.size <= _MOFFAT_TABLE_SIZE or z_max == 0.0:
        return _moffat_hankel(z, beta - 1.0)
    # Evaluate the Bessel function on a 1-d table, denser near z = 0 where
    # the transform has a cusp for beta < 2, and interpolate (error < 1e-5
    # of the peak), much faster than evaluating it on a whole patch.
    table_z = z_max * np.linspace(0.0, 1.0, _MOFFAT_TABLE_SIZE) ** 2
    return np.interp(z, table_z, _moffat_hankel(table_z, beta - 1.0))


_MOFFAT_TABLE_SIZE = 1024


def _moffat_hankel(z: np.ndarray, nu: float) -> np.ndarray:
    """``2 / Gamma(nu) (z / 2)^nu K_nu(z)``, 1 at z = 0."""
    safe = np.where(z > 0, z, 1.0)
    # kve(nu, z) = kv(nu, z) exp(z): no underflow in the Bessel function itself.
    value = 2.0 / special.gamma(nu) * (safe / 2.0) ** nu * special.kve(nu, safe) * np.exp(-safe)
    return np.where(z > 0, value, 1.0)


def exponential_disk_ft(rho: np.ndarray, scale_length: float) -> np.ndarray:
    """Compute the transform of a unit-flux exponential disk ``exp(-r / h) / (2 pi h^2)``:
    ``(1 + (2 pi h rho)^2)^(-3/2)``.

    Parameters
    ----------
    rho : `numpy.ndarray`
        Radial frequency (cycles/pixel).
    scale_length : `float`
        Scale length ``h`` in pixels.

    Returns
    -------
    transform : `numpy.ndarray`
        The transform.
    """
    return (1.0 + (2.0 * np.pi * scale_length * rho) ** 2) ** -1.5


_OBSCURATIONS = np.linspace(0.0, 0.7, 15)


@functools.lru_cache(maxsize=1)
def _annular_otf_table() -> tuple[np.ndarray, np.ndarray]:
    """Radial OTFs of annular pupils: ``(rho, table)`` with ``table[i]`` the
    OTF at normalised frequencies ``rho`` (1 = cut-off ``D / lambda``) for
    obscuration ratio ``_OBSCURATIONS[i]``.

    Each OTF is the pupil's autocorrelation, computed with FFTs on a
    512 x 512 grid (pupil radius 100 cells) and normalised to 1 at 0.
    """
    n, radius = 512, 100.0
    yy, xx = np.mgrid[-n // 2 : n // 2, -n // 2 : n // 2]
    r = np.hypot(xx, yy)
    lags = np.arange(0, int(2 * radius) + 2)
    table = np.empty((len(_OBSCURATIONS), len(lags)))
    for i, eps in enumerate(_OBSCURATIONS):
        pupil = ((r <= radius) & (r >= eps * radius)).astype(np.float64)
        spectrum = np.fft.fft2(np.fft.ifftshift(pupil))
        autocorrelation = np.fft.ifft2(np.abs(spectrum) ** 2).real
        profile = autocorrelation[0, lags]
        table[i] = np.clip(profile / profile[0], 0.0, None)
    return lags / (2.0 * radius), table


def annular_pupil_otf(rho_normalised: np.ndarray, obscuration: float) -> np.ndarray:
    """Diffraction OTF of a circular aperture with a central obstruction.

    Parameters
    ----------
    rho_normalised : `numpy.ndarray`
        Frequency radius in units of the cut-off frequency ``D / lambda``.
    obscuration : `float`
        Ratio of the obstruction's diameter to the aperture's, in
        ``[0, 0.7]``.

    Returns
    -------
    otf : `numpy.ndarray`
        Real, non-negative, 1 at 0 and 0 beyond the cut-off; linear
        interpolation between tabulated radii and obscurations.
    """
    if not 0.0 <= obscuration <= _OBSCURATIONS[-1]:
        raise ValueError(f"Obscuration must be in [0, {_OBSCURATIONS[-1]}], got {obscuration}.")
    rho, table = _annular_otf_table()
    position = obscuration / (_OBSCURATIONS[1] - _OBSCURATIONS[0])
    low = min(int(position), len(_OBSCURATIONS) - 2)
    weight = position - low
    profile = (1.0 - weight) * table[low] + weight * table[low + 1]
    return np.interp(rho_normalised, rho, profile, right=0.0)
