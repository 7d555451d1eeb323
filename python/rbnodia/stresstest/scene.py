"""One stress-test scene: a periodic patch seen twice (science and
template co-add), subtracted, searched, and cut into a labelled stamp
triplet.

A `Scene` holds the conditions (`~rbnodia.stresstest.settings.Conditions`),
*background* sources (fixed fluxes) and a *subject*: the family's object at
unit strength.  `run_scene` scales the subject so that its detection
significance hits the scene's target, using the linearity of warping and
subtraction: it runs the noise-free subject and the noisy background through
the pipeline separately, reads the aperture responses near the target, and
solves for the scale.  Noise families have no subject; their noise is
constrained instead (`rbnodia.stresstest.noise.constrained_increment`).
Then the final images are made (photon noise of the subject included, sky
added, science quantised), the sky is *estimated* and removed, and the real
pipeline runs: warp, subtraction, detection.  The detection nearest to the
target (within the scene's acceptance radius) becomes the stamp centre; if
there is none the scene is rejected and the caller draws another.
"""

from __future__ import annotations

__all__ = ["Components", "Scene", "SceneResult", "run_scene"]

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .detection import aperture_filter, detect
from .noise import (
    coadd_noise,
    constrained_increment,
    estimate_background,
    exposure_noise,
    quantise,
    robust_sigma,
)
from .profiles import FourierGrid
from .render import Galaxy, PointSource, render, transfer_function
from .settings import Conditions
from .subtraction import matching_kernel, subtract, warp_template


@dataclass
class Components:
    """Sources of one part of a scene, positions in the science frame.

    Template sources are given with their *science* flux when static (the
    template is rendered with the flux divided by the transparency).
    """

    science_points: list[PointSource] = field(default_factory=list)
    science_galaxies: list[Galaxy] = field(default_factory=list)
    template_points: list[PointSource] = field(default_factory=list)
    template_galaxies: list[Galaxy] = field(default_factory=list)
    science_artifact: np.ndarray | None = None
    """Electrons added to the science exposure without the optics (cosmic
    rays, defects, trails)."""

    def add_static(self, points: Sequence[PointSource] = (), galaxies: Sequence[Galaxy] = ()) -> None:
        """Add sources present identically in science and template.

        Parameters
        ----------
        points : `~collections.abc.Sequence` [`PointSource`], optional
            Point sources.
        galaxies : `~collections.abc.Sequence` [`Galaxy`], optional
            Galaxies.
        """
        self.science_points.extend(points)
        self.template_points.extend(points)
        self.science_galaxies.extend(galaxies)
        self.template_galaxies.extend(galaxies)


@dataclass
class Scene:
    """Everything needed to make one labelled stamp.

    Attributes
    ----------
    family : `str`
        Family name.
    label : `int`
        0 real, 1 bogus.
    conditions : `Conditions`
        Images' conditions.
    background : `Components`
        Other sources, at their own fluxes.
    subject : `Components`
        The family's object at unit strength (empty for noise families).
    target : `tuple` [`float`, `float`]
        Where the family's detection is expected (pixels).
    accept_radius : `float`
        Largest distance (pixels) of the accepted detection from ``target``.
    target_snr : `float`
        Detection significance the subject is scaled to (noise families:
        the value the noise is constrained to).
    excursion : `bool`
        Noise family: constrain the noise at ``target`` instead of adding a
        subject.
    details : `dict`
        Family parameters recorded in the truth table.
    """

    family: str
    label: int
    conditions: Conditions
    background: Components
    subject: Components
    target: tuple[float, float]
    accept_radius: float
    target_snr: float
    excursion: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SceneResult:
    """A stamp triplet and what was measured on it.

    Attributes
    ----------
    diff, srch, tmpl : `numpy.ndarray`
        ``(size, size)`` float32: difference, sky-subtracted science, and the
        warped template in science flux units (not PSF-matched).
    snr : `float`
        Detection significance.
    scale : `float`
        Strength the subject was given (electrons: the transient's flux for
        reals; NaN for noise families).
    offset : `float`
        Distance of the detection from the target (pixels).
    """

    diff: np.ndarray
    srch: np.ndarray
    tmpl: np.ndarray
    snr: float
    scale: float
    offset: float


class _Pipeline:
    """The linear part of the image processing of one scene."""

    def __init__(self, grid: FourierGrid, conditions: Conditions) -> None:
        self.grid = grid
        self.c = conditions
        self.photometric_scale = conditions.transparency * (1.0 - conditions.flux_scale_error)
        self.kernel = matching_kernel(
            grid, conditions.psf_science_estimate, conditions.psf_template_estimate, self.photometric_scale
        )
        self.aperture = aperture_filter(grid, conditions.psf_science_estimate.fwhm)
        self.science_transfer = transfer_function(grid, conditions.psf_science)
        self.template_transfer = transfer_function(grid, conditions.psf_template)
        self.warp_shift = (
            conditions.grid_offset[0] + conditions.registration_error[0],
            conditions.grid_offset[1] + conditions.registration_error[1],
        )

    def science(self, part: Components) -> np.ndarray:
        image = render(self.grid, self.science_transfer, part.science_points, part.science_galaxies)
        return image if part.science_artifact is None else image + part.science_artifact

    def template(self, part: Components) -> np.ndarray:
        dx, dy = self.c.grid_offset
        return render(
            self.grid,
            self.template_transfer,
            part.template_points,
            part.template_galaxies,
            dx=-dx,
            dy=-dy,
            flux_factor=1.0 / self.c.transparency,
        )

    def warp(self, template: np.ndarray) -> np.ndarray:
        return warp_template(template, *self.warp_shift)

    def difference(self, science: np.ndarray, warped_template: np.ndarray) -> np.ndarray:
        return subtract(self.grid, science, warped_template, self.kernel)

    def summed(self, difference: np.ndarray) -> np.ndarray:
        """Aperture sums (the detection statistic before normalisation)."""
        return self.grid.to_image(self.grid.to_transform(difference) * self.aperture)


