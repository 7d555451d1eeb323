"""Section 6: the transient search with no difference image against the
DIA path, on the same simulated detectors.

Each detector is simulated at full size (`rbnodia.sim.simulate_detector`,
with more injected transients than the default, for statistics) in a worker
process.  On it the worker runs:

- the DIA path: the simulator's Alard-Lupton PSF matching and subtraction
  and detection on the difference (its own step timings), then
  `ClassifyRealBogusTask` with ``nodia_default`` and with ``dia_default``;
- the search (`NoDiaSearchTask`) with each design of
  `rbnodia.core.search`, timed as its two steps: finding candidates, and
  scoring them with each packaged model of `SEARCH_MODELS`.

Every step runs on one thread (BLAS, FFT and ONNX Runtime), one detector
per process, two processes at a time; times are wall-clock seconds of a
step.  An injected transient counts as found by a path when a row of its
output lies within `MATCH_RADIUS` pixels and scores at or above the
threshold.  A false positive is a row at or above the threshold that is
within `MATCH_RADIUS` of no injected transient and of no detection the
simulator labels real (variable stars in the LSST preset).
`rbbench.search_report` turns the per-detector results into figures, a
table and completeness plots.
"""

from __future__ import annotations

__all__ = ["DETECTORS", "MATCH_RADIUS", "SEARCH_MODELS", "measure_detector", "path_keys", "run_section"]

import logging
import multiprocessing
import time
from pathlib import Path

import numpy as np

from .common import Figure

MATCH_RADIUS = 2.5
"""Pixels between an injected transient and the row that finds it."""

DETECTORS = {
    # preset: (number of detectors, injected transients per detector); smoke: one small detector each.
    "lsst": (4, 150),
    "des": (6, 80),
}
SMOKE_SIZES = {"lsst": (384, 384), "des": (384, 256)}
SEED = 20260417
SEARCH_MODELS = ("search_nodia", "nodia_default")
"""Packaged noDIA models the search's candidates are scored with (those
that exist)."""
DESIGNS = ("excess", "science")


def path_keys(models) -> list[str]:
    """Return the keys of the paths compared: DIA detections scored by each
    packaged model (``dia_nodia``, ``dia_dia``), and the search with each
    design scored by each of ``models`` (``search_<design>:<model>``).

    Parameters
    ----------
    models : iterable of `str`
        The search's models.

    Returns
    -------
    keys : `list` [`str`]
    """
    return ["dia_nodia", "dia_dia"] + [f"search_{design}:{model}" for design in DESIGNS for model in models]


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def _masked_images(sim):
    from rbnodia.butler.repo import to_masked_image

    frame = {"instrument": sim.instrument, "visit": sim.visit, "detector": sim.detector}
    return {
        name: to_masked_image(image, variance=variance, mask=mask, wcs=sim.wcs, detector_frame=frame)
        for name, image, variance, mask in (
            ("science", sim.science, sim.science_variance, sim.science_mask),
            ("template", sim.template, sim.template_variance, sim.template_mask),
            ("difference", sim.difference, sim.difference_variance, sim.difference_mask),
        )
    }


def _nearest(x, y, px, py):
    """Index of, and distance to, the nearest of ``(px, py)`` for each ``(x, y)``."""
    if len(px) == 0:
        return np.zeros(len(x), dtype=int), np.full(len(x), np.inf)
    dx = np.asarray(x)[:, None] - np.asarray(px)[None, :]
    dy = np.asarray(y)[:, None] - np.asarray(py)[None, :]
    d2 = dx**2 + dy**2
    index = np.argmin(d2, axis=1)
    return index, np.sqrt(d2[np.arange(len(x)), index])


def _path_result(catalog, injections, real_x, real_y, detections) -> dict:
    """Best score of the rows near each injection, the scores of the rows
    that match nothing real, and whether each of those lies on a detection
    of the difference image (a bogus detection of the DIA path).
    """
    x, y = np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)
    score = np.nan_to_num(np.asarray(catalog["score"], float), nan=-1.0)
    best = np.full(len(injections), -1.0)
    near_real = np.zeros(len(x), dtype=bool)
    for k, (ix, iy) in enumerate(zip(injections["x"], injections["y"])):
        close = np.hypot(x - ix, y - iy) <= MATCH_RADIUS
        near_real |= close
        if close.any():
            best[k] = score[close].max()
    _, distance = _nearest(x, y, real_x, real_y)
    near_real |= distance <= MATCH_RADIUS
    _, to_detection = _nearest(x[~near_real], y[~near_real], *detections)
    return {"injection_scores": best.tolist(), "bogus_scores": score[~near_real].tolist(),
            "bogus_on_detection": (to_detection <= MATCH_RADIUS).tolist(), "rows": len(x)}


