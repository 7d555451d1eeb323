"""Optional ONNX Runtime inference backend for real/bogus networks.

TensorFlow/Keras stays the training framework and the model's source of
truth; this module only *executes* a trained Keras network faster on CPUs.
`keras_to_onnx` translates the network layer by layer into an ONNX graph
(no TensorFlow tracing, no tf2onnx), and `OnnxPredictor` runs it with ONNX
Runtime.  `rbnodia.nn.RealBogusModel.probabilities` builds one predictor per
model lazily, on first use, and keeps it for the life of the process.

Supported layers are those of the registered architectures: ``Conv2D``
(any kernel, stride, dilation, groups, ``valid``/``same`` padding, relu or
linear activation), ``MaxPooling2D``, ``BatchNormalization``, ``ReLU``,
``Activation``, ``Flatten``, ``Dense``, and the layers that do nothing at
inference (``Dropout`` and friends), in a single chain.  Any other network
raises `OnnxUnsupportedError`, and the ``auto`` backend then falls back to
TensorFlow.

One rewrite makes the paper's noDIA network several times faster than a
plain translation: its first layer is a single 7x7 filter on a
single-channel image, which ONNX Runtime's blocked (NCHWc) convolutions
compute 8 or 16 times over (one output channel in a block of 8 or 16).
When a network starts with such a 1-in, 1-out convolution, the graph folds
``block`` consecutive stamps into the channel axis and runs the layer as a
grouped (depthwise) convolution with the filter repeated per group, so that
every SIMD lane works on a different stamp; the following per-channel layers
(activation, pooling, batch norm, dropout) run folded too, and the result is
unfolded before the next layer mixes channels.  The folded graph needs the
batch to be a multiple of ``block``; `OnnxPredictor` runs the remainder
through a second, unfolded graph.  Both compute the same function.

With ``saliency=True`` the graph also runs the network's backward pass
(`_append_saliency`).  ONNX Runtime is fastest where that pass stays in its
blocked (NCHWc) layout from one convolution to the next: stride-1
convolutions are undone by flipped convolutions, and the relu derivatives
between them are computed and applied in that layout too
(`_conv_gradient`, `_relu_derivative`).  Strided convolutions can only be
undone by ``ConvTranspose``, which has no blocked kernel; this is why the
packaged models use the ``patch_*`` architectures (one non-overlapping
strided stem, then stride-1 layers; see `rbnodia.nn.architectures`).

Both runners (`OnnxPredictor` and `OnnxSaliency`) cut a batch into chunks
of at most `CHUNK` stamps and run the chunks on ``threads`` Python threads
at once, each call on a single ONNX Runtime thread, instead of running one
call on ``threads`` intra-op threads.  The graphs are chains of small
operators, several of which (``ConvTranspose``'s col2im, ``MaxUnpool``,
elementwise ops on small images) ONNX Runtime runs on one thread only; whole
chunks in parallel keep every core busy (on 2 cores, alternating with the
previous scheme: inference 0.95-1.35x as fast, the saliency graph 1.2-1.7x;
``benchmarks/bench_threading.py``).
"""

from __future__ import annotations

__all__ = [
    "OnnxPredictor",
    "OnnxSaliency",
    "OnnxUnsupportedError",
    "default_threads",
    "keras_to_onnx",
    "onnx_available",
]

import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_LOG = logging.getLogger(__name__)

OPSET = 17
"""ONNX operator set the graphs are written for."""
IR_VERSION = 8
"""ONNX IR version (readable by every ONNX Runtime of the last years)."""
FOLD_BLOCK = 16
"""Stamps folded into channels for a leading 1-in/1-out convolution: a
multiple of the NCHWc block of both AVX2 (8) and AVX-512 (16) CPUs."""
CHUNK = 128
"""Most stamps per ONNX Runtime call: larger batches spill the first layers'
images out of the CPU caches and run slower (see doc/performance.rst)."""
MIN_PIECE = 16
"""Fewest stamps worth a thread of their own when a batch is split."""

