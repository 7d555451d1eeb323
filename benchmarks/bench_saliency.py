#!/usr/bin/env python
"""Cost of saliency relative to plain inference.

For the paper's noDIA and DIA architectures (untrained weights: the cost does
not depend on them) and the packaged models, on random inputs, prints
milliseconds per stamp of, on each backend:

- ONNX Runtime (what the classification task uses by default, for
  inference and for saliency): ``predict``: `RealBogusModel.probabilities`;
  ``fractions``: what ``doSaliency`` computes per detection, the maps' row
  sums (`rbnodia.nn.saliency.saliency_maps` with ``sum_rows=True``: forward
  + hand-written backward pass in one graph), the segment fractions and the
  dominant segment (`rbnodia.core.saliency`); ``maps``: the full maps
  (``saliency_maps``, as ``doWriteSaliencyMaps`` and ``rbnodia saliency``
  use them); each one's ratio to ``predict`` (target: at most 3);
- TensorFlow: ``predict`` (the compiled forward pass); ``sal plain``:
  `saliency_maps` with ``fast_pooling=False`` (TensorFlow's own
  ``MaxPoolGrad``); ``saliency``: with the XLA max-pool gradient; ratio.

Each figure is the best of ``--repeats`` timed runs after one warm-up run
(tracing, XLA compilation and graph building excluded), as wall-clock time
and as this process's CPU time (all threads).  The runs of one backend
alternate (predict, fractions, maps, predict, ...), so that a busy spell
of a shared machine slows both sides of a ratio.

Run::

    .venv/bin/python benchmarks/bench_saliency.py [--batch-size 1024] [--batches 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from rbbench.script import script_main


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=2, help="Batches per timed run.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stamp-size", type=int, default=51)
    parser.add_argument("--architectures", nargs="+", default=["paper_nodia", "paper_dia"])
    parser.add_argument("--packaged", nargs="*", default=None,
                        help="Packaged models to time too (default: all of them).")


def _run(args: argparse.Namespace) -> int:
    """Time every model and backend; print the table."""
    import tensorflow as tf
    from rbbench.common import best_times_per_stamp, load_average

    from rbnodia.core.saliency import dominant_segment, segment_importances
    from rbnodia.nn import RealBogusModel, load_model, packaged_model_names
    from rbnodia.nn.saliency import saliency_backend, saliency_maps

    n = args.batch_size * args.batches
    rng = np.random.default_rng(0)
    devices = ", ".join(d.device_type for d in tf.config.list_logical_devices())
    load = ", ".join(f"{x:.1f}" for x in load_average())
    print(
        f"tensorflow {tf.__version__} on {devices}; {os.cpu_count()} CPUs (load {load}); "
        f"batch {args.batch_size}, {n} stamps per run, best of {args.repeats}; ms per stamp"
    )
    header = (
        f"{'model':<16} {'input':>9} {'clock':>5} | {'onnx':>6} {'fractions':>9} {'ratio':>5} "
        f"{'maps':>6} {'ratio':>5} | "
        f"{'tf':>6} {'sal plain':>9} {'saliency':>8} {'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    models = [(name, RealBogusModel.from_architecture(name, stamp_size=args.stamp_size))
              for name in args.architectures]
    packaged = packaged_model_names() if args.packaged is None else args.packaged
    models += [(name, load_model(name)) for name in packaged]
    worst = {"fractions": 0.0, "maps": 0.0}
    for name, model in models:
        shape = model.input_shape
        inputs = rng.normal(size=(n,) + shape).astype(np.float32)

        def fractions(model=model, inputs=inputs):
            rows = saliency_maps(model, inputs, args.batch_size, backend="onnx", sum_rows=True)
            dominant_segment(segment_importances(rows.maps, model.layout, model.stacking))

        try:
            onnx = saliency_backend(model, "onnx") == "onnx"
        except (RuntimeError, ImportError):
            onnx = False
        nan = (float("nan"), float("nan"))
        onnx_predict, onnx_fractions, onnx_maps = best_times_per_stamp([
            lambda: model.probabilities(inputs, args.batch_size, backend="onnx"),
            fractions,
            lambda: saliency_maps(model, inputs, args.batch_size, backend="onnx"),
        ], n, args.repeats) if onnx else (nan, nan, nan)
        tf_predict, tf_plain, tf_saliency = best_times_per_stamp([
            lambda: model.probabilities(inputs, args.batch_size, backend="tensorflow"),
            lambda: saliency_maps(model, inputs, args.batch_size, fast_pooling=False, backend="tensorflow"),
            lambda: saliency_maps(model, inputs, args.batch_size, backend="tensorflow"),
        ], n, args.repeats)
        shape_text = "x".join(map(str, shape))
        for i, clock in enumerate(("wall", "cpu")):
            fractions_ratio, maps_ratio = onnx_fractions[i] / onnx_predict[i], onnx_maps[i] / onnx_predict[i]
            tf_ratio = tf_saliency[i] / tf_predict[i]
            worst["fractions"] = max(worst["fractions"], fractions_ratio if onnx else tf_ratio)
            worst["maps"] = max(worst["maps"], maps_ratio if onnx else tf_ratio)
            print(
                f"{name if i == 0 else '':<16} {shape_text if i == 0 else '':>9} {clock:>5} | "
                f"{onnx_predict[i]:>6.3f} {onnx_fractions[i]:>9.3f} {fractions_ratio:>5.2f} "
                f"{onnx_maps[i]:>6.3f} {maps_ratio:>5.2f} | "
                f"{tf_predict[i]:>6.3f} {tf_plain[i]:>9.3f} {tf_saliency[i]:>8.3f} {tf_ratio:>5.2f}"
            )
    print(f"worst ratio to predict (ONNX where it applies): fractions {worst['fractions']:.2f}, "
          f"maps {worst['maps']:.2f} (target <= 3)")
    return 0


main = script_main(__doc__, _arguments, _run)

if __name__ == "__main__":
    raise SystemExit(main())
