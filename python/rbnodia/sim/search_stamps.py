"""Labelled stamps at the candidates of the search with no difference image.

A network that scores the search's candidates (`rbnodia.tasks.search`)
should learn from what the search finds: stamps centred where
`rbnodia.core.search.find_candidates` puts them, with the population of
bogus candidates it produces.  `search_stamps_from_detector` runs the
search on a simulated detector, as the task does, and labels each
candidate from the simulator's truth:

1. a candidate paired (one to one, closest first, within ``match_radius``)
   with an injected transient is real, with the injection's family,
   magnitude and expected S/N;
2. other candidates within ``match_radius`` of an injection are dropped
   (a second peak on the same transient is neither real nor bogus);
3. a candidate paired with a difference-image detection takes that
   detection's label and family (cosmic rays, residuals, variable stars,
   ...);
4. the rest are bogus of family ``search_peak``: a peak of the unmatched
   flux excess that difference imaging does not detect (noise, the seeing
   difference around static stars and galaxies).
"""

from __future__ import annotations

__all__ = ["SEARCH_PEAK_FAMILY", "search_stamps_from_detector"]

import numpy as np

from ..core.search import SEARCH_MASK_PLANES, find_candidates
from ..core.stampset import LabelledStamps, cut_labelled_stamps
from .stamps import detector_images, stamps_meta
from .truth import match_positions

SEARCH_PEAK_FAMILY = "search_peak"
"""Family of the bogus candidates no difference-image detection explains."""


def _search_bad(sim) -> np.ndarray:
    bad = np.zeros(sim.shape, dtype=bool)
    for mask in (sim.science_mask, sim.template_mask):
        for plane in SEARCH_MASK_PLANES:
            if plane in mask:
                bad |= mask[plane]
    return bad


def search_stamps_from_detector(sim, stamp_size: int = 51, match_radius: float = 2.5,
                                **search) -> tuple[LabelledStamps, np.ndarray, np.ndarray]:
    """Run the search on a simulated detector and cut labelled stamps at
    its candidates.

    Parameters
    ----------
    sim : `~rbnodia.sim.detector.SimulatedDetector`
        The detector-visit to search, with its truth.
    stamp_size : `int`
        Stamp width in pixels (odd).
    match_radius : `float`
        Pixels between a candidate and the injection or detection it is.
    **search
        Options of `~rbnodia.core.search.find_candidates`.

    Returns
    -------
    stamps : `~rbnodia.core.stampset.LabelledStamps`
        One row per kept candidate (strongest excess first), labelled as
        the module docstring says; ``diff`` is cut from the simulator's
        difference image for diagnostics only (the search never reads it).
    x, y : `numpy.ndarray`
        The candidates' pixel positions, row by row.
    """
    bad = _search_bad(sim)
    found = find_candidates(sim.science, sim.science_variance, sim.template, sim.template_variance, bad,
                            **search)
    x, y = found.x.astype(float), found.y.astype(float)
    n = len(found)
    label = np.ones(n, dtype=np.int8)
    family = np.full(n, SEARCH_PEAK_FAMILY, dtype="U24")
    mag = np.full(n, np.nan, dtype=np.float32)
    snr = found.significance.astype(np.float32)
    keep = np.ones(n, dtype=bool)

    injections = sim.meta["injections"]
    ix, iy = np.asarray(injections["x"], float), np.asarray(injections["y"], float)
    to_injection = match_positions(x, y, ix, iy, match_radius)
    paired = to_injection >= 0
    label[paired] = 0
    family[paired] = np.asarray(injections["family"], dtype=str)[to_injection[paired]]
    mag[paired] = np.asarray(injections["mag"], float)[to_injection[paired]]
    snr[paired] = np.asarray(injections["snr_expected"], float)[to_injection[paired]]
    if len(ix):
        distance = np.hypot(x[:, None] - ix[None, :], y[:, None] - iy[None, :]).min(axis=1)
        keep &= paired | (distance > match_radius)

    rest = np.flatnonzero(keep & ~paired)
    truth = sim.truth
    to_detection = match_positions(x[rest], y[rest], np.asarray(sim.detections["x"], float),
                                   np.asarray(sim.detections["y"], float), match_radius)
    hit = rest[to_detection >= 0]
    rows = to_detection[to_detection >= 0]
    label[hit] = np.asarray(truth["label"], dtype=np.int8)[rows]
    family[hit] = np.asarray(truth["family"], dtype=str)[rows]
    mag[hit] = np.asarray(truth["mag"], float)[rows]
    snr[hit] = np.asarray(truth["snr"], float)[rows]

    index = np.flatnonzero(keep)
    stamps = cut_labelled_stamps(detector_images(sim), x[index], y[index],
                                 ids=np.arange(len(index), dtype=np.int64), labels=label[index],
                                 family=family[index], mag=mag[index], snr=snr[index], size=stamp_size,
                                 meta=stamps_meta(sim, candidates="search"))
    return stamps, x[index], y[index]