_IDENTITY_LAYERS = frozenset(
    {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
     "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "InputLayer"}
)
_PER_CHANNEL_LAYERS = frozenset({"MaxPooling2D", "BatchNormalization", "ReLU", "Activation"})
_ACTIVATIONS = {"linear": None, "relu": "Relu", "sigmoid": "Sigmoid", "softmax": "Softmax", "tanh": "Tanh"}


class OnnxUnsupportedError(RuntimeError):
    """The network uses something the ONNX translation does not handle."""


def onnx_available() -> bool:
    """Whether the ONNX backend can be used (``onnx`` and ``onnxruntime`` importable)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def default_threads() -> int:
    """Chunks ONNX Runtime runs at once (one thread each):
    ``RBNODIA_INFERENCE_THREADS`` if set, else the CPUs this process may run on."""
    value = os.environ.get("RBNODIA_INFERENCE_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            _LOG.warning("Ignoring RBNODIA_INFERENCE_THREADS=%r (not an integer).", value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _activation_name(activation: Any) -> str:
    import keras

    name = getattr(activation, "__name__", None)
    if name in _ACTIVATIONS:
        try:
            if keras.activations.get(name) is activation:
                return name
        except (ValueError, TypeError):
            pass
    raise OnnxUnsupportedError(f"Activation {activation!r} is not supported by the ONNX backend.")


def _chain(network: Any) -> list[Any]:
    """The network's layers in order; raise unless they form one chain."""
    import keras

    layers = [layer for layer in network.layers if type(layer).__name__ != "InputLayer"]
    previous = network.inputs[0] if len(network.inputs) == 1 else None
    if previous is None or len(network.outputs) != 1:
        raise OnnxUnsupportedError("Only single-input, single-output networks are supported.")
    if isinstance(network, keras.Sequential):
        # A Sequential model is a chain by construction; its layers may have
        # extra inbound nodes from being called elsewhere (e.g. in training).
        return layers
    for layer in layers:
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        if len(inputs) != 1 or inputs[0] is not previous:
            raise OnnxUnsupportedError(f"Layer {layer.name!r} does not continue a single chain of layers.")
        previous = layer.output
    if previous is not network.outputs[0]:
        raise OnnxUnsupportedError("The network output is not the end of its layer chain.")
    return layers


@dataclass
class _Builder:
    """Collects ONNX nodes and weights while walking the layers."""

    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    counter: int = 0
    notes: dict = field(default_factory=dict)  # node output -> what its gradient needs
    value_info: list = field(default_factory=list)  # declared shapes of intermediate tensors

    def name(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def const(self, stem: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attributes) -> str:
        from onnx import helper

        output = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def rename(self, old: str, new: str) -> None:
        """Call tensor ``old`` ``new`` wherever it appears."""
        for node in self.nodes:
            for names in (node.input, node.output):
                for i, name in enumerate(names):
                    if name == old:
                        names[i] = new
        for info in self.value_info:
            if info.name == old:
                info.name = new

    def activation(self, x: str, name: str, stem: str) -> str:
        op = _ACTIVATIONS[name]
        if op is None:
            return x
        if op == "Softmax":
            return self.node(op, [x], stem, axis=-1)
        return self.node(op, [x], stem)


def _pads(padding: str) -> dict[str, Any]:
    if padding == "valid":
        return {}
    if padding == "same":  # TensorFlow puts the odd extra pixel at the end, as SAME_UPPER does
        return {"auto_pad": "SAME_UPPER"}
    raise OnnxUnsupportedError(f"Padding {padding!r} is not supported.")


def _check_channels_last(layer: Any) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise OnnxUnsupportedError(f"Layer {layer.name!r}: only channels_last data is supported.")


def _foldable_first_conv(layers: list[Any], input_channels: int) -> bool:
    first = next((layer for layer in layers if type(layer).__name__ not in _IDENTITY_LAYERS), None)
    return (
        first is not None
        and type(first).__name__ == "Conv2D"
        and input_channels == 1
        and first.filters == 1
        and first.groups == 1
    )


def keras_to_onnx(network: Any, *, fold: int = 0, saliency: bool = False, row_sums: bool = False) -> bytes:
    """Translate a Keras network (channels-last images in, softmax out) to ONNX.

    Parameters
    ----------
    network : `keras.Model`
        A chain of supported layers (see the module docstring) taking
        ``(n, height, width, channels)`` float32 inputs.
    fold : `int`
        If positive and the network starts with a 1-in/1-out convolution,
        fold this many stamps into the channel axis for the leading
        per-channel layers (see the module docstring); the graph then
        accepts only batches that are a multiple of ``fold``.  0 disables.
    saliency : `bool`
        Also compute the gradient ``d P_top / d inputs`` in the same graph
        (see `_append_saliency`), as a second output ``gradient``: the
        signed gradient, its values in the input's memory order, shaped
        ``(n, 1, h, w * c)`` where the first layer reads the input as one
        channel (`_interleaved_conv`, and one-channel inputs), else
        ``(n, h, w, c)``.  Reshaped to the input's shape and made
        absolute, it is the vanilla gradient saliency map
        (`rbnodia.nn.saliency`); `OnnxSaliency` takes the absolute value
        while it copies each chunk out (as cheap as the copy, while an
        ``Abs`` node costs a pass over the maps).  Needs a network that
        ends in a softmax.
    row_sums : `bool`
        With ``saliency``, output ``saliency_row_sums`` instead of
        ``gradient``: the saliency map summed over its rows, ``(n, 1, w * c)``
        (reshape to ``(n, 1, w, c)``).  That is all the segment importances
        need (the segments lie side by side along the width or the
        channels), at a tenth of the maps' size.  The sums are one ``Abs``
        and one ``MatMul`` with a row of ones (half the time of
        ``ReduceL1``, which ONNX Runtime runs slowly over a middle axis).

    Returns
    -------
    model : `bytes`
        Serialised ONNX model with input ``inputs`` and output ``outputs``
        (and the saliency output); ``outputs`` equals the Keras network's
        output to float32 rounding.

    Raises
    ------
    OnnxUnsupportedError
        If the network contains a layer or setting this translation does not
        handle.
    """
    import onnx
    from onnx import TensorProto, helper

    layers = _chain(network)
    shape = tuple(network.input_shape[1:])
    if len(shape) != 3:
        raise OnnxUnsupportedError(f"Only image inputs (height, width, channels) are supported, got {shape}.")
    height, width, channels = shape
    build = _Builder()
    build.notes["input_shape"] = shape
    x = "inputs"
    folded = fold > 0 and _foldable_first_conv(layers, channels)
    first = next((layer for layer in layers if type(layer).__name__ not in _IDENTITY_LAYERS), None)
    interleaved = not folded and channels > 1 and _interleavable(first)
    if folded:
        # (n, h, w, 1) -> (n / fold, fold, h, w): stamps become channels.
        x = build.node("Reshape", [x, build.const("shape", np.array([-1, fold, height, width], np.int64))],
                       "fold")
    elif channels == 1 or interleaved:
        # (n, h, w, c) read as one channel, (n, 1, h, w * c): no data moves (see `_interleaved_conv`).
        # Its batch declared "n", as the input's: ONNX Runtime then knows the shapes of the forward
        # tensors equal those of the gradients (declared from "n" too) and keeps them blocked.
        view = (1, height, width * channels)
        x = build.node("Reshape", [x, build.const("shape", np.array([-1, *view], np.int64))], "as_nchw")
        build.value_info.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", *view]))
        build.notes["input_view"] = (x, view)
    else:
        x = build.node("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    state = "folded" if folded else "nchw"  # then "flat" after Flatten
    build.notes["folded"] = folded
    dims = (channels, height, width)  # current (c, h, w) of one stamp while images
    pending_permutation = None  # NHWC->NCHW row order for the Dense after a Flatten

    for index, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind in _IDENTITY_LAYERS:
            continue
        if state == "folded" and kind not in _PER_CHANNEL_LAYERS and not _is_first_compute(layers, index):
            shape = build.const("shape", np.array([-1, 1, dims[1], dims[2]], np.int64))
            x = build.node("Reshape", [x, shape], "unfold")
            state = "nchw"
        repeat = fold if state == "folded" else 1
        out_shape = tuple(layer.output.shape[1:])
        if kind == "Conv2D":
            _check_channels_last(layer)
            if state != "nchw" and state != "folded":
                raise OnnxUnsupportedError(f"Conv2D {layer.name!r} after Flatten.")
            weight = np.transpose(_value(layer.kernel), (3, 2, 0, 1))  # (out, in/groups, kh, kw)
            bias = _value(layer.bias) if layer.use_bias else np.zeros(layer.filters, np.float32)
            geometry = _transpose_geometry(layer, dims[1:], out_shape[:2])
            attributes = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.strides),
                          "dilations": list(layer.dilation_rate), "group": layer.groups,
                          **_pads(layer.padding)}
            if state == "folded":
                weight, bias = np.tile(weight, (fold, 1, 1, 1)), np.tile(bias, fold)
                attributes["group"] = fold
            elif interleaved and layer is first:
                weight, attributes, geometry = _interleaved_conv(weight, attributes, geometry)
            x = build.node("Conv", [x, build.const("weight", weight), build.const("bias", bias)], "conv",
                           **attributes)
            build.notes[x] = geometry
            x = build.activation(x, _activation_name(layer.activation), "act")
            build.notes[("image_channels", x)] = weight.shape[0]
            dims = (out_shape[2], out_shape[0], out_shape[1])
        elif kind == "MaxPooling2D":
            _check_channels_last(layer)
            if state == "flat":
                raise OnnxUnsupportedError(f"MaxPooling2D {layer.name!r} after Flatten.")
            x = build.node("MaxPool", [x], "pool", kernel_shape=list(layer.pool_size),
                           strides=list(layer.strides), **_pads(layer.padding))
            if saliency:
                if any(s < k for s, k in zip(layer.strides, layer.pool_size)):
                    raise OnnxUnsupportedError(f"Saliency through overlapping MaxPooling2D {layer.name!r}.")
                build.nodes[-1].output.append(build.name("pool_indices"))
            dims = (out_shape[2], out_shape[0], out_shape[1])
        elif kind == "BatchNormalization":
            axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis
            rank = len(layer.input.shape)
            if axis % rank != rank - 1:
                raise OnnxUnsupportedError(f"BatchNormalization {layer.name!r} must normalise the last axis.")
            count = layer.input.shape[-1]
            gamma = _value(layer.gamma) if layer.scale else np.ones(count, np.float32)
            beta = _value(layer.beta) if layer.center else np.zeros(count, np.float32)
            mean, variance = _value(layer.moving_mean), _value(layer.moving_variance)
            params = [np.tile(p, repeat).astype(np.float32) for p in (gamma, beta, mean, variance)]
            x = build.node("BatchNormalization", [x] + [build.const(n, p) for n, p in
                                                        zip(("gamma", "beta", "mean", "var"), params)],
                           "bn", epsilon=float(layer.epsilon))
            # d y / d x per channel, shaped to broadcast over (n, c, h, w) or (n, c)
            slope = params[0] / np.sqrt(params[3] + np.float32(layer.epsilon))
            build.notes[x] = slope.reshape((-1, 1, 1) if state != "flat" else (-1,)).astype(np.float32)
        elif kind == "ReLU":
            if (layer.max_value is not None or float(layer.negative_slope) != 0.0
                    or float(layer.threshold) != 0.0):
                raise OnnxUnsupportedError(f"ReLU {layer.name!r} with options is not supported.")
            x = build.node("Relu", [x], "relu")
            if state != "flat":
                build.notes[("image_channels", x)] = dims[0] * repeat
        elif kind == "Activation":
            name = _activation_name(layer.activation)
            if name == "softmax" and state != "flat":
                raise OnnxUnsupportedError(f"Softmax on images ({layer.name!r}) is not supported.")
            x = build.activation(x, name, "act")
            if state != "flat":
                build.notes[("image_channels", x)] = dims[0] * repeat
        elif kind == "Flatten":
            if state == "flat":
                continue
            c, h, w = dims
            rest = [later for later in layers[index + 1 :] if type(later).__name__ not in _IDENTITY_LAYERS]
            follower = rest[0] if rest else None
            image_dims = (c, h, w)  # of the tensor flattened
            if c > 1 and follower is not None and type(follower).__name__ == "Dense":
                # Flatten in NCHW order and permute the Dense rows instead of transposing the data.
                pending_permutation = (c, h, w)
            elif c > 1:
                x = build.node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])
                image_dims = (h, w, c)
            shape = build.const("shape", np.array([-1, c * h * w], np.int64))
            x = build.node("Reshape", [x, shape], "flatten")
            build.notes[("image_dims", x)] = image_dims
            state = "flat"
        elif kind == "Dense":
            if state != "flat":
                raise OnnxUnsupportedError(f"Dense {layer.name!r} on images (no Flatten before it).")
            kernel = _value(layer.kernel)
            if pending_permutation is not None:
                c, h, w = pending_permutation
                kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
                pending_permutation = None
            bias = _value(layer.bias) if layer.use_bias else np.zeros(layer.units, np.float32)
            x = build.node("Gemm", [x, build.const("kernel", kernel), build.const("bias", bias)], "dense")
            x = build.activation(x, _activation_name(layer.activation), "act")
        else:
            raise OnnxUnsupportedError(f"Layer {layer.name!r} of type {kind} is not supported.")

    if state != "flat":
        raise OnnxUnsupportedError("The network does not end in a flat (n, classes) output.")
    classes = int(network.output_shape[-1])
    outputs = [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, ["n", classes])]
    if saliency:
        grad, shape = _append_saliency(build, x, classes)
        if row_sums:
            columns = width * channels
            shape_rows = build.const("shape", np.array([-1, height, columns], np.int64))
            rows = build.node("Reshape", [grad, shape_rows], "grad_rows")
            grad = build.node("MatMul", [build.const("ones", np.ones((1, height), np.float32)),
                                         build.node("Abs", [rows], "saliency")], "saliency_row_sums")
            shape, name = (1, columns), "saliency_row_sums"
        else:
            name = "gradient"
        build.rename(grad, name)  # no Identity: ONNX Runtime would copy the tensor
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", *shape]))
    x = build.node("Identity", [x], "outputs")
    build.nodes[-1].output[0] = "outputs"
    graph = helper.make_graph(
        build.nodes,
        network.name or "realbogus",
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["n", height, width, channels])],
        outputs,
        build.initializers,
        value_info=build.value_info,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rbnodia")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _transpose_geometry(layer: Any, in_hw: tuple, out_hw: tuple) -> dict[str, list[int]]:
    """Pads and output padding of the ``ConvTranspose`` that takes a Conv2D
    layer's output gradient back to its ``in_hw`` input grid."""
    pads_begin, pads_end, output_padding = [], [], []
    for size, out, k, s, d in zip(in_hw, out_hw, layer.kernel_size, layer.strides, layer.dilation_rate):
        span = d * (k - 1) + 1
        total = max((out - 1) * s + span - size, 0) if layer.padding == "same" else 0
        begin = total // 2  # SAME_UPPER: the odd pixel at the end
        pads_begin.append(begin)
        pads_end.append(total - begin)
        output_padding.append(size - ((out - 1) * s + span - total))
    return {"pads": pads_begin + pads_end, "output_padding": output_padding}


