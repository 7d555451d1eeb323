"""The noise-free difference of the static sky, around one position: what
a detection owes to the subtraction rather than to noise.

The simulator keeps the noise-free science model of the static sky (stars
at the visit's epoch with their variability, galaxies; no transients) and
the noise-free template model on its own grid.  Around a position, the
template model is warped onto the science grid (Lanczos-3, exact WCS
mapping), the fitted kernel (evaluated there) is applied to whichever
image the subtraction convolved, and the models are subtracted.  The
result, filtered like the detection image, is the significance the
detection would have without noise; its symmetry about the nearest source
says what kind of residual it is:

* antisymmetric (odd) about the source centre: a dipole
  (misregistration);
* symmetric with both signs within 3 FWHM: a ring (PSF-shape mismatch);
* symmetric, one sign: a scaled copy of the source (flux-scale or
  variability).
"""

from __future__ import annotations

__all__ = ["Residual", "ResidualProbe"]

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from .detect import matched_filter_significance
from .warp import LANCZOS_ORDER, warp_image


@dataclass(frozen=True)
class Residual:
    """The noise-free residual at a detection.

    Attributes
    ----------
    significance : `float`
        Matched-filter significance of the noise-free residual at the
        detection (same filter and variance as the detection).
    odd, even : `float`
        The rms of the antisymmetric and symmetric parts of the filtered
        residual about the source centre, within 3 FWHM of it.
    ring : `bool`
        The symmetric part has a negative zone of at least 1 sigma and a
        quarter of its positive peak within 3 FWHM of the centre.
    """

    significance: float
    odd: float
    even: float
    ring: bool


class ResidualProbe:
    """Noise-free static-sky difference around positions of one image.

    Parameters
    ----------
    static : `numpy.ndarray`
        Noise-free science model of the static sky (science grid).
    template_model : `numpy.ndarray`
        Noise-free template model (template grid).
    sci_wcs, template_wcs : `astropy.wcs.WCS`
        WCSs of the science and template grids.
    solution : `~rbnodia.sim.subtract.KernelSolution`
        The kernel the subtraction fitted.
    convolve : `str`
        ``template`` or ``science``.
    variance : `numpy.ndarray`
        Difference variance plane (for the significance).
    fwhm_px : `float`
        FWHM of the detection filter.
    """

    def __init__(self, static, template_model, sci_wcs, template_wcs, solution, convolve, variance, fwhm_px):
        self.static = static
        self.template_model = template_model
        self.sci_wcs = sci_wcs
        self.template_wcs = template_wcs
        self.solution = solution
        self.convolve = convolve
        self.variance = variance
        self.fwhm_px = float(fwhm_px)

    def _warped_model(self, x0, x1, y0, y1) -> np.ndarray:
        """Warp the template model onto science pixels ``[y0:y1, x0:x1]``."""
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(float)
        ra, dec = self.sci_wcs.pixel_to_world_values(xx, yy)
        tx, ty = self.template_wcs.world_to_pixel_values(ra, dec)
        th, tw = self.template_model.shape
        pad = LANCZOS_ORDER + 1
        bx0 = int(np.clip(np.floor(np.min(tx)) - pad, 0, tw))
        bx1 = int(np.clip(np.ceil(np.max(tx)) + pad + 1, 0, tw))
        by0 = int(np.clip(np.floor(np.min(ty)) - pad, 0, th))
        by1 = int(np.clip(np.ceil(np.max(ty)) + pad + 1, 0, th))
        if bx1 <= bx0 or by1 <= by0:
            return np.zeros(xx.shape, dtype=np.float32)
        sub = self.template_model[by0:by1, bx0:bx1]
        warped, _, missing = warp_image(sub, sub, np.zeros(sub.shape, dtype=bool), tx - bx0, ty - by0)
        return np.where(missing, np.float32(0.0), warped)

    def difference(self, x0, x1, y0, y1) -> np.ndarray:
        """Compute the noise-free static-sky difference on a box of science
        pixels.

        Parameters
        ----------
        x0, x1, y0, y1 : `int`
            The box ``[y0:y1, x0:x1]``.

        Returns
        -------
        difference : `numpy.ndarray`
            Noise-free difference on the box (kernel evaluated at its
            centre).
        """
        height, width = self.static.shape
        half = self.solution.basis.half
        ex0, ex1 = max(x0 - half, 0), min(x1 + half, width)
        ey0, ey1 = max(y0 - half, 0), min(y1 + half, height)
        kernel = self.solution.kernel_at((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0)
        inner = (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0))
        if self.convolve == "template":
            convolved = signal.fftconvolve(self._warped_model(ex0, ex1, ey0, ey1), kernel, mode="same")
            return self.static[y0:y1, x0:x1] - convolved[inner]
        convolved = signal.fftconvolve(self.static[ey0:ey1, ex0:ex1], kernel, mode="same")
        return convolved[inner] - self._warped_model(x0, x1, y0, y1)

    def measure(self, px: float, py: float, cx: float | None = None, cy: float | None = None) -> Residual:
        """Measure the noise-free residual at a detection.

        Parameters
        ----------
        px, py : `float`
            The detection's peak pixel.
        cx, cy : `float`, optional
            Centre of the source the residual is decomposed about (default:
            the detection).

        Returns
        -------
        residual : `Residual`
            Its significance and symmetry.
        """
        cx = px if cx is None else cx
        cy = py if cy is None else cy
        height, width = self.static.shape
        radius = int(np.ceil(np.hypot(px - cx, py - cy) + 3.0 * self.fwhm_px)) + 3
        ix, iy = int(np.floor(cx + 0.5)), int(np.floor(cy + 0.5))
        x0, x1 = max(ix - radius, 0), min(ix + radius + 1, width)
        y0, y1 = max(iy - radius, 0), min(iy + radius + 1, height)
        diff = self.difference(x0, x1, y0, y1)
        var = self.variance[y0:y1, x0:x1]
        bad = ~np.isfinite(var) | ~(var > 0)
        sig = np.nan_to_num(matched_filter_significance(diff, np.where(bad, 1.0, var), bad, self.fwhm_px))
        p = np.array([[py - y0], [px - x0]])
        c = np.array([[cy - y0], [cx - x0]])
        at_p = float(
            sig[
                int(np.clip(np.floor(p[0, 0] + 0.5), 0, y1 - y0 - 1)),
                int(np.clip(np.floor(p[1, 0] + 0.5), 0, x1 - x0 - 1)),
            ]
        )
        yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(float)
        reflected = ndimage.map_coordinates(
            sig, [2 * c[0, 0] - yy.ravel(), 2 * c[1, 0] - xx.ravel()], order=1, mode="nearest"
        ).reshape(sig.shape)
        even = 0.5 * (sig + reflected)
        odd = 0.5 * (sig - reflected)
        near = np.hypot(yy - c[0, 0], xx - c[1, 0]) <= 3.0 * self.fwhm_px
        if not near.any():
            return Residual(significance=at_p, odd=0.0, even=at_p, ring=False)
        top = float(even[near].max())
        low = float(even[near].min())
        return Residual(
            significance=at_p,
            odd=float(np.sqrt(np.mean(odd[near] ** 2))),
            even=float(np.sqrt(np.mean(even[near] ** 2))),
            ring=bool(low < -max(1.0, 0.25 * top) and top > 1.0),
        )
