"""The detector: amplifiers, photon and read noise, saturation with bleed
trails, cosmic rays, defects, satellite trails, and the instrument signature
removal (ISR) that turns raw counts into a calibrated image.

Everything physical happens in electrons; the calibrated image is
``(counts * gain - background model) * nJy_per_electron`` and its variance
plane is ``(max(counts * gain, 0) + read_noise^2) * nJy_per_electron^2`` per
amplifier, as ISR computes it.
"""

from __future__ import annotations

__all__ = [
    "Amplifiers",
    "Artifacts",
    "add_cosmic_rays",
    "add_defects",
    "add_satellite_trail",
    "bleed",
    "expose",
    "interpolate_masked",
    "smooth_background",
]

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .presets import Preset


@dataclass(frozen=True)
class Amplifiers:
    """Per-pixel gain (e-/ADU) and read noise (e-) maps of one detector.

    Attributes
    ----------
    gain : `numpy.ndarray`
        Float32 gain of each pixel's amplifier, e-/ADU.
    read_noise : `numpy.ndarray`
        Float32 read noise of each pixel's amplifier, e- rms.
    """

    gain: np.ndarray
    read_noise: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, preset: Preset, shape) -> Amplifiers:
        """Draw the amplifiers' gains and read noises.

        Parameters
        ----------
        rng : `numpy.random.Generator`
            Random numbers.
        preset : `~rbnodia.sim.presets.Preset`
            ``amp_grid`` (equal segments), median ``gain`` and ``read_noise``,
            ``gain_scatter``; read noises scatter by 5 %.
        shape : `tuple` [`int`, `int`]
            Image ``(height, width)``.

        Returns
        -------
        amps : `Amplifiers`
            Maps of the image's shape.
        """
        height, width = shape
        rows, cols = preset.amp_grid
        n = rows * cols
        gains = preset.gain * (1.0 + rng.normal(0.0, preset.gain_scatter, n))
        noises = preset.read_noise * (1.0 + rng.normal(0.0, 0.05, n))
        ri = np.minimum((np.arange(height) * rows) // height, rows - 1)
        ci = np.minimum((np.arange(width) * cols) // width, cols - 1)
        amp = ri[:, None] * cols + ci[None, :]
        return cls(gain=gains[amp].astype(np.float32), read_noise=noises[amp].astype(np.float32))


@dataclass
class Artifacts:
    """Truth about the instrumental features added to one exposure.

    Boolean maps mark the pixels each feature touched (before any repair).

    Attributes
    ----------
    cosmic_rays, bad_columns, hot_pixels, satellite, saturated : `numpy.ndarray`
        Pixels touched by each feature.
    cr_repaired : `numpy.ndarray`
        Pixels the cosmic-ray repair masked (CR) and interpolated.
    defect_masked : `numpy.ndarray`
        Defect pixels in the defect list (masked BAD and interpolated).
    n_cosmic_rays, n_bad_columns, n_hot_pixels, n_satellites : `int`
        Numbers of features added.
    notes : `dict`
        Free-form details.
    """

    cosmic_rays: np.ndarray
    bad_columns: np.ndarray
    hot_pixels: np.ndarray
    satellite: np.ndarray
    saturated: np.ndarray
    cr_repaired: np.ndarray
    defect_masked: np.ndarray
    n_cosmic_rays: int = 0
    n_bad_columns: int = 0
    n_hot_pixels: int = 0
    n_satellites: int = 0
    notes: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, shape) -> Artifacts:
        """Make the truth of an exposure without artifacts.

        Parameters
        ----------
        shape : `tuple` [`int`, `int`]
            Image ``(height, width)``.

        Returns
        -------
        artifacts : `Artifacts`
            All maps false, all counts zero.
        """
        z = lambda: np.zeros(shape, dtype=bool)  # noqa: E731
        return cls(z(), z(), z(), z(), z(), z(), z())

    @property
    def defects(self) -> np.ndarray:
        """Bad columns and hot pixels."""
        return self.bad_columns | self.hot_pixels


def smooth_background(rng: np.random.Generator, shape, amplitude: float) -> np.ndarray:
    """Draw a smooth background: a plane plus a gentle curvature.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    shape : `tuple` [`int`, `int`]
        Image ``(height, width)``.
    amplitude : `float`
        Scale, in the image's units: each of the four coefficients (offset,
        two slopes, curvature) has rms ``amplitude / sqrt(3)``.

    Returns
    -------
    background : `numpy.ndarray`
        Float32 image of ``shape``.
    """
    height, width = shape
    v = np.linspace(-1.0, 1.0, height)[:, None]
    u = np.linspace(-1.0, 1.0, width)[None, :]
    c = rng.normal(0.0, amplitude / np.sqrt(3.0), 4)
    return (c[0] + c[1] * u + c[2] * v + c[3] * (u * u + v * v - 2.0 / 3.0)).astype(np.float32)


def bleed(electrons: np.ndarray, full_well: float) -> np.ndarray:
    """Clip pixels at the full well and spread the excess charge along their
    columns (CCD blooming).

    Half the excess goes up and half down, filling each neighbour to the
    full well.

    Parameters
    ----------
    electrons : `numpy.ndarray`
        Image in electrons; modified in place.
    full_well : `float`
        Saturation level, e-.

    Returns
    -------
    saturated : `numpy.ndarray`
        Boolean map of the pixels at or above the full well.
    """
    over = electrons > full_well
    if not over.any():
        return over
    height = electrons.shape[0]
    for col in np.flatnonzero(over.any(axis=0)):
        column = electrons[:, col]
        rows = np.flatnonzero(column > full_well)
        breaks = np.flatnonzero(np.diff(rows) > 1)
        for run in np.split(rows, breaks + 1):
            excess = float(np.sum(column[run] - full_well))
            column[run] = full_well
            for direction, start in ((1, run[-1] + 1), (-1, run[0] - 1)):
                left = excess / 2
                r = start
                while left > 0 and 0 <= r < height:
                    take = min(max(full_well - column[r], 0.0), left)
                    column[r] += take
                    left -= take
                    r += direction
    return electrons >= full_well


def add_cosmic_rays(
    rng: np.random.Generator, electrons: np.ndarray, preset: Preset, n_expected: float
) -> tuple[np.ndarray, int]:
    """Add cosmic-ray tracks: straight segments with a Landau-like charge per
    pixel.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    electrons : `numpy.ndarray`
        Image in electrons; modified in place.
    preset : `~rbnodia.sim.presets.Preset`
        ``cosmic_ray_track_px``: mean track length.
    n_expected : `float`
        Mean number of tracks (the number is Poisson).

    Returns
    -------
    hit : `numpy.ndarray`
        Boolean map of the pixels the tracks touched.
    n : `int`
        Number of tracks.
    """
    height, width = electrons.shape
    n = rng.poisson(n_expected)
    hit = np.zeros(electrons.shape, dtype=bool)
    for _ in range(n):
        length = rng.exponential(preset.cosmic_ray_track_px)
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        angle = rng.uniform(0, np.pi)
        steps = max(int(np.ceil(length * 2)), 1)
        t = np.linspace(0.0, length, steps + 1)
        xs = np.floor(x0 + t * np.cos(angle)).astype(int)
        ys = np.floor(y0 + t * np.sin(angle)).astype(int)
        ok = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
        pix = np.unique(np.stack([ys[ok], xs[ok]], axis=1), axis=0)
        if len(pix) == 0:
            continue
        # Charge per pixel: ~ 80 e-/um of silicon for a MIP, Landau tail
        # modelled by a log-normal, spread over the track.
        charge = rng.lognormal(np.log(1500.0), 0.6, len(pix)) * (1.0 + 3.0 / len(pix))
        electrons[pix[:, 0], pix[:, 1]] += charge
        hit[pix[:, 0], pix[:, 1]] = True
    return hit, n


def add_defects(rng: np.random.Generator, electrons: np.ndarray, preset: Preset, exposure_scale: float = 1.0):
    """Add hot (warm) column segments and hot pixels: extra dark charge.

    The caller decides which defects the defect list knows about.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers (the detector's static defects).
    electrons : `numpy.ndarray`
        Image in electrons; modified in place.
    preset : `~rbnodia.sim.presets.Preset`
        ``bad_columns`` and ``hot_pixels`` per native detector, scaled by
        the image's area.
    exposure_scale : `float`, optional
        Dark charge relative to a 90 s exposure.

    Returns
    -------
    columns, pixels : `numpy.ndarray`
        Boolean maps of the bad-column segments and the hot pixels.
    n_col, n_hot : `int`
        Their numbers.
    """
    height, width = electrons.shape
    columns = np.zeros(electrons.shape, dtype=bool)
    pixels = np.zeros(electrons.shape, dtype=bool)
    n_col = rng.poisson(preset.bad_columns * width / preset.native_shape[1])
    for _ in range(n_col):
        col = rng.integers(0, width)
        start = rng.integers(0, height)
        stop = min(height, start + int(rng.uniform(0.2, 1.0) * height))
        level = rng.lognormal(np.log(60.0), 0.8) * exposure_scale
        electrons[start:stop, col] += rng.poisson(level, stop - start)
        columns[start:stop, col] = True
    n_hot = rng.poisson(
        preset.hot_pixels * height * width / (preset.native_shape[0] * preset.native_shape[1])
    )
    ys = rng.integers(0, height, n_hot)
    xs = rng.integers(0, width, n_hot)
    electrons[ys, xs] += rng.lognormal(np.log(1500.0), 1.0, n_hot) * exposure_scale
    pixels[ys, xs] = True
    return columns, pixels, n_col, n_hot


def add_satellite_trail(rng: np.random.Generator, electrons: np.ndarray, fwhm_px: float, sky_sigma_e: float):
    """Add a straight satellite trail across the detector.

    The trail has a Gaussian cross-section a little wider than the PSF
    (satellites are out of focus).

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Random numbers.
    electrons : `numpy.ndarray`
        Image in electrons; modified in place.
    fwhm_px : `float`
        PSF FWHM in pixels; the trail's sigma is 0.5-1.2 times it.
    sky_sigma_e : `float`
        Sky noise per pixel, e-; the trail's peak is a log-normal multiple of
        it (median 3).

    Returns
    -------
    trail : `numpy.ndarray`
        Boolean map of the pixels within 3 sigma of its centre line.
    """
    height, width = electrons.shape
    angle = rng.uniform(0, np.pi)
    x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
    sigma = fwhm_px * rng.uniform(0.5, 1.2)
    peak = sky_sigma_e * rng.lognormal(np.log(3.0), 0.8)
    yy, xx = np.mgrid[0:height, 0:width]
    dist = np.abs(-(xx - x0) * np.sin(angle) + (yy - y0) * np.cos(angle))
    near = dist < 5 * sigma
    electrons[near] += peak * np.exp(-0.5 * (dist[near] / sigma) ** 2)
    return dist < 3 * sigma


def interpolate_masked(image: np.ndarray, mask: np.ndarray, axis: int | None = None) -> None:
    """Repair masked pixels as ISR does, in place.

    Parameters
    ----------
    image : `numpy.ndarray`
        Image; modified in place.
    mask : `numpy.ndarray`
        Boolean map of the pixels to replace.
    axis : `int` or `None`, optional
        ``1``: linear interpolation between the nearest good pixels along
        rows; ``0``: along columns; `None`: the median of the good pixels of
        the 5x5 neighbourhood (0 where there is none).
    """
    if not mask.any():
        return
    if axis is None:
        good = np.where(mask, np.nan, image)
        padded = np.pad(good, 2, mode="edge")
        ys, xs = np.nonzero(mask)
        window = np.stack(
            [padded[ys + 2 + dy, xs + 2 + dx] for dy in (-2, -1, 0, 1, 2) for dx in (-2, -1, 0, 1, 2)]
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows are handled below
            val = np.nanmedian(window, axis=0)
        image[ys, xs] = np.where(np.isfinite(val), val, 0.0)
        return
    # Linear interpolation along rows between the nearest good pixels.
    moved = np.moveaxis(image, axis, -1)
    mmask = np.moveaxis(mask, axis, -1)
    idx = np.arange(moved.shape[-1])
    for r in np.flatnonzero(mmask.any(axis=-1)):
        good = ~mmask[r]
        if good.sum() >= 2:
            moved[r, ~good] = np.interp(idx[~good], idx[good], moved[r, good])


def expose(
    rng: np.random.Generator,
    model_njy: np.ndarray,
    *,
    preset: Preset,
    amps: Amplifiers,
    nJy_per_e: float,
    sky_e: float,
    background_residual_e: np.ndarray | float = 0.0,
    cosmic_rays: float = 0.0,
    satellite: bool = False,
    fwhm_px: float = 3.0,
    defect_rng: np.random.Generator | None = None,
    repair: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], Artifacts]:
    """Turn a noise-free model (nJy / pixel) into a calibrated single-epoch
    image with its variance and mask planes.

    Parameters
    ----------
    rng : `numpy.random.Generator`
        Noise, cosmic rays and satellites of this exposure.
    model_njy : `numpy.ndarray`
        Noise-free astrophysical image (background-free), nJy / pixel.
    preset : `~rbnodia.sim.presets.Preset`
        Full well, defect and cosmic-ray properties, exposure time.
    amps : `Amplifiers`
        Gains and read noises.
    nJy_per_e : `float`
        Calibration of this exposure.
    sky_e : `float`
        Mean sky level, e- / pixel.
    background_residual_e : `numpy.ndarray` or `float`
        Error of the background model subtracted by ISR, e- / pixel.
    cosmic_rays : `float`
        Expected number of cosmic rays.
    satellite : `bool`
        Add a satellite trail.
    fwhm_px : `float`
        PSF FWHM in pixels (the width of a satellite trail).
    defect_rng : `numpy.random.Generator`, optional
        Generator of the detector's (static) defects; none if omitted.
    repair : `bool`
        Interpolate over known defects and detected cosmic rays.

    Returns
    -------
    image, variance : `numpy.ndarray`
        Float32, nJy and nJy^2.
    mask : `dict` [`str`, `numpy.ndarray`]
        Boolean planes ``BAD``, ``SAT``, ``CR``, ``EDGE``, ``NO_DATA``,
        ``DETECTED``.
    artifacts : `Artifacts`
        What was added and what was repaired.
    """
    shape = model_njy.shape
    artifacts = Artifacts.empty(shape)
    expected = np.maximum(model_njy / np.float32(nJy_per_e), np.float32(0.0)) + np.float32(sky_e)
    electrons = rng.poisson(expected).astype(np.float32)
    del expected
    if defect_rng is not None:
        artifacts.bad_columns, artifacts.hot_pixels, artifacts.n_bad_columns, artifacts.n_hot_pixels = (
            add_defects(defect_rng, electrons, preset, preset.exposure_time / 90.0)
        )
    if cosmic_rays > 0:
        artifacts.cosmic_rays, artifacts.n_cosmic_rays = add_cosmic_rays(rng, electrons, preset, cosmic_rays)
    if satellite:
        artifacts.satellite = add_satellite_trail(rng, electrons, fwhm_px, np.sqrt(sky_e))
        artifacts.n_satellites = 1
    sat = bleed(electrons, preset.full_well)
    artifacts.saturated = sat
    electrons += rng.standard_normal(shape, dtype=np.float32) * amps.read_noise
    # Digitisation, then ISR: back to electrons with the (known) gains.
    measured_e = np.round(electrons / amps.gain) * amps.gain
    del electrons
    cal = np.float32(nJy_per_e)
    variance = (np.maximum(measured_e, np.float32(0.0)) + amps.read_noise**2) * cal**2
    image = (measured_e - np.float32(sky_e) - background_residual_e) * cal
    del measured_e
    mask = {name: np.zeros(shape, dtype=bool) for name in ("BAD", "SAT", "CR", "EDGE", "NO_DATA", "DETECTED")}
    mask["SAT"] = sat
    if repair:
        defects = artifacts.defects
        if defects.any():
            # The defect list knows most, not all, defects (new warm columns).
            labels, n = ndimage.label(defects, structure=np.ones((3, 3)))
            known = np.concatenate([[False], defect_rng.uniform(size=n) < preset.defect_mask_fraction])
            artifacts.defect_masked = known[labels]
            mask["BAD"] = artifacts.defect_masked.copy()
            interpolate_masked(image, artifacts.defect_masked, axis=1)
        if artifacts.cosmic_rays.any():
            # The CR finder catches most tracks (faint ones slip through).
            labels, n = ndimage.label(artifacts.cosmic_rays, structure=np.ones((3, 3)))
            found = np.concatenate([[False], rng.uniform(size=n) < preset.cosmic_ray_repair_fraction])
            cr = ndimage.binary_dilation(found[labels])
            artifacts.cr_repaired = cr
            mask["CR"] = cr
            interpolate_masked(image, cr, axis=None)
    return image.astype(np.float32), variance.astype(np.float32), mask, artifacts
