"""Training patches: small simulated sub-images whose detections become
labelled stamps.

A patch is a ``patch_size`` squared sub-image simulated with the same code
as a full detector (`~rbnodia.sim.simulate_detector`), with the kernel fitted
on synthetic bright stars (``kernel_candidates="psf"``: what a
whole-detector fit converges to).  Each patch sky (static sky, band and
template) is seen ``visits_per_patch`` times, as a survey revisits a field,
which also lets a worker reuse the rendered template.

Small patches hold too few artifacts, so rates are boosted over a real
detector's (`TRAINING_BOOST`, `TRAINING_FIXED`, extra bright stars and
galaxies): each stamp still looks like the real thing, only the family mix
is enriched.  With ``domain_randomization`` the nuisance parameters are
drawn over wide ranges (`rbnodia.sim.randomize`).
"""

from __future__ import annotations

__all__ = [
    "BOGUS_PER_PATCH",
    "HOST_RELATIVE_FRACTION",
    "HOST_WEIGHT_POWER",
    "NOISE_PEAKS",
    "SKY_FIELDS",
    "TRAINING_BOOST",
    "TRAINING_FIXED",
    "patch_options",
    "simulate_patch_stamps",
]

from typing import Any

import numpy as np

from ..core.stampset import LabelledStamps
from .presets import Preset, get_preset
from .randomize import randomized_options

TRAINING_BOOST: dict[str, tuple[float, float]] = {
    "star_density": (1.0, 3.0),
    "cosmic_ray_rate": (5.0, 40.0),
    "hot_pixels": (0.0, 20.0),
    "bad_columns": (0.0, 15.0),
    "astrometric_error_arcsec": (0.5, 2.0),
    "variable_star_fraction": (3.0, 30.0),
    "variable_star_amplitude": (1.0, 4.0),
}
"""Per-patch ranges of multipliers of the preset values (drawn log-uniformly,
or uniformly when the range starts at 0): each training patch is a
different "troubled detector", so that small patches yield enough bogus
detections of every family.  The variable-star amplitude spans the
populations a survey sees (the presets' 0.3 mag rms up to 1.2 mag: RR Lyrae
and Cepheids vary by 0.3-1.2 mag, Miras and eclipsing binaries by more),
so that a star that brightened by far more than any flux-scale error is
learnt as a variable, not as a residual."""

TRAINING_FIXED: dict[str, float] = {
    "satellite_probability": 0.15,
    "template_edge_probability": 0.2,
}
"""Per-patch probabilities of the rare, large artifacts."""

HOST_WEIGHT_POWER: tuple[float, float] = (0.0, 1.0)
"""Range of the per-patch ``host_weight_power`` (drawn uniformly): from hosts
chosen uniformly among galaxies, so that most extra bright galaxies appear
without a transient and leave only subtraction residuals, to hosts chosen in
proportion to their light, as supernova rates follow stellar mass, so that
faint transients on bright galaxy cores are common enough to be learnt
apart from those residuals."""

HOST_RELATIVE_FRACTION: tuple[float, float] = (0.0, 0.8)
"""Range of the per-patch ``host_relative_fraction`` (drawn uniformly): the
fraction of hosted injections whose magnitude follows their host's
(`rbnodia.sim.scene.HOST_RELATIVE_MAG`), which puts faint transients on
bright galaxy cores more often than magnitudes drawn uniformly between the
depth-relative limits do."""

NOISE_PEAKS: tuple[float, float] = (0.0, 8.0)
"""Range of the per-patch mean number of noise excursions planted just
above the threshold per 256 x 256 pixels (drawn uniformly;
`rbnodia.sim.noise_peaks`): a matched filter finds a true 5-sigma noise
peak only about once per few full detectors, so patches would otherwise
teach nothing of the noise detections that real surveys make."""

BOGUS_PER_PATCH = 14.0
"""Bogus detections (stamps fully inside) per 256 x 256 training patch that
the injections are scaled to: the mean number of injections is
``BOGUS_PER_PATCH (patch / 256)^2 real_fraction / (1 - real_fraction) / 0.8``
(0.8: fraction of injections detected with a complete stamp), which keeps
the discarded surplus of either class small."""

SKY_FIELDS = (
    "star_density",
    "astrometric_error_arcsec",
    "variable_star_fraction",
    "variable_star_amplitude",
    "hot_pixels",
    "bad_columns",
    "bright_stars",
    "bright_galaxies",
    "band",
)
"""Boosted options that belong to a patch sky (shared by its visits)."""


def _boosted(
    preset: Preset, patch_size: int, real_fraction: float, rng: np.random.Generator
) -> dict[str, Any]:
    """Draw the boosted artifact rates, extra bright sources, injections and
    the fixed run options of one training patch.
    """
    opts: dict[str, Any] = {}
    for name, (lo, hi) in TRAINING_BOOST.items():
        factor = rng.uniform(lo, hi) if lo <= 0 else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        opts[name] = getattr(preset, name) * factor
    opts["variable_star_fraction"] = min(opts["variable_star_fraction"], 1.0)
    opts["cosmic_ray_repair_fraction"] = float(rng.uniform(0.3, 0.9))
    opts.update(TRAINING_FIXED)
    area = (patch_size / 256.0) ** 2
    opts["bright_stars"] = float(rng.uniform(0.0, 16.0)) * area
    opts["bright_galaxies"] = float(rng.uniform(0.0, 40.0)) * area
    opts["band"] = preset.bands[int(rng.integers(len(preset.bands)))]
    opts["image_size"] = (patch_size, patch_size)
    opts["kernel_candidates"] = "psf"
    opts["max_stamp_half"] = patch_size // 2
    opts["dither_arcsec"] = min(preset.dither_arcsec, 1.0)
    opts["host_weight_power"] = float(rng.uniform(*HOST_WEIGHT_POWER))
    opts["noise_peaks"] = float(rng.uniform(*NOISE_PEAKS)) * area
    ratio = real_fraction / max(1.0 - real_fraction, 1e-3)
    mean = float(np.clip(BOGUS_PER_PATCH * area * ratio / 0.8, 0.0, 20.0 * area))
    opts["n_transients"] = int(rng.poisson(mean))
    opts["host_relative_fraction"] = float(rng.uniform(*HOST_RELATIVE_FRACTION))
    return opts


