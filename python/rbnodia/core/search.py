"""Candidate transients from a science image and its aligned template,
without a difference image.

`find_candidates` is the detection step of the DIA-free search
(`rbnodia.tasks.search`).  It never PSF-matches the images and never forms
a difference image; it looks at box-filtered fluxes:

``excess`` (default)
    Peaks of the box-filtered flux excess of the science image over the
    template, in units of its noise (science plus template variance).  The
    box filter is much wider than a PSF-mismatch kernel would be, so no
    kernel is fitted; what the seeing difference leaves (rings and cores of
    bright stars, galaxy cores) becomes a candidate, and the noDIA network
    that scores the candidates rejects it.
``science``
    Peaks of the box-filtered science image itself (every source, including
    peaks on galaxies), kept where the aperture flux of the science image
    exceeds the template's.

In both designs a candidate must then show an aperture flux excess over the
template of at least ``excess_threshold`` standard deviations.  Pixels that
are unusable in either image (masked, NaN) are zero in both images before
filtering, so that masked areas and template edges give no excess, and no
peak is centred on one.  Column defects that no mask plane knows (warm
columns missing from the defect list) are found from the images
(`column_defects`) and treated as unusable too, so that they give no flood
of candidates along the column.

Variance planes describe each pixel's noise but not the covariance that
resampling, coaddition and convolution give it, so box sums of real images
vary more than the planes say.  With ``renormalize`` (default) the
significance map is divided by its own robust standard deviation
(`noise_scale`) before peaks are cut, as Rubin's ``ScaleVarianceTask``
rescales a variance plane to the noise measured in the image, and the
aperture excess is divided by the same factor.

Written with numpy only, for a measured reason: the base install (what a
pipeline needs) has no scipy, and shifted-slice box sums with a peak test
on the pixels above threshold cost well under a second on an LSST
detector (``make bench``, section 6).
"""

from __future__ import annotations

__all__ = [
    "SEARCH_DEFAULTS",
    "SEARCH_DESIGNS",
    "SEARCH_MASK_PLANES",
    "Candidates",
    "aperture_sums",
    "box_sum",
    "column_defects",
    "find_candidates",
    "local_maxima",
    "noise_scale",
]

from dataclasses import dataclass

import numpy as np

from .scaling import PIXEL_LIMIT

SEARCH_DESIGNS = ("excess", "science")
"""Names of the candidate designs of `find_candidates`."""

SEARCH_DEFAULTS = {
    "design": "excess",
    "threshold": 5.0,
    "box_width": 5,
    "aperture_half": 4,
    "excess_threshold": 3.0,
    "max_candidates": 20000,
    "column_sigma": 5.5,
    "column_block": 128,
    "renormalize": True,
}
"""Default options of `find_candidates` (and of the search task's config)."""

SEARCH_MASK_PLANES = ("NO_DATA", "SAT", "BAD", "CR", "EDGE", "SUSPECT")
"""Mask planes of either image where the search centres no candidate and
counts no excess (the search task's default)."""


@dataclass(frozen=True)
class Candidates:
    """Candidate transients of one detector, strongest excess first.

    Attributes
    ----------
    x, y : `numpy.ndarray`
        Pixel position (int) of each candidate's peak.
    significance : `numpy.ndarray`
        Box-filtered significance at the peak (of the excess or of the
        science image, per design).
    excess : `numpy.ndarray`
        Aperture flux of the science image minus the template's, over its
        standard deviation.
    n_peaks : `int`
        Peaks above the significance threshold, before the excess cut.
    n_dropped : `int`
        Candidates beyond ``max_candidates`` that were dropped.
    n_defect_pixels : `int`
        Pixels of column defects found by `column_defects` (and treated as
        unusable).
    noise_scale : `float`
        Factor the significance and the excess were divided by
        (`noise_scale`; 1 without ``renormalize``).
    """

    x: np.ndarray
    y: np.ndarray
    significance: np.ndarray
    excess: np.ndarray
    n_peaks: int
    n_dropped: int
    n_defect_pixels: int = 0
    noise_scale: float = 1.0

    def __len__(self) -> int:
        return len(self.x)