def _append_saliency(build: _Builder, probabilities: str, classes: int) -> tuple[str, tuple[int, ...]]:
    """Append the backward pass of the chain in ``build``; return the
    gradient's name and its shape after the batch axis (see `keras_to_onnx`).

    The gradient of the top class's probability starts at the softmax,
    ``d P_t / d z_j = P_t (delta_tj - P_j)`` with ``t`` the first argmax (ties
    go to class 0, as in `rbnodia.nn.saliency`).  It is computed from the
    logits ``z`` in log space, ``P_t P_j = exp(log P_t + log P_j)``, so that
    it stays exact where the softmax saturates (a probability that rounds to
    1 still has a non-zero gradient), and it is divided by its largest entry
    before going back through the network, so that the backward pass never
    works on vanishing (denormal) numbers; the maps are multiplied by that
    entry at the end.  Each forward node is then undone in turn: ``Gemm``
    by the transposed kernel; ``Conv`` as `_conv_gradient` says;
    non-overlapping ``MaxPool`` by ``MaxUnpool`` to
    the pooling indices; inference batch norm by its per-channel slope
    (folded into the filters of the layer before it); activations by their
    derivative at the forward output (relu: `_relu_derivative`); reshapes
    and transposes by their inverses (the reshape back from a ``Flatten``
    with its shape declared, batch included, so that ONNX Runtime can prove
    the shapes of the gradients and relu derivatives below it equal).  Each
    sample's gradient depends only on that sample, as with TensorFlow's.
    """
    from onnx import TensorProto, helper

    forward = [node for node in build.nodes if node.op_type != "Identity"]
    if not forward or forward[-1].op_type != "Softmax" or forward[-1].output[0] != probabilities:
        raise OnnxUnsupportedError("Saliency needs a network that ends in a softmax.")
    constants: dict[float, str] = {}

    def scalar(value: float) -> str:  # shared scalar constants, made when first needed
        if value not in constants:
            constants[value] = build.const("scalar", np.array(value, np.float32))
        return constants[value]

    axis1 = build.const("axes", np.array([1], np.int64))
    logits = forward[-1].input[0]
    top = build.node("ArgMax", [probabilities], "top", axis=1, keepdims=0)
    onehot = build.node("OneHot", [top, build.const("depth", np.array([classes], np.int64)),
                                   build.const("off_on", np.array([0.0, 1.0], np.float32))], "onehot", axis=-1)
    shifted = build.node("Sub", [logits, build.node("ReduceMax", [logits], "z_max", axes=[1], keepdims=1)],
                         "z_shifted")
    log_sum = build.node("Log", [build.node("ReduceSum", [build.node("Exp", [shifted], "exp"), axis1],
                                            "sum_exp", keepdims=1)], "log_sum")
    log_p = build.node("Sub", [shifted, log_sum], "log_p")
    log_p_top = build.node("ReduceSum", [build.node("Mul", [log_p, onehot], "log_p_masked"), axis1],
                           "log_p_top", keepdims=1)
    # P_t P_j for j != t; the top class's own entry is P_t (1 - P_t) = sum of those.
    others = build.node("Mul", [build.node("Exp", [build.node("Add", [log_p, log_p_top], "log_pp")], "pp"),
                                build.node("Sub", [scalar(1.0), onehot], "not_top")], "p_top_p_other")
    grad = build.node("Sub", [build.node("Mul", [onehot, build.node("ReduceSum", [others, axis1], "p_top_rest",
                                                                   keepdims=1)], "seed_top"), others],
                      "grad_logits")
    scale = build.node("ReduceMax", [build.node("Abs", [grad], "grad_abs")], "grad_scale", axes=[1], keepdims=1)
    grad = build.node("Div", [grad, build.node("Max", [scale, scalar(float(np.finfo(np.float32).tiny))],
                                               "safe_scale")], "grad_unit")

    weights = {init.name: init for init in build.initializers}
    slope = None  # a batch norm's slope, folded into the weights of the layer before it

    def weight_array(name: str, axis: int) -> np.ndarray:
        from onnx import numpy_helper

        weight = numpy_helper.to_array(weights[name])
        if slope is None:
            return weight
        shape = [1] * weight.ndim
        shape[axis] = -1
        return (weight * slope.reshape(shape)).astype(np.float32)

    def true_scale(grad: str, rank: int) -> str:
        """``grad`` times the seed's scale, (n, 1) broadcast to ``rank``."""
        shape = build.const("shape", np.array([-1] + [1] * (rank - 1), np.int64))
        return build.node("Mul", [grad, build.node("Reshape", [scale, shape], "grad_scale_b")], "grad_true")

    # The scale goes back in before the first layer's gradient, whose output
    # (shaped like the input) is the largest tensor of the backward pass; in
    # a folded graph that layer's batch axis is not the stamps', so at the end.
    first = next((node for node in forward if node.op_type in ("Conv", "Gemm")), None)
    scaled = False
    view = build.notes.get("input_view")  # the input's reshape into NCHW, and its shape
    grad_shape = build.notes["input_shape"]  # of the gradient, after the batch axis
    blocked = False  # whether ``grad`` comes from a convolution ONNX Runtime runs in its blocked layout
    for node in reversed(forward[:-1]):
        op, x, y = node.op_type, node.input[0], node.output[0]
        attributes = {a.name: a for a in node.attribute}
        was_blocked, blocked = blocked, False
        if node is first and not build.notes["folded"]:
            grad, scaled = true_scale(grad, 4 if op == "Conv" else 2), True
        if slope is not None and op not in ("Gemm", "Conv"):
            grad = build.node("Mul", [grad, build.const("bn_slope", build.notes[slope_of])], "grad_bn")
            slope, was_blocked = None, False
        if op == "Gemm":
            grad = build.node("Gemm", [grad, build.const("weight", weight_array(node.input[1], 1))], "grad_dense",
                              transB=1)
            slope = None
        elif op == "Conv":
            grad, blocked = _conv_gradient(build, grad, weight_array(node.input[1], 0), attributes,
                                           build.notes[y])
            slope = None
        elif op == "Reshape" and view is not None and y == view[0]:
            grad_shape = view[1]  # the input as the first layer read it: its memory order, nothing to undo
        elif op == "MaxPool":
            shape = build.node("Shape", [x], "pool_shape")
            grad = build.node("MaxUnpool", [grad, node.output[1], shape], "grad_pool",
                              kernel_shape=list(attributes["kernel_shape"].ints),
                              strides=list(attributes["strides"].ints))
        elif op == "BatchNormalization":
            slope, slope_of = build.notes[y].ravel(), y
        elif op == "Relu":
            grad = build.node("Mul", [grad, _relu_derivative(build, y, scalar, was_blocked)], "grad_relu")
            blocked = was_blocked
        elif op == "Sigmoid":
            derivative = build.node("Mul", [y, build.node("Sub", [scalar(1.0), y], "one_minus")], "sigmoid_slope")
            grad = build.node("Mul", [grad, derivative], "grad_sigmoid")
        elif op == "Tanh":
            derivative = build.node("Sub", [scalar(1.0), build.node("Mul", [y, y], "square")], "tanh_slope")
            grad = build.node("Mul", [grad, derivative], "grad_tanh")
        elif op == "Reshape" and ("image_dims", y) in build.notes:
            # Back from a Flatten to the image, with its shape declared (batch
            # "n" included): ONNX Runtime then knows that the gradients and
            # relu derivatives of the layers below have equal shapes and
            # multiplies them in its blocked layout.
            dims = build.notes[("image_dims", y)]
            grad = build.node("Reshape", [grad, build.const("shape", np.array([-1, *dims], np.int64))],
                              "grad_reshape")
            build.value_info.append(helper.make_tensor_value_info(grad, TensorProto.FLOAT, ["n", *dims]))
        elif op == "Reshape":
            grad = build.node("Reshape", [grad, build.node("Shape", [x], "shape_of")], "grad_reshape")
        elif op == "Transpose":
            inverse = np.argsort(list(attributes["perm"].ints)).tolist()
            grad = build.node("Transpose", [grad], "grad_transpose", perm=inverse)
        else:
            raise OnnxUnsupportedError(f"No saliency gradient for ONNX op {op}.")
    if slope is not None:  # a batch norm on the inputs themselves
        grad = build.node("Mul", [grad, build.const("bn_slope", build.notes[slope_of])], "grad_bn")
    if not scaled:
        grad = true_scale(grad, len(build.notes["input_shape"]) + 1)
    return grad, grad_shape


