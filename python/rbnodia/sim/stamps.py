"""Labelled stamps from simulated detectors."""

from __future__ import annotations

__all__ = ["labelled_stamps_from_detector"]

import numpy as np

from ..core.preprocess import PixelImage
from ..core.stampset import LabelledStamps, cut_labelled_stamps


def labelled_stamps_from_detector(sim, stamp_size: int = 51) -> LabelledStamps:
    """Cut raw ``diff``, ``srch`` and ``tmpl`` stamps at every detection of
    a simulated detector, with its truth.

    Parameters
    ----------
    sim : `~rbnodia.sim.detector.SimulatedDetector`
        The simulated detector-visit.
    stamp_size : `int`
        Odd stamp width.

    Returns
    -------
    stamps : `~rbnodia.core.stampset.LabelledStamps`
        Rows follow ``sim.detections``; pixels off the image or without
        data (NO_DATA) are NaN.  ``tmpl`` is the warped, not PSF-matched,
        template, as in the DES autoscan stamps.
    """
    truth = sim.truth
    images = {
        "diff": PixelImage(sim.difference, sim.difference_mask.get("NO_DATA")),
        "srch": PixelImage(sim.science, sim.science_mask.get("NO_DATA")),
        "tmpl": PixelImage(sim.template, sim.template_mask.get("NO_DATA")),
    }
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
    return cut_labelled_stamps(
        images,
        np.asarray(sim.detections["x"], dtype=float),
        np.asarray(sim.detections["y"], dtype=float),
        ids=np.asarray(truth["id"], dtype=np.int64),
        labels=np.asarray(truth["label"], dtype=np.int8),
        family=np.asarray(truth["family"], dtype=str),
        mag=np.asarray(truth["mag"], dtype=np.float32),
        snr=np.asarray(truth["snr"], dtype=np.float32),
        size=stamp_size,
        meta=meta,
    )
