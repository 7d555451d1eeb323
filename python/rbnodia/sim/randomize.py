"""Domain randomization of training patches: nuisance parameters drawn
over ranges much wider than a preset's nominal values, so that a network
cannot learn one simulator's (or one survey's) fingerprints.

`DOMAIN_RANDOMIZATION` lists every randomized preset field with how it is
drawn:

``("times", lo, hi)``
    The preset's value times a factor drawn log-uniformly in ``[lo, hi]``.
``("value", lo, hi)``
    A value drawn uniformly in ``[lo, hi]``.
``("integer", lo, hi)``
    An integer drawn log-uniformly in ``[lo, hi]``.
``("probability", p)``
    ``True`` with probability ``p``.
``("choice", options)``
    One of ``options``, uniformly.

``sky_offset_mag`` (``("value", lo, hi)``) shifts the dark-sky brightness
of every band (negative: brighter sky, moonlight).

Fields that shape the static sky and template are drawn once per patch sky
(shared by its visits, so the template is rendered once); those in
`VISIT_RANDOMIZED`, which only the science exposure reads, per visit.
"""

from __future__ import annotations

__all__ = ["DOMAIN_RANDOMIZATION", "VISIT_RANDOMIZED", "randomized_options"]

from typing import Any

import numpy as np

from .presets import Preset
from .template import SCIENCE_ONLY_FIELDS

DOMAIN_RANDOMIZATION: dict[str, tuple] = {
    # Seeing and its ratio between science and template.
    "seeing_median": ("times", 0.7, 1.5),
    "template_seeing_factor": ("value", 0.6, 1.0),
    "psf_model": ("choice", ("kolmogorov", "moffat")),
    "moffat_beta": ("value", 2.5, 5.0),
    "optics_fwhm": ("times", 0.5, 1.8),
    "psf_ellipticity": ("times", 0.5, 3.0),
    # Sky level and template depth.
    "sky_offset_mag": ("value", -1.5, 0.3),
    "read_noise": ("times", 0.7, 1.5),
    "template_n_coadd": ("integer", 2, 60),
    "template_noise_correlation": ("value", 0.0, 1.2),
    # Calibration and registration.
    "flux_scale_error": ("value", 0.01, 0.15),
    "astrometric_error_arcsec": ("times", 0.3, 4.0),
    "astrometric_gradient_arcsec": ("times", 0.3, 3.0),
    # Per visit: PSF matching, noise model and background.
    "kernel_width_error": ("value", 0.0, 0.06),
    "kernel_shape_error": ("value", 0.0, 0.04),
    "psf_shape_variation": ("value", 0.0, 0.05),
    "variance_underestimate": ("value", 0.0, 0.35),
    "background_error": ("value", 0.0, 0.15),
    "convolve_science": ("probability", 0.3),
    # Detection filter: matched, or fixed and so broader or narrower.
    "detection_filter_factor": ("times", 0.6, 1.8),
}
"""Randomized fields and their ranges (see the module docstring)."""

VISIT_RANDOMIZED = frozenset(
    {
        "kernel_width_error",
        "kernel_shape_error",
        "psf_shape_variation",
        "variance_underestimate",
        "background_error",
        "convolve_science",
        "detection_filter_factor",
    }
)
"""Fields drawn per visit (all in `~rbnodia.sim.template.SCIENCE_ONLY_FIELDS`)."""

if not VISIT_RANDOMIZED <= SCIENCE_ONLY_FIELDS:  # a per-visit field would defeat the template cache
    raise ImportError(
        f"Per-visit fields {sorted(VISIT_RANDOMIZED - SCIENCE_ONLY_FIELDS)} shape the template."
    )


def _draw(spec: tuple, current: Any, rng: np.random.Generator) -> Any:
    kind = spec[0]
    if kind == "times":
        return current * float(np.exp(rng.uniform(np.log(spec[1]), np.log(spec[2]))))
    if kind == "value":
        return float(rng.uniform(spec[1], spec[2]))
    if kind == "integer":
        return int(np.round(np.exp(rng.uniform(np.log(spec[1]), np.log(spec[2])))))
    if kind == "probability":
        return bool(rng.uniform() < spec[1])
    if kind == "choice":
        return spec[1][int(rng.integers(len(spec[1])))]
    raise ValueError(f"Unknown randomization kind {kind!r}.")


def randomized_options(preset: Preset, rng: np.random.Generator, *, per: str) -> dict[str, Any]:
    """Draw the preset overrides of one patch sky or one visit.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        Nominal values.
    rng : `numpy.random.Generator`
        Random numbers.
    per : `str`
        ``sky`` (fields not in `VISIT_RANDOMIZED`) or ``visit``.

    Returns
    -------
    options : `dict` [`str`, `~typing.Any`]
        Preset field overrides (``sky_offset_mag`` becomes
        ``sky_brightness``).

    Raises
    ------
    ValueError
        Raised if ``per`` is neither ``sky`` nor ``visit``.
    """
    if per not in ("sky", "visit"):
        raise ValueError(f"per must be 'sky' or 'visit', not {per!r}.")
    options: dict[str, Any] = {}
    for name, spec in DOMAIN_RANDOMIZATION.items():
        if (name in VISIT_RANDOMIZED) != (per == "visit"):
            continue
        if name == "sky_offset_mag":
            offset = _draw(spec, 0.0, rng)
            options["sky_brightness"] = {b: m + offset for b, m in preset.sky_brightness.items()}
            continue
        options[name] = _draw(spec, getattr(preset, name), rng)
    return options