def _periodic_distance(size: int, x: float, y: float) -> np.ndarray:
    """Distance of every pixel from ``(x, y)`` on the periodic patch."""
    index = np.arange(size)
    dx = (index - x + size / 2.0) % size - size / 2.0
    dy = (index - y + size / 2.0) % size - size / 2.0
    return np.hypot(dx[None, :], dy[:, None])


def _subject_scale(scene: Scene, pipe: _Pipeline, science: np.ndarray, template: np.ndarray) -> float:
    """Strength that brings the subject's aperture response near the target
    to ``target_snr`` sigma of the noisy background's.
    """
    unit = pipe.summed(pipe.difference(pipe.science(scene.subject), pipe.warp(pipe.template(scene.subject))))
    noisy = pipe.summed(pipe.difference(science, pipe.warp(template)))
    median, sigma = robust_sigma(noisy)
    region = _periodic_distance(pipe.grid.size, *scene.target) <= scene.accept_radius
    responses = np.where(region, unit, -np.inf)
    peak = np.unravel_index(int(np.argmax(responses)), unit.shape)
    if not unit[peak] > 0 or not sigma > 0:
        return math.nan
    return float((median + scene.target_snr * sigma - noisy[peak]) / unit[peak])


def _constrain(
    scene: Scene, pipe: _Pipeline, science: np.ndarray, warped: np.ndarray, template_noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Condition the science and warped-template noise so the aperture
    statistic at the target equals ``target_snr`` sigma.
    """
    summed = pipe.summed(pipe.difference(science, warped))
    median, sigma = robust_sigma(summed)
    x, y = (int(round(v)) % pipe.grid.size for v in scene.target)
    deficit = median + scene.target_snr * sigma - summed[y, x]
    warped_variance = float(np.var(pipe.warp(template_noise)))
    delta_science, delta_template = constrained_increment(
        pipe.grid,
        x,
        y,
        deficit,
        [(pipe.aperture, scene.conditions.science_variance), (-pipe.aperture * pipe.kernel, warped_variance)],
    )
    return science + delta_science, warped + delta_template


def _cut(images: list[np.ndarray], x: int, y: int, stamp_size: int) -> list[np.ndarray]:
    size = images[0].shape[0]
    centre, half = size // 2, stamp_size // 2
    return [
        np.roll(image, (centre - y, centre - x), axis=(0, 1))[
            centre - half : centre + half + 1, centre - half : centre + half + 1
        ].astype(np.float32)
        for image in images
    ]


def run_scene(
    scene: Scene, rng: np.random.Generator, grid: FourierGrid, stamp_size: int = 51
) -> SceneResult | None:
    """Make the images of ``scene``, detect, and cut the stamps.

    Parameters
    ----------
    scene : `Scene`
        The scene.
    rng : `numpy.random.Generator`
        Random numbers.
    grid : `FourierGrid`
        The periodic patch.
    stamp_size : `int`, optional
        Stamp size in pixels.

    Returns
    -------
    result : `SceneResult` or `None`
        `None` when no detection lies within the acceptance radius of the
        target (or the subject cannot reach it); the caller redraws.
    """
    if stamp_size > grid.size:
        raise ValueError(f"Stamp size {stamp_size} exceeds the patch size {grid.size}.")
    c = scene.conditions
    setting = c.setting
    pipe = _Pipeline(grid, c)
    science = pipe.science(scene.background)
    template = pipe.template(scene.background)
    science = science + exposure_noise(science + c.sky_science, setting.read_noise, rng)
    template_noise = coadd_noise(template + c.sky_template, c.epochs, setting.read_noise, rng)
    template = template + template_noise
    scale = math.nan
    if not scene.excursion:
        scale = _subject_scale(scene, pipe, science, template)
        if not scale > 0:
            return None
        extra_science = scale * pipe.science(scene.subject)
        extra_template = scale * pipe.template(scene.subject)
        science = science + extra_science + exposure_noise(extra_science, 0.0, rng)
        template = template + extra_template + coadd_noise(extra_template, c.epochs, 0.0, rng)
    raw_science = quantise(science + c.sky_science, setting.gain)
    raw_template = template + c.sky_template
    science = raw_science - estimate_background(raw_science)
    warped = pipe.warp(raw_template - estimate_background(raw_template))
    if scene.excursion:
        science, warped = _constrain(scene, pipe, science, warped, template_noise)
    difference = pipe.difference(science, warped)
    found = detect(grid, difference, c.psf_science_estimate.fwhm)
    index = found.nearest(*scene.target, scene.accept_radius, grid.size)
    if index is None:
        return None
    x, y = int(found.x[index]), int(found.y[index])
    diff, srch, tmpl = _cut([difference, science, warped * pipe.photometric_scale], x, y, stamp_size)
    offset = float(_periodic_distance(grid.size, *scene.target)[y, x])
    return SceneResult(diff, srch, tmpl, float(found.snr[index]), scale, offset)
