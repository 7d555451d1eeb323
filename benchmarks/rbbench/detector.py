"""Sections 2 and 3: one full detector in memory, and the cost it avoids.

Section 2 times `ClassifyRealBogusTask.run` on in-memory arrays (Butler I/O
excluded) for an LSST 4096x4096 detector with 1,000 detections and a DES
2048x4096 CCD with 300, with saliency off and on, with the breakdown into
cutouts, scaling, inference and saliency, and the peak memory of a process
that holds the images and runs the task once.  The network is the paper's
noDIA architecture (untrained: the cost does not depend on the weights);
the task is also timed with the packaged ``nodia_default``, what the
pipelines run by default, saliency off and on.  The baseline is a
straightforward implementation measured in the same run: a Python loop over
detections that slices the stamps, scales each with the paper's numpy code
and calls Keras' ``network.predict`` on the batch.

Section 3 runs rbnodia's Alard-Lupton PSF matching and subtraction
(`rbnodia.sim.subtract`: kernel candidates, kernel fit, convolution) on the
same detector and compares it with noDIA classification of its detections.

Images come from `rbnodia.sim.simulate_detector` at full size (or, with
``--synthetic``, from a quick synthetic sky: Gaussian stars on sky noise).
When the simulation detects fewer sources than asked for, uniformly random
positions are added (the cost of classification does not depend on where
the detections are); the note of each figure says how many were simulated.
Every measurement runs in a fresh process (``--worker``) so that its peak
memory is its own.
"""

from __future__ import annotations

__all__ = ["DETECTORS", "run_section", "run_sections", "worker_main"]

import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from .common import Figure, best_time, section_command
from .detector_figures import PACKAGED_NODIA, section2_figures, section3_figures

DETECTORS = {
    # name: preset, (height, width), detections; smoke sizes second.
    "LSST": ("lsst", (4096, 4096), 1000, (256, 256), 50),
    "DES": ("des", (4096, 2048), 300, (256, 128), 20),
}
_GENERATED: dict[tuple, tuple[Path, dict]] = {}
_WORKDIR: list[Path] = []


