"""Section 4: ``pipetask run`` end to end on a small simulated repository.

Writes a repository of simulated LSST detectors (`write_simulated_repo`),
saves an untrained ``paper_nodia`` model file, and runs the packaged
``RealBogusNoDia`` pipeline with the real ``pipetask`` command:

- on one quantum and on all ``Q`` quanta, serially: the wall times give the
  start-up overhead ``a`` and the time per quantum ``b`` of ``T = a + b Q``;
- on all quanta with ``-j 2`` (every quantum in its own process).

The baseline is the same task run in memory on one quantum's data (read with
`Butler.get` beforehand), in this process: what a quantum costs without
process start-up, imports, graph building and Butler I/O.
"""

from __future__ import annotations

__all__ = ["run_section"]

import shutil
import time
from pathlib import Path

from .common import Figure, best_time, section_command


def _timed_pipetask(root, inputs, output, model_path, *, jobs=1, data_query=None) -> float:
    from rbnodia.butler.execution import pipeline_path, run_pipetask

    start = time.perf_counter()
    run_pipetask(root, pipeline_path("RealBogusNoDia"), inputs, output, jobs=jobs, data_query=data_query,
                 config={"classifyRealBogus:modelName": str(model_path)}, stream=False)
    return time.perf_counter() - start


def _in_memory(root, collection, data_id, model_path, repeats: int) -> float:
    from lsst.daf.butler import Butler
    from rbnodia.nn import load_model
    from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask

    butler = Butler.from_config(str(root))
    science = butler.get("preliminary_visit_image", data_id, collections=collection)
    template = butler.get("template_detector", data_id, collections=collection)
    detections = butler.get("dia_source_unstandardized", data_id, collections=collection)
    config = ClassifyRealBogusConfig()
    config.modelName = str(model_path)
    task = ClassifyRealBogusTask(config=config)
    model = load_model(model_path)
    return best_time(lambda: task.run(science=science, template=template, detections=detections, model=model),
                     repeats=repeats).wall


def run_section(smoke: bool, workdir: Path) -> list[Figure]:
    """Measure section 4; see the module docstring."""
    from rbnodia.nn import RealBogusModel
    from rbnodia.sim import write_simulated_repo

    command = section_command(4, smoke)
    n_detectors, size = (2, (256, 256)) if smoke else (4, (1024, 1024))
    root = Path(workdir) / "pipetask_repo"
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=n_detectors, seed=7,
                                   image_size=size, progress=False)
    make_s = time.perf_counter() - start
    model_path = root / "bench_nodia.rbmodel"
    RealBogusModel.from_architecture("paper_nodia", name="bench_nodia").save(model_path)
    inputs = [summary["collection"]]
    data_ids = summary["data_ids"]
    q = len(data_ids)
    first = data_ids[0]
    one_query = " AND ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in first.items())

    in_memory = _in_memory(root, inputs, first, model_path, repeats=1 if smoke else 3)
    # Smoke runs skip the one-quantum run (pipetask start-up dominates CI time).
    t_one = None if smoke else _timed_pipetask(root, inputs, "bench/one", model_path, data_query=one_query)
    t_all = _timed_pipetask(root, inputs, "bench/serial", model_path)
    t_j2 = _timed_pipetask(root, inputs, "bench/j2", model_path, jobs=2)
    note = (f"{q} LSST detectors {size[1]}x{size[0]}, {summary['n_detections']} detections in all; "
            f"repo written in {make_s:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    base = dict(baseline=in_memory, baseline_label="task.run in memory, one quantum", command=command)
    figures = []
    if t_one is not None:
        per_quantum = (t_all - t_one) / (q - 1) if q > 1 else t_all
        figures += [
            Figure.amount("4.startup", 4, "pipetask run: start-up overhead (T(1) - per-quantum time)",
                          t_one - per_quantum, "s", note=note, **base),
            Figure.amount("4.serial.per_quantum", 4, "pipetask run, serial: wall time per extra quantum",
                          per_quantum, "s", note="(T(Q) - T(1)) / (Q - 1)", **base),
            Figure.amount("4.serial.one", 4, "pipetask run, serial, 1 quantum: total wall time", t_one, "s",
                          **base),
        ]
    figures += [
        Figure.amount("4.serial.all", 4, f"pipetask run, serial, {q} quanta: total wall time", t_all, "s",
                      note=note if t_one is None else "", **base),
        Figure.amount("4.j2.all", 4, f"pipetask run -j 2, {q} quanta: total wall time", t_j2, "s", **base),
        Figure.amount("4.j2.per_quantum", 4, "pipetask run -j 2: wall time per quantum (total / Q)", t_j2 / q,
                      "s", note="each quantum is a new process", **base),
    ]
    return figures