RELU_MASK_GAIN = 1e30
"""Gain of the relu derivative in the blocked layout, ``tanh(gain * y)``
(see `_relu_derivative`): exactly 1 in float32 for every ``y > 1e-29``."""
NCHWC_BLOCK = 8
"""Channels per block of ONNX Runtime's blocked (NCHWc) layout on AVX2 CPUs
(16 on AVX-512, a multiple of 8): tensors with other channel counts are
padded to whole blocks."""


def _relu_derivative(build: _Builder, y: str, scalar: Callable[[float], str], blocked: bool) -> str:
    """The derivative of ``y = relu(x)``: 1 where ``y > 0``, 0 elsewhere (0 at
    0, as TensorFlow's), to multiply a gradient by.

    Where that gradient is in ONNX Runtime's blocked layout (``blocked``:
    it comes from a flipped convolution, see `_conv_gradient`) and the
    image's channels fill whole blocks, it is computed as
    ``tanh(gain * y)`` with a huge gain (`RELU_MASK_GAIN`), written as a
    ``BatchNormalization`` and a ``Tanh``: ONNX Runtime runs those, and the
    ``Mul``, in the blocked layout, so the gradient is not reordered to
    plain NCHW and back at every layer.  It differs from the exact
    derivative only for ``0 < y < 1e-29``.  Elsewhere it is ``Greater`` +
    ``Cast``, the fastest exact form on plain tensors (``Sign`` or ``Where``
    took 1.7-1.9x as long).
    """
    channels = build.notes.get(("image_channels", y))
    if not (blocked and channels and channels % NCHWC_BLOCK == 0):
        return build.node("Cast", [build.node("Greater", [y, scalar(0.0)], "relu_positive")], "relu_on",
                          to=1)  # TensorProto.FLOAT
    gain = build.const("relu_gain", np.full(channels, RELU_MASK_GAIN, np.float32))
    zeros = build.const("zeros", np.zeros(channels, np.float32))
    ones = build.const("ones", np.ones(channels, np.float32))
    steep = build.node("BatchNormalization", [y, gain, zeros, zeros, ones], "relu_steep", epsilon=0.0)
    return build.node("Tanh", [steep], "relu_on")


