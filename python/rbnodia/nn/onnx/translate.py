"""Translate a Keras real/bogus network into ONNX graphs.

`keras_to_onnx` translates the network layer by layer into an ONNX graph
(no TensorFlow tracing, no tf2onnx), optionally with its backward pass
(`rbnodia.nn.onnx.gradient`); `translate_model_graphs` makes the set of
graphs a model file carries (`TRANSLATIONS`), each plain and, where it pays,
folded.  Running them is `rbnodia.nn.onnx.runtime`'s job.

Supported layers are those of the registered architectures: ``Conv2D``
(any kernel, stride, dilation, groups, ``valid``/``same`` padding, relu or
linear activation), ``MaxPooling2D``, ``BatchNormalization``, ``ReLU``,
``Activation``, ``Flatten``, ``Dense``, and the layers that do nothing at
inference (``Dropout`` and friends), in a single chain.  Any other network
raises `OnnxUnsupportedError`; such a model then predicts with TensorFlow.

One rewrite makes the paper's noDIA network several times faster than a
plain translation: its first layer is a single 7x7 filter on a
single-channel image, which ONNX Runtime's blocked (NCHWc) convolutions
compute 8 or 16 times over (one output channel in a block of 8 or 16).
When a network starts with such a 1-in, 1-out convolution, the graph folds
``fold`` consecutive stamps into the channel axis and runs the layer as a
grouped (depthwise) convolution with the filter repeated per group, so that
every SIMD lane works on a different stamp; the following per-channel layers
(activation, pooling, batch norm, dropout) run folded too, and the result is
unfolded before the next layer mixes channels.  The folded graph needs the
batch to be a multiple of ``fold``; the runners run the remainder through
the plain graph.  Both compute the same function.
"""

from __future__ import annotations

__all__ = ["FOLD_BLOCK", "TRANSLATIONS", "keras_to_onnx", "translate_model_graphs", "translate_variants"]

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import OnnxUnsupportedError
from .builder import ACTIVATIONS, IR_VERSION, OPSET, GraphBuilder
from .gradient import append_saliency
from .runtime import GRAPH_ROLES, GraphVariants

FOLD_BLOCK = 16
"""Stamps folded into channels for a leading 1-in/1-out convolution: a
multiple of the NCHWc block of both AVX2 (8) and AVX-512 (16) CPUs."""
TRANSLATIONS = {
    "forward": {},
    "saliency": {"saliency": True},
    "saliency_rows": {"saliency": True, "row_sums": True},
}
"""The `keras_to_onnx` options of each graph of a model file, by role
(`rbnodia.nn.onnx.runtime.GRAPH_ROLES`)."""

