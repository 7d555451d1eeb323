"""Write simulated detectors into a Butler data repository.

This is the only module of `rbnodia.sim` that touches the Butler.  It
creates the repository with `rbnodia.butler.repo.create_repo`, registers a
simulated instrument, its visits (with real sky regions) and the pipeline's
input dataset types, and writes for each (visit, detector):

``preliminary_visit_image``
    Science exposure (MaskedImageV2).
``template_detector``
    Template warped to the science grid, not PSF-matched (MaskedImageV2).
``difference_image``
    PSF-matched difference (MaskedImageV2).
``dia_source_unstandardized``
    Detections (ArrowAstropy).
``rbnodia_truth``
    Labels and families (ArrowAstropy; 0 = real).
``rbnodia_injected``
    Every injected transient, detected or not (ArrowAstropy; see
    `INJECTED_DATASET_TYPE`).
"""

from __future__ import annotations

__all__ = ["DEFAULT_SEED", "INJECTED_DATASET_TYPE", "detector_names", "visit_ids", "write_simulated_repo"]

import logging
import time
from pathlib import Path
from typing import Any

from .detector import SimulatedDetector, clear_cache, science_wcs, simulate_detector, visit_conditions
from .geometry import footprint_corners
from .options import split_options
from .presets import Preset, get_preset
from .truth import family_counts

_log = logging.getLogger(__name__)

DEFAULT_SEED = 20220315
"""Default master seed (the paper's arXiv date)."""

INJECTED_DATASET_TYPE = "rbnodia_injected"
"""Dataset type (dimensions instrument, visit, detector; ArrowAstropy) of
the injected transients: ``id`` (unique in the repository, never a
detection id), ``x``, ``y``, ``ra``, ``dec``, ``mag`` (AB, injected),
``flux`` (nJy), ``snr_expected`` (PSF-fit S/N expected on the difference
image), ``family`` (``sn_hosted`` or ``sn_hostless``), ``hosted``,
``host`` (index of the host galaxy, -1 if hostless), ``host_mag`` (AB in
the visit's band, NaN if hostless), ``detected`` and ``detection_id`` (the
matched detection's id, -1 if undetected)."""


def visit_ids(n_visits: int) -> list[int]:
    """List the visit ids that `write_simulated_repo` writes.

    Parameters
    ----------
    n_visits : `int`
        Number of visits.

    Returns
    -------
    visits : `list` [`int`]
        ``1001, 1002, ...``.
    """
    return [1001 + i for i in range(n_visits)]


def detector_names(preset: Preset, n_detectors: int) -> dict[int, str]:
    """Name the simulated detectors.

    Parameters
    ----------
    preset : `~rbnodia.sim.presets.Preset`
        The preset (LSST names differ).
    n_detectors : `int`
        Number of detectors (ids ``0 ... n_detectors - 1``).

    Returns
    -------
    names : `dict` [`int`, `str`]
        Name of each detector id: ``R00_S00``, ``R00_S01`` ... for the
        ``lsst`` preset, ``CCD01``, ``CCD02`` ... otherwise.
    """
    if preset.name == "lsst":
        return {d: f"R{d // 9:02d}_S{(d % 9) // 3}{d % 3}" for d in range(n_detectors)}
    return {d: f"CCD{d + 1:02d}" for d in range(n_detectors)}


def _masked(image, variance, mask, sim: SimulatedDetector):
    from ..butler.repo import to_masked_image

    return to_masked_image(
        image,
        variance=variance,
        mask=mask,
        wcs=sim.wcs,
        detector_frame={"instrument": sim.instrument, "visit": sim.visit, "detector": sim.detector},
    )


