"""Section 4: ``pipetask run`` end to end on a simulated repository.

Writes a repository of simulated LSST detectors (`write_simulated_repo`)
and runs the packaged ``RealBogusNoDia`` pipeline (its default model,
``nodia_default``) with the real ``pipetask`` command:

- serially on 1, 4 (and 8) quanta: the wall times give the start-up
  overhead ``a`` and the time per quantum ``b`` of ``T = a + b Q``;
- with ``-j 2`` (every quantum in a process of its own) on the same quanta,
  against the serial run: with ``--start-method forkserver`` (processes
  forked from a server that imported the modules of
  `rbnodia.tasks.preload` once; what rbnodia's commands use) and with
  pipetask's default ``spawn``;
- the same runs with a format-1 copy of the model file (its Keras network
  only, as rbnodia wrote them before the files carried their ONNX graphs):
  every process then imports TensorFlow and translates the network, the
  baseline this section measures the graphs against;
- serially and with ``-j 2`` (``forkserver``) on 4 and 8 full-size LSST
  detectors (4096x4096), the size of a production quantum, whose own work
  is then larger than the fixed cost of a worker process;
- on one full-size LSST detector, for the peak RSS of the ``pipetask``
  process (`os.wait4` in a small launcher), with both model files;
- the scores of the serial run against the model's Keras network on
  TensorFlow, on the same stamps (`max_tf_difference`);
- the floor under the start-up: ``pipetask run`` of a task that does
  nothing (`rbbench.noop`) on the same quanta, and ``pipetask --help``.

`rbbench.coldstart` adds the import of the classification task and the
model load in a cold process.  ``--smoke`` runs 2 small quanta, no
format-1 baseline and no full-size detector.
"""

from __future__ import annotations

__all__ = ["max_tf_difference", "run_section", "timed_pipetask"]

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .coldstart import cold_import_figures, format1_copy
from .common import Figure, section_command
from .noop import NOOP_PIPELINE

PIPELINE = "RealBogusNoDia"
MODEL = "nodia_default"
BENCHMARKS = Path(__file__).resolve().parent.parent
"""``benchmarks/``, which holds `rbbench.noop` for ``pipetask``."""
FULL_SIZE_QUANTA = (4, 8)
"""Quanta of the serial and ``-j 2`` runs on full-size detectors, the size of a
Prompt Processing or BPS quantum."""


_WAIT4 = """
import json, os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as stream:
    json.dump({"returncode": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}, stream)
"""
"""Runs a command and writes its exit code and peak RSS.  A small process of
its own, because a child's peak RSS starts from its parent's when it is
spawned (``ru_maxrss`` survives ``exec``): from this benchmark's process,
holding TensorFlow, every child would report at least its size."""


def timed_pipetask(root, inputs, output, *, jobs=1, start_method="forkserver", data_query=None,
                   model_path=None, pipeline=None) -> tuple[float, float]:
    """Time one ``pipetask run`` of the pipeline and measure its peak RSS.

    Parameters
    ----------
    root : `str` or `pathlib.Path`
        Butler repository (``pipetask run -b``).
    inputs : `list` [`str`]
        Input collections (``-i``).
    output : `str`
        Output collection the run writes (``-o``).
    jobs : `int`, optional
        ``pipetask run -j``.
    start_method : `str`, optional
        ``--start-method`` with ``jobs > 1``.
    data_query : `str`, optional
        ``-d`` expression.
    model_path : `pathlib.Path`, optional
        Model file to use instead of the packaged model.
    pipeline : `pathlib.Path`, optional
        Another pipeline (its tasks importable from ``benchmarks/``) instead
        of the packaged ``RealBogusNoDia``.

    Returns
    -------
    wall : `float`
        Wall seconds.
    rss : `float`
        Peak RSS in MiB of the ``pipetask`` process itself (with ``-j``
        its workers are not counted).
    """
    from rbnodia.butler.execution import PipetaskError, pipeline_path, pipetask_command
    from rbnodia.commands.info import environment

    config = {"classifyRealBogus:modelName": str(model_path)} if model_path else None
    command = pipetask_command(root, pipeline or pipeline_path(PIPELINE), inputs, output, jobs=jobs,
                               start_method=start_method, data_query=data_query, config=config)
    env = dict(os.environ)
    for key, value in environment().items():
        env.setdefault(key, value)
    if pipeline:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHMARKS), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "log", "w+") as log:
        result = Path(tmp) / "result.json"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _WAIT4, str(result), *command], stdout=log,
                       stderr=subprocess.STDOUT, env=env, check=True)
        wall = time.perf_counter() - start
        outcome = json.loads(result.read_text())
        if outcome["returncode"]:
            log.seek(0)
            raise PipetaskError(f"pipetask failed: {' '.join(command)}\n{log.read()[-4000:]}")
    return wall, outcome["maxrss_kib"] / 1024.0


