"""Photometric bookkeeping of the simulator: AB fluxes, point-source depths
and the magnitudes that switch rendering paths.

All fluxes are in nJy (``m = 31.4 - 2.5 log10(f / nJy)``).
"""

from __future__ import annotations

__all__ = [
    "BAND_WAVELENGTH_NM",
    "band_factor",
    "fast_source_limit",
    "flux5",
    "flux_of_mag",
    "m5_of_noise",
    "nominal_template_m5",
    "saturation_mag",
]

import numpy as np

from .presets import AB_NJY_ZERO_POINT, Preset

BAND_WAVELENGTH_NM = {"u": 365.0, "g": 480.0, "r": 622.0, "i": 755.0, "z": 869.0, "y": 971.0}
"""Effective wavelength of each band (seeing scales as wavelength^-0.2)."""


def band_factor(band: str) -> float:
    """Scale seeing from the r band to another band.

    Parameters
    ----------
    band : `str`
        Band (an unknown band counts as r).

    Returns
    -------
    factor : `float`
        Seeing in ``band`` over seeing in r (Kolmogorov: ``lambda^-0.2``).
    """
    return (BAND_WAVELENGTH_NM.get(band, 622.0) / 622.0) ** -0.2


def flux_of_mag(mag) -> np.ndarray:
    """Convert AB magnitudes to fluxes.

    Parameters
    ----------
    mag : `float` or array-like
        AB magnitudes.

    Returns
    -------
    flux : `numpy.ndarray`
        Fluxes in nJy.
    """
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - AB_NJY_ZERO_POINT))


def flux5(m5: float) -> float:
    """Compute the flux of a 5-sigma point source.

    Parameters
    ----------
    m5 : `float`
        5-sigma point-source depth, AB mag.

    Returns
    -------
    flux : `float`
        Its flux in nJy.
    """
    return float(flux_of_mag(m5))


def m5_of_noise(sigma_pixel: float, psf_image: np.ndarray) -> float:
    """Compute the 5-sigma point-source depth of an image with white noise.

    Parameters
    ----------
    sigma_pixel : `float`
        Noise per pixel, nJy.
    psf_image : `numpy.ndarray`
        Unit-sum PSF image.

    Returns
    -------
    m5 : `float`
        AB magnitude whose PSF-fit noise ``sigma sqrt(n_eff)`` is a fifth of
        its flux (``n_eff = 1 / sum(psf^2)``).
    """
    n_eff = 1.0 / np.sum(psf_image**2)
    return float(AB_NJY_ZERO_POINT - 2.5 * np.log10(5.0 * sigma_pixel * np.sqrt(n_eff)))


def saturation_mag(preset: Preset, band: str = "r") -> float:
    """Estimate the magnitude of a star whose peak pixel reaches the full
    well in median seeing (Gaussian PSF).

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Full well, seeing, pixel scale and calibration.
    band : `str`, optional
        Band.

    Returns
    -------
    mag : `float`
        AB magnitude.
    """
    sigma_px = preset.seeing_median * band_factor(band) / preset.pixel_scale / 2.3548
    flux_e = preset.full_well * 2 * np.pi * sigma_px**2
    return float(AB_NJY_ZERO_POINT - 2.5 * np.log10(flux_e * preset.nJy_per_electron(band)))


def fast_source_limit(preset: Preset) -> float:
    """Give the r magnitude beyond which galaxies and stars are drawn as
    Gaussians.

    The limit is half a magnitude brighter than the nominal single-epoch
    r-band depth (such sources are below ~8 sigma; the science and template
    draw each source the same way).

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        The preset.

    Returns
    -------
    mag : `float`
        AB magnitude in r.
    """
    return nominal_template_m5(preset, "r", coadd=False) - 0.5


def nominal_template_m5(preset: Preset, band: str, coadd: bool = True) -> float:
    """Estimate the template (or single-epoch) 5-sigma depth at median
    seeing (Gaussian PSF).

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        The preset.
    band : `str`
        Band.
    coadd : `bool`, optional
        The template co-add (its seeing factor and number of epochs); with
        `False`, a single epoch.

    Returns
    -------
    m5 : `float`
        AB magnitude.
    """
    factor = preset.template_seeing_factor if coadd else 1.0
    fwhm_px = preset.seeing_median * factor * band_factor(band) / preset.pixel_scale
    n_eff = 2.266 * fwhm_px**2  # 4 pi sigma^2
    sigma = np.sqrt(preset.sky_electrons(band) + preset.read_noise**2) * preset.nJy_per_electron(band)
    if coadd:
        sigma /= np.sqrt(preset.template_n_coadd)
    return float(AB_NJY_ZERO_POINT - 2.5 * np.log10(5.0 * sigma * np.sqrt(n_eff)))