_IDENTITY_LAYERS = frozenset(
    {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
     "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "InputLayer"}
)
_PER_CHANNEL_LAYERS = frozenset({"MaxPooling2D", "BatchNormalization", "ReLU", "Activation"})


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
        (`rbnodia.nn.onnx.gradient.append_saliency`), as a second output
        ``gradient``: the signed gradient, its values in the input's memory
        order, shaped ``(n, 1, h, w * c)`` where the first layer reads the
        input as one channel (`_interleaved_conv`, and one-channel inputs),
        else ``(n, h, w, c)``.  Reshaped to the input's shape and made
        absolute, it is the vanilla gradient saliency map
        (`rbnodia.nn.saliency`); `rbnodia.nn.onnx.runtime.OnnxSaliency`
        takes the absolute value while it copies each chunk out (as cheap as
        the copy, while an ``Abs`` node costs a pass over the maps).  Needs
        a network that ends in a softmax.
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
        output to float32 rounding.  The same network and options always
        give the same bytes.

    Raises
    ------
    OnnxUnsupportedError
        If the network contains a layer or setting this translation does not
        handle.
    """
    translator = _Translator(network, fold, saliency)
    build, x = translator.build, translator.translate()
    height, width, channels = translator.shape
    classes = int(network.output_shape[-1])
    outputs = [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, ["n", classes])]
    if saliency:
        outputs.append(_saliency_output(build, x, classes, height, width * channels, row_sums))
    build.node("Identity", [x], "outputs")
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


def translate_variants(network: Any, fold: int = FOLD_BLOCK, **translation: bool) -> GraphVariants:
    """Translate ``network`` to one graph, plain, and folded by ``fold`` if
    ``fold > 1`` and the network starts with a 1-in/1-out convolution.

    Parameters
    ----------
    network : `keras.Model`
        The network.
    fold : `int`, optional
        Stamps folded into channels for the folded variant.
    **translation : `bool`
        `keras_to_onnx` options.

    Returns
    -------
    variants : `rbnodia.nn.onnx.runtime.GraphVariants`
        The plain graph, and the folded one where it applies.
    """
    plain = keras_to_onnx(network, **translation)
    if fold > 1 and _foldable_first_conv(_chain(network), int(network.input_shape[-1])):
        return GraphVariants(plain, keras_to_onnx(network, fold=fold, **translation), fold)
    return GraphVariants(plain)


def translate_model_graphs(
    network: Any, fold: int = FOLD_BLOCK
) -> tuple[dict[str, GraphVariants], dict[str, str]]:
    """Translate every graph of a model file (`TRANSLATIONS`) that ``network`` can be translated to.

    Parameters
    ----------
    network : `keras.Model`
        The network.
    fold : `int`, optional
        Stamps folded into channels for the folded variants.

    Returns
    -------
    graphs : `dict` [`str`, `~rbnodia.nn.onnx.runtime.GraphVariants`]
        By role.
    errors : `dict` [`str`, `str`]
        Why each missing role could not be translated.
    """
    graphs, errors = {}, {}
    for role in GRAPH_ROLES:
        try:
            graphs[role] = translate_variants(network, fold, **TRANSLATIONS[role])
        except OnnxUnsupportedError as err:
            errors[role] = str(err)
    return graphs, errors


def _saliency_output(build: GraphBuilder, x: str, classes: int, height: int, columns: int, row_sums: bool):
    """Append the backward pass (and the row sums); name its output and return its declaration."""
    grad, shape = append_saliency(build, x, classes)
    if row_sums:
        shape_rows = build.const("shape", np.array([-1, height, columns], np.int64))
        rows = build.node("Reshape", [grad, shape_rows], "grad_rows")
        grad = build.node("MatMul", [build.const("ones", np.ones((1, height), np.float32)),
                                     build.node("Abs", [rows], "saliency")], "saliency_row_sums")
        shape, name = (1, columns), "saliency_row_sums"
    else:
        name = "gradient"
    build.rename(grad, name)  # no Identity: ONNX Runtime would copy the tensor
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", *shape])


class _Translator:
    """The forward translation of one network, layer by layer.

    ``state`` is ``nchw`` (images), ``folded`` (images, ``fold`` stamps
    per batch entry) or ``flat`` (after a ``Flatten``); ``dims`` the current
    ``(c, h, w)`` of one stamp while images.
    """

    def __init__(self, network: Any, fold: int, saliency: bool) -> None:
        self.layers = _chain(network)
        self.shape = tuple(network.input_shape[1:])
        if len(self.shape) != 3:
            raise OnnxUnsupportedError(
                f"Only image inputs (height, width, channels) are supported, got {self.shape}.")
        self.fold, self.saliency = fold, saliency
        self.build = GraphBuilder()
        self.build.notes["input_shape"] = self.shape
        channels = self.shape[2]
        self.folded = fold > 0 and _foldable_first_conv(self.layers, channels)
        computing = (layer for layer in self.layers if type(layer).__name__ not in _IDENTITY_LAYERS)
        self.first = next(computing, None)
        self.interleaved = not self.folded and channels > 1 and _interleavable(self.first)
        self.state = "folded" if self.folded else "nchw"
        self.dims = (channels, self.shape[0], self.shape[1])
        self.pending_permutation = None  # NHWC->NCHW row order for the Dense after a Flatten

    def translate(self) -> str:
        """Append every layer; return the output tensor's name."""
        x = self.input()
        self.build.notes["folded"] = self.folded
        for index, layer in enumerate(self.layers):
            kind = type(layer).__name__
            if kind in _IDENTITY_LAYERS:
                continue
            if self.state == "folded" and kind not in _PER_CHANNEL_LAYERS and not _is_first_compute(
                    self.layers, index):
                shape = self.build.const("shape", np.array([-1, 1, self.dims[1], self.dims[2]], np.int64))
                x = self.build.node("Reshape", [x, shape], "unfold")
                self.state = "nchw"
            handler = getattr(self, f"_{kind}", None)
            if handler is None:
                raise OnnxUnsupportedError(f"Layer {layer.name!r} of type {kind} is not supported.")
            x = handler(x, layer, index)
        if self.state != "flat":
            raise OnnxUnsupportedError("The network does not end in a flat (n, classes) output.")
        return x

    def input(self) -> str:
        """Return the input, channels last, as the first layer reads it."""
        build, (height, width, channels) = self.build, self.shape
        if self.folded:
            # (n, h, w, 1) -> (n / fold, fold, h, w): stamps become channels.
            shape = build.const("shape", np.array([-1, self.fold, height, width], np.int64))
            return build.node("Reshape", ["inputs", shape], "fold")
        if channels == 1 or self.interleaved:
            # (n, h, w, c) read as one channel, (n, 1, h, w * c): no data moves (see `_interleaved_conv`).
            # Its batch declared "n", as the input's: ONNX Runtime then knows the shapes of the forward
            # tensors equal those of the gradients (declared from "n" too) and keeps them blocked.
            view = (1, height, width * channels)
            x = build.node("Reshape", ["inputs", build.const("shape", np.array([-1, *view], np.int64))],
                           "as_nchw")
            build.value_info.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", *view]))
            build.notes["input_view"] = (x, view)
            return x
        return build.node("Transpose", ["inputs"], "to_nchw", perm=[0, 3, 1, 2])

    @property
    def repeat(self) -> int:
        """Stamps per batch entry: ``fold`` while folded, else 1."""
        return self.fold if self.state == "folded" else 1

    def _Conv2D(self, x: str, layer: Any, index: int) -> str:
        _check_channels_last(layer)
        if self.state not in ("nchw", "folded"):
            raise OnnxUnsupportedError(f"Conv2D {layer.name!r} after Flatten.")
        build, out_shape = self.build, tuple(layer.output.shape[1:])
        weight = np.transpose(_value(layer.kernel), (3, 2, 0, 1))  # (out, in/groups, kh, kw)
        bias = _value(layer.bias) if layer.use_bias else np.zeros(layer.filters, np.float32)
        geometry = _transpose_geometry(layer, self.dims[1:], out_shape[:2])
        attributes = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.strides),
                      "dilations": list(layer.dilation_rate), "group": layer.groups, **_pads(layer.padding)}
        if self.state == "folded":
            weight, bias = np.tile(weight, (self.fold, 1, 1, 1)), np.tile(bias, self.fold)
            attributes["group"] = self.fold
        elif self.interleaved and layer is self.first:
            weight, attributes, geometry = _interleaved_conv(weight, attributes, geometry)
        x = build.node("Conv", [x, build.const("weight", weight), build.const("bias", bias)], "conv",
                       **attributes)
        build.notes[x] = geometry
        x = build.activation(x, _activation_name(layer.activation), "act")
        build.notes[("image_channels", x)] = weight.shape[0]
        self.dims = (out_shape[2], out_shape[0], out_shape[1])
        return x

    def _MaxPooling2D(self, x: str, layer: Any, index: int) -> str:
        _check_channels_last(layer)
        if self.state == "flat":
            raise OnnxUnsupportedError(f"MaxPooling2D {layer.name!r} after Flatten.")
        x = self.build.node("MaxPool", [x], "pool", kernel_shape=list(layer.pool_size),
                            strides=list(layer.strides), **_pads(layer.padding))
        if self.saliency:
            if any(s < k for s, k in zip(layer.strides, layer.pool_size)):
                raise OnnxUnsupportedError(f"Saliency through overlapping MaxPooling2D {layer.name!r}.")
            self.build.nodes[-1].output.append(self.build.name("pool_indices"))
        out_shape = tuple(layer.output.shape[1:])
        self.dims = (out_shape[2], out_shape[0], out_shape[1])
        return x

    def _BatchNormalization(self, x: str, layer: Any, index: int) -> str:
        axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis
        rank = len(layer.input.shape)
        if axis % rank != rank - 1:
            raise OnnxUnsupportedError(f"BatchNormalization {layer.name!r} must normalise the last axis.")
        count = layer.input.shape[-1]
        gamma = _value(layer.gamma) if layer.scale else np.ones(count, np.float32)
        beta = _value(layer.beta) if layer.center else np.zeros(count, np.float32)
        mean, variance = _value(layer.moving_mean), _value(layer.moving_variance)
        params = [np.tile(p, self.repeat).astype(np.float32) for p in (gamma, beta, mean, variance)]
        build = self.build
        x = build.node("BatchNormalization", [x] + [build.const(n, p) for n, p in
                                                    zip(("gamma", "beta", "mean", "var"), params)],
                       "bn", epsilon=float(layer.epsilon))
        # d y / d x per channel, shaped to broadcast over (n, c, h, w) or (n, c)
        slope = params[0] / np.sqrt(params[3] + np.float32(layer.epsilon))
        build.notes[x] = slope.reshape((-1, 1, 1) if self.state != "flat" else (-1,)).astype(np.float32)
        return x

    def _ReLU(self, x: str, layer: Any, index: int) -> str:
        if layer.max_value is not None or float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0:
            raise OnnxUnsupportedError(f"ReLU {layer.name!r} with options is not supported.")
        x = self.build.node("Relu", [x], "relu")
        if self.state != "flat":
            self.build.notes[("image_channels", x)] = self.dims[0] * self.repeat
        return x

    def _Activation(self, x: str, layer: Any, index: int) -> str:
        name = _activation_name(layer.activation)
        if name == "softmax" and self.state != "flat":
            raise OnnxUnsupportedError(f"Softmax on images ({layer.name!r}) is not supported.")
        x = self.build.activation(x, name, "act")
        if self.state != "flat":
            self.build.notes[("image_channels", x)] = self.dims[0] * self.repeat
        return x

    def _Flatten(self, x: str, layer: Any, index: int) -> str:
        if self.state == "flat":
            return x
        build, (c, h, w) = self.build, self.dims
        rest = [later for later in self.layers[index + 1 :] if type(later).__name__ not in _IDENTITY_LAYERS]
        follower = rest[0] if rest else None
        image_dims = (c, h, w)  # of the tensor flattened
        if c > 1 and follower is not None and type(follower).__name__ == "Dense":
            # Flatten in NCHW order and permute the Dense rows instead of transposing the data.
            self.pending_permutation = (c, h, w)
        elif c > 1:
            x = build.node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])
            image_dims = (h, w, c)
        shape = build.const("shape", np.array([-1, c * h * w], np.int64))
        x = build.node("Reshape", [x, shape], "flatten")
        build.notes[("image_dims", x)] = image_dims
        self.state = "flat"
        return x

    def _Dense(self, x: str, layer: Any, index: int) -> str:
        if self.state != "flat":
            raise OnnxUnsupportedError(f"Dense {layer.name!r} on images (no Flatten before it).")
        kernel = _value(layer.kernel)
        if self.pending_permutation is not None:
            c, h, w = self.pending_permutation
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
            self.pending_permutation = None
        bias = _value(layer.bias) if layer.use_bias else np.zeros(layer.units, np.float32)
        build = self.build
        x = build.node("Gemm", [x, build.const("kernel", kernel), build.const("bias", bias)], "dense")
        return build.activation(x, _activation_name(layer.activation), "act")


