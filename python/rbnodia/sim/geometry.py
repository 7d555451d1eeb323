"""Pixel grids and world coordinate systems of detectors and templates.

Every detector of a visit shares one gnomonic (TAN) projection whose tangent
point is the visit's pointing; a detector's pixel grid is offset from the
focal-plane centre according to a simple rectangular focal-plane layout.
Templates live on their own north-up co-add grid ("patch") with the native
pixel scale, centred on the detector's nominal footprint, so the science and
template grids differ by a shift and a rotation and the template must be
warped.
"""

from __future__ import annotations

__all__ = [
    "AstrometricError",
    "detector_offset",
    "footprint_corners",
    "make_tan_wcs",
    "pixel_mapping",
]

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS


def make_tan_wcs(
    center: tuple[float, float],
    crpix: tuple[float, float],
    pixel_scale: float,
    rotation_deg: float = 0.0,
) -> WCS:
    """Make a FITS TAN WCS with 0-based pixel coordinates, as the arrays use.

    Parameters
    ----------
    center : `tuple` [`float`, `float`]
        Tangent point (ra, dec) in degrees.
    crpix : `tuple` [`float`, `float`]
        0-based ``(x, y)`` pixel position of the tangent point (may lie off
        the array, as for all but the central detector of a camera).
    pixel_scale : `float`
        Arcsec per pixel.
    rotation_deg : `float`
        Angle from north to the +y axis, counter-clockwise (east of north).

    Returns
    -------
    wcs : `astropy.wcs.WCS`
        The WCS, east to the left.
    """
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(center[0]), float(center[1])]
    wcs.wcs.crpix = [float(crpix[0]) + 1.0, float(crpix[1]) + 1.0]  # FITS is 1-based
    scale = pixel_scale / 3600.0
    theta = np.deg2rad(rotation_deg)
    c, s = np.cos(theta), np.sin(theta)
    # East to the left (ra decreasing with x) for a parity-normal sky image.
    wcs.wcs.cd = np.array([[-scale * c, scale * s], [scale * s, scale * c]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs


def detector_offset(detector: int, shape: tuple[int, int], columns: int, gap: int) -> tuple[float, float]:
    """Place a detector's centre on a simple focal plane.

    The focal plane is a rectangular grid of four rows of ``columns``
    detectors, centred on the boresight; detector numbers wrap around it.

    Parameters
    ----------
    detector : `int`
        Detector number.
    shape : `tuple` [`int`, `int`]
        Detector ``(height, width)`` in pixels.
    columns : `int`
        Detectors per row.
    gap : `int`
        Pixels between neighbouring detectors.

    Returns
    -------
    x, y : `float`
        Position of the detector's centre relative to the boresight, pixels.
    """
    height, width = shape
    rows = 4
    col = detector % columns
    row = (detector // columns) % rows
    x = (col - (columns - 1) / 2) * (width + gap)
    y = (row - (rows - 1) / 2) * (height + gap)
    return x, y


def footprint_corners(wcs: WCS, shape: tuple[int, int]) -> list[tuple[float, float]]:
    """Compute the sky corners of a pixel grid.

    Parameters
    ----------
    wcs : `astropy.wcs.WCS`
        The grid's WCS (0-based pixels).
    shape : `tuple` [`int`, `int`]
        Grid ``(height, width)``.

    Returns
    -------
    corners : `list` [`tuple` [`float`, `float`]]
        ``(ra, dec)`` in degrees of the outer pixel corners,
        counter-clockwise in pixel coordinates.
    """
    height, width = shape
    x = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
    y = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    ra, dec = wcs.pixel_to_world_values(x, y)
    return [(float(r), float(d)) for r, d in zip(ra, dec)]


@dataclass(frozen=True)
class AstrometricError:
    """A smooth displacement field (pixels) in a grid's coordinates: the
    difference between where the WCS says a sky position falls and where its
    light actually lands.

    ``dx = a0 + a1 u + a2 v + a3 u v + a4 u^2 + a5 v^2`` (same for ``dy`` with
    ``b``), with ``u, v`` the pixel coordinates scaled to [-1, 1].

    Attributes
    ----------
    a, b : `numpy.ndarray`
        The six coefficients of ``dx`` and of ``dy``, pixels.
    shape : `tuple` [`int`, `int`]
        The grid's ``(height, width)``.
    """

    a: np.ndarray
    b: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def draw(cls, rng: np.random.Generator, shape, shift_px: float, gradient_px: float) -> AstrometricError:
        """Draw a random field.

        Parameters
        ----------
        rng : `numpy.random.Generator`
            Random numbers.
        shape : `tuple` [`int`, `int`]
            The grid's ``(height, width)``.
        shift_px : `float`
            The rms of the constant term of each coordinate, pixels.
        gradient_px : `float`
            The rms of the five spatially varying coefficients together, pixels.

        Returns
        -------
        error : `AstrometricError`
            The field.
        """
        a = np.concatenate([[rng.normal(0, shift_px)], rng.normal(0, gradient_px / np.sqrt(5), 5)])
        b = np.concatenate([[rng.normal(0, shift_px)], rng.normal(0, gradient_px / np.sqrt(5), 5)])
        return cls(a=a, b=b, shape=tuple(shape))

    @classmethod
    def none(cls, shape) -> AstrometricError:
        """Make a field without displacement.

        Parameters
        ----------
        shape : `tuple` [`int`, `int`]
            The grid's ``(height, width)``.

        Returns
        -------
        error : `AstrometricError`
            All coefficients zero.
        """
        return cls(a=np.zeros(6), b=np.zeros(6), shape=tuple(shape))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate the displacement ``(dx, dy)`` at pixels ``(x, y)``."""
        height, width = self.shape
        u = 2.0 * np.asarray(x) / max(width - 1, 1) - 1.0
        v = 2.0 * np.asarray(y) / max(height - 1, 1) - 1.0
        terms = np.stack([np.ones_like(u), u, v, u * v, u * u, v * v])
        return np.tensordot(self.a, terms, 1), np.tensordot(self.b, terms, 1)


def pixel_mapping(
    dest_wcs: WCS,
    dest_shape: tuple[int, int],
    src_wcs: WCS,
    *,
    step: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Map every destination pixel centre to source-grid pixel coordinates.

    The exact mapping (destination pixel -> sky -> source pixel) is evaluated
    on a coarse grid every ``step`` pixels and interpolated with a bicubic
    spline, as survey warpers do (``interpLength``).

    Parameters
    ----------
    dest_wcs : `astropy.wcs.WCS`
        WCS of the destination grid.
    dest_shape : `tuple` [`int`, `int`]
        Destination ``(height, width)``.
    src_wcs : `astropy.wcs.WCS`
        WCS of the source grid.
    step : `int`, optional
        Spacing of the exactly mapped pixels.

    Returns
    -------
    xs, ys : `numpy.ndarray`
        ``(H, W)`` float64 source coordinates.
    """
    from scipy.interpolate import RectBivariateSpline

    height, width = dest_shape
    gx = np.unique(np.concatenate([np.arange(0, width, step), [width - 1]])).astype(float)
    gy = np.unique(np.concatenate([np.arange(0, height, step), [height - 1]])).astype(float)
    mx, my = np.meshgrid(gx, gy)
    ra, dec = dest_wcs.pixel_to_world_values(mx, my)
    sx, sy = src_wcs.world_to_pixel_values(ra, dec)
    kx = min(3, len(gx) - 1)
    ky = min(3, len(gy) - 1)
    xs = RectBivariateSpline(gy, gx, sx, kx=ky, ky=kx)(np.arange(height), np.arange(width))
    ys = RectBivariateSpline(gy, gx, sy, kx=ky, ky=kx)(np.arange(height), np.arange(width))
    return xs, ys
