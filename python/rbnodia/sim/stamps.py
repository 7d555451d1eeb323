"""Labelled stamps from simulated detectors."""

from __future__ import annotations

__all__ = ["detector_images", "labelled_stamps_from_detector", "stamps_meta"]

import numpy as np

from ..core.preprocess import PixelImage
from ..core.stampset import LabelledStamps, cut_labelled_stamps


def detector_images(sim) -> dict[str, PixelImage]:
    """Return the ``diff``, ``srch`` and ``tmpl`` images of a simulated
    detector, their NO_DATA pixels unusable.

    Parameters
    ----------
    sim : `~rbnodia.sim.detector.SimulatedDetector`
        The simulated detector-visit.

    Returns
    -------
    images : `dict` [`str`, `~rbnodia.core.PixelImage`]
        ``tmpl`` is the warped, not PSF-matched, template.
    """
    return {
        "diff": PixelImage(sim.difference, sim.difference_mask.get("NO_DATA")),
        "srch": PixelImage(sim.science, sim.science_mask.get("NO_DATA")),
        "tmpl": PixelImage(sim.template, sim.template_mask.get("NO_DATA")),
    }


def stamps_meta(sim, **extra) -> dict:
    """Return the provenance of stamps cut from a simulated detector.

    Parameters
    ----------
    sim : `~rbnodia.sim.detector.SimulatedDetector`
        The simulated detector-visit.
    **extra
        Further entries.

    Returns
    -------
    meta : `dict`
        Simulator, preset, seed, data ID, band and label convention.
    """
    return {
        "simulator": "rbnodia.sim",
        **extra,
        "preset": sim.meta.get("preset"),
        "seed": sim.meta.get("seed"),
        "instrument": sim.instrument,
        "visit": sim.visit,
        "detector": sim.detector,
        "band": sim.band,
        "label_convention": "0 = real, 1 = bogus (DES)",
    }


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
    return cut_labelled_stamps(
        detector_images(sim),
        np.asarray(sim.detections["x"], dtype=float),
        np.asarray(sim.detections["y"], dtype=float),
        ids=np.asarray(truth["id"], dtype=np.int64),
        labels=np.asarray(truth["label"], dtype=np.int8),
        family=np.asarray(truth["family"], dtype=str),
        mag=np.asarray(truth["mag"], dtype=np.float32),
        snr=np.asarray(truth["snr"], dtype=np.float32),
        size=stamp_size,
        meta=stamps_meta(sim),
    )
