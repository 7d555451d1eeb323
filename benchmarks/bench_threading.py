#!/usr/bin/env python
"""Two ways of using several cores with ONNX Runtime, side by side.

- ``intra-op``: one session with ``--threads`` intra-op threads, the batch
  run through it in calls of `rbnodia.nn.onnx.runtime.CHUNK` stamps, one
  after the other (what rbnodia did before the chunk runner);
- ``chunks``: what `OnnxPredictor` / `OnnxSaliency` do now: single-threaded
  sessions, the chunks handed to ``--threads`` threads in turn.

For inference and for the saliency graph of each model, at several batch
sizes, prints microseconds per stamp (wall clock and this process's CPU
time), best of ``--repeats`` runs in alternation (`best_times_interleaved`),
and the speed-up of ``chunks`` over ``intra-op``.

Run::

    .venv/bin/python benchmarks/bench_threading.py [--models nodia_default paper_nodia] \
        [--batches 64 256 2048]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from rbbench.script import script_main


def _intra_op_runner(variants, saliency: bool, threads: int):
    """Return a runner of the previous scheme: one session on ``threads`` intra-op threads,
    calls of ``CHUNK`` stamps in turn (folded graph for whole blocks).
    """
    import onnxruntime

    from rbnodia.nn.onnx.runtime import CHUNK, GraphSessions

    def session(model: bytes):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    graphs = GraphSessions(variants, session=session)
    names = ["outputs", "gradient"] if saliency else ["outputs"]

    def run(inputs: np.ndarray) -> None:
        for start in range(0, len(inputs), CHUNK):
            graphs.run(names, inputs[start : start + CHUNK])

    return run


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=["nodia_default", "dia_default", "paper_nodia"],
                        help="Packaged model names or architecture names (untrained).")
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256, 2048])
    parser.add_argument("--threads", type=int, default=None, help="Default: the CPUs this process may use.")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stamps", type=int, default=4096, help="Stamps per timed run (whole batches).")


def _run(args: argparse.Namespace) -> int:
    """Time both schemes for every model and batch size; print the table."""
    from rbbench.common import best_times_per_stamp, load_average

    from rbnodia.nn import RealBogusModel, architecture_names, load_model
    from rbnodia.nn.onnx.runtime import OnnxPredictor, OnnxSaliency, default_threads

    threads = args.threads or default_threads()
    load = ", ".join(f"{x:.1f}" for x in load_average())
    print(f"{threads} threads (load {load}); us per stamp, best of {args.repeats} alternating runs")
    width = max(len(name) for name in args.models + ["model"])
    header = (f"{'model':<{width}} {'graph':<9} {'batch':>5} | {'intra-op':>8} {'cpu':>6} | "
              f"{'chunks':>8} {'cpu':>6} | {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for name in args.models:
        model = (RealBogusModel.from_architecture(name) if name in architecture_names() else load_model(name))
        for saliency in (False, True):
            variants = model.graphs["saliency" if saliency else "forward"]
            before = _intra_op_runner(variants, saliency, threads)
            after = (OnnxSaliency if saliency else OnnxPredictor)(variants, threads=threads)
            for batch in args.batches:
                inputs = rng.normal(size=(batch,) + model.input_shape).astype(np.float32)
                calls = max(1, args.stamps // batch)
                n = calls * batch
                (w0, c0), (w1, c1) = best_times_per_stamp(
                    [lambda: [before(inputs) for _ in range(calls)],
                     lambda: [after(inputs) for _ in range(calls)]],
                    n, repeats=args.repeats, scale=1e6,
                )
                graph = "saliency" if saliency else "predict"
                print(f"{name:<{width}} {graph:<9} {batch:>5} | {w0:>8.1f} {c0:>6.1f} | "
                      f"{w1:>8.1f} {c1:>6.1f} | {w0 / w1:>7.2f}x")
    return 0


main = script_main(__doc__, _arguments, _run)

if __name__ == "__main__":
    raise SystemExit(main())
