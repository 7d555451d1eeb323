"""Scoring labelled stamps with a model: all metrics, per family, per S/N
bin and per host contrast, prediction time, and a network's cost.
"""

from __future__ import annotations

__all__ = ["evaluate_model", "network_cost", "predict_scores", "stamp_metrics"]

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.contrast import CONTRAST_BIN_EDGES, host_contrast
from ..core.group_metrics import SNR_BIN_EDGES, auc_by_bin, completeness_by_bin, metrics_by_group
from ..core.metrics import evaluate
from ..core.stampset import LabelledStamps
from .data import model_inputs


def stamp_metrics(
    stamps: LabelledStamps, scores: Any, threshold: float, *, snr_edges: Sequence[float] = SNR_BIN_EDGES
) -> dict[str, Any]:
    """`rbnodia.core.metrics.evaluate` plus the breakdowns by family and S/N.

    Parameters
    ----------
    stamps : `~rbnodia.core.LabelledStamps`
        The labelled set (its ``family`` and ``snr`` columns are used).
    scores : array-like
        P(real) per stamp.
    threshold : `float`
        Decision threshold.
    snr_edges : sequence of `float`
        S/N bin edges.

    Returns
    -------
    metrics : `dict`
        ``evaluate``'s keys, ``by_family``
        (`~rbnodia.core.group_metrics.metrics_by_group` over the families
        found in the data: count, accuracy, fraction called real) and
        ``auc_by_snr`` (`~rbnodia.core.group_metrics.auc_by_bin`) and
        ``real_by_host_contrast`` (fraction of reals called real against
        `~rbnodia.core.contrast.host_contrast`,
        `~rbnodia.core.group_metrics.completeness_by_bin`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    metrics = evaluate(stamps.label, scores, threshold)
    metrics["by_family"] = metrics_by_group(stamps.label, scores >= threshold, stamps.family)
    metrics["auc_by_snr"] = auc_by_bin(stamps.label, scores, stamps.snr, snr_edges)
    metrics["real_by_host_contrast"] = completeness_by_bin(
        stamps.label, scores >= threshold, host_contrast(stamps.tmpl, stamps.diff), CONTRAST_BIN_EDGES
    )
    return metrics


def predict_scores(model: Any, inputs: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, float]:
    """Compute P(real) for prepared inputs, and the wall-clock seconds it took.

    The model's predictor is built and traced on a small warm-up batch
    first, so the time measures steady-state prediction only.

    Parameters
    ----------
    model : `rbnodia.nn.RealBogusModel`
        The model.
    inputs : `numpy.ndarray`
        Network inputs.
    batch_size : `int`, optional
        Stamps per call.

    Returns
    -------
    scores : `numpy.ndarray`
        P(real) per input.
    seconds : `float`
        Wall-clock seconds of the prediction.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    if len(inputs):
        model.predict(inputs[: min(len(inputs), 64)], batch_size=batch_size)
    start = time.perf_counter()
    scores = model.predict(inputs, batch_size=batch_size)
    return scores, time.perf_counter() - start


def evaluate_model(
    model: Any, stamps: LabelledStamps, threshold: float | None = None, *, return_scores: bool = False
) -> dict[str, Any] | tuple[dict[str, Any], np.ndarray]:
    """Score a labelled set with a model and compute all metrics.

    Parameters
    ----------
    model : `~rbnodia.nn.RealBogusModel`
        Trained model.
    stamps : `~rbnodia.core.LabelledStamps`
        Held-out stamps (raw; scaled here as the model expects).
    threshold : `float`, optional
        Decision threshold; the model's own by default.
    return_scores : `bool`
        Also return the P(real) scores.

    Returns
    -------
    metrics : `dict`
        `stamp_metrics` plus ``predict_seconds`` (wall clock of
        `RealBogusModel.predict` over the set, after warm-up),
        ``ms_per_stamp`` and ``n_flagged`` (stamps with scaling flags).
    scores : `numpy.ndarray`
        Only if ``return_scores``.

    Raises
    ------
    rbnodia.nn.ModelMismatchError
        If the stamps do not fit the model.
    """
    model.check_compatible(model.layout, stamps.stamp_size if len(stamps) else model.stamp_size)
    threshold = model.threshold if threshold is None else float(threshold)
    inputs, flags = model_inputs(stamps, model.layout, model.stacking, scaling=model.scaling)
    scores, seconds = predict_scores(model, inputs)
    metrics = stamp_metrics(stamps, scores, threshold)
    metrics["predict_seconds"] = float(seconds)
    metrics["ms_per_stamp"] = float(1000.0 * seconds / len(stamps)) if len(stamps) else math.nan
    metrics["n_flagged"] = int(np.count_nonzero(flags))
    return (metrics, scores) if return_scores else metrics


def network_cost(network: Any) -> dict[str, int]:
    """Parameter count and multiply-accumulate count of one forward pass.

    Counts convolutions (plain, depthwise, separable) and dense layers;
    element-wise layers (activations, batch normalisation, pooling) are
    ignored, so ``flops = 2 * macs`` is a slight underestimate.

    Parameters
    ----------
    network : `keras.Model`
        Built network.

    Returns
    -------
    cost : `dict` [`str`, `int`]
        ``params``, ``macs`` and ``flops`` per input sample.
    """
    from keras import layers

    macs = 0
    for layer in network.layers:
        out = layer.output.shape
        if isinstance(layer, layers.SeparableConv2D):
            kh, kw, cin, mult = layer.depthwise_kernel.shape
            macs += out[1] * out[2] * (kh * kw * cin * mult + cin * mult * out[3])
        elif isinstance(layer, layers.DepthwiseConv2D):
            kh, kw, cin, mult = layer.kernel.shape
            macs += out[1] * out[2] * kh * kw * cin * mult
        elif isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            macs += out[1] * out[2] * kh * kw * cin * cout
        elif isinstance(layer, layers.Dense):
            macs += int(np.prod(layer.kernel.shape))
    return {"params": int(network.count_params()), "macs": int(macs), "flops": int(2 * macs)}
