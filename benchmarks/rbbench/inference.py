"""Section 1: inference milliseconds per stamp of the paper's networks.

For ``paper_nodia`` and ``paper_dia`` (untrained weights: the cost does not
depend on their values) on random inputs, at several batch sizes:

- ``tensorflow``: `RealBogusModel.predict` through the compiled
  ``tf.function``;
- ``onnx``: `RealBogusModel.predict` on ONNX Runtime (the default ``auto``
  backend when onnxruntime is installed);
- baseline: a naive loop calling Keras' ``network.predict`` once per stamp,
  what a straightforward port of the paper's code does.

Each figure is the best of a few timed runs after a warm-up run (graph
tracing and session creation excluded; they are reported separately).
"""

from __future__ import annotations

__all__ = ["run_section"]

import importlib.util
import logging
import time

import numpy as np

from .common import Figure, best_time, best_times_interleaved, paper_models, section_command

_LOG = logging.getLogger(__name__)

PAPER_MS = {"paper_nodia": 0.30, "paper_dia": 1.00}
GOAL_MS = {"paper_nodia": 0.03}


def _ms_per_stamp(function, n: int, repeats: int) -> float:
    return 1e3 * best_time(function, repeats=repeats).wall / n


def run_section(smoke: bool) -> list[Figure]:
    """Measure section 1, inference per stamp; see the module docstring.

    Parameters
    ----------
    smoke : `bool`
        Batch sizes 1 and 64 only and a 3-stamp naive loop: checks that
        everything runs.

    Returns
    -------
    figures : `list` [`Figure`]
        Per network: the first-call costs, the naive loop and ms/stamp per
        backend and batch size; then the packaged models and their saliency.
    """
    from rbnodia.nn.onnx.runtime import OnnxPredictor

    command = section_command(1, smoke)
    batch_sizes = (1, 64) if smoke else (1, 64, 1024, 8192)
    naive_stamps = 3 if smoke else 30
    figures: list[Figure] = []
    have_onnx = importlib.util.find_spec("onnxruntime") is not None
    rng = np.random.default_rng(0)
    for arch, label, model in paper_models():
        shape = model.input_shape
        inputs = rng.random((max(batch_sizes),) + shape, dtype=np.float32)

        # One-time costs per process, against the same call once warm.
        for backend, key, what in (
            ("tensorflow", "tf", "first TensorFlow predict (tracing the tf.function)"),
            ("onnx", "onnx", "first ONNX predict (Keras->ONNX translation + session creation)"),
        ):
            if backend == "onnx" and not have_onnx:
                continue
            start = time.perf_counter()
            model.predict(inputs[:8], backend=backend)
            first = time.perf_counter() - start
            def warm_call(model=model, backend=backend, few=inputs[:8]):
                return model.predict(few, backend=backend)

            warm = best_time(warm_call, repeats=3, warmup=0).wall
            figures.append(Figure.amount(
                f"1.{label}.{key}.first_call", 1, f"{label}: {what}; once per process", first * 1e3, "ms",
                baseline=warm * 1e3, baseline_label="same call, warm", note="8 stamps", command=command,
            ))

        # Baseline: Keras' predict() once per stamp.
        network = model.network
        network.predict(inputs[:1], verbose=0)
        naive = _ms_per_stamp(
            lambda network=network, inputs=inputs: [network.predict(inputs[i : i + 1], verbose=0)
                                                    for i in range(naive_stamps)],
            naive_stamps, repeats=1 if smoke else 2,
        )
        paper = PAPER_MS[arch]
        figures.append(Figure.time(
            f"1.{label}.naive", 1, f"{label}: naive per-stamp keras network.predict loop (baseline)", naive,
            "ms/stamp", reference=paper, reference_label=f"paper ({label})",
            note=f"{naive_stamps} stamps", command=command,
        ))

        # ONNX first, all batch sizes, then TensorFlow: TensorFlow's idle
        # worker threads keep spinning for a while after each call and would
        # take the two cores from an ONNX measurement that follows at once.
        backends = (["onnx"] if have_onnx else []) + ["tensorflow"]
        for backend in backends:
            for batch in batch_sizes:
                batch_inputs = inputs[:batch]
                calls = max(1, (64 if smoke else 256) // batch)  # small batches: several calls per timing
                repeats = 2 if smoke else (3 if batch >= 1024 else 5)
                def run(model=model, batch_inputs=batch_inputs, batch=batch, backend=backend, calls=calls):
                    for _ in range(calls):
                        model.predict(batch_inputs, batch_size=batch, backend=backend)

                ms = _ms_per_stamp(run, batch * calls, repeats)
                goal = GOAL_MS.get(arch) if backend == "onnx" else None
                figures.append(Figure.time(
                    f"1.{label}.{'tf' if backend == 'tensorflow' else 'onnx'}.b{batch}", 1,
                    f"{label}: RealBogusModel.predict, {backend}, batch {batch}", ms, "ms/stamp",
                    baseline=naive, baseline_label="naive loop", reference=paper,
                    reference_label=f"paper ({label})" + (f"; goal <= {goal} ms" if goal else ""),
                    command=command,
                ))
        if have_onnx and arch == "paper_nodia" and not smoke:
            # What the fold rewrite and the thread count buy, at a large batch.
            batch_inputs = inputs[:1024]
            from rbnodia.nn.onnx.translate import translate_variants

            for label_extra, fold, threads in (("no fold rewrite", 0, None), ("1 thread", 16, 1)):
                predictor = OnnxPredictor(translate_variants(network, fold=fold), threads=threads)

                def run_chunks(predictor=predictor, batch_inputs=batch_inputs):
                    for i in range(0, len(batch_inputs), 256):
                        predictor(batch_inputs[i : i + 256])

                ms = _ms_per_stamp(run_chunks, len(batch_inputs), 3)
                figures.append(Figure.time(
                    f"1.{label}.onnx.b1024.{label_extra.replace(' ', '_')}", 1,
                    f"{label}: ONNX Runtime, batch 1024, {label_extra} (ablation)", ms, "ms/stamp",
                    baseline=naive, baseline_label="naive loop", reference=paper,
                    reference_label=f"paper ({label})", command=command,
                ))
    figures.extend(_packaged_models(smoke, command, rng, have_onnx))
    return figures


def _packaged_models(smoke: bool, command: str, rng: np.random.Generator, have_onnx: bool) -> list[Figure]:
    """Return the models the pipelines use by default (trained weights, their own
    architectures), at the batch size the task uses.
    """
    from rbnodia.nn import load_model, packaged_model_names

    figures = []
    batch = 64 if smoke else 2048
    for name in packaged_model_names():
        model = load_model(name)
        shape = model.input_shape
        inputs = rng.random((batch,) + shape, dtype=np.float32)
        paper = PAPER_MS["paper_dia" if model.layout.value == "DIA" else "paper_nodia"]
        goal = GOAL_MS.get("paper_nodia") if model.layout.value == "noDIA" else None
        tf_ms = None
        for backend in ["tensorflow"] + (["onnx"] if have_onnx else []):
            model.predict(inputs[:8], backend=backend)

            def run(model=model, inputs=inputs, backend=backend):
                model.predict(inputs, batch_size=len(inputs), backend=backend)

            ms = _ms_per_stamp(run, len(inputs), 2 if smoke else 5)
            figures.append(Figure.time(
                f"1.packaged.{name}.{'tf' if backend == 'tensorflow' else 'onnx'}", 1,
                f"packaged {name} ({model.metadata.architecture}), {backend}, batch {batch}", ms, "ms/stamp",
                baseline=tf_ms, baseline_label="same model on TensorFlow" if tf_ms else "",
                reference=paper,
                reference_label=f"paper ({model.layout.value})" + (f"; goal <= {goal} ms" if goal else ""),
                command=command,
            ))
            tf_ms = ms if backend == "tensorflow" else tf_ms
            figures.extend(_saliency_figures(name, model, inputs, backend, ms, smoke, command))
    return figures


def _saliency_figures(name: str, model, inputs: np.ndarray, backend: str, predict_ms: float, smoke: bool,
                      command: str) -> list[Figure]:
    """Return the cost of saliency per stamp against plain inference (the same
    model and backend), two ways: the segment fractions of the catalog
    (``doSaliency``: the maps' row sums, then
    `~rbnodia.core.saliency.segment_importances` and
    `~rbnodia.core.saliency.dominant_segment`), and the full maps
    (``doWriteSaliencyMaps``, ``rbnodia saliency``).  The three are timed
    in alternation (`best_times_interleaved`), so their ratios do not
    depend on when the machine was busy; ``predict_ms`` (timed alone) is
    only used in the notes.
    """
    from rbnodia.core.saliency import dominant_segment, segment_importances
    from rbnodia.nn.saliency import saliency_backend, saliency_maps

    used = saliency_backend(model, backend)
    saliency_maps(model, inputs[:8], backend=used)  # build the graphs / trace once
    saliency_maps(model, inputs[:8], backend=used, sum_rows=True)

    def predict(model=model, inputs=inputs, backend=backend):
        model.predict(inputs, batch_size=len(inputs), backend=backend)

    def fractions(model=model, inputs=inputs, used=used):
        rows = saliency_maps(model, inputs, batch_size=len(inputs), backend=used, sum_rows=True)
        dominant_segment(segment_importances(rows.maps, model.layout, model.stacking))

    def maps(model=model, inputs=inputs, used=used):
        saliency_maps(model, inputs, batch_size=len(inputs), backend=used)

    timings = best_times_interleaved([predict, fractions, maps], repeats=2 if smoke else 7)
    plain_ms = 1e3 * timings[0].wall / len(inputs)
    short = "tf" if backend == "tensorflow" else "onnx"
    figures = []
    for timing, suffix, what in ((timings[1], "saliency", "saliency fractions per detection (doSaliency)"),
                                 (timings[2], "saliency_maps", "saliency maps")):
        cpu_ratio = timing.cpu / timings[0].cpu if timings[0].cpu > 0 else float("nan")
        figures.append(Figure.amount(
            f"1.packaged.{name}.{short}.{suffix}", 1,
            f"packaged {name}: {what} ({used}), batch {len(inputs)}", 1e3 * timing.wall / len(inputs),
            "ms/stamp", baseline=plain_ms,
            baseline_label=f"plain inference, {backend} (timed in alternation)",
            reference_label="goal: <= 3x plain inference",
            note=f"CPU-time ratio {cpu_ratio:.2f}; predict alone {predict_ms:.4f} ms/stamp", command=command,
        ))
    return figures