def _activation_name(activation: Any) -> str:
    import keras

    name = getattr(activation, "__name__", None)
    if name in ACTIVATIONS:
        try:
            if keras.activations.get(name) is activation:
                return name
        except (ValueError, TypeError):
            pass
    raise OnnxUnsupportedError(f"Activation {activation!r} is not supported by the ONNX backend.")


def _chain(network: Any) -> list[Any]:
    """Return the network's layers in order; raise unless they form one chain."""
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


def _is_first_compute(layers: list[Any], index: int) -> bool:
    return all(type(layer).__name__ in _IDENTITY_LAYERS for layer in layers[:index])


def _value(variable: Any) -> np.ndarray:
    """Return a Keras variable's current value as a float32 numpy array."""
    return np.asarray(variable, dtype=np.float32)


def _transpose_geometry(layer: Any, in_hw: tuple, out_hw: tuple) -> dict[str, list[int]]:
    """Compute the pads and output padding of the ``ConvTranspose`` that takes a Conv2D
    layer's output gradient back to its ``in_hw`` input grid.
    """
    pads_begin, pads_end, output_padding = [], [], []
    for size, out, k, s, d in zip(in_hw, out_hw, layer.kernel_size, layer.strides, layer.dilation_rate):
        span = d * (k - 1) + 1
        total = max((out - 1) * s + span - size, 0) if layer.padding == "same" else 0
        begin = total // 2  # SAME_UPPER: the odd pixel at the end
        pads_begin.append(begin)
        pads_end.append(total - begin)
        output_padding.append(size - ((out - 1) * s + span - total))
    return {"pads": pads_begin + pads_end, "output_padding": output_padding}