def write_simulated_repo(
    root: str | Path,
    *,
    preset: str | Preset = "lsst",
    n_visits: int = 2,
    n_detectors: int = 2,
    seed: int = DEFAULT_SEED,
    image_size: tuple[int, int] | None = None,
    clobber: bool = False,
    progress: bool = True,
    **options,
) -> dict[str, Any]:
    """Create a repository and fill it with simulated pipeline inputs.

    Parameters
    ----------
    root : `str` or `pathlib.Path`
        Repository folder (created).
    preset : `str` or `~rbnodia.sim.presets.Preset`
        ``"des"`` or ``"lsst"``.
    n_visits, n_detectors : `int`
        Visits ``1001 ...`` and detectors ``0 ...`` to simulate.
    seed : `int`
        Master seed; the same seed gives the same repository content.
    image_size : `tuple` [`int`, `int`], optional
        ``(height, width)`` of each detector (default: the preset's full size).
    clobber : `bool`
        Replace an existing repository.
    progress : `bool`
        Show a progress bar.
    **options
        Passed to `~rbnodia.sim.simulate_detector`.

    Returns
    -------
    summary : `dict`
        ``root``, ``collection`` (the input RUN), ``instrument``,
        ``data_ids``, ``n_detections``, ``n_real``, ``n_bogus``,
        ``families`` (counts per family), ``n_injected``,
        ``n_injected_detected``, ``bands``, ``seconds``.
    """
    from tqdm import tqdm

    from ..butler.repo import create_repo, register_input_dataset_types, register_instrument

    t0 = time.monotonic()
    run_options, overrides = split_options(options)
    preset = get_preset(preset, image_size=image_size, **overrides)
    root = Path(root)
    butler = create_repo(root, clobber=clobber)
    register_instrument(
        butler, preset.instrument, detector_names(preset, n_detectors), preset.physical_filters
    )
    register_input_dataset_types(butler)
    register_input_dataset_types(butler, names={"injected": INJECTED_DATASET_TYPE})
    collection = f"{preset.instrument}/sim/inputs"
    butler.registry.registerRun(collection)
    visits = visit_ids(n_visits)
    bands = _register_visits(butler, preset, visits, n_detectors, seed, run_options)

    data_ids: list[dict[str, Any]] = []
    truths = []
    injected = [0, 0]
    last_log = time.monotonic()
    # Detector-major order: consecutive visits of a detector reuse its sky
    # and template.
    with tqdm(total=n_visits * n_detectors, desc="simulate", unit="det", disable=not progress) as bar:
        for detector in range(n_detectors):
            for visit in visits:
                sim = simulate_detector(preset, visit=visit, detector=detector, seed=seed, **run_options)
                _put_detector(butler, collection, sim)
                data_ids.append(dict(sim.data_id))
                truths.append(sim.truth[["label", "family"]].copy(copy_data=True))
                injected[0] += sim.meta["n_injected"]
                injected[1] += sim.meta["n_injected_detected"]
                bar.update(1)
                if time.monotonic() - last_log > 30 or not progress:
                    _log.info(
                        "Wrote %d of %d detectors (%d detections) to %s.",
                        len(data_ids),
                        n_visits * n_detectors,
                        sum(len(t) for t in truths),
                        root,
                    )
                    last_log = time.monotonic()
                del sim
    clear_cache()
    summary = {
        "root": str(root),
        "collection": collection,
        "instrument": preset.instrument,
        "preset": preset.name,
        "seed": seed,
        "image_size": list(preset.shape),
        "data_ids": data_ids,
        "bands": bands,
        **_counts(truths),
        "n_injected": injected[0],
        "n_injected_detected": injected[1],
        "seconds": round(time.monotonic() - t0, 1),
    }
    _log.info(
        "Simulated repo %s: %d detectors, %d detections (%d real, %d bogus) in %.0f s.",
        root,
        len(data_ids),
        summary["n_detections"],
        summary["n_real"],
        summary["n_bogus"],
        summary["seconds"],
    )
    return summary


def _register_visits(
    butler, preset: Preset, visits, n_detectors: int, seed: int, run_options
) -> dict[int, str]:
    """Register each visit with its band, time and detector sky regions;
    returns the band of each visit.
    """
    from ..butler.repo import register_visit, sky_polygon

    bands = {}
    for visit in visits:
        cond = visit_conditions(preset, visit, seed, run_options["band"])
        regions = {
            d: sky_polygon(
                footprint_corners(
                    science_wcs(preset, visit=visit, detector=d, seed=seed, **run_options), preset.shape
                )
            )
            for d in range(n_detectors)
        }
        register_visit(
            butler,
            preset.instrument,
            visit,
            f"{cond.band}_sim",
            obs_time=cond.obs_time,
            exposure_time=cond.exposure_time,
            detector_regions=regions,
        )
        bands[visit] = cond.band
    return bands


def _put_detector(butler, collection: str, sim: SimulatedDetector) -> None:
    """Write one simulated detector-visit's datasets."""
    from ..butler.repo import put_detector_inputs

    data_id = dict(sim.data_id)
    put_detector_inputs(
        butler,
        collection,
        data_id,
        {
            "science": _masked(sim.science, sim.science_variance, sim.science_mask, sim),
            "template": _masked(sim.template, sim.template_variance, sim.template_mask, sim),
            "difference": _masked(sim.difference, sim.difference_variance, sim.difference_mask, sim),
            "detections": sim.detections,
            "truth": sim.truth,
        },
    )
    butler.put(sim.meta["injections"], INJECTED_DATASET_TYPE, data_id, run=collection)


def _counts(truths) -> dict[str, Any]:
    """``n_detections``, ``n_real``, ``n_bogus`` and ``families`` of the
    truth tables of a repository.
    """
    from astropy.table import vstack

    for t in truths:
        t.meta.clear()
    truth = vstack(truths) if truths else None
    counts = (
        family_counts(truth)
        if truth is not None and len(truth)
        else {"total": {"n": 0, "real": 0, "bogus": 0}}
    )
    return {
        "n_detections": counts["total"]["n"],
        "n_real": counts["total"]["real"],
        "n_bogus": counts["total"]["bogus"],
        "families": {k: v["n"] for k, v in counts.items() if k != "total"},
    }