def measure_detector(spec: dict) -> dict:
    """Simulate one detector and run both paths on it (a worker's job).

    Parameters
    ----------
    spec : `dict`
        ``preset``, ``detector``, ``seed``, ``n_transients`` and ``size``
        (``[height, width]`` or `None` for full size).

    Returns
    -------
    result : `dict`
        ``preset``, ``shape``, ``times`` (seconds per step), ``injections``
        (``mag``, ``snr``, ``hosted``, ``host_mag`` lists) and, per path
        of `path_keys`, `_path_result`'s scores; ``search_models``.
    """
    from threadpoolctl import threadpool_limits

    from rbnodia.nn import load_model
    from rbnodia.sim.detector import clear_cache, simulate_detector
    from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask
    from rbnodia.tasks.scoring import score_detections
    from rbnodia.tasks.search import NoDiaSearchConfig, NoDiaSearchTask, candidate_id_base

    logging.getLogger("rbnodia").setLevel(logging.WARNING)
    options = {"n_transients": spec["n_transients"]}
    if spec["size"]:
        options["image_size"] = tuple(spec["size"])
    sim = simulate_detector(spec["preset"], visit=1, detector=spec["detector"], seed=spec["seed"], **options)
    clear_cache()
    steps = sim.meta["timings_s"]
    times = {"dia_subtract": steps["subtract"], "dia_detect": steps["detect"]}
    images = _masked_images(sim)
    injections = sim.meta["injections"]
    truth_real = np.asarray(sim.truth["label"]) == 0
    real_x = np.asarray(sim.detections["x"], float)[truth_real]
    real_y = np.asarray(sim.detections["y"], float)[truth_real]
    detections = (np.asarray(sim.detections["x"], float), np.asarray(sim.detections["y"], float))
    result = {"preset": spec["preset"], "shape": list(sim.shape), "times": times,
              "injections": {"mag": np.asarray(injections["mag"], float).tolist(),
                             "snr": np.asarray(injections["snr_expected"], float).tolist(),
                             "hosted": np.asarray(injections["hosted"], bool).tolist(),
                             "host_mag": np.nan_to_num(np.asarray(injections["host_mag"], float),
                                                       nan=np.inf).tolist()},
              "n_dia_detections": len(sim.detections)}
    from rbnodia.nn.files import packaged_model_names

    search_models = [name for name in SEARCH_MODELS if name in packaged_model_names()]
    models = {name: load_model(name) for name in {"nodia_default", "dia_default", *search_models}}
    with threadpool_limits(limits=1):
        for key, layout, name in (("dia_nodia", "noDIA", "nodia_default"), ("dia_dia", "DIA", "dia_default")):
            config = ClassifyRealBogusConfig()
            config.layout = layout
            config.inferenceThreads = 1
            task = ClassifyRealBogusTask(config=config)
            out, seconds = _timed(lambda: task.run(images["science"], images["template"], sim.detections,
                                                   images["difference"], model=models[name]))
            times[f"{key}_classify"] = seconds
            result[key] = _path_result(out.reliability, injections, real_x, real_y, detections)
        for design in DESIGNS:
            config = NoDiaSearchConfig()
            config.design = design
            config.inferenceThreads = 1
            task = NoDiaSearchTask(config=config)
            base = candidate_id_base(sim.visit, sim.detector)
            table, seconds = _timed(lambda: task.find(images["science"], images["template"], base))
            times[f"search_{design}_find"] = seconds
            for name in search_models:
                scored, seconds = _timed(lambda: score_detections(
                    config, images["science"], images["template"], table, model=models[name], log=task.log))
                times[f"search_{design}:{name}_classify"] = seconds
                result[f"search_{design}:{name}"] = _path_result(scored.catalog, injections, real_x, real_y,
                                                                    detections)
    result["thresholds"] = {name: model.threshold for name, model in models.items()}
    result["search_models"] = search_models
    return result


def _specs(smoke: bool) -> list[dict]:
    specs = []
    for preset, (count, n_transients) in DETECTORS.items():
        for detector in range(1 if smoke else count):
            specs.append({"preset": preset, "detector": detector, "seed": SEED,
                          "n_transients": 8 if smoke else n_transients,
                          "size": list(SMOKE_SIZES[preset]) if smoke else None})
    return specs


def run_section(smoke: bool, out: Path, doc_dir: Path | None = None) -> list[Figure]:
    """Run section 6.

    Parameters
    ----------
    smoke : `bool`
        One small detector per preset.
    out : `pathlib.Path`
        Folder for ``search.json``, the table and the plots.
    doc_dir : `pathlib.Path`, optional
        Also write the table and plots there (``doc/_generated``).

    Returns
    -------
    figures : `list` [`Figure`]
    """
    from .search_report import write_report

    specs = _specs(smoke)
    results = []
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with context.Pool(2, maxtasksperchild=1) as pool:
        pending = pool.imap_unordered(measure_detector, specs)
        while len(results) < len(specs):
            try:
                result = pending.next(timeout=25)
            except multiprocessing.TimeoutError:
                print(f"   {len(results)}/{len(specs)} detectors done, {time.monotonic() - started:.0f} s",
                      flush=True)
                continue
            results.append(result)
            print(f"   detector {len(results)}/{len(specs)} ({result['preset']}) done at "
                  f"{time.monotonic() - started:.0f} s", flush=True)
    return write_report(results, smoke, out, doc_dir)