def _query(data_ids) -> str:
    first = data_ids[0]
    detectors = ", ".join(str(d["detector"]) for d in data_ids)
    return f"instrument = '{first['instrument']}' AND visit = {first['visit']} AND detector IN ({detectors})"


def max_tf_difference(root, inputs, output, data_ids) -> tuple[float, int]:
    """Largest ``|score - score_TF|`` over the scored detections of
    ``output``: the catalog's scores (ONNX Runtime, in pipetask) against the
    model's Keras network on TensorFlow, on stamps cut as the task cuts
    them.

    Parameters
    ----------
    root : `str` or `pathlib.Path`
        Butler repository.
    inputs : `list` [`str`]
        Collections the run read: the images and detections to cut the
        stamps from.
    output : `str`
        Output collection of the run, holding its catalogs.
    data_ids : `list` [`dict`]
        Data IDs of the catalogs to compare.

    Returns
    -------
    worst : `float`
        Largest absolute difference.
    compared : `int`
        Number of detections compared.
    """
    from lsst.daf.butler import Butler
    from rbnodia.adapters import to_detections, to_pixel_image
    from rbnodia.core.flags import StampFlag
    from rbnodia.core.preprocess import make_model_inputs
    from rbnodia.nn.model import RealBogusModel, packaged_model_path
    from rbnodia.tasks.classify import ClassifyRealBogusConfig

    config = ClassifyRealBogusConfig()
    model = RealBogusModel.from_bytes(packaged_model_path(MODEL).read_bytes())
    butler = Butler.from_config(str(root))
    worst, compared = 0.0, 0
    for data_id in data_ids:
        catalog = butler.get("rbnodia_reliability", data_id, collections=output)
        found = to_detections(butler.get("dia_source_unstandardized", data_id, collections=inputs),
                              config.idColumn, config.xColumn, config.yColumn)
        planes = list(config.badMaskPlanes)
        images = {key: to_pixel_image(butler.get(name, data_id, collections=inputs), planes)
                  for key, name in (("srch", "preliminary_visit_image"), ("tmpl", "template_detector"))}
        prepared = make_model_inputs(
            images, found.x, found.y, model.layout, model.stamp_size, model.stacking, model.scaling
        )
        scorable = np.flatnonzero((prepared.flags & StampFlag.NO_DATA) == 0)
        if len(scorable):
            tf_scores = model.predict(prepared.inputs[scorable], backend="tensorflow")
            scores = np.asarray(catalog["score"])[scorable]
            worst = max(worst, float(np.abs(scores - tf_scores).max()))
            compared += len(scorable)
    return worst, compared


def _runs(root, inputs, data_ids, counts, label, model_path=None, with_j2=True) -> dict:
    """Wall times (and peak RSS) of serial runs on the first ``counts`` quanta, and -j 2 runs
    (forkserver, and spawn).
    """
    times = {}
    for q in counts:
        query = _query(data_ids[:q])
        for kind, jobs, method in (("serial", 1, "spawn"), ("j2", 2, "forkserver"), ("j2spawn", 2, "spawn")):
            if jobs > 1 and (not with_j2 or q == 1):
                continue
            times[(kind, q)] = timed_pipetask(root, inputs, f"bench/{label}/{kind}_{q}", jobs=jobs,
                                              start_method=method, data_query=query, model_path=model_path)
            print(f"   {label}: pipetask {kind}, {q} quanta: {times[(kind, q)][0]:.1f} s, "
                  f"peak RSS {times[(kind, q)][1]:.0f} MiB", flush=True)
    return times