def _workdir(cache: Path | None) -> Path:
    """Where the generated detectors live: ``cache`` (kept between runs) or a
    temporary folder removed at exit.
    """
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        return cache
    if not _WORKDIR:
        path = Path(tempfile.mkdtemp(prefix="rbnodia-bench-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _WORKDIR.append(path)
    return _WORKDIR[0]


def _rss_now_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _peak_rss_mb() -> float:
    """Peak RSS of this process since it started or since `_reset_peak_rss`.

    Read from /proc (VmHWM): ``getrusage``'s ru_maxrss survives ``exec`` and
    would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# Making the detector.


def _synthetic_detector(shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """Sky noise with Gaussian stars, a deeper template, their difference."""
    rng = np.random.default_rng(seed)
    height, width = shape
    yy, xx = np.mgrid[-7:8, -7:8]
    psf_s = np.exp(-(xx**2 + yy**2) / (2 * 1.6**2))
    psf_t = np.exp(-(xx**2 + yy**2) / (2 * 1.2**2))
    stars = np.zeros(shape, np.float32)
    n_stars = height * width // 4000
    sy, sx = rng.integers(7, height - 8, n_stars), rng.integers(7, width - 8, n_stars)
    flux = (rng.pareto(1.5, n_stars) + 1) * 200
    science = rng.normal(0.0, 10.0, shape).astype(np.float32)
    template = rng.normal(0.0, 3.0, shape).astype(np.float32)
    for y, x, f in zip(sy, sx, flux):
        science[y - 7 : y + 8, x - 7 : x + 8] += (f * psf_s / psf_s.sum()).astype(np.float32)
        template[y - 7 : y + 8, x - 7 : x + 8] += (f * psf_t / psf_t.sum()).astype(np.float32)
    del stars
    return {
        "science": science,
        "template": template,
        "difference": science - template,
        "science_variance": np.full(shape, 100.0, np.float32),
        "template_variance": np.full(shape, 9.0, np.float32),
        "bad": np.zeros(shape, bool),
        "no_data": np.zeros(shape, bool),
        "fwhm": np.array([1.6 * 2.355, 1.2 * 2.355]),
        "x": np.zeros(0),
        "y": np.zeros(0),
    }


def _simulated_detector(preset: str, shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    from rbnodia.sim import get_preset, simulate_detector

    sim = simulate_detector(preset, visit=1001, detector=0, seed=seed, image_size=tuple(shape))
    scale = get_preset(preset).pixel_scale
    mask = sim.science_mask
    bad = (mask["SAT"] | mask["BAD"] | mask["CR"] | sim.template_mask["NO_DATA"] | sim.template_mask["SAT"])
    return {
        "science": sim.science,
        "template": sim.template,
        "difference": sim.difference,
        "science_variance": sim.science_variance,
        "template_variance": sim.template_variance,
        "bad": bad,
        "no_data": sim.template_mask["NO_DATA"],
        "fwhm": np.array([sim.psf_fwhm_science / scale, sim.psf_fwhm_template / scale]),
        "x": np.asarray(sim.detections["x"], float),
        "y": np.asarray(sim.detections["y"], float),
    }


def _generate(spec: dict) -> dict:
    """Make one detector's arrays and save them as .npz (in the parent process:
    the simulator's own memory peak must not count in the workers').
    """
    start, cpu = time.perf_counter(), time.process_time()
    shape = tuple(spec["shape"])
    if spec["synthetic"]:
        arrays = _synthetic_detector(shape, spec["seed"])
    else:
        arrays = _simulated_detector(spec["preset"], shape, spec["seed"])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    n_found = len(arrays["x"])
    n = spec["n_detections"]
    rng = np.random.default_rng(spec["seed"] + 1)
    x, y = arrays["x"][:n], arrays["y"][:n]
    if len(x) < n:
        height, width = shape
        x = np.concatenate([x, rng.uniform(0, width - 1, n - len(x))])
        y = np.concatenate([y, rng.uniform(0, height - 1, n - len(y))])
    arrays["x"], arrays["y"] = x, y
    np.savez(spec["path"], **arrays)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "n_simulated_detections": min(n_found, n)}


# ---------------------------------------------------------------------------
# The measurements.


def _paper_scale(stamp: np.ndarray, kind: str) -> np.ndarray:
    """Return the paper's per-stamp scaling, plain numpy (NaN set to 0, minimal guards)."""
    stamp = np.nan_to_num(stamp.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    m, s = stamp.mean(), stamp.std()
    if kind == "diff":
        return (stamp - m) / s if s > 0 else np.zeros_like(stamp)
    inside = stamp[(stamp > m - 3 * s) & (stamp < m + 3 * s)]
    if inside.size == 0 or inside.max() == inside.min():
        return np.zeros_like(stamp)
    return (stamp - inside.min()) / (inside.max() - inside.min())


def _naive_classify(science, template, x, y, network, size: int = 51) -> np.ndarray:
    """Classify straightforwardly: a loop over detections."""
    half = size // 2
    padded = [np.pad(image, half, constant_values=0.0) for image in (science, template)]
    inputs = np.empty((len(x), size, 2 * size, 1), np.float32)
    for i, (cx, cy) in enumerate(zip(x, y)):
        px, py = int(np.floor(cx + 0.5)), int(np.floor(cy + 0.5))
        stamps = [p[py : py + size, px : px + size] for p in padded]
        inputs[i, :, :, 0] = np.hstack([_paper_scale(stamps[0], "srch"), _paper_scale(stamps[1], "tmpl")])
    return network.predict(inputs, batch_size=len(inputs), verbose=0)[:, 0]


def _inputs(arrays):
    from astropy.table import Table

    from rbnodia.core import PixelImage

    science = PixelImage(arrays["science"], bad=arrays["no_data"])
    template = PixelImage(arrays["template"], bad=arrays["no_data"])
    n = len(arrays["x"])
    detections = Table({"id": np.arange(n, dtype=np.int64), "x": arrays["x"], "y": arrays["y"]})
    return science, template, detections


def _task_times(arrays, model, repeats: int, with_saliency: bool, memory: bool = True) -> dict:
    """`ClassifyRealBogusTask.run` on the whole detector, saliency off (and
    on), and (``memory``) the peak memory.
    """
    from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask

    science, template, detections = _inputs(arrays)
    result = {"n": len(detections), "backend": model.inference_backend()}
    tasks = {}
    for saliency in (False, True) if with_saliency else (False,):
        config = ClassifyRealBogusConfig()
        config.doSaliency = saliency
        tasks[saliency] = ClassifyRealBogusTask(config=config)
        # Warm-up on a few detections: builds the ONNX session / traces TF once per process.
        tasks[saliency].run(science=science, template=template, detections=detections[:64], model=model)
    result["rss_before_mb"] = _rss_now_mb()
    result["peak_reset"] = _reset_peak_rss()
    for saliency, task in tasks.items():
        def run(task=task):
            return task.run(science=science, template=template, detections=detections, model=model)

        timing = best_time(run, repeats=repeats, warmup=0)
        key = f"task_saliency_{'on' if saliency else 'off'}"
        result[key], result[key + "_cpu"] = timing.wall, timing.cpu
    if not memory:
        return result
    result["max_rss_mb"] = _peak_rss_mb()
    tracemalloc.start()
    tasks[False].run(science=science, template=template, detections=detections, model=model)
    result["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    result["images_mb"] = (arrays["science"].nbytes + arrays["template"].nbytes) / 2**20
    return result


def _breakdown(arrays, model, repeats: int) -> dict:
    """Return the task's steps timed one by one with the core functions it calls,
    and the naive baseline on the same detections.
    """
    from rbnodia.core.layouts import input_shape, split_segments
    from rbnodia.core.preprocess import scale_cutouts
    from rbnodia.core.saliency import segment_importances
    from rbnodia.core.stamps import cut_stamps
    from rbnodia.nn.saliency import saliency_maps

    science, template, _ = _inputs(arrays)
    x, y = arrays["x"], arrays["y"]
    images = {"srch": science, "tmpl": template}
    result = {}

    def cut():
        return {k: cut_stamps(v.array, x, y, 51, bad=v.bad) for k, v in images.items()}

    result["cutouts"] = best_time(cut, repeats=repeats).wall
    cutouts = cut()
    inputs = np.empty((len(x),) + input_shape("noDIA", 51), np.float32)
    result["scaling"] = best_time(
        lambda: scale_cutouts(cutouts, out=split_segments(inputs, "noDIA"), scaling=model.scaling),
        repeats=repeats,
    ).wall
    result["inference"] = best_time(lambda: model.predict(inputs), repeats=repeats).wall
    result["inference_tf"] = best_time(lambda: model.predict(inputs, backend="tensorflow"),
                                       repeats=repeats).wall

    def saliency():  # what the task does with doSaliency and no maps to write
        rows = saliency_maps(model, inputs, 2048, sum_rows=True)
        segment_importances(rows.maps, "noDIA", model.stacking)

    result["saliency"] = best_time(saliency, repeats=repeats).wall
    result["naive"] = best_time(
        lambda: _naive_classify(arrays["science"], arrays["template"], x, y, model.network),
        repeats=1 if repeats < 3 else 2).wall
    return result


def _subtract(arrays) -> dict:
    from threadpoolctl import threadpool_limits

    from rbnodia.sim.subtract import fit_kernel, gaussian_basis, select_kernel_candidates, subtract_images

    science, template = arrays["science"], arrays["template"]
    height, width = science.shape
    fwhm_s, fwhm_t = (float(v) for v in arrays["fwhm"])

    def run():
        basis = gaussian_basis(fwhm_s, fwhm_t)
        big = height * width >= 768 * 768
        candidates = None
        if big:
            candidates = select_kernel_candidates(template, arrays["template_variance"], arrays["bad"],
                                                  fwhm_s, basis.half)
        solution = fit_kernel(science, arrays["science_variance"], template, basis, candidates=candidates,
                              bad=arrays["bad"], spatial_order=1 if height * width >= 1024 * 1024 else 0,
                              background_order=1, fwhm_px=fwhm_s)
        return subtract_images(science, arrays["science_variance"], template, arrays["template_variance"],
                               solution)

    # As the simulator does: BLAS threads only fight over the cores on these small systems.
    with threadpool_limits(limits=1, user_api="blas"):
        timing = best_time(run, repeats=1, warmup=0)
    return {"subtract": timing.wall, "subtract_cpu": timing.cpu,
            "mode": "kernel candidates" if height * width >= 768 * 768 else "whole image"}


def worker_main(spec: dict) -> int:
    """Run one measurement as ``run_benchmarks.py --worker``: print one JSON line.

    Parameters
    ----------
    spec : `dict`
        What to measure (built by `run_sections`).

    Returns
    -------
    status : `int`
        The exit status.
    """
    from rbnodia.nn import RealBogusModel, load_model

    arrays = dict(np.load(spec["path"]))
    model = RealBogusModel.from_architecture("paper_nodia")
    classify = "classify" in spec["measure"]
    result = _task_times(arrays, model, spec["repeats"], with_saliency=classify)
    if classify:
        result.update(_breakdown(arrays, model, spec["repeats"]))
        packaged = _task_times(arrays, load_model(PACKAGED_NODIA), spec["repeats"], with_saliency=True,
                               memory=False)
        result.update({f"packaged_{key}": packaged[key] for key in packaged if key.startswith("task_")})
    if "subtract" in spec["measure"]:
        result.update(_subtract(arrays))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def _worker(spec: dict) -> dict:
    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "run_benchmarks.py"),
               "--worker", spec["kind"], "--spec", json.dumps(spec)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"Benchmark worker failed ({done.returncode}): {' '.join(command)}\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _detector_arrays(name: str, smoke: bool, synthetic: bool, cache: Path | None) -> tuple[Path, dict]:
    preset, shape, n, smoke_shape, smoke_n = DETECTORS[name]
    if smoke:
        shape, n = smoke_shape, smoke_n
    key = (name, smoke, synthetic)
    if key not in _GENERATED:
        stem = f"{name}_{shape[0]}x{shape[1]}_{n}_{'synth' if synthetic else 'sim'}_seed1"
        path = _workdir(cache) / f"{stem}.npz"
        info_path = path.with_suffix(".json")
        if path.exists() and info_path.exists():
            info = json.loads(info_path.read_text())
        else:
            info = _generate({"preset": preset, "shape": list(shape), "n_detections": n,
                              "synthetic": synthetic, "seed": 1, "path": str(path)})
            info_path.write_text(json.dumps(info))
        _GENERATED[key] = (path, info)
    return _GENERATED[key]


def _describe(name: str, smoke: bool, synthetic: bool, info: dict) -> tuple[str, str]:
    _, shape, n, smoke_shape, smoke_n = DETECTORS[name]
    if smoke:
        shape, n = smoke_shape, smoke_n
    size = f"{shape[1]}x{shape[0]}"
    source = ("synthetic sky" if synthetic else
              f"simulated, {info['n_simulated_detections']} simulated detections + "
              f"{n - info['n_simulated_detections']} random positions; "
              f"simulation took {info['seconds']:.0f} s")
    return f"{name} {size}, {n} detections", source


def run_section(number: int, smoke: bool, *, synthetic: bool = False,
                cache: Path | None = None) -> list[Figure]:
    """Measure section 2 or 3 alone; see `run_sections`.

    Parameters
    ----------
    number : `int`
        2 or 3.
    smoke : `bool`
        Tiny sizes.
    synthetic : `bool`, optional
        A synthetic sky instead of the simulator.
    cache : `pathlib.Path`, optional
        Folder keeping the generated detectors between runs.

    Returns
    -------
    figures : `list` [`Figure`]
        The section's figures.
    """
    return run_sections([number], smoke, synthetic=synthetic, cache=cache)


def run_sections(numbers, smoke: bool, *, synthetic: bool = False, cache: Path | None = None) -> list[Figure]:
    """Measure sections 2 and/or 3 (one worker process per detector); see the
    module docstring.  ``cache``: folder keeping the generated detectors
    between runs (a temporary folder if `None`).

    Parameters
    ----------
    numbers : `list` [`int`]
        Sections to measure: 2, 3 or both.
    smoke : `bool`
        Tiny sizes.
    synthetic : `bool`, optional
        A synthetic sky instead of the simulator.
    cache : `pathlib.Path`, optional
        Folder keeping the generated detectors between runs (a temporary
        folder if `None`).

    Returns
    -------
    figures : `list` [`Figure`]
        The figures of the sections measured.
    """
    numbers = sorted(set(numbers) & {2, 3})
    repeats = 1 if smoke else 3
    extra = ["--synthetic"] if synthetic else []
    figures: dict[int, list[Figure]] = {2: [], 3: []}
    for name in DETECTORS:
        path, info = _detector_arrays(name, smoke, synthetic, cache)
        label, source = _describe(name, smoke, synthetic, info)
        measure = (["classify"] if 2 in numbers else []) + (["subtract"] if 3 in numbers else [])
        r = _worker({"kind": "measure", "path": str(path), "measure": measure, "repeats": repeats})
        if 2 in numbers:
            figures[2].extend(section2_figures(name, label, source, r, section_command(2, smoke, extra)))
        if 3 in numbers:
            figures[3].extend(section3_figures(name, label, source, r, section_command(3, smoke, extra)))
    return figures[2] + figures[3]