def _conv_gradient(
    build: _Builder, grad: str, weight: np.ndarray, attributes: dict, geometry: dict
) -> tuple[str, bool]:
    """Gradient of a ``Conv`` node with respect to its input, from ``grad``
    with respect to its output, and whether ONNX Runtime computes it in
    its blocked layout.

    Where ONNX Runtime's blocked convolutions do it well, a stride-1
    convolution is undone by the "full" convolution with the flipped
    filters (input and output channels swapped): for a depthwise one (the
    folded first layer, see the module docstring; ``paper_nodia``'s 7x7
    layer 15 us/stamp against the grouped ``ConvTranspose``'s 73, one
    thread), and for a plain one with a kernel of at most 3x3 whose inputs
    fill whole blocks (`NCHWC_BLOCK`).  Other stride-1 layers measured
    slower that way than as a ``ConvTranspose``, 1.4x for ``paper_dia``'s
    5x5 layers and 4-8x where the input has one channel (padded to a
    block).  Every other convolution is undone by the ``ConvTranspose`` with
    the same filters, a per-image GEMM plus an unblocked col2im: for
    strided layers that measured faster than a polyphase ``Conv`` plus an
    interleave, whose interleave costs more than it saves.
    """
    kernel = list(attributes["kernel_shape"].ints)
    strides = list(attributes["strides"].ints)
    dilations = list(attributes["dilations"].ints)
    group = attributes["group"].i
    depthwise = group > 1 and weight.shape[0] == group and weight.shape[1] == 1
    blockable = group == 1 and weight.shape[1] % NCHWC_BLOCK == 0 and max(kernel) <= 3
    if (depthwise or blockable) and all(s == 1 for s in strides) and not any(geometry["output_padding"]):
        rank = len(kernel)
        spans = [d * (k - 1) for k, d in zip(kernel, dilations)]
        pads = [span - p for span, p in zip(spans + spans, geometry["pads"])]
        if min(pads) >= 0:
            flipped = np.flip(weight, axis=tuple(range(2, 2 + rank)))
            if not depthwise:
                flipped = flipped.swapaxes(0, 1)  # (out, in, ...) -> (in, out, ...)
            return build.node("Conv", [grad, build.const("weight_flipped", np.ascontiguousarray(flipped))],
                              "grad_conv", kernel_shape=kernel, dilations=dilations, group=group,
                              pads=pads), True
    return build.node("ConvTranspose", [grad, build.const("weight", weight)], "grad_conv", kernel_shape=kernel,
                      strides=strides, dilations=dilations, group=group, **geometry), False