def _startup_figures(v2: dict, v1: dict | None, counts, note: str, command: str) -> list[Figure]:
    """T(1), start-up a and per-quantum b, with the format-1 baseline."""
    q = counts[-1]

    def fit(times):  # from T(1) and the most quanta run serially
        most = max(k for kind, k in times if kind == "serial")
        b = (times[("serial", most)][0] - times[("serial", 1)][0]) / (most - 1)
        return times[("serial", 1)][0] - b, b

    a, b = fit(v2)
    base = {} if v1 is None else dict(zip(("a", "b"), fit(v1)))
    label = "the same with a format-1 model file (TensorFlow imported, network translated)"
    return [
        Figure.time("4.startup", 4, "pipetask run: start-up overhead (T(1) - per-quantum time)", a, "s",
                    baseline=base.get("a"), baseline_label=label, reference=3.0,
                    reference_label="target <= 3 s", note=note, command=command),
        Figure.time("4.serial.per_quantum", 4, "pipetask run, serial: wall time per extra quantum", b, "s",
                    baseline=base.get("b"), baseline_label=label,
                    note=f"(T({q}) - T(1)) / {q - 1}; format-1 baseline from T(4) and T(1)", command=command),
        Figure.time("4.serial.one", 4, "pipetask run, serial, 1 quantum: total wall time",
                    v2[("serial", 1)][0], "s", baseline=None if v1 is None else v1[("serial", 1)][0],
                    baseline_label=label, command=command),
    ]


def _parallel_figures(times: dict, counts, command: str, suffix: str = "", what: str = "") -> list[Figure]:
    figures = []
    for q in counts:
        if ("j2", q) not in times:
            continue
        serial = times[("serial", q)][0]
        figures += [
            Figure.time(f"4.serial.q{q}{suffix}", 4,
                        f"pipetask run, serial, {q} quanta{what}: total wall time", serial, "s",
                        command=command),
            Figure.time(f"4.j2.q{q}{suffix}", 4,
                        f"pipetask run -j 2 --start-method forkserver, {q} quanta{what}: total wall time",
                        times[("j2", q)][0], "s", baseline=serial,
                        baseline_label=f"serial, the same {q} quanta",
                        note="each quantum in a process forked from a preloaded server "
                        "(rbnodia.tasks.preload)",
                        command=command),
            Figure.time(f"4.j2spawn.q{q}{suffix}", 4,
                        f"pipetask run -j 2 (spawn, pipetask's default), {q} quanta{what}: total wall time",
                        times[("j2spawn", q)][0], "s", baseline=serial,
                        baseline_label=f"serial, the same {q} quanta",
                        note="each quantum in a process started from scratch", command=command),
        ]
    return figures


def _floor_figures(root, inputs, data_ids, ours: tuple[int, float], workdir: Path,
                   command: str) -> list[Figure]:
    """Time the middleware's own start-up: a task that does nothing, and the ``pipetask`` CLI alone."""
    pipeline = workdir / "noop.yaml"
    pipeline.write_text(NOOP_PIPELINE)
    q, seconds = ours
    noop, _ = timed_pipetask(root, inputs, "bench/noop", data_query=_query(data_ids[:q]), pipeline=pipeline)
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "pipetask"), "--help"], stdout=subprocess.DEVNULL,
                   check=True)
    cli = time.perf_counter() - start
    print(f"   pipetask of a no-op task, {q} quanta: {noop:.1f} s; pipetask --help: {cli:.1f} s", flush=True)
    return [
        Figure.time(f"4.floor.noop_q{q}", 4,
                    f"pipetask run of a task that does nothing (rbbench.noop), {q} quanta: total wall time",
                    noop, "s", baseline=seconds,
                    baseline_label=f"RealBogusNoDia, serial, the same {q} quanta",
                    note="same repository, dimensions and input catalog; the floor under 4.startup",
                    command=command),
        Figure.time("4.floor.cli", 4, "pipetask --help: wall time (Python and the CLI's imports)", cli, "s",
                    command=command),
    ]


