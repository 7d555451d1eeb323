"""Per-call run options of `~rbnodia.sim.simulate_detector` (the options
that are not `~rbnodia.sim.presets.Preset` fields).
"""

from __future__ import annotations

__all__ = ["RUN_OPTIONS", "split_options"]

from typing import Any

RUN_OPTIONS: dict[str, Any] = {
    "band": None,
    "blank": False,
    "inject": True,
    "artifacts": True,
    "n_transients": None,
    "threshold": 5.0,
    "match_radius": 2.0,
    "kernel_spatial_order": None,
    "kernel_candidates": "auto",
    "inject_margin": 8,
    "bright_stars": 0.0,
    "max_stamp_half": 400,
    "bright_galaxies": 0.0,
    "noise_peaks": 0.0,
}
"""Run options and their defaults (see `~rbnodia.sim.simulate_detector`)."""


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split options into run options and preset field overrides.

    Parameters
    ----------
    options : `dict` [`str`, `~typing.Any`]
        The ``**options`` of `~rbnodia.sim.simulate_detector`.

    Returns
    -------
    run : `dict` [`str`, `~typing.Any`]
        Every run option of `RUN_OPTIONS`, defaults filled in.
    overrides : `dict` [`str`, `~typing.Any`]
        The other options (checked later as preset fields).
    """
    run = dict(RUN_OPTIONS)
    overrides = {}
    for key, value in options.items():
        if key in RUN_OPTIONS:
            run[key] = value
        else:
            overrides[key] = value
    return run, overrides