def _interleavable(layer: Any) -> bool:
    """Whether ``layer``, the network's first, can read its channels-last
    input as one interleaved channel (`_interleaved_conv`).
    """
    return (
        layer is not None
        and type(layer).__name__ == "Conv2D"
        and layer.groups == 1
        and all(d == 1 for d in layer.dilation_rate)
    )


def _interleaved_conv(weight: np.ndarray, attributes: dict, geometry: dict) -> tuple[np.ndarray, dict, dict]:
    """Return the first convolution rewritten for the channels-last input read as
    one channel: weights, ``Conv`` attributes, and gradient geometry (see
    `_transpose_geometry`).

    Read as one channel, an ``(n, h, w, c)`` image is ``(n, 1, h, w * c)``
    with the ``c`` values of each pixel side by side, and a convolution with
    a ``(kh, kw)`` kernel and strides ``(sh, sw)`` (no dilation, no groups) on
    the ``c``-channel image is the convolution with a ``(kh, kw * c)`` kernel
    and strides ``(sh, sw * c)`` on that one-channel image, the weights
    interleaved the same way and the column padding ``c`` times as wide
    (explicit pads: ``SAME_UPPER`` would split an odd total differently).
    The forward pass then needs no transpose of the input to NCHW, and the
    gradient, the ``ConvTranspose`` of this convolution, comes out in the
    input's memory order with no transpose back (``doc/performance.rst``).
    """
    out_channels, channels, kh, kw = weight.shape
    interleaved = weight.transpose(0, 2, 3, 1).reshape(out_channels, 1, kh, kw * channels)
    (sh, sw), pads = attributes["strides"], geometry["pads"]
    pads = [pads[0], pads[1] * channels, pads[2], pads[3] * channels]
    attributes = {"kernel_shape": [kh, kw * channels], "strides": [sh, sw * channels], "dilations": [1, 1],
                  "group": 1, "pads": pads}
    output_padding = [geometry["output_padding"][0], geometry["output_padding"][1] * channels]
    return interleaved, attributes, {"pads": pads, "output_padding": output_padding}