def patch_options(
    preset: Preset,
    index: int,
    *,
    seed: int,
    patch_size: int,
    real_fraction: float,
    visits_per_patch: int,
    domain_randomization: bool,
) -> dict[str, Any]:
    """Draw the simulator options of one training patch.

    The options are per-visit draws, with the patch sky's fields
    (`SKY_FIELDS`, and the randomized fields that shape the template)
    drawn once per ``visits_per_patch`` consecutive indices.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Nominal preset (the boosted rates multiply its values).
    index : `int`
        Patch index.
    seed : `int`
        Master seed; the options are deterministic in ``seed`` and
        ``index``.
    patch_size : `int`
        Patch width and height, pixels.
    real_fraction : `float`
        Fraction of real stamps wanted (scales the number of injections,
        `BOGUS_PER_PATCH`).
    visits_per_patch : `int`
        Consecutive patches that share a sky.
    domain_randomization : `bool`
        Draw nuisance parameters over wide ranges (`rbnodia.sim.randomize`).

    Returns
    -------
    options : `dict` [`str`, `~typing.Any`]
        Options of `~rbnodia.sim.simulate_detector`.
    """
    sky = index // visits_per_patch
    opts = _boosted(preset, patch_size, real_fraction, np.random.default_rng([seed, index, 77]))
    sky_opts = _boosted(preset, patch_size, real_fraction, np.random.default_rng([seed, sky, 76]))
    for name in SKY_FIELDS:
        opts[name] = sky_opts[name]
    if domain_randomization:
        opts.update(randomized_options(preset, np.random.default_rng([seed, sky, 78]), per="sky"))
        opts.update(randomized_options(preset, np.random.default_rng([seed, index, 79]), per="visit"))
        # Randomized multipliers apply on top of the boosted rate.
        opts["astrometric_error_arcsec"] = sky_opts["astrometric_error_arcsec"] * (
            opts.get("astrometric_error_arcsec", preset.astrometric_error_arcsec)
            / preset.astrometric_error_arcsec
        )
    return opts


def simulate_patch_stamps(
    index: int,
    *,
    preset: str | Preset,
    seed: int,
    patch_size: int = 320,
    stamp_size: int = 51,
    real_fraction: float = 0.5,
    visits_per_patch: int = 8,
    domain_randomization: bool = True,
    candidates: str = "dia",
    **options,
) -> LabelledStamps:
    """Simulate one training patch and cut its labelled stamps.

    Parameters
    ----------
    index : `int`
        Patch index; patches ``k visits_per_patch ... (k + 1)
        visits_per_patch - 1`` share a sky.
    preset : `str` or `~rbnodia.sim.presets.Preset`
        ``"des"``, ``"lsst"`` or a preset.
    seed : `int`
        Master seed; the stamps are deterministic in ``seed`` and ``index``.
    patch_size : `int`
        Patch width and height, pixels.
    stamp_size : `int`
        Stamp width and height, pixels.
    real_fraction : `float`
        Scales the number of injections.
    visits_per_patch : `int`
        Consecutive patches that share a sky.
    domain_randomization : `bool`
        Draw nuisance parameters over wide ranges (`rbnodia.sim.randomize`).
    candidates : `str`
        Where stamps are cut: ``"dia"``, at the difference-image detections
        (`rbnodia.sim.stamps`), or ``"search"``, at the candidates of the
        search with no difference image (`rbnodia.sim.search_stamps`).
    **options
        Extra simulator options (override the drawn ones).

    Returns
    -------
    stamps : `~rbnodia.core.stampset.LabelledStamps`
        Every detection (or candidate) whose stamp lies fully inside the
        patch; ids are ``index * 1000 + n``.

    Raises
    ------
    ValueError
        If ``candidates`` is neither ``"dia"`` nor ``"search"``.
    """
    from .detector import simulate_detector
    from .search_stamps import search_stamps_from_detector
    from .stamps import labelled_stamps_from_detector

    if candidates not in ("dia", "search"):
        raise ValueError(f"candidates must be 'dia' or 'search', got {candidates!r}.")
    preset = get_preset(preset)
    opts = patch_options(
        preset,
        index,
        seed=seed,
        patch_size=patch_size,
        real_fraction=real_fraction,
        visits_per_patch=visits_per_patch,
        domain_randomization=domain_randomization,
    )
    opts.update(options)
    half = stamp_size // 2
    sim = simulate_detector(
        preset,
        visit=index + 1,
        detector=index // visits_per_patch,
        seed=seed,
        inject_margin=half + 2,
        **opts,
    )
    if candidates == "search":
        stamps, x, y = search_stamps_from_detector(sim, stamp_size)
    else:
        stamps = labelled_stamps_from_detector(sim, stamp_size)
        x, y = np.asarray(sim.detections["x"]), np.asarray(sim.detections["y"])
    inside = (x >= half) & (x <= patch_size - 1 - half) & (y >= half) & (y <= patch_size - 1 - half)
    stamps = stamps.subset(inside)
    stamps.id = np.int64(index) * 1000 + np.arange(len(stamps), dtype=np.int64)
    return stamps
