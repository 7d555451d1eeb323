"""An independent stress test for real/bogus models.

A second way to make labelled ``(diff, srch, tmpl)`` stamps that shares as
little as possible with the training simulator `rbnodia.sim` (and never
imports it), and a report of how the models generalise to it.  Sets made
here must never be used for training or model selection.

What differs from `rbnodia.sim` (see ``doc/stress_test.rst``):

- PSFs: Moffat with random beta, double Gaussian with an offset halo, and
  an obscured aperture's diffraction with jitter (`rbnodia.stresstest.psf`),
  drawn in Fourier space with numpy and scipy (no GalSim);
- galaxies: exponential disks with Moffat bulges;
- noise: Poisson photons, read noise and ADU quantisation with a
  sigma-clipped (astropy) sky estimate, correlated by a cubic B-spline warp
  and the matching kernel; threshold noise excursions made by constrained
  realisations (Hoffman & Ribak 1991);
- template: a co-add of 1-60 epochs on an offset grid, warped with a cubic
  B-spline (scipy.ndimage), not Lanczos-3;
- subtraction: a Wiener-regularised Fourier ratio of the *estimated* PSFs,
  cut to a tapered disk (no Alard-Lupton fit);
- detection: top-hat aperture sums, empirical (MAD) noise, scipy.ndimage
  labelling and local peaks (no SEP, no matched filter);
- families: 13, including variable stars as REAL (Rubin convention).

Modules: `profiles` (Fourier transforms of light profiles), `psf`, `render`,
`artifacts`, `noise`, `subtraction`, `detection`, `settings`, `scene`,
`families`, `generator` (sets on disk), `report`, `plots`, `progress`.
"""

from .families import FAMILIES, Family, build_scene, family_names
from .generator import GENERATOR_VERSION, ensure_stress_set, load_stress_set, make_stress_set
from .report import (
    format_markdown,
    format_rst,
    report_tables,
    run_stress_report,
    score_stamps,
    summarise_scores,
)
from .scene import Scene, SceneResult, run_scene
from .settings import SETTINGS, ObservingSetting, get_setting

__all__ = [
    "FAMILIES",
    "GENERATOR_VERSION",
    "SETTINGS",
    "Family",
    "ObservingSetting",
    "Scene",
    "SceneResult",
    "build_scene",
    "ensure_stress_set",
    "family_names",
    "format_markdown",
    "format_rst",
    "get_setting",
    "load_stress_set",
    "make_stress_set",
    "report_tables",
    "run_scene",
    "run_stress_report",
    "score_stamps",
    "summarise_scores",
]