def _interleavable(layer: Any) -> bool:
    """Whether ``layer``, the network's first, can read its channels-last
    input as one interleaved channel (`_interleaved_conv`)."""
    return (
        layer is not None
        and type(layer).__name__ == "Conv2D"
        and layer.groups == 1
        and all(d == 1 for d in layer.dilation_rate)
    )


def _interleaved_conv(weight: np.ndarray, attributes: dict, geometry: dict) -> tuple[np.ndarray, dict, dict]:
    """The first convolution rewritten for the channels-last input read as
    one channel: weights, ``Conv`` attributes, and gradient geometry (see
    `_transpose_geometry`).

    Read as one channel, an ``(n, h, w, c)`` image is ``(n, 1, h, w * c)``
    with the ``c`` values of each pixel side by side, and a convolution with
    a ``(kh, kw)`` kernel and strides ``(sh, sw)`` (no dilation, no groups) on
    the ``c``-channel image is the convolution with a ``(kh, kw * c)`` kernel
    and strides ``(sh, sw * c)`` on that one-channel image, the weights
    interleaved the same way and the column padding ``c`` times as wide
    (explicit pads: ``SAME_UPPER`` would split an odd total differently).
    The forward pass then needs no transpose of the input to NCHW
    (3-6 us/stamp of the packaged models' inference, one thread), and the
    gradient, the ``ConvTranspose`` of this convolution, comes out in the
    input's memory order with no transpose back (5-8 us/stamp of their
    saliency).
    """
    out_channels, channels, kh, kw = weight.shape
    interleaved = weight.transpose(0, 2, 3, 1).reshape(out_channels, 1, kh, kw * channels)
    (sh, sw), pads = attributes["strides"], geometry["pads"]
    pads = [pads[0], pads[1] * channels, pads[2], pads[3] * channels]
    attributes = {"kernel_shape": [kh, kw * channels], "strides": [sh, sw * channels], "dilations": [1, 1],
                  "group": 1, "pads": pads}
    output_padding = [geometry["output_padding"][0], geometry["output_padding"][1] * channels]
    return interleaved, attributes, {"pads": pads, "output_padding": output_padding}


