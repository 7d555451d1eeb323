"""Labelled stamps from simulated detectors."""

from __future__ import annotations

__all__ = ["labelled_stamps_from_detector"]

import numpy as np

from ..core.stamps import cut_stamps
from ..core.stampset import LabelledStamps


def labelled_stamps_from_detector(sim, stamp_size: int = 51) -> LabelledStamps:
    """Raw ``diff``, ``srch`` and ``tmpl`` stamps at every detection of a
    simulated detector, with its truth.

    Parameters
    ----------
    sim : `~rbnodia.sim.SimulatedDetector`
    stamp_size : `int`
        Odd stamp width.

    Returns
    -------
    stamps : `~rbnodia.core.LabelledStamps`
        Rows follow ``sim.detections``; pixels off the image or without
        data (NO_DATA) are NaN.  ``tmpl`` is the warped, not PSF-matched,
        template, as in the DES autoscan stamps.
    """
    x = np.asarray(sim.detections["x"], dtype=float)
    y = np.asarray(sim.detections["y"], dtype=float)
    diff = cut_stamps(sim.difference, x, y, stamp_size, bad=sim.difference_mask.get("NO_DATA"))
    srch = cut_stamps(sim.science, x, y, stamp_size, bad=sim.science_mask.get("NO_DATA"))
    tmpl = cut_stamps(sim.template, x, y, stamp_size, bad=sim.template_mask.get("NO_DATA"))
    truth = sim.truth
    meta = {
        "simulator": "rbnodia.sim",
        "preset": sim.meta.get("preset"),
        "seed": sim.meta.get("seed"),
        "instrument": sim.instrument,
        "visit": sim.visit,
        "detector": sim.detector,
        "band": sim.band,
        "label_convention": "0 = real, 1 = bogus (DES)",
    }
    return LabelledStamps(
        diff=diff.pixels,
        srch=srch.pixels,
        tmpl=tmpl.pixels,
        label=np.asarray(truth["label"], dtype=np.int8),
        id=np.asarray(truth["id"], dtype=np.int64),
        family=np.asarray(truth["family"], dtype=str),
        mag=np.asarray(truth["mag"], dtype=np.float32),
        snr=np.asarray(truth["snr"], dtype=np.float32),
        meta=meta,
    )