def box_sum(image: np.ndarray, width: int) -> np.ndarray:
    """Sum of each ``width x width`` box centred on a pixel (zero outside).

    Parameters
    ----------
    image : `numpy.ndarray`
        2-d array.
    width : `int`
        Odd box width in pixels.

    Returns
    -------
    sums : `numpy.ndarray`
        The float32 sums, shaped like ``image``.

    Raises
    ------
    ValueError
        If ``width`` is not a positive odd integer.
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"The box width must be a positive odd integer, got {width}.")
    half = width // 2
    rows = np.array(image, dtype=np.float32)
    source = rows.copy() if half else rows
    for k in range(1, half + 1):
        rows[k:] += source[:-k]
        rows[:-k] += source[k:]
    sums = rows.copy() if half else rows
    for k in range(1, half + 1):
        sums[:, k:] += rows[:, :-k]
        sums[:, :-k] += rows[:, k:]
    return sums


def column_defects(difference: np.ndarray, usable: np.ndarray, block: int, sigma: float) -> np.ndarray:
    """Find column segments whose flux excess is positive far more often than
    noise allows: warm or bad columns that no mask plane marks.

    Each column is cut into segments of ``block`` rows, twice (offsets 0 and
    ``block // 2``, so that a defect starting inside a segment is still
    covered), plus one segment ending on the last row.  Under noise alone,
    the usable pixels of a segment are positive with probability 1/2; a
    segment whose fraction of positive pixels exceeds 1/2 by ``sigma``
    binomial standard deviations is a defect.  A sign test ignores how bright a pixel is, so a star or a
    galaxy residual crossing a segment (a few rows of ``block``) does not
    make it a defect, while a column of 1 sigma per pixel does (84%
    positive).

    Parameters
    ----------
    difference : `numpy.ndarray`
        Science minus template (2-d).
    usable : `numpy.ndarray`
        True for pixels usable in both images.
    block : `int`
        Rows per segment.
    sigma : `float`
        Significance of the excess of positive pixels; 0 finds none.

    Returns
    -------
    defects : `numpy.ndarray`
        True on the pixels of the defect segments.
    """
    height, width = difference.shape
    defects = np.zeros(difference.shape, dtype=bool)
    if sigma <= 0 or height < block:
        return defects
    positive = ((difference > 0) & usable).view(np.uint8)
    counts = np.asarray(usable, dtype=bool).view(np.uint8)
    # Whole segments at both offsets, and one more ending on the last row.
    for first, n_segments in ((0, height // block), (block // 2, (height - block // 2) // block),
                              (height - block, 1)):
        if n_segments == 0:
            continue
        rows = slice(first, first + n_segments * block)
        n_positive = positive[rows].reshape(n_segments, block, width).sum(axis=1, dtype=np.uint16)
        n_usable = counts[rows].reshape(n_segments, block, width).sum(axis=1, dtype=np.uint16)
        limit = 0.5 * n_usable + sigma * 0.5 * np.sqrt(n_usable)
        segments, columns = np.nonzero((n_usable >= block // 4) & (n_positive > limit))
        for segment, column in zip(segments, columns):
            start = first + segment * block
            defects[start:start + block, column] = True
    return defects


def noise_scale(significance: np.ndarray, usable: np.ndarray, step: tuple[int, int] = (7, 3),
                min_pixels: int = 1000) -> float:
    """Return the robust standard deviation of a significance map: the
    factor by which the variance planes underestimate its noise.

    Parameters
    ----------
    significance : `numpy.ndarray`
        Box-filtered flux over its predicted standard deviation (2-d).
    usable : `numpy.ndarray`
        True for the pixels to measure.
    step : `tuple` [`int`, `int`]
        Rows and columns between the pixels measured (a subsample keeps
        the cost to a few tens of milliseconds on an LSST detector; steps
        co-prime with the box width avoid sampling its pattern).
    min_pixels : `int`
        Fewer usable pixels than this give 1 (too few to measure).

    Returns
    -------
    scale : `float`
        1.4826 times the median absolute deviation from the median, or 1.
    """
    sample = significance[::step[0], ::step[1]][usable[::step[0], ::step[1]]]
    if sample.size < min_pixels:
        return 1.0
    median = np.median(sample)
    scale = 1.4826 * float(np.median(np.abs(sample - median)))
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def local_maxima(image: np.ndarray, threshold: float, radius: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Pixels above ``threshold`` that are the maximum of their
    ``(2 radius + 1)^2`` neighbourhood (ties go to the first in row order).

    Parameters
    ----------
    image : `numpy.ndarray`
        2-d float array; NaN pixels are never peaks.
    threshold : `float`
        Lowest peak value (exclusive).
    radius : `int`
        Half-size of the neighbourhood.

    Returns
    -------
    x, y : `numpy.ndarray`
        Peak positions, in row order.
    """
    height, width = image.shape
    padded = np.pad(np.nan_to_num(image, nan=-np.inf), radius, constant_values=-np.inf).ravel()
    index = np.flatnonzero(image > threshold)
    y, x = np.divmod(index, width)
    stride = width + 2 * radius
    centre = (y + radius) * stride + (x + radius)
    value = padded[centre]
    keep = np.ones(len(index), dtype=bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            neighbour = padded[centre + dy * stride + dx]
            keep &= (value >= neighbour) if (dy, dx) > (0, 0) else (value > neighbour)
    return x[keep], y[keep]


def aperture_sums(image: np.ndarray, x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """Sum of the ``(2 half + 1)^2`` pixels around each ``(x, y)``, with the
    image's edge pixels repeated beyond it.

    Parameters
    ----------
    image : `numpy.ndarray`
        2-d array.
    x, y : `numpy.ndarray`
        Integer pixel positions.
    half : `int`
        Half-size of the aperture.

    Returns
    -------
    sums : `numpy.ndarray`
        The float64 sums, one per position.
    """
    height, width = image.shape
    offsets = np.arange(-half, half + 1)
    rows = np.clip(np.asarray(y)[:, None, None] + offsets[None, :, None], 0, height - 1)
    columns = np.clip(np.asarray(x)[:, None, None] + offsets[None, None, :], 0, width - 1)
    return image[rows, columns].sum(axis=(1, 2), dtype=np.float64)


def find_candidates(
    science: np.ndarray,
    science_variance: np.ndarray,
    template: np.ndarray,
    template_variance: np.ndarray,
    bad: np.ndarray | None = None,
    *,
    design: str = SEARCH_DEFAULTS["design"],
    threshold: float = SEARCH_DEFAULTS["threshold"],
    box_width: int = SEARCH_DEFAULTS["box_width"],
    aperture_half: int = SEARCH_DEFAULTS["aperture_half"],
    excess_threshold: float = SEARCH_DEFAULTS["excess_threshold"],
    max_candidates: int = SEARCH_DEFAULTS["max_candidates"],
    column_sigma: float = SEARCH_DEFAULTS["column_sigma"],
    column_block: int = SEARCH_DEFAULTS["column_block"],
    renormalize: bool = SEARCH_DEFAULTS["renormalize"],
) -> Candidates:
    """Find candidate transients from a science image and the template
    warped to it (not PSF-matched).

    Parameters
    ----------
    science : `numpy.ndarray`
        Science image (2-d).
    science_variance : `numpy.ndarray`
        Its variance plane.
    template : `numpy.ndarray`
        Template warped to the science grid: same shape and flux units.
    template_variance : `numpy.ndarray`
        Its variance plane.
    bad : `numpy.ndarray`, optional
        True for pixels unusable in either image; NaN, infinite and sentinel
        (`rbnodia.core.scaling.PIXEL_LIMIT`) pixels of any plane, and
        negative variances, are added to it.
    design : `str`
        ``"excess"`` or ``"science"`` (see the module docstring).
    threshold : `float`
        Box-filtered significance of a peak, in standard deviations.
    box_width : `int`
        Odd width of the box filter in pixels (about the PSF FWHM).
    aperture_half : `int`
        Half-size of the square aperture of the excess test.
    excess_threshold : `float`
        Lowest aperture flux excess of science over template, in standard
        deviations.
    max_candidates : `int`
        Most candidates returned; the weakest in excess are dropped.
    column_sigma : `float`
        Significance of a column defect (`column_defects`); 0 looks for
        none.
    column_block : `int`
        Rows per column segment tested for a defect.
    renormalize : `bool`
        Divide the significance and the excess by the significance map's
        robust standard deviation (`noise_scale`).

    Returns
    -------
    candidates : `Candidates`

    Raises
    ------
    ValueError
        If the planes differ in shape or the design is unknown.
    """
    if design not in SEARCH_DESIGNS:
        raise ValueError(f"Unknown search design {design!r}; choose from {SEARCH_DESIGNS}.")
    shape = np.shape(science)
    planes = (science_variance, template, template_variance) + (() if bad is None else (bad,))
    if len(shape) != 2 or any(np.shape(p) != shape for p in planes):
        raise ValueError(f"The science image, template, variances and mask must be 2-d and of one shape; "
                         f"got {[np.shape(p) for p in (science, *planes)]}.")
    difference = np.subtract(science, template, dtype=np.float32)
    variance = np.add(science_variance, template_variance, dtype=np.float32)
    unusable = np.zeros(shape, dtype=bool)
    for image in (science, template):
        unusable |= ~(np.abs(image) < PIXEL_LIMIT)
    for plane in (science_variance, template_variance):
        unusable |= ~((plane >= 0) & (plane < PIXEL_LIMIT))
    if bad is not None:
        unusable |= np.asarray(bad, dtype=bool)
    defects = column_defects(difference, ~unusable, column_block, column_sigma)
    unusable |= defects
    difference[unusable] = 0
    variance[unusable] = 0
    if design == "excess":
        flux, flux_variance = difference, variance
    else:
        flux = np.array(science, dtype=np.float32)
        flux_variance = np.array(science_variance, dtype=np.float32)
        flux[unusable] = 0
        flux_variance[unusable] = 0
    # The variance changes slowly: box_width**2 times its value at the pixel stands for its box sum.
    significance = box_sum(flux, box_width)
    with np.errstate(divide="ignore", invalid="ignore"):
        significance /= np.sqrt(flux_variance) * np.float32(box_width)
    significance[~np.isfinite(significance)] = 0
    scale = noise_scale(significance, ~unusable) if renormalize else 1.0
    significance /= np.float32(scale)
    x, y = local_maxima(significance, threshold, radius=box_width // 2)
    centred_ok = ~unusable[y, x]
    x, y = x[centred_ok], y[centred_ok]
    n_peaks = len(x)
    noise = np.sqrt(aperture_sums(variance, x, y, aperture_half))
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(noise > 0, aperture_sums(difference, x, y, aperture_half) / (noise * scale), 0.0)
    keep = np.flatnonzero(excess > excess_threshold)
    order = keep[np.argsort(-excess[keep], kind="stable")]
    n_dropped = max(len(order) - max_candidates, 0)
    order = order[:max_candidates]
    peak_significance = significance[y[order], x[order]].astype(np.float64)
    return Candidates(x=x[order], y=y[order], significance=peak_significance, excess=excess[order],
                      n_peaks=n_peaks, n_dropped=n_dropped, n_defect_pixels=int(defects.sum()),
                      noise_scale=scale)
