"""PSF matching and image subtraction (Alard & Lupton 1998; Alard 2000).

The template ``T`` (on the science grid, better seeing) is matched to the
science image ``S`` with a convolution kernel expanded on a Gaussian basis,

    K(u, v; x, y) = sum_k sum_p a_kp P_p(x, y) B_k(u, v),
    B_k(u, v) = exp(-(u^2 + v^2) / 2 sigma_k^2) u^i v^j,   i + j <= d_k,

with spatial polynomials ``P_p`` and a differential background
``b(x, y) = sum_q c_q Q_q(x, y)``.  The coefficients minimise

    chi^2 = sum_pixels [S - (K * T) - b]^2 / var_S

over stamps around bright, isolated sources (kernel candidates), with
iterative rejection of stamps whose residuals are poor (variables,
blends, cosmic rays).  For small images with few sources the whole image
is used instead, with iterative rejection of outlying pixels.  The sum of
the kernel is the photometric scaling between template and science.

The difference is ``D = S - K * T - b`` and its variance
``var_S + K_0^2 * var_T`` (``K_0`` is the kernel at the image centre).

The module holds the whole algorithm (basis, candidates, fit,
subtraction); it passes 500 lines through its docstrings, not its code.
"""

from __future__ import annotations

__all__ = [
    "KernelBasis",
    "KernelSolution",
    "fit_kernel",
    "gaussian_basis",
    "select_kernel_candidates",
    "subtract_images",
]

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, signal

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelBasis:
    """Separable Gaussian-polynomial basis: ``B_k = outer(gy[k], gx[k])``."""

    gx: np.ndarray
    """``(n, 2 half + 1)`` x factors."""
    gy: np.ndarray
    """``(n, 2 half + 1)`` y factors."""
    half: int
    """Kernel half-width, pixels."""
    sigmas: tuple[float, ...]
    """Gaussian sigmas, pixels."""
    degrees: tuple[int, ...]
    """Polynomial degree of each Gaussian."""

    def __len__(self) -> int:
        return self.gx.shape[0]

    def images(self) -> np.ndarray:
        """Build the basis kernels.

        Returns
        -------
        images : `numpy.ndarray`
            ``(n, 2 half + 1, 2 half + 1)`` basis kernels.
        """
        return self.gy[:, :, None] * self.gx[:, None, :]


def gaussian_basis(
    fwhm_science_px: float,
    fwhm_template_px: float,
    *,
    half: int | None = None,
    degrees: tuple[int, ...] = (4, 2, 2),
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
) -> KernelBasis:
    """Build the Alard-Lupton basis scaled to the PSF widths.

    The Gaussian widths are ``ratios`` times the width of the ideal matching
    kernel, ``sqrt(sigma_S^2 - sigma_T^2)`` (at least 0.5 pixel), and the
    kernel half-width defaults to about 2.5 science FWHM (5 to 17 pixels).

    Parameters
    ----------
    fwhm_science_px : `float`
        FWHM of the image the kernel matches (the broader), pixels.
    fwhm_template_px : `float`
        FWHM of the image the kernel convolves, pixels.
    half : `int`, optional
        Kernel half-width, pixels.
    degrees : `tuple` [`int`, ...], optional
        Polynomial degree of each Gaussian.
    ratios : `tuple` [`float`, ...], optional
        Gaussian widths relative to the ideal matching kernel's.

    Returns
    -------
    basis : `KernelBasis`
        The basis (``sum (d + 1)(d + 2) / 2`` functions, each normalised).
    """
    to_sigma = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    s_sci, s_tmp = fwhm_science_px * to_sigma, fwhm_template_px * to_sigma
    s_match = np.sqrt(max(s_sci**2 - s_tmp**2, 0.25))
    if half is None:
        half = int(np.clip(np.ceil(2.5 * fwhm_science_px), 5, 17))
    u = np.arange(-half, half + 1, dtype=float)
    gx, gy = [], []
    sigmas = tuple(float(max(r * s_match, 0.4)) for r in ratios)
    for sigma, degree in zip(sigmas, degrees):
        g = np.exp(-0.5 * (u / sigma) ** 2)
        for i in range(degree + 1):
            for j in range(degree + 1 - i):
                fx = g * (u / sigma) ** i
                fy = g * (u / sigma) ** j
                gx.append(fx / np.linalg.norm(fx))
                gy.append(fy / np.linalg.norm(fy))
    return KernelBasis(gx=np.array(gx), gy=np.array(gy), half=half, sigmas=sigmas, degrees=tuple(degrees))


