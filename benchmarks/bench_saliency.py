#!/usr/bin/env python
"""Cost of saliency maps relative to plain inference.

For the paper's noDIA and DIA architectures (untrained weights: the cost does
not depend on them) on random inputs, prints milliseconds per stamp of

- ``predict``: `RealBogusModel.predict` (the compiled forward pass the
  classification task uses), the baseline;
- ``keras``: ``network.predict`` (Keras' own loop, for reference);
- ``sal plain``: `rbnodia.nn.saliency.saliency_maps` with
  ``fast_pooling=False`` (TensorFlow's own ``MaxPoolGrad``; "before");
- ``saliency``: `saliency_maps` as shipped (XLA max-pool gradient; "after");

and the ratios saliency / predict (target: at most 3).  Each figure is the
best of ``--repeats`` timed runs after one warm-up run (tracing and XLA
compilation excluded), as wall-clock time and as this process's CPU time
(all threads): on a shared machine the CPU-time ratio is the steadier one.

Run::

    .venv/bin/python benchmarks/bench_saliency.py [--batch-size 1024] [--batches 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def _best_ms_per_stamp(function, n: int, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best process CPU milliseconds per stamp."""
    function()  # warm up: tracing, XLA compilation, allocations
    wall = cpu = np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return 1e3 * wall / n, 1e3 * cpu / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=2, help="Batches per timed run.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stamp-size", type=int, default=51)
    parser.add_argument("--architectures", nargs="+", default=["paper_nodia", "paper_dia"])
    args = parser.parse_args(argv)

    import tensorflow as tf

    from rbnodia.nn import RealBogusModel
    from rbnodia.nn.saliency import saliency_maps

    n = args.batch_size * args.batches
    rng = np.random.default_rng(0)
    devices = ", ".join(d.device_type for d in tf.config.list_logical_devices())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(
        f"tensorflow {tf.__version__} on {devices}; {os.cpu_count()} CPUs (load {load}); "
        f"batch {args.batch_size}, {n} stamps per run, best of {args.repeats}; ms per stamp"
    )
    header = (
        f"{'architecture':<12} {'input':>9} {'clock':>5} {'predict':>8} {'keras':>7} {'sal plain':>9} "
        f"{'saliency':>8} {'ratio plain':>11} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name in args.architectures:
        model = RealBogusModel.from_architecture(name, stamp_size=args.stamp_size)
        shape = tuple(model.network.input_shape[1:])
        inputs = rng.normal(size=(n,) + shape).astype(np.float32)
        predict = _best_ms_per_stamp(lambda: model.predict(inputs, args.batch_size), n, args.repeats)
        keras_ms = _best_ms_per_stamp(
            lambda: model.network.predict(inputs, batch_size=args.batch_size, verbose=0), n, args.repeats
        )
        plain = _best_ms_per_stamp(
            lambda: saliency_maps(model, inputs, args.batch_size, fast_pooling=False), n, args.repeats
        )
        fast = _best_ms_per_stamp(lambda: saliency_maps(model, inputs, args.batch_size), n, args.repeats)
        shape_text = "x".join(map(str, shape))
        for i, clock in enumerate(("wall", "cpu")):
            ratio_plain, ratio = plain[i] / predict[i], fast[i] / predict[i]
            worst = max(worst, ratio)
            print(
                f"{name if i == 0 else '':<12} {shape_text if i == 0 else '':>9} {clock:>5} "
                f"{predict[i]:>8.3f} "
                f"{keras_ms[i]:>7.3f} {plain[i]:>9.3f} {fast[i]:>8.3f} {ratio_plain:>11.2f} {ratio:>6.2f}"
            )
    print(f"worst saliency/predict ratio: {worst:.2f} (target <= 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
