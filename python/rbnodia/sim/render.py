"""Noise-free rendering of stars, galaxies and transients with GalSim.

Profiles are defined in the local tangent-plane frame ``(u, v)`` (arcsec),
convolved with the exposure's PSF at each object's position, and drawn
(pixel-integrated) onto the detector's pixel grid through the grid's local
Jacobian, so rotations and parity flips between grids are handled exactly.
Images are in nJy per pixel.
"""

from __future__ import annotations

__all__ = ["PsfModel", "Renderer", "local_jacobian"]

import logging
import time
from dataclasses import dataclass

import galsim
import numpy as np
from astropy.wcs import WCS

_log = logging.getLogger(__name__)

FAST = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3)
"""Slightly relaxed accuracy for the many faint objects."""
ACCURATE = galsim.GSParams(folding_threshold=2e-3, maxk_threshold=5e-4)
"""Accurate wings for bright stars."""


@dataclass(frozen=True)
class PsfModel:
    """The point-spread function of one exposure (or co-add).

    Attributes
    ----------
    fwhm : `float`
        Delivered FWHM (arcsec) at the grid centre.
    model : `str`
        ``moffat`` (DECam-like) or ``kolmogorov`` (atmosphere, convolved with
        a Gaussian optics term of FWHM ``optics_fwhm``).
    beta : `float`
        Moffat index.
    optics_fwhm : `float`
        FWHM (arcsec) of the Gaussian optics term of a Kolmogorov PSF.
    g1, g2 : `float`
        PSF shear.
    gradient : `float`
        Fractional FWHM change from the centre to the grid edge along
        ``gradient_angle``.
    gradient_angle : `float`
        Direction of the FWHM gradient, radians from the +x axis.
    curvature : `float`
        Quadratic FWHM variation (see the attribute).
    shape : `tuple` [`int`, `int`]
        Grid ``(height, width)`` that positions refer to.
    """

    fwhm: float
    model: str
    beta: float
    optics_fwhm: float
    g1: float
    g2: float
    gradient: float
    gradient_angle: float
    shape: tuple[int, int]
    curvature: float = 0.0
    """Fractional FWHM change, quadratic in the distance from the grid
    centre (focal-plane curvature; an order-1 kernel cannot follow it)."""
    shape_curvature: tuple[float, float] = (0.0, 0.0)
    """Change of ``(g1, g2)``, quadratic in the distance from the grid
    centre (focus and astigmatism patterns)."""

    def _grid_uv(self, x, y):
        height, width = self.shape
        u = 2.0 * np.asarray(x, dtype=float) / max(width - 1, 1) - 1.0
        v = 2.0 * np.asarray(y, dtype=float) / max(height - 1, 1) - 1.0
        return u, v

    def fwhm_at(self, x, y) -> np.ndarray:
        """Evaluate the FWHM at pixel positions.

        Parameters
        ----------
        x, y : `float` or `numpy.ndarray`
            Pixel positions on the grid.

        Returns
        -------
        fwhm : `numpy.ndarray`
            FWHM in arcsec.
        """
        u, v = self._grid_uv(x, y)
        t = u * np.cos(self.gradient_angle) + v * np.sin(self.gradient_angle)
        return self.fwhm * (
            1.0 + self.gradient * t / np.sqrt(2.0) + self.curvature * (u * u + v * v - 2.0 / 3.0)
        )

    def shear_at(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate the PSF shear at pixel positions.

        Parameters
        ----------
        x, y : `float` or `numpy.ndarray`
            Pixel positions on the grid.

        Returns
        -------
        g1, g2 : `numpy.ndarray`
            Shear components.
        """
        u, v = self._grid_uv(x, y)
        r2 = u * u + v * v - 2.0 / 3.0
        return self.g1 + self.shape_curvature[0] * r2, self.g2 + self.shape_curvature[1] * r2

    def galsim_psf(self, x: float, y: float, gsparams: galsim.GSParams = FAST) -> galsim.GSObject:
        """Build the PSF at a pixel as a GalSim profile in arcsec.

        Parameters
        ----------
        x, y : `float`
            Pixel position on the grid.
        gsparams : `galsim.GSParams`, optional
            GalSim accuracy settings (`FAST` or `ACCURATE`).

        Returns
        -------
        psf : `galsim.GSObject`
            Unit-flux, sheared profile.

        Raises
        ------
        ValueError
            Raised if ``model`` is unknown.
        """
        fwhm = float(self.fwhm_at(x, y))
        if self.model == "moffat":
            psf = galsim.Moffat(beta=self.beta, fwhm=fwhm, gsparams=gsparams)
        elif self.model == "kolmogorov":
            atm = np.sqrt(max(fwhm**2 - self.optics_fwhm**2, (0.5 * fwhm) ** 2))
            psf = galsim.Convolve(
                galsim.Kolmogorov(fwhm=atm, gsparams=gsparams),
                galsim.Gaussian(fwhm=self.optics_fwhm, gsparams=gsparams),
                gsparams=gsparams,
            )
        else:
            raise ValueError(f"Unknown PSF model {self.model!r}.")
        g1, g2 = self.shear_at(x, y)
        return psf.shear(g1=float(g1), g2=float(g2))

    def image(self, x: float, y: float, jacobian: galsim.BaseWCS, size: int, offset=(0.0, 0.0)) -> np.ndarray:
        """Draw a pixelised, unit-sum PSF image.

        Parameters
        ----------
        x, y : `float`
            Pixel position on the grid (where the PSF is evaluated).
        jacobian : `galsim.BaseWCS`
            Pixel-to-arcsec mapping of the image.
        size : `int`
            Image width and height (odd).
        offset : `tuple` [`float`, `float`], optional
            Centre of the PSF, pixels from the central pixel.

        Returns
        -------
        image : `numpy.ndarray`
            ``(size, size)`` image of unit sum.
        """
        img = galsim.ImageD(size, size, wcs=jacobian)
        self.galsim_psf(x, y).drawImage(img, offset=offset)
        arr = img.array
        return arr / arr.sum()


def local_jacobian(wcs: WCS, x: float, y: float, frame_wcs: WCS) -> galsim.JacobianWCS:
    """Compute the local Jacobian of pixel -> tangent-plane arcsec.

    Parameters
    ----------
    wcs : `astropy.wcs.WCS`
        WCS of the pixel grid.
    x, y : `float`
        Pixel where the Jacobian is evaluated (finite differences of one
        pixel).
    frame_wcs : `astropy.wcs.WCS`
        Frame whose ``crval`` is the tangent point of the gnomonic
        coordinates ``(u east, v north)``.

    Returns
    -------
    jacobian : `galsim.JacobianWCS`
        ``d(u, v) / d(x, y)`` in arcsec per pixel.
    """
    eps = 1.0
    px = np.array([x, x + eps, x])
    py = np.array([y, y, y + eps])
    ra, dec = wcs.pixel_to_world_values(px, py)
    u, v = sky_to_plane(ra, dec, frame_wcs)
    return galsim.JacobianWCS(
        dudx=(u[1] - u[0]) / eps, dudy=(u[2] - u[0]) / eps, dvdx=(v[1] - v[0]) / eps, dvdy=(v[2] - v[0]) / eps
    )


def sky_to_plane(ra, dec, frame_wcs: WCS):
    """Project sky positions onto a tangent plane.

    Parameters
    ----------
    ra, dec : `float` or array-like
        Sky positions, degrees.
    frame_wcs : `astropy.wcs.WCS`
        Frame whose ``crval`` is the tangent point.

    Returns
    -------
    u, v : `numpy.ndarray`
        Gnomonic coordinates (east, north), arcsec.
    """
    ra0, dec0 = np.deg2rad(frame_wcs.wcs.crval)
    ra = np.deg2rad(np.asarray(ra, dtype=float))
    dec = np.deg2rad(np.asarray(dec, dtype=float))
    cosc = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    u = np.cos(dec) * np.sin(ra - ra0) / cosc
    v = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cosc
    return np.rad2deg(u) * 3600.0, np.rad2deg(v) * 3600.0


def plane_to_sky(u, v, frame_wcs: WCS):
    """Invert `sky_to_plane`.

    Parameters
    ----------
    u, v : `float` or array-like
        Gnomonic coordinates (east, north), arcsec.
    frame_wcs : `astropy.wcs.WCS`
        Frame whose ``crval`` is the tangent point.

    Returns
    -------
    ra, dec : `numpy.ndarray`
        Sky positions, degrees (``ra`` in [0, 360)).
    """
    ra0, dec0 = np.deg2rad(frame_wcs.wcs.crval)
    x = np.deg2rad(np.asarray(u, dtype=float) / 3600.0)
    y = np.deg2rad(np.asarray(v, dtype=float) / 3600.0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(dec0) + np.where(rho > 0, y * np.sin(c) * np.cos(dec0) / rho, 0.0))
    ra = ra0 + np.arctan2(x * np.sin(c), rho * np.cos(dec0) * np.cos(c) - y * np.sin(dec0) * np.sin(c))
    return np.rad2deg(ra) % 360.0, np.rad2deg(dec)


def _sersic(n: float, hlr: float, flux: float) -> galsim.GSObject:
    """Build a Sersic profile, with GalSim's dedicated classes for the
    special cases (n = 0.5 is a Gaussian, n = 1 an exponential).
    """
    if n == 0.5:
        return galsim.Gaussian(half_light_radius=hlr, flux=flux, gsparams=FAST)
    if n == 1.0:
        return galsim.Exponential(half_light_radius=hlr, flux=flux, gsparams=FAST)
    return galsim.Sersic(n=n, half_light_radius=hlr, flux=flux, gsparams=FAST)


def _drawable(what: str, x, y, flux, *extra):
    """Iterate over the sources with a finite, positive flux, logging the
    progress every 30 seconds.

    Parameters
    ----------
    what : `str`
        The sources' name in the log message.
    x, y : `numpy.ndarray`
        Pixel positions.
    flux : `numpy.ndarray`
        Fluxes, nJy.
    *extra : `numpy.ndarray`
        More per-source values.

    Yields
    ------
    row : `tuple`
        ``(x, y, flux, *extra)`` of one source.
    """
    last = time.monotonic()
    for n, row in enumerate(zip(x, y, flux, *extra)):
        if time.monotonic() - last > 30:
            _log.info("Rendered %d of %d %s.", n, len(x), what)
            last = time.monotonic()
        if np.isfinite(row[2]) and row[2] > 0:
            yield row


class Renderer:
    """Draws profiles onto one pixel grid.

    Parameters
    ----------
    shape : `tuple` [`int`, `int`]
        ``(height, width)``.
    jacobian : `galsim.JacobianWCS`
        Pixel -> tangent-plane arcsec.
    psf : `PsfModel`
        PSF of the exposure on this grid.
    pixel_scale : `float`
        Arcsec per pixel (for stamp sizes).
    noise_per_pixel : `float`
        Approximate sky noise (nJy) per pixel, to size the stamps of bright
        objects so that their wings are drawn down to a tenth of it.
    brighter_fatter : `float`
        Fractional PSF broadening of a point source whose peak pixel reaches
        ``full_well``; scales linearly with the peak.
    full_well : `float`
        Saturation level, nJy per pixel.
    max_half : `int`
        Largest half-size, pixels, of an object's drawing stamp.
    """

    def __init__(
        self,
        shape,
        jacobian,
        psf: PsfModel,
        pixel_scale: float,
        noise_per_pixel: float,
        *,
        brighter_fatter: float = 0.0,
        full_well: float = np.inf,
        max_half: int = 400,
    ):
        self.max_half = int(max_half)
        self.brighter_fatter = brighter_fatter
        self.full_well = full_well
        self.shape = tuple(shape)
        self.array = np.zeros(self.shape, dtype=np.float32)
        self.image = galsim.Image(self.array, xmin=0, ymin=0, wcs=jacobian)
        self.psf = psf
        self.pixel_scale = pixel_scale
        self.noise = max(noise_per_pixel, 1e-6)

    def _half_size(self, flux: float, extent_arcsec: float, fwhm: float) -> int:
        fwhm_px = fwhm / self.pixel_scale
        # Moffat/Kolmogorov wings fall roughly as r^-4: draw out to where the
        # surface brightness is ~0.1 of the noise.
        peak = flux / (1.13 * fwhm_px**2)
        wing = fwhm_px * max(1.0, (peak / (0.1 * self.noise)) ** 0.25)
        half = max(3.0 * fwhm_px, extent_arcsec / self.pixel_scale, wing)
        return int(min(np.ceil(half), self.max_half))

    def _draw(self, profile: galsim.GSObject, x: float, y: float, half: int) -> None:
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        bounds = galsim.BoundsI(ix - half, ix + half, iy - half, iy + half) & self.image.bounds
        if not bounds.isDefined():
            return
        profile.drawImage(self.image[bounds], center=galsim.PositionD(x, y), add_to_image=True)

    def add_points(self, x, y, flux, fast=None) -> None:
        """Draw point sources (stars, transients).

        Parameters
        ----------
        x, y : `numpy.ndarray`
            Pixel positions.
        flux : `numpy.ndarray`
            Fluxes, nJy (non-finite or non-positive ones are skipped).
        fast : `numpy.ndarray`, optional
            Boolean per source: faint sources to draw as Gaussians of the
            PSF's FWHM (see `add_gaussian_galaxies`).
        """
        x, y, flux = (np.atleast_1d(a) for a in (x, y, flux))
        if fast is not None:
            fast = np.atleast_1d(fast)
            self.add_gaussians(x[fast], y[fast], flux[fast], np.zeros(int(fast.sum())))
            x, y, flux = x[~fast], y[~fast], flux[~fast]
        for xi, yi, fi in _drawable("point sources", x, y, flux):
            fwhm = float(self.psf.fwhm_at(xi, yi))
            half = self._half_size(fi, 0.0, fwhm)
            gsparams = ACCURATE if fi > 1000 * self.noise else FAST
            psf = self.psf.galsim_psf(xi, yi, gsparams)
            if self.brighter_fatter > 0:
                peak = fi / (1.13 * (fwhm / self.pixel_scale) ** 2)
                broaden = 1.0 + self.brighter_fatter * min(peak / self.full_well, 2.0)
                if broaden > 1.0005:
                    psf = psf.dilate(broaden)
            self._draw(psf.withFlux(float(fi)), xi, yi, half)

    def add_galaxies(self, x, y, flux, galaxies, index, fast=None) -> None:
        """Draw galaxies of a catalogue: Sersic disk plus de Vaucouleurs bulge,
        sheared and convolved with the PSF.

        Parameters
        ----------
        x, y : `numpy.ndarray`
            Pixel positions.
        flux : `numpy.ndarray`
            Fluxes, nJy (non-finite or non-positive ones are skipped).
        galaxies : `~rbnodia.sim.scene.GalaxyCatalog`
            Shapes of the galaxies.
        index : `numpy.ndarray`
            Row of each galaxy in ``galaxies``.
        fast : `numpy.ndarray`, optional
            Boolean per galaxy: faint galaxies to draw with
            `add_gaussian_galaxies` instead of GalSim.
        """
        x, y, flux, index = (np.atleast_1d(a) for a in (x, y, flux, index))
        if fast is not None:
            fast = np.atleast_1d(fast)
            self.add_gaussian_galaxies(x[fast], y[fast], flux[fast], galaxies, index[fast])
            x, y, flux, index = x[~fast], y[~fast], flux[~fast], index[~fast]
        for xi, yi, fi, k in _drawable("galaxies", x, y, flux, index):
            bt = float(galaxies.bulge_fraction[k])
            parts = []
            if bt < 1.0:
                parts.append(_sersic(float(galaxies.disk_n[k]), float(galaxies.disk_hlr[k]), 1.0 - bt))
            if bt > 0.0:
                hlr = float(galaxies.bulge_hlr[k])
                # Truncated at 8 r_e (0.3 % of the light), for smaller FFTs.
                parts.append(
                    galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8 * hlr, flux=bt, gsparams=FAST)
                )
            gal = (parts[0] if len(parts) == 1 else galsim.Add(parts)).shear(
                g1=float(galaxies.g1[k]), g2=float(galaxies.g2[k])
            )
            fwhm = float(self.psf.fwhm_at(xi, yi))
            extent = 4.0 * float(galaxies.disk_hlr[k]) * (1.0 + np.hypot(galaxies.g1[k], galaxies.g2[k]))
            half = self._half_size(fi, extent, fwhm)
            profile = galsim.Convolve(gal, self.psf.galsim_psf(xi, yi), gsparams=FAST).withFlux(float(fi))
            self._draw(profile, xi, yi, half)

    def add_gaussian_galaxies(self, x, y, flux, galaxies, index) -> None:
        """Draw faint galaxies as elliptical Gaussians convolved with a
        Gaussian of the PSF's FWHM.

        The Gaussians have the half-light radius and shear of the galaxies'
        Sersic models: vectorised, without a GalSim FFT per galaxy, and
        within the noise for galaxies under the detection limit.  Both the
        science and the template draw a given galaxy the same way.

        Parameters
        ----------
        x, y : `numpy.ndarray`
            Pixel positions.
        flux : `numpy.ndarray`
            Fluxes, nJy.
        galaxies : `~rbnodia.sim.scene.GalaxyCatalog`
            Shapes of the galaxies.
        index : `numpy.ndarray`
            Row of each galaxy in ``galaxies``.
        """
        if len(x) == 0:
            return
        index = np.asarray(index)
        bt = galaxies.bulge_fraction[index]
        hlr = (1.0 - bt) * galaxies.disk_hlr[index] + bt * galaxies.bulge_hlr[index]
        self.add_gaussians(x, y, flux, hlr / 1.1774, galaxies.g1[index], galaxies.g2[index])

    def add_gaussians(self, x, y, flux, sigma, g1=None, g2=None) -> None:
        """Draw elliptical Gaussians convolved with a Gaussian of the local PSF
        FWHM, evaluated at pixel centres.

        Parameters
        ----------
        x, y : `numpy.ndarray`
            Pixel positions.
        flux : `numpy.ndarray`
            Fluxes, nJy.
        sigma : `numpy.ndarray`
            Intrinsic Gaussian sigma, arcsec (0 for point sources).
        g1, g2 : `numpy.ndarray`, optional
            Shear components (default 0).
        """
        if len(x) == 0:
            return
        jac = self.image.wcs.jacobian().getMatrix()  # pixel -> arcsec
        jinv = np.linalg.inv(jac)
        height, width = self.shape
        g1 = np.zeros(len(x)) if g1 is None else g1
        g2 = np.zeros(len(x)) if g2 is None else g2
        sigma_psf = self.psf.fwhm_at(x, y) / 2.3548
        # Pixel-frame covariances of all objects at once.
        norm = 1.0 / np.sqrt(np.maximum(1.0 - g1**2 - g2**2, 1e-6))
        shear = norm[:, None, None] * np.stack([np.stack([1 + g1, g2], -1), np.stack([g2, 1 - g1], -1)], -2)
        cov = np.asarray(sigma)[:, None, None] ** 2 * shear @ shear.transpose(0, 2, 1)
        cov = cov + (sigma_psf**2)[:, None, None] * np.eye(2)
        cov_pix = jinv @ cov @ jinv.T
        det = cov_pix[:, 0, 0] * cov_pix[:, 1, 1] - cov_pix[:, 0, 1] ** 2
        a, b, c = cov_pix[:, 1, 1] / det, -cov_pix[:, 0, 1] / det, cov_pix[:, 0, 0] / det
        amp = np.asarray(flux) / (2 * np.pi * np.sqrt(det))
        halves = np.ceil(3.5 * np.sqrt(np.maximum(cov_pix[:, 0, 0], cov_pix[:, 1, 1]))).astype(int)
        ix = np.floor(np.asarray(x) + 0.5).astype(int)
        iy = np.floor(np.asarray(y) + 0.5).astype(int)
        flat_image = self.array.reshape(-1)
        # Objects with the same stamp size are drawn together; the stamps are
        # scattered into the image with bincount.
        for half in np.unique(halves):
            sel = np.flatnonzero(halves == half)
            off = np.arange(-half, half + 1)
            for chunk in np.array_split(sel, max(1, len(sel) * (2 * half + 1) ** 2 // 200_000 + 1)):
                if len(chunk) == 0:
                    continue
                px = ix[chunk, None, None] + off[None, None, :]
                py = iy[chunk, None, None] + off[None, :, None]
                dx = px - np.asarray(x)[chunk, None, None]
                dy = py - np.asarray(y)[chunk, None, None]
                q = (
                    a[chunk, None, None] * dx**2
                    + 2 * b[chunk, None, None] * dx * dy
                    + c[chunk, None, None] * dy**2
                )
                val = amp[chunk, None, None] * np.exp(-0.5 * q)
                ok = (px >= 0) & (px < width) & (py >= 0) & (py < height)
                ok = np.broadcast_to(ok, val.shape)
                idx = (np.broadcast_to(py, val.shape) * width + np.broadcast_to(px, val.shape))[ok]
                np.add.at(flat_image, idx, val[ok].astype(np.float32))