def _poly_terms(x, y, shape, order: int) -> np.ndarray:
    """Spatial polynomial terms of total degree <= order in coordinates
    scaled to [-1, 1]; shape ``(n_terms, *x.shape)``.
    """
    height, width = shape
    u = 2.0 * np.asarray(x, dtype=float) / max(width - 1, 1) - 1.0
    v = 2.0 * np.asarray(y, dtype=float) / max(height - 1, 1) - 1.0
    return np.stack([u**i * v**j for n in range(order + 1) for i in range(n, -1, -1) for j in [n - i]])


def _poly_terms_grid(grid_shape, shape, order: int):
    """Iterate over the spatial polynomial terms on a pixel grid, built by
    broadcasting (no full coordinate arrays).
    """
    height, width = grid_shape
    u = (2.0 * np.arange(width, dtype=np.float32) / max(shape[1] - 1, 1) - 1.0)[None, :]
    v = (2.0 * np.arange(height, dtype=np.float32) / max(shape[0] - 1, 1) - 1.0)[:, None]
    for n in range(order + 1):
        for i in range(n, -1, -1):
            yield np.broadcast_to(u**i * v ** (n - i), (height, width))


def _convolve_basis(image: np.ndarray, basis: KernelBasis) -> np.ndarray:
    """``(n, h, w)``: ``image`` convolved with each basis kernel (separable)."""
    out = np.empty((len(basis),) + image.shape)
    cache: dict[bytes, np.ndarray] = {}
    for k in range(len(basis)):
        key = basis.gy[k].tobytes()
        if key not in cache:
            cache[key] = ndimage.convolve1d(image, basis.gy[k], axis=0, mode="constant")
        out[k] = ndimage.convolve1d(cache[key], basis.gx[k], axis=1, mode="constant")
    return out


@dataclass
class KernelSolution:
    """A fitted, spatially varying matching kernel and background."""

    basis: KernelBasis
    """The kernel basis."""
    coefficients: np.ndarray
    """``(n_basis, n_spatial)``."""
    background: np.ndarray
    """``(n_background,)`` coefficients."""
    spatial_order: int
    """Total degree of the kernel's spatial variation."""
    background_order: int
    """Total degree of the background."""
    shape: tuple[int, int]
    """Image ``(height, width)`` that positions refer to."""
    mode: str
    """``stamps``, ``image`` or ``identity`` (too little data to fit)."""
    n_candidates: int = 0
    """Kernel candidates offered."""
    n_used: int = 0
    """Stamps (or pixels, for ``image``) used in the final fit."""
    chi2_per_dof: float = float("nan")
    """Mean chi^2 per pixel of the fit."""
    info: dict = field(default_factory=dict)
    """Free-form details (e.g. the errors of a synthetic-star kernel)."""

    def spatial_kernels(self) -> np.ndarray:
        """Build the kernels of the spatial terms.

        Returns
        -------
        kernels : `numpy.ndarray`
            ``(n_spatial, size, size)`` kernels ``K_p`` such that
            ``K(x, y) = sum_p P_p(x, y) K_p``.
        """
        return np.tensordot(self.coefficients.T, self.basis.images(), axes=1)

    def kernel_at(self, x: float, y: float) -> np.ndarray:
        """Evaluate the kernel at a position.

        Parameters
        ----------
        x, y : `float`
            Pixel position.

        Returns
        -------
        kernel : `numpy.ndarray`
            ``(size, size)`` kernel.
        """
        terms = _poly_terms(np.array(x), np.array(y), self.shape, self.spatial_order)
        return np.tensordot(terms, self.spatial_kernels(), axes=1)

    def kernel_sum(self, x: float | None = None, y: float | None = None) -> float:
        """Compute the photometric scaling (template -> science) at a position.

        Parameters
        ----------
        x, y : `float`, optional
            Pixel position (default: the image centre).

        Returns
        -------
        scale : `float`
            Sum of the kernel there.
        """
        if x is None:
            x, y = (self.shape[1] - 1) / 2.0, (self.shape[0] - 1) / 2.0
        return float(self.kernel_at(x, y).sum())

    def background_image(self, shape=None) -> np.ndarray:
        """Evaluate the differential background on the pixel grid.

        Parameters
        ----------
        shape : `tuple` [`int`, `int`], optional
            Grid ``(height, width)`` from the origin (default: ``shape``).

        Returns
        -------
        background : `numpy.ndarray`
            Float32 image.
        """
        height, width = shape or self.shape
        out = np.zeros((height, width), dtype=np.float32)
        for c, term in zip(
            self.background, _poly_terms_grid((height, width), self.shape, self.background_order)
        ):
            out += np.float32(c) * term
        return out


