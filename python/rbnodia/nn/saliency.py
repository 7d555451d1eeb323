"""Vanilla gradient saliency maps (Simonyan et al. 2014) for real/bogus models.

As in Acero-Cuellar et al. (Section 4.3), the saliency of an input pixel is
the absolute value of the derivative of the top predicted class's softmax
probability with respect to that pixel, evaluated at the input::

    s_p = | d P_c(I) / d I_p |,    c = argmax_k P_k(I)

Two backends compute the same maps, with the probabilities of the same
forward pass:

- ``onnx`` (what ``auto`` picks when it can): the network and its
  hand-written backward pass in one ONNX Runtime graph, the model file's
  saliency graph (`rbnodia.nn.onnx.gradient`; run by
  `rbnodia.nn.onnx.runtime.OnnxSaliency`), for the layers the ONNX
  translation supports (non-overlapping max pooling only).  The softmax
  gradient is taken from the logits in log space, so it stays exact where
  the probabilities round to 0 and 1.  Needs only ONNX Runtime;
- ``tensorflow`` (the ``[train]`` extra): one compiled function per model runs the forward pass and
  the backward pass on a whole batch with a `tf.GradientTape`.  On CPU the
  slowest backward op is TensorFlow's ``MaxPoolGrad``; non-overlapping
  max-pool layers are therefore differentiated by an equivalent
  XLA-compiled kernel (``fast_pooling``; same maps, see `saliency_maps`).
  Where the softmax saturates, TensorFlow differentiates the rounded
  probabilities: its maps then keep only part of the gradient.

The per-segment reduction of the maps (the paper's Eq. 4) is
`rbnodia.core.saliency.segment_importances`.
"""

from __future__ import annotations

__all__ = ["SaliencyResult", "saliency_backend", "saliency_maps"]

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .keras_io import import_keras, import_tensorflow
from .model import RealBogusModel

_LOG = logging.getLogger(__name__)

# Compiled TensorFlow saliency functions per model (and pooling-gradient
# flavour); each remembers which network it was traced for.
_COMPILED: weakref.WeakKeyDictionary[RealBogusModel, dict[bool, tuple[Any, Any]]]
_COMPILED = weakref.WeakKeyDictionary()
_COMPILED_LOCK = threading.Lock()


@dataclass(frozen=True)
class SaliencyResult:
    """Saliency maps and the forward pass they were computed from.

    Attributes
    ----------
    maps : `numpy.ndarray`
        ``(n,) + input_shape`` float32, ``|d P_top / d input|``, laid out like
        the inputs (split them with `rbnodia.core.split_segments`); or,
        from ``saliency_maps(..., sum_rows=True)``, those maps summed over
        their rows, ``(n, 1, width, channels)``.
    probabilities : `numpy.ndarray`
        ``(n, 2)`` float32 softmax outputs: column 0 P(real), column 1
        P(bogus), identical to `RealBogusModel.probabilities`.
    """

    maps: np.ndarray
    probabilities: np.ndarray

    @property
    def score(self) -> np.ndarray:
        """P(real) per input (the reliability score)."""
        return self.probabilities[:, 0]

    @property
    def top_class(self) -> np.ndarray:
        """Index of the class whose probability was differentiated (0 real, 1 bogus)."""
        return np.argmax(self.probabilities, axis=1)

    def __len__(self) -> int:
        return len(self.probabilities)


def _first_max_mask_grad(ph: int, pw: int) -> Any:
    """XLA-compiled gradient of a ``(ph, pw)`` max pool with stride = size, valid padding.

    Each window's gradient goes to its first maximal pixel in row-major
    order, as TensorFlow's ``MaxPoolGrad`` does, in one fused XLA loop
    instead of ``MaxPoolGrad``, the slowest op of the backward pass on CPU.
    One function per pooling layer, so each is traced for one input shape.
    """
    tf = import_tensorflow("Saliency on TensorFlow")

    @tf.function(jit_compile=True)
    def pool_grad(x, pooled, upstream):
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        hh, ww = height // ph, width // pw
        windows = tf.reshape(x[:, : hh * ph, : ww * pw, :], (-1, hh, ph, ww, pw, channels))
        hit = tf.cast(tf.equal(windows, pooled[:, :, None, :, None, :]), x.dtype)
        free = tf.ones_like(hit[:, :, 0:1, :, 0:1, :])
        rows = []
        for i in range(ph):
            row = []
            for j in range(pw):
                here = hit[:, :, i : i + 1, :, j : j + 1, :]
                row.append(here * free)
                free = free * (1 - here)
            rows.append(tf.concat(row, axis=4) if pw > 1 else row[0])
        mask = tf.concat(rows, axis=2) if ph > 1 else rows[0]
        grad = tf.reshape(mask * upstream[:, :, None, :, None, :], (-1, hh * ph, ww * pw, channels))
        return tf.pad(grad, [[0, 0], [0, height - hh * ph], [0, width - ww * pw], [0, 0]])

    return pool_grad