def _value(variable: Any) -> np.ndarray:
    """A Keras variable's current value as a float32 numpy array."""
    return np.asarray(variable, dtype=np.float32)


def _is_first_compute(layers: list[Any], index: int) -> bool:
    return all(type(layer).__name__ in _IDENTITY_LAYERS for layer in layers[:index])


def _session(model: bytes) -> Any:
    """A single-threaded ONNX Runtime CPU session for ``model`` (see
    `_run_chunks` for how several cores are used)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No thread pool to spin: on a machine shared with other processes
    # (Prompt Processing runs one per core) spinning threads steal the cores
    # the work needs (measured 2-3x slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _chunk_bounds(n: int, chunk: int, threads: int, align: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` pieces of ``range(n)``: at most ``chunk`` long, and
    short enough that ``threads`` threads all get one (unless that would make
    them shorter than `MIN_PIECE`); every piece but the last is a multiple
    of ``align``."""
    size = max(1, min(chunk, max(-(-n // max(1, threads)), MIN_PIECE)))
    if align > 1:
        size = max(align, size // align * align)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


_POOL: dict[str, Any] = {}
"""This process's worker threads for `_run_chunks` (made on first use, grown
on demand, dropped in a forked child, whose copy would have no threads)."""


_POOL_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        pool = _POOL.get("pool")
        if pool is None or _POOL.get("size", 0) < threads:
            if pool is not None:
                pool.shutdown(wait=False)  # its running work finishes; new work goes to the new pool
            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rbnodia-onnx")
            _POOL.update(pool=pool, size=threads)
        return pool


def _forget_pool_in_child() -> None:
    global _POOL_LOCK
    _POOL.clear()
    _POOL_LOCK = threading.Lock()  # the parent may have held it while forking


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _run_chunks(work: Callable[[int, int], None], bounds: list[tuple[int, int]], threads: int) -> None:
    """Call ``work(start, stop)`` for every piece, on up to ``threads``
    threads at once (ONNX Runtime releases the GIL while it runs): the
    calling thread and ``threads - 1`` pool threads take the pieces in turn."""
    if threads <= 1 or len(bounds) <= 1:
        for start, stop in bounds:
            work(start, stop)
        return
    pieces = iter(bounds)
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                piece = next(pieces, None)
            if piece is None:
                return
            work(*piece)

    helpers = [_pool(threads - 1).submit(drain) for _ in range(min(threads, len(bounds)) - 1)]
    try:
        drain()
    finally:  # never return (or raise) while a helper still writes into the caller's arrays
        for helper in helpers:
            helper.exception()
    for helper in helpers:
        helper.result()


class _FoldedGraphs:
    """One network's ONNX Runtime session, plus a folded one (see the module
    docstring) for the part of a batch that is a multiple of ``fold``;
    ``translation`` goes to `keras_to_onnx` (``saliency``, ``row_sums``)."""

    def __init__(
        self, network: Any, fold: int, session: Callable[[bytes], Any] | None = None, **translation: bool
    ) -> None:
        session = session or _session  # another factory only for benchmarks/bench_threading.py
        self.plain = session(keras_to_onnx(network, **translation))
        self.fold = 0
        if fold > 1 and _foldable_first_conv(_chain(network), int(network.input_shape[-1])):
            self.folded = session(keras_to_onnx(network, fold=fold, **translation))
            self.fold = fold

    def run(self, names: list[str], inputs: np.ndarray) -> list[np.ndarray]:
        """Outputs ``names`` for ``inputs``, stamps in order."""
        n = len(inputs)
        bulk = (n // self.fold) * self.fold if self.fold else 0
        if bulk == n:
            return self.folded.run(names, {"inputs": inputs})
        if bulk == 0:
            return self.plain.run(names, {"inputs": inputs})
        head = self.folded.run(names, {"inputs": inputs[:bulk]})
        tail = self.plain.run(names, {"inputs": inputs[bulk:]})
        # (the two graphs may lay a stamp's gradient out in different shapes, the values in the same order)
        return [np.concatenate([h, t.reshape((len(t),) + h.shape[1:])]) for h, t in zip(head, tail)]


class _ChunkedRunner:
    """What `OnnxPredictor` and `OnnxSaliency` share: the graphs, and a batch
    cut into chunks that run on ``threads`` threads at once."""

    _saliency = False

    def __init__(
        self, network: Any, *, threads: int | None = None, fold: int = FOLD_BLOCK, chunk: int = CHUNK
    ) -> None:
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self.chunk = max(1, int(chunk))
        self.input_shape = tuple(network.input_shape[1:])
        self.classes = int(network.output_shape[-1])
        self._network, self._fold = network, fold
        self._graphs = _FoldedGraphs(network, fold, saliency=self._saliency)
        self.fold = self._graphs.fold
        _LOG.debug("ONNX Runtime %s for %s: %d threads, fold %d.", type(self).__name__, network.name,
                   self.threads, self.fold)

    _absolute: frozenset[str] = frozenset()  # outputs copied as their absolute values

    def _run_all(
        self, inputs: np.ndarray, outputs: dict[str, np.ndarray], graphs: _FoldedGraphs | None = None
    ) -> None:
        """Fill each ``outputs[name]`` with output ``name`` of ``graphs``
        (default: the runner's) for ``inputs`` (its absolute value for the
        names in ``_absolute``), reshaped to the array's shape (the values
        in the same order)."""
        names = list(outputs)
        graphs = graphs or self._graphs

        def work(start: int, stop: int) -> None:
            for name, value in zip(names, graphs.run(names, inputs[start:stop])):
                target = outputs[name][start:stop]
                value = value.reshape(target.shape)
                if name in self._absolute:
                    np.abs(value, out=target)  # as cheap as the plain copy
                else:
                    target[...] = value

        _run_chunks(work, _chunk_bounds(len(inputs), self.chunk, self.threads, self.fold or 1), self.threads)


class OnnxPredictor(_ChunkedRunner):
    """Runs a Keras network's ONNX translation with ONNX Runtime.

    Parameters
    ----------
    network : `keras.Model`
        The network; its weights are copied into the graphs now (a later
        change of the Keras weights is not seen: build a new predictor).
    threads : `int`, optional
        Chunks run at once, one ONNX Runtime thread each; `default_threads`
        if `None`.
    fold : `int`
        Stamps folded into channels for a leading 1-in/1-out convolution
        (see the module docstring); 0 disables the rewrite.
    chunk : `int`
        Most stamps per ONNX Runtime call.

    Raises
    ------
    OnnxUnsupportedError
        If the network cannot be translated.
    ImportError
        If ``onnx`` or ``onnxruntime`` is missing.
    """

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Softmax outputs ``(n, classes)`` float32 of float32 ``inputs``."""
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        outputs = {"outputs": np.empty((len(inputs), self.classes), dtype=np.float32)}
        self._run_all(inputs, outputs)
        return outputs["outputs"]


class OnnxSaliency(_ChunkedRunner):
    """Softmax outputs and vanilla gradient saliency maps from one ONNX
    Runtime graph (`keras_to_onnx` with ``saliency=True``).

    Parameters are those of `OnnxPredictor`; with ``fold``, the forward and
    backward passes of a leading 1-in/1-out convolution run on stamps folded
    into channels.

    Raises
    ------
    OnnxUnsupportedError
        If the network, or its gradient, cannot be translated.
    ImportError
        If ``onnx`` or ``onnxruntime`` is missing.
    """

    _saliency = True
    _absolute = frozenset({"gradient"})
    _row_graphs: _FoldedGraphs | None = None  # the row-sum graphs, built on first use
    _row_graphs_lock = threading.Lock()  # one for all instances: building is rare

    def __call__(
        self,
        inputs: np.ndarray,
        *,
        sum_rows: bool = False,
        maps: np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(maps, probabilities)`` for float32 ``inputs``.

        Parameters
        ----------
        inputs : `numpy.ndarray`
            ``(n, h, w, c)`` network inputs.
        sum_rows : `bool`
            Return each map summed over its rows, ``(n, 1, w, c)``, computed
            by a second graph (``keras_to_onnx(..., row_sums=True)``, built
            on first use): enough for the segment importances, without
            copying the full maps out.
        maps, probabilities : `numpy.ndarray`, optional
            Float32 arrays to write the results into (a caller's slices of
            larger arrays, so the chunks are not copied twice); new arrays
            if `None`.

        Returns
        -------
        maps : `numpy.ndarray`
            ``|d P_top / d inputs|`` shaped like ``inputs``, or its row sums.
        probabilities : `numpy.ndarray`
            The ``(n, classes)`` softmax outputs.
        """
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        n, height, width, channels = inputs.shape
        shape = (n, 1, width, channels) if sum_rows else inputs.shape
        if maps is None:
            maps = np.empty(shape, dtype=np.float32)
        if probabilities is None:
            probabilities = np.empty((n, self.classes), dtype=np.float32)
        if maps.shape != shape or probabilities.shape != (n, self.classes):
            raise ValueError(f"Output arrays of shapes {maps.shape} and {probabilities.shape} do not fit "
                             f"{shape} and {(n, self.classes)}.")
        if not sum_rows:
            self._run_all(inputs, {"outputs": probabilities, "gradient": maps})
        else:
            with self._row_graphs_lock:
                if self._row_graphs is None:
                    self._row_graphs = _FoldedGraphs(self._network, self._fold, saliency=True, row_sums=True)
            self._run_all(inputs, {"outputs": probabilities, "saliency_row_sums": maps}, self._row_graphs)
        return maps, probabilities