def select_kernel_candidates(
    template: np.ndarray,
    template_variance: np.ndarray,
    bad: np.ndarray,
    fwhm_px: float,
    half: int,
    *,
    n_max: int = 80,
    min_snr: float = 30.0,
) -> np.ndarray:
    """Select kernel candidates: bright, isolated, compact and unmasked
    sources of the template.

    Parameters
    ----------
    template, template_variance : `numpy.ndarray`
        Template on the science grid and its variance plane.
    bad : `numpy.ndarray`
        Boolean map of pixels a stamp must not reach.
    fwhm_px : `float`
        PSF FWHM, pixels (fit radius, compactness).
    half : `int`
        Kernel half-width, pixels.
    n_max : `int`, optional
        Most candidates returned.
    min_snr : `float`, optional
        Lowest signal-to-noise of a candidate.

    Returns
    -------
    positions : `numpy.ndarray`
        ``(n, 2)`` ``(x, y)`` positions, brightest first (none if SEP fails
        on the image).
    """
    import sep

    height, width = template.shape
    data = np.ascontiguousarray(np.where(np.isfinite(template), template, 0.0), dtype=np.float32)
    var = np.ascontiguousarray(
        np.where(np.isfinite(template_variance) & (template_variance > 0), template_variance, 1e30),
        dtype=np.float32,
    )
    if sep.get_extract_pixstack() < data.size // 2:
        sep.set_extract_pixstack(data.size // 2)
    try:
        objs = sep.extract(data, 10.0, var=var, mask=np.ascontiguousarray(bad), minarea=5, deblend_cont=1.0)
    except Exception as err:  # sep raises on pathological images
        _log.debug("Kernel candidate detection failed: %s", err)
        return np.zeros((0, 2))
    if len(objs) == 0:
        return np.zeros((0, 2))
    snr = objs["flux"] / np.sqrt(np.maximum(objs["npix"] * np.median(var[var < 1e29]), 1e-30))
    r_stamp = half + int(np.ceil(1.5 * fwhm_px)) + half
    x, y = objs["x"], objs["y"]
    inside = (x > r_stamp) & (x < width - 1 - r_stamp) & (y > r_stamp) & (y < height - 1 - r_stamp)
    compact = objs["a"] < 2.0 * fwhm_px
    ok = inside & compact & (snr > min_snr) & (objs["flag"] == 0)
    # Isolation: no other detection within the stamp.
    from scipy.spatial import cKDTree

    tree = cKDTree(np.stack([x, y], axis=1))
    counts = np.array([len(n) for n in tree.query_ball_point(np.stack([x, y], axis=1), r=1.2 * r_stamp)])
    ok &= counts == 1
    ix = np.floor(x + 0.5).astype(int)
    iy = np.floor(y + 0.5).astype(int)
    grown = ndimage.binary_dilation(bad, iterations=r_stamp) if bad.any() else bad
    ok &= ~grown[np.clip(iy, 0, height - 1), np.clip(ix, 0, width - 1)]
    order = np.argsort(-objs["flux"][ok])
    return np.stack([x[ok][order], y[ok][order]], axis=1)[:n_max]


def _solve(normal: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    scale = np.sqrt(np.maximum(np.diag(normal), 1e-300))
    a = normal / scale[:, None] / scale[None, :]
    sol, *_ = np.linalg.lstsq(a, rhs / scale, rcond=1e-10)
    return sol / scale


def fit_kernel(
    science: np.ndarray,
    science_variance: np.ndarray,
    template: np.ndarray,
    basis: KernelBasis,
    *,
    candidates: np.ndarray | None = None,
    bad: np.ndarray | None = None,
    spatial_order: int = 1,
    background_order: int = 1,
    fwhm_px: float = 3.0,
    n_iter: int = 3,
    clip: float = 3.0,
) -> KernelSolution:
    """Fit the matching kernel and background by least squares.

    Parameters
    ----------
    science, science_variance, template : `numpy.ndarray`
        Same-grid images; non-finite template pixels count as bad.
    basis : `KernelBasis`
        The kernel basis.
    candidates : `numpy.ndarray`, optional
        ``(n, 2)`` stamp centres; ``None`` fits the whole image.
    bad : `numpy.ndarray`, optional
        Pixels to ignore.
    spatial_order, background_order : `int`
        Total degree of the kernel and background variations (the kernel's
        is lowered automatically when there are too few stamps).
    fwhm_px : `float`, optional
        PSF FWHM, pixels (the stamps' fit radius).
    n_iter : `int`, optional
        Most rejection iterations.
    clip : `float`, optional
        Stamps whose chi^2 exceeds the median by ``clip`` robust sigma are
        rejected.

    Returns
    -------
    solution : `KernelSolution`
        The fit: on stamps, or on the whole image when fewer than three
        usable stamps remain.
    """
    shape = science.shape
    half = basis.half
    bad = np.zeros(shape, dtype=bool) if bad is None else bad.copy()
    bad |= ~np.isfinite(template) | ~np.isfinite(science) | ~(science_variance > 0)
    tmpl = np.where(np.isfinite(template), template, 0.0)
    nb = len(basis)
    if candidates is None or len(candidates) < 3:
        return _fit_image(
            science, science_variance, tmpl, bad, basis, spatial_order, background_order, n_iter
        )

    r_fit = half + int(np.ceil(1.5 * fwhm_px))
    n_cand = len(candidates)
    # Lower the spatial order if the stamps cannot constrain it.
    while spatial_order > 0 and n_cand < 3 * (spatial_order + 1) * (spatial_order + 2) // 2:
        spatial_order -= 1
    n_sp = (spatial_order + 1) * (spatial_order + 2) // 2
    n_bg = (background_order + 1) * (background_order + 2) // 2
    n_par = nb * n_sp + n_bg
    stamps = []
    for x, y in candidates:
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        sl = (slice(iy - r_fit, iy + r_fit + 1), slice(ix - r_fit, ix + r_fit + 1))
        big = (
            slice(iy - r_fit - half, iy + r_fit + half + 1),
            slice(ix - r_fit - half, ix + r_fit + half + 1),
        )
        if bad[big].any() or big[0].start < 0 or big[1].start < 0:
            continue
        t = tmpl[big]
        if t.shape != (2 * (r_fit + half) + 1,) * 2:
            continue
        conv = _convolve_basis(t, basis)[:, half:-half, half:-half].reshape(nb, -1)
        yy, xx = np.mgrid[sl[0], sl[1]]
        sp = _poly_terms(np.array(x), np.array(y), shape, spatial_order)  # (n_sp,)
        cols = (conv[:, None, :] * sp[None, :, None]).reshape(nb * n_sp, -1)
        bgt = _poly_terms(xx.ravel(), yy.ravel(), shape, background_order)
        a = np.concatenate([cols, bgt], axis=0)  # (n_par, npix)
        w = 1.0 / science_variance[sl].ravel().astype(float)
        s = science[sl].ravel().astype(float)
        stamps.append((a, w, s))
    if len(stamps) < 3:
        return _fit_image(
            science, science_variance, tmpl, bad, basis, spatial_order, background_order, n_iter
        )
    normals = np.array([(a * w) @ a.T for a, w, s in stamps])
    rhss = np.array([(a * w) @ s for a, w, s in stamps])
    use = np.ones(len(stamps), dtype=bool)
    chi2 = np.zeros(len(stamps))
    for _ in range(n_iter):
        sol = _solve(normals[use].sum(axis=0), rhss[use].sum(axis=0))
        for i, (a, w, s) in enumerate(stamps):
            r = s - sol @ a
            chi2[i] = float(np.sum(r * r * w)) / len(s)
        med = np.median(chi2[use])
        mad = 1.4826 * np.median(np.abs(chi2[use] - med)) + 1e-3
        new_use = chi2 < med + clip * mad
        if new_use.sum() < max(3, n_par // 20) or np.array_equal(new_use, use):
            break
        use = new_use
    return _kernel_solution(
        sol, basis, n_sp, spatial_order, background_order, shape, "stamps",
        n_candidates=n_cand, n_used=int(use.sum()), chi2_per_dof=float(np.mean(chi2[use])),
    )


def _kernel_solution(
    sol, basis, n_sp, spatial_order, background_order, shape, mode, **fit
) -> KernelSolution:
    """Split a solved parameter vector into the kernel's ``(len(basis), n_sp)``
    coefficients and the background's; ``fit`` are the fit statistics.
    """
    nb = len(basis)
    return KernelSolution(
        basis=basis,
        coefficients=sol[: nb * n_sp].reshape(nb, n_sp),
        background=sol[nb * n_sp :],
        spatial_order=spatial_order,
        background_order=background_order,
        shape=shape,
        mode=mode,
        **fit,
    )


def _fit_image(
    science, science_variance, tmpl, bad, basis, spatial_order, background_order, n_iter
) -> KernelSolution:
    """Whole-image fit with iterative rejection of outlying pixels."""
    shape = science.shape
    half = basis.half
    height, width = shape
    spatial_order = min(spatial_order, 1)
    n_sp = (spatial_order + 1) * (spatial_order + 2) // 2
    nb = len(basis)
    conv = _convolve_basis(tmpl, basis)
    inner = np.zeros(shape, dtype=bool)
    inner[2 * half : height - 2 * half, 2 * half : width - 2 * half] = True
    grown_bad = ndimage.binary_dilation(bad, iterations=half) if bad.any() else bad
    good = inner & ~grown_bad
    yy, xx = np.mgrid[0:height, 0:width]
    # Pixels that no template structure can explain (cosmic rays, defects,
    # transients) are rejected after a first fit; bright sources are kept,
    # as their mismatch is what the kernel must fix.
    tmpl_snr = np.abs(tmpl) / np.sqrt(
        np.maximum(np.median(science_variance[good]) if good.any() else 1.0, 1e-30)
    )
    # Sky-dominated pixels carry little information on the kernel shape: fit
    # every pixel near template sources and a regular quarter of the rest.
    signal = ndimage.binary_dilation(tmpl_snr > 2.0, iterations=2)
    good &= signal | ((yy + 2 * xx) % 4 == 0)
    use = good.copy()
    sol = None
    chi2 = float("nan")
    for _ in range(max(1, min(n_iter, 2))):
        idx = np.flatnonzero(use.ravel())
        if len(idx) < 10 * (nb * n_sp):
            break
        sp = _poly_terms(xx.ravel()[idx], yy.ravel()[idx], shape, spatial_order)
        cols = (conv.reshape(nb, -1)[:, idx][:, None, :] * sp[None, :, :]).reshape(nb * n_sp, -1)
        bgt = _poly_terms(xx.ravel()[idx], yy.ravel()[idx], shape, background_order)
        a = np.concatenate([cols, bgt], axis=0)
        w = 1.0 / science_variance.ravel()[idx].astype(float)
        s = science.ravel()[idx].astype(float)
        sol = _solve((a * w) @ a.T, (a * w) @ s)
        resid = np.zeros(science.size)
        resid[idx] = (s - sol @ a) * np.sqrt(w)
        chi2 = float(np.mean(resid[idx] ** 2))
        outliers = (np.abs(resid.reshape(shape)) > 5.0) & (tmpl_snr < 5.0)
        outliers = ndimage.binary_dilation(outliers, iterations=2)
        new_use = good & ~outliers
        if np.array_equal(new_use, use):
            break
        use = new_use
    if sol is None:
        # Too little data: identity kernel (delta at the centre), no background.
        n_bg = (background_order + 1) * (background_order + 2) // 2
        delta = np.zeros((2 * half + 1, 2 * half + 1))
        delta[half, half] = 1.0
        flat = basis.images().reshape(nb, -1)
        c, *_ = np.linalg.lstsq(flat.T, delta.ravel(), rcond=None)
        coeffs = np.zeros((nb, n_sp))
        coeffs[:, 0] = c
        return KernelSolution(
            basis, coeffs, np.zeros(n_bg), spatial_order, background_order, shape, "identity"
        )
    return _kernel_solution(
        sol, basis, n_sp, spatial_order, background_order, shape, "image",
        n_used=int(use.sum()), chi2_per_dof=chi2,
    )


def subtract_images(
    science: np.ndarray,
    science_variance: np.ndarray,
    template: np.ndarray,
    template_variance: np.ndarray,
    solution: KernelSolution,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply a kernel solution: ``D = S - K * T - b``.

    Parameters
    ----------
    science, science_variance : `numpy.ndarray`
        The image the kernel matches (``S``) and its variance plane.
    template, template_variance : `numpy.ndarray`
        The image the kernel convolves (``T``; NaN where there is no data)
        and its variance plane.
    solution : `KernelSolution`
        Kernel and background.

    Returns
    -------
    difference, variance : `numpy.ndarray`
        Float32; NaN where the template has no data.
    edge : `numpy.ndarray`
        Boolean: pixels whose convolution reached past the template's data
        (within the kernel half-width of NO_DATA or of the image border).
    """
    shape = science.shape
    height, width = shape
    half = solution.basis.half
    missing = ~np.isfinite(template)
    tmpl = np.where(missing, np.float32(0.0), template).astype(np.float32)
    tvar = np.where(missing | ~np.isfinite(template_variance), np.float32(0.0), template_variance).astype(
        np.float32
    )
    kernels = solution.spatial_kernels()
    diff = science.astype(np.float32) - solution.background_image(shape)
    for kernel, term in zip(kernels, _poly_terms_grid(shape, shape, solution.spatial_order)):
        diff -= (term * signal.oaconvolve(tmpl, kernel, mode="same")).astype(np.float32)
    k0 = solution.kernel_at((width - 1) / 2.0, (height - 1) / 2.0)
    variance = science_variance + signal.oaconvolve(tvar, k0**2, mode="same").astype(np.float32)
    edge = np.ones(shape, dtype=bool)
    edge[half : height - half, half : width - half] = False
    if missing.any():
        edge |= ndimage.binary_dilation(missing, iterations=half)
    diff = np.where(missing, np.nan, diff)
    variance = np.where(missing, np.nan, variance)
    return diff.astype(np.float32), variance.astype(np.float32), edge & ~missing