def _fast_pool_layer(layer: Any) -> Any:
    """Return a stand-in for a Keras ``MaxPooling2D`` layer with a faster gradient, or `None`.

    Only non-overlapping pools (stride = pool size, valid padding,
    channels last) are replaced; the forward values are identical.
    """
    keras = import_keras("Saliency on TensorFlow")
    tf = import_tensorflow("Saliency on TensorFlow")

    if not isinstance(layer, keras.layers.MaxPooling2D):
        return None
    pool = tuple(layer.pool_size)
    if tuple(layer.strides) != pool or layer.padding != "valid" or layer.data_format != "channels_last":
        return None
    grad_function = _first_max_mask_grad(*pool)

    @tf.custom_gradient
    def max_pool(x):
        pooled = tf.nn.max_pool2d(x, pool, pool, "VALID")

        def grad(upstream):
            return grad_function(x, pooled, upstream)

        return pooled, grad

    class _MaxPoolFastGrad(keras.layers.Layer):
        def call(self, inputs):
            return max_pool(inputs)

        def compute_output_shape(self, shape):
            return (shape[0], shape[1] // pool[0], shape[2] // pool[1], shape[3])

    return _MaxPoolFastGrad(name=f"{layer.name}_fastgrad")


def _saliency_network(network: Any) -> Any:
    """``network`` with its max-pool layers swapped for `_fast_pool_layer`
    ones, sharing every other layer (and so the weights); ``network`` itself
    if there is nothing to swap or it cannot be cloned.
    """
    keras = import_keras("Saliency on TensorFlow")

    swapped = {id(layer): _fast_pool_layer(layer) for layer in network.layers}
    if not any(swapped.values()):
        return network
    try:
        return keras.models.clone_model(network, clone_function=lambda layer: swapped.get(id(layer)) or layer)
    except Exception as err:  # subclassed or otherwise unclonable networks
        _LOG.debug("Saliency uses the network as is (cannot swap pooling layers: %s).", err)
        return network


def _build(network: Any, fast_pooling: bool = True) -> Any:
    """Compile forward + backward for one network, for any batch size."""
    tf = import_tensorflow("Saliency on TensorFlow")

    spec = tf.TensorSpec((None,) + tuple(network.input_shape[1:]), tf.float32)
    forward = _saliency_network(network) if fast_pooling else network

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def saliency(batch):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(batch)
            probabilities = forward(batch, training=False)
            # Top class by argmax (ties go to class 0, real), then its own
            # probability; inputs are independent, so the gradient of the
            # sum is each input's own gradient.
            top = tf.argmax(probabilities, axis=1, output_type=tf.int32)
            selected = tf.gather(probabilities, top, axis=1, batch_dims=1)
        gradient = tape.gradient(selected, batch)
        return tf.abs(tf.cast(gradient, tf.float32)), tf.cast(probabilities, tf.float32)

    return saliency


def _compiled(model: RealBogusModel, fast_pooling: bool = True) -> Any:
    with _COMPILED_LOCK:
        cached = _COMPILED.get(model, {}).get(fast_pooling)
        if cached is None or cached[0] is not model.network:
            _LOG.debug("Compiling the saliency function for %s.", model.version)
            cached = (model.network, _build(model.network, fast_pooling))
            _COMPILED.setdefault(model, {})[fast_pooling] = cached
        return cached[1]


def saliency_backend(model: RealBogusModel, backend: str = "auto") -> str:
    """Return the backend `saliency_maps` uses for ``backend``: ``onnx`` or ``tensorflow``.

    ``auto`` means ONNX Runtime when the model has its saliency graph (all
    networks whose gradient has an ONNX translation) and ONNX Runtime is
    installed, else TensorFlow.

    Parameters
    ----------
    model : `rbnodia.nn.RealBogusModel`
        The model.
    backend : `str`, optional
        ``auto``, ``onnx`` or ``tensorflow``.

    Returns
    -------
    backend : `str`
        What `rbnodia.nn.RealBogusModel.inference_backend` resolves for the
        ``saliency`` graph.

    Raises
    ------
    ValueError
        If ``backend`` is unknown.
    RuntimeError
        If ``backend='onnx'`` and the model has no saliency graph.
    """
    return model.inference_backend(backend, role="saliency")


def saliency_maps(
    model: RealBogusModel,
    inputs: np.ndarray,
    batch_size: int = 1024,
    *,
    progress: bool = False,
    fast_pooling: bool = True,
    backend: str = "auto",
    sum_rows: bool = False,
    threads: int | None = None,
) -> SaliencyResult:
    """Vanilla gradient saliency of the top predicted class, with the probabilities.

    Parameters
    ----------
    model : `~rbnodia.nn.RealBogusModel`
        The model to explain.
    inputs : `numpy.ndarray`
        ``(n,) + input_shape`` network inputs, as `RealBogusModel.probabilities`
        takes them (scaled and stacked).
    batch_size : `int`
        Inputs per compiled call; memory grows linearly with it.
    progress : `bool`
        Show a tqdm progress bar over batches (only on a terminal).
    fast_pooling : `bool`
        Back-propagate through non-overlapping max-pool layers with one
        XLA-compiled kernel instead of TensorFlow's ``MaxPoolGrad`` (same
        result: the gradient goes to each window's first maximum).  On CPU
        this makes the pooling gradients faster and the ``paper_dia``
        saliency cheaper overall; ``benchmarks/bench_saliency.py`` compares
        both.  Falls back to the plain gradient, with a warning, if
        XLA fails.  TensorFlow backend only.
    backend : `str`
        ``auto`` (default: ONNX Runtime where it can, see
        `saliency_backend`), ``onnx`` or ``tensorflow``.
    sum_rows : `bool`
        Return each map summed over its rows, ``(n, 1, width, channels)``.
        That is all `rbnodia.core.saliency.segment_importances` needs (the
        segments lie side by side along the width or the channels, never
        the rows), and on ONNX Runtime the sums are taken inside the graph,
        so the full maps are neither copied out nor summed again in numpy.
    threads : `int`, optional
        Chunks ONNX Runtime runs at once, one thread each; `None` or 0:
        every CPU this process may run on.  Ignored by TensorFlow.

    Returns
    -------
    result : `SaliencyResult`
        Maps ``|d P_top / d input|`` shaped like ``inputs`` (or their row
        sums), and the softmax probabilities of the same forward pass.

    Raises
    ------
    rbnodia.nn.ModelMismatchError
        If the inputs' shape does not fit the model.
    ValueError
        If ``batch_size`` is not positive or ``backend`` is unknown.
    RuntimeError
        If ``backend='onnx'`` and ONNX Runtime cannot compute this model's
        saliency.
    """
    inputs = model.checked_inputs(inputs, batch_size, threads)
    expected = model.input_shape
    n = len(inputs)
    maps = np.empty((n, 1) + expected[1:] if sum_rows else inputs.shape, dtype=np.float32)
    probabilities = np.empty((n, 2), dtype=np.float32)
    chosen = saliency_backend(model, backend)
    if n == 0:
        return SaliencyResult(maps, probabilities)
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="saliency", unit="batch", disable=None)
    if chosen == "onnx":
        engine = model.onnx_runner("saliency")
        for start in starts:
            stop = min(start + batch_size, n)
            engine(inputs[start:stop], sum_rows=sum_rows, maps=maps[start:stop],
                   probabilities=probabilities[start:stop], threads=threads)
        return SaliencyResult(maps, probabilities)
    function = _compiled(model, fast_pooling)
    for start in starts:
        stop = min(start + batch_size, n)
        try:
            batch_maps, batch_probabilities = function(inputs[start:stop])
        except Exception as err:
            if not fast_pooling:
                raise
            _LOG.warning("Fast max-pool gradient failed (%s); using TensorFlow's MaxPoolGrad.", err)
            function = _compiled(model, False)
            with _COMPILED_LOCK:  # do not try again for this model
                _COMPILED[model][True] = _COMPILED[model][False]
            fast_pooling = False
            batch_maps, batch_probabilities = function(inputs[start:stop])
        maps[start:stop] = batch_maps.numpy().sum(axis=1, keepdims=True) if sum_rows else batch_maps.numpy()
        probabilities[start:stop] = batch_probabilities.numpy()
    return SaliencyResult(maps, probabilities)