def _full_size_figures(workdir: Path, model_v1: Path | None, command: str) -> list[Figure]:
    """Time serial and ``-j 2`` runs on full-size LSST detectors, and measure the peak RSS of one."""
    from rbnodia.sim import write_simulated_repo

    root = workdir / "pipetask_full"
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    summary = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=FULL_SIZE_QUANTA[-1], seed=8,
                                   progress=False)
    make_s = time.perf_counter() - start
    inputs, data_ids = [summary["collection"]], summary["data_ids"]
    times = {}
    for q in FULL_SIZE_QUANTA:
        for kind, jobs in (("serial", 1), ("j2", 2)):
            times[(kind, q)] = timed_pipetask(root, inputs, f"bench/full/{kind}_{q}", jobs=jobs,
                                              data_query=_query(data_ids[:q]))
            print(f"   full size: pipetask {kind}, {q} quanta: {times[(kind, q)][0]:.1f} s", flush=True)
    one = _query(data_ids[:1])
    wall, rss = timed_pipetask(root, inputs, "bench/full/one", data_query=one)
    base = (timed_pipetask(root, inputs, "bench/full/one_v1", data_query=one, model_path=model_v1)
            if model_v1 else (None, None))
    shutil.rmtree(root, ignore_errors=True)
    what = (f"{len(data_ids)} LSST detectors 4096x4096, {summary['n_detections']} detections in all; "
            f"repo written in {make_s:.0f} s")
    figures = []
    for q in FULL_SIZE_QUANTA:
        serial = times[("serial", q)][0]
        figures += [
            Figure.time(f"4.serial.full.q{q}", 4,
                        f"pipetask run, serial, {q} full-size quanta: total wall time", serial, "s",
                        note=what, command=command),
            Figure.time(f"4.j2.full.q{q}", 4,
                        f"pipetask run -j 2 --start-method forkserver, {q} full-size quanta: total wall time",
                        times[("j2", q)][0], "s", baseline=serial,
                        baseline_label=f"serial, the same {q} quanta", note=what, command=command),
        ]
    note = (f"one LSST 4096x4096 detector, serial; pipetask wall {wall:.1f} s"
            + (f" ({base[0]:.1f} s with the format-1 file)" if base[0] else ""))
    figures.append(Figure.amount("4.rss.detector", 4, "pipetask run on a full LSST detector: peak RSS",
                                 rss, "MiB", baseline=base[1],
                                 baseline_label="the same with a format-1 model file", reference=500.0,
                                 reference_label="target <= 500 MiB", note=note, command=command))
    return figures


def run_section(smoke: bool, workdir: Path) -> list[Figure]:
    """Measure section 4; see the module docstring.

    Parameters
    ----------
    smoke : `bool`
        CI size (two small detectors) instead of the full section.
    workdir : `pathlib.Path`
        Folder for the benchmark's repositories.

    Returns
    -------
    figures : `list` [`Figure`]
        The section's figures.
    """
    from rbnodia.sim import write_simulated_repo

    command = section_command(4, smoke)
    n_detectors, size = (2, (256, 256)) if smoke else (8, (1024, 1024))
    counts = (2,) if smoke else (1, 4, 8)
    workdir = Path(workdir)
    root = workdir / "pipetask_repo"
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=n_detectors, seed=7,
                                   image_size=size, progress=False)
    make_s = time.perf_counter() - start
    inputs, data_ids = [summary["collection"]], summary["data_ids"]
    note = (f"{len(data_ids)} LSST detectors {size[1]}x{size[0]}, {summary['n_detections']} detections "
            f"in all, model {MODEL}; repo written in {make_s:.0f} s")
    model_v1 = None if smoke else format1_copy(MODEL, workdir / "nodia_default_format1.rbmodel")

    v2 = _runs(root, inputs, data_ids, counts, "v2")
    v1 = None if smoke else _runs(root, inputs, data_ids, (1, 4), "v1", model_path=model_v1)
    worst, compared = max_tf_difference(root, inputs, f"bench/v2/serial_{counts[-1]}", data_ids[:counts[-1]])
    first = (counts[0], v2[("serial", counts[0])][0])
    floor = _floor_figures(root, inputs, data_ids, first, workdir, command)

    figures = [] if smoke else _startup_figures(v2, v1, counts, note, command)
    figures += floor + _parallel_figures(v2, counts, command)
    if v1 is not None:
        figures += _parallel_figures(v1, (4,), command, suffix=".format1", what=", format-1 model file")
    figures.append(Figure.amount(
        "4.scores.max_diff_tf", 4,
        "pipetask scores (ONNX Runtime) vs the Keras network on TensorFlow: max |diff|",
        worst, "", reference=1e-6, reference_label="target <= 1e-6",
        note=f"{compared} detections, same stamps" + ("" if not smoke else f"; {note}"), command=command))
    shutil.rmtree(root, ignore_errors=True)
    figures += cold_import_figures(MODEL, repeats=1 if smoke else 3, command=command)
    if smoke:
        figures.append(Figure.amount("4.rss.detector", 4, "pipetask run, serial, 2 small quanta: peak RSS",
                                     v2[("serial", 2)][1], "MiB", reference=500.0,
                                     reference_label="target <= 500 MiB", command=command))
    else:
        figures += _full_size_figures(workdir, model_v1, command)
    return figures
