"""The detection step of a simulated detector-visit: find sources on the
difference image (`rbnodia.sim.detect`), measure PSF fluxes and give them
repository-unique ids.
"""

from __future__ import annotations

__all__ = ["Measurement", "PsfStamps", "detect_and_measure", "detection_id", "noise_factor"]

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from .detect import detect_sources, matched_filter_significance, psf_photometry
from .render import PsfModel


def detection_id(visit: int, detector: int, index: np.ndarray) -> np.ndarray:
    """Make repository-unique detection ids.

    Parameters
    ----------
    visit : `int`
        Visit number.
    detector : `int`
        Detector number (below 1000).
    index : `numpy.ndarray`
        Index of each detection in its detector-visit (below 10^6).

    Returns
    -------
    ids : `numpy.ndarray`
        Int64 ``(visit * 1000 + detector) * 10^6 + index``.
    """
    return (np.int64(visit) * 1000 + np.int64(detector)) * 1_000_000 + np.asarray(index, dtype=np.int64)


class PsfStamps:
    """Unit-sum PSF images on a grid of sub-pixel offsets and detector cells
    (for fast PSF photometry of many detections).

    Calling the object with ``(x, y, size, offset)`` returns the cached PSF
    image of the detector cell of ``(x, y)`` at the sub-pixel offset nearest
    ``offset``, as `~rbnodia.sim.detect.psf_photometry` expects.

    Parameters
    ----------
    psf : `~rbnodia.sim.render.PsfModel`
        The spatially varying PSF.
    jacobian : `galsim.JacobianWCS`
        Local pixel-to-arcsec mapping.
    n_sub : `int`, optional
        Sub-pixel offsets per axis.
    n_cells : `int`, optional
        Detector cells per axis (the PSF is evaluated at their centres).
    """

    def __init__(self, psf: PsfModel, jacobian, n_sub: int = 5, n_cells: int = 3):
        self.psf = psf
        self.jacobian = jacobian
        self.n_sub = n_sub
        self.n_cells = n_cells
        self.cache: dict[tuple, np.ndarray] = {}

    def __call__(self, x, y, size, offset):
        """Return the cached PSF image nearest ``(x, y)`` and ``offset``."""
        height, width = self.psf.shape
        cx = min(int(x * self.n_cells / width), self.n_cells - 1)
        cy = min(int(y * self.n_cells / height), self.n_cells - 1)
        qx = int(np.clip(np.round((offset[0] + 0.5) * (self.n_sub - 1)), 0, self.n_sub - 1))
        qy = int(np.clip(np.round((offset[1] + 0.5) * (self.n_sub - 1)), 0, self.n_sub - 1))
        key = (cx, cy, qx, qy, size)
        if key not in self.cache:
            px = (cx + 0.5) * width / self.n_cells
            py = (cy + 0.5) * height / self.n_cells
            off = (qx / (self.n_sub - 1) - 0.5, qy / (self.n_sub - 1) - 0.5)
            self.cache[key] = self.psf.image(px, py, self.jacobian, size, off)
        return self.cache[key]


@dataclass
class Measurement:
    """Detections on a difference image.

    Attributes
    ----------
    detections : `astropy.table.Table`
        ``id``, ``x``, ``y``, ``ra``, ``dec``, ``flux``, ``flux_err``,
        ``snr``.
    significance : `numpy.ndarray`
        Matched-filter significance map the detection ran on.
    peak : `numpy.ndarray`
        Peak significance of each detection.
    peak_x, peak_y : `numpy.ndarray`
        Pixel of that peak (differs from the barycentre ``x, y`` for
        footprints such as the ring around a star).
    detected : `numpy.ndarray`
        Footprints of the detections (bool map).
    noise_factor : `float`
        Robust rms (1.4826 MAD) of the significance map away from the
        detections: 1 when the variance plane describes the noise of the
        matched filter, above 1 when the noise is correlated or the
        variance plane too low.
    """

    detections: Table
    significance: np.ndarray
    peak: np.ndarray
    peak_x: np.ndarray
    peak_y: np.ndarray
    detected: np.ndarray
    noise_factor: float


def detect_and_measure(
    difference,
    variance,
    no_data,
    *,
    sci,
    visit: int,
    detector: int,
    threshold: float,
    filter_factor: float = 1.0,
):
    """Detect positive sources above ``threshold`` sigma and measure them.

    Parameters
    ----------
    difference, variance : `numpy.ndarray`
        Difference image and its variance plane.
    no_data : `numpy.ndarray`
        Pixels without data.
    sci : `~rbnodia.sim.science.ScienceFrame`
        The difference image's PSF (matched filter and PSF fluxes) and WCS.
    visit, detector : `int`
        For the ids.
    threshold : `float`
        Detection threshold in sigma.
    filter_factor : `float`, optional
        FWHM of the Gaussian detection filter over the difference PSF's
        (`~rbnodia.sim.presets.Preset.detection_filter_factor`); the
        fluxes are PSF fluxes either way.

    Returns
    -------
    measurement : `Measurement`
        The detections, their peaks and footprints, and the noise factor.
    """
    fwhm_px = sci.diff_fwhm_px
    filter_fwhm = fwhm_px * float(filter_factor)
    significance = matched_filter_significance(difference, variance, no_data, filter_fwhm)
    objects, segmentation = detect_sources(
        difference, variance, no_data, filter_fwhm, threshold=float(threshold), significance=significance
    )
    x = np.asarray(objects["x"], dtype=np.float64)
    y = np.asarray(objects["y"], dtype=np.float64)
    flux, flux_err = psf_photometry(
        difference, variance, x, y, PsfStamps(sci.diff_psf, sci.jacobian), int(np.ceil(1.5 * fwhm_px))
    )
    ra, dec = sci.wcs.pixel_to_world_values(x, y)
    ids = detection_id(visit, detector, np.arange(len(x)))
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = flux / flux_err
    detections = Table(
        {
            "id": ids,
            "x": x,
            "y": y,
            "ra": np.asarray(ra, dtype=np.float64),
            "dec": np.asarray(dec, dtype=np.float64),
            "flux": np.asarray(flux, dtype=np.float64),
            "flux_err": np.asarray(flux_err, dtype=np.float64),
            "snr": np.asarray(snr, dtype=np.float64),
        }
    )
    for name, unit in (("flux", "nJy"), ("flux_err", "nJy"), ("ra", "deg"), ("dec", "deg")):
        detections[name].unit = unit
    detected = segmentation > 0
    return Measurement(
        detections=detections,
        significance=significance,
        peak=np.asarray(objects["peak"], dtype=np.float64),
        peak_x=np.asarray(objects["xpeak"], dtype=np.float64),
        peak_y=np.asarray(objects["ypeak"], dtype=np.float64),
        detected=detected,
        noise_factor=noise_factor(significance, detected),
    )


def noise_factor(significance: np.ndarray, detected: np.ndarray) -> float:
    """Measure the noise of a significance map away from the detections.

    Parameters
    ----------
    significance : `numpy.ndarray`
        Matched-filter significance map (NaN where there is no data).
    detected : `numpy.ndarray`
        Boolean detection footprints (grown by 3 pixels, then left out).

    Returns
    -------
    factor : `float`
        Robust rms (1.4826 MAD) of the remaining pixels: 1 for white noise
        that the variance plane describes; 1 if fewer than 100 pixels
        remain.
    """
    from scipy import ndimage

    away = np.isfinite(significance)
    if detected.any():
        away &= ~ndimage.binary_dilation(detected, iterations=3)
    values = significance[away]
    if values.size < 100:
        return 1.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))
