"""Noise-free images of point sources and galaxies through a PSF, drawn in
Fourier space (see `rbnodia.stresstest.profiles`).

Galaxies are an exponential disk plus, optionally, a compact "Moffat bulge"
(a cored power law, ``(1 + r^2 / a^2)^-beta``): both have closed-form
transforms, so a galaxy costs a few array operations.  The training
simulator's Sersic galaxies drawn with GalSim are deliberately not used.
"""

from __future__ import annotations

__all__ = ["Galaxy", "PointSource", "render", "transfer_function"]

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .profiles import FourierGrid, exponential_disk_ft, moffat_ft, stretched_frequency
from .psf import PSFModel


@dataclass(frozen=True)
class PointSource:
    """An unresolved source: position (pixels) and flux (electrons)."""

    x: float
    y: float
    flux: float


@dataclass(frozen=True)
class Galaxy:
    """A disk galaxy with an optional bulge.

    Attributes
    ----------
    x, y : `float`
        Centre in pixels.
    flux : `float`
        Total flux in electrons.
    scale_length : `float`
        Exponential disk scale length in pixels (half-light radius
        ``1.678 *`` this).
    q, theta : `float`
        Disk axis ratio and major-axis angle (radians); the bulge has axis
        ratio ``sqrt(q)`` and the same angle.
    bulge_fraction : `float`
        Share of the flux in the bulge (0 for a pure disk).
    bulge_alpha, bulge_beta : `float`
        Core radius (pixels) and index of the Moffat bulge.
    """

    x: float
    y: float
    flux: float
    scale_length: float
    q: float = 1.0
    theta: float = 0.0
    bulge_fraction: float = 0.0
    bulge_alpha: float = 1.0
    bulge_beta: float = 2.0

    def transform(self, grid: FourierGrid) -> np.ndarray:
        """Compute the unit-flux profile transform centred at the origin (cached: a scene
        renders each galaxy several times).

        Parameters
        ----------
        grid : `FourierGrid`
            The periodic patch.

        Returns
        -------
        transform : `numpy.ndarray`
            The transform.
        """
        return _galaxy_transform(
            grid,
            self.scale_length,
            self.q,
            self.theta,
            self.bulge_fraction,
            self.bulge_alpha,
            self.bulge_beta,
        )

    def moved(self, dx: float, dy: float, flux_factor: float = 1.0) -> Galaxy:
        """Return a copy shifted by ``(dx, dy)`` with its flux multiplied.

        Parameters
        ----------
        dx, dy : `float`
            Shift in pixels.
        flux_factor : `float`, optional
            Flux multiplier.

        Returns
        -------
        galaxy : `Galaxy`
            The copy.
        """
        return dataclasses.replace(self, x=self.x + dx, y=self.y + dy, flux=self.flux * flux_factor)


@functools.lru_cache(maxsize=32)
def _galaxy_transform(
    grid: FourierGrid,
    scale_length: float,
    q: float,
    theta: float,
    bulge_fraction: float,
    bulge_alpha: float,
    bulge_beta: float,
) -> np.ndarray:
    rho = stretched_frequency(grid.kx, grid.ky, q, theta)
    profile = (1.0 - bulge_fraction) * exponential_disk_ft(rho, scale_length)
    if bulge_fraction > 0:
        rho_bulge = stretched_frequency(grid.kx, grid.ky, float(np.sqrt(q)), theta)
        profile = profile + bulge_fraction * moffat_ft(rho_bulge, bulge_alpha, bulge_beta)
    profile.flags.writeable = False
    return profile


def transfer_function(grid: FourierGrid, psf: PSFModel) -> np.ndarray:
    """Compute what an image does to a source's transform: the PSF's OTF times the
    pixel response, on ``grid``.

    Parameters
    ----------
    grid : `FourierGrid`
        The periodic patch.
    psf : `PSFModel`
        The image's PSF.

    Returns
    -------
    transfer : `numpy.ndarray`
        The transfer function on the grid.
    """
    return psf.otf(grid.kx, grid.ky) * grid.pixel_response


def render(
    grid: FourierGrid,
    transfer: np.ndarray,
    points: Iterable[PointSource] = (),
    galaxies: Iterable[Galaxy] = (),
    *,
    dx: float = 0.0,
    dy: float = 0.0,
    flux_factor: float = 1.0,
) -> np.ndarray:
    """Pixelised image of sources seen through a PSF.

    Parameters
    ----------
    grid : `FourierGrid`
        The periodic patch.
    transfer : `numpy.ndarray`
        The image's `transfer_function`.
    points, galaxies : iterable
        Sources, positions in the *science* frame.
    dx, dy : `float`
        Offset added to every position (the image's own pixel grid relative
        to the science grid).
    flux_factor : `float`
        Multiplies every flux (e.g. a photometric scale).

    Returns
    -------
    image : `numpy.ndarray`
        ``(size, size)`` float64 expected electrons per pixel.
    """
    total = np.zeros((grid.size, grid.size // 2 + 1), dtype=np.complex128)
    for source in points:
        total += source.flux * grid.phase(source.x + dx, source.y + dy)
    for galaxy in galaxies:
        total += galaxy.flux * galaxy.transform(grid) * grid.phase(galaxy.x + dx, galaxy.y + dy)
    if not total.any():
        return np.zeros((grid.size, grid.size))
    total *= flux_factor * transfer
    return grid.to_image(total)
