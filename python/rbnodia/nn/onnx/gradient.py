"""The backward pass of a translated network, for vanilla gradient saliency.

`append_saliency` appends to a forward graph (`rbnodia.nn.onnx.translate`)
the nodes that compute ``d P_top / d inputs``, the gradient of the top
class's softmax probability with respect to the input image, in the same
ONNX Runtime run as the forward pass.

ONNX Runtime is fastest where that pass stays in its blocked (NCHWc) layout
from one convolution to the next: stride-1 convolutions are undone by
flipped convolutions, and the relu derivatives between them are computed
and applied in that layout too (`conv_gradient`, `relu_derivative`).
Strided convolutions can only be undone by ``ConvTranspose``, which has no
blocked kernel; this is why the packaged models use the ``patch_*``
architectures (one non-overlapping strided stem, then stride-1 layers; see
`rbnodia.nn.architectures`).
"""

from __future__ import annotations

__all__ = ["NCHWC_BLOCK", "RELU_MASK_GAIN", "append_saliency", "conv_gradient", "relu_derivative"]

from collections.abc import Callable

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from . import OnnxUnsupportedError
from .builder import GraphBuilder

RELU_MASK_GAIN = 1e30
"""Gain of the relu derivative in the blocked layout, ``tanh(gain * y)``
(see `relu_derivative`): exactly 1 in float32 for every ``y > 1e-29``."""
NCHWC_BLOCK = 8
"""Channels per block of ONNX Runtime's blocked (NCHWc) layout on AVX2 CPUs
(16 on AVX-512, a multiple of 8): tensors with other channel counts are
padded to whole blocks."""


def append_saliency(build: GraphBuilder, probabilities: str, classes: int) -> tuple[str, tuple[int, ...]]:
    """Append the backward pass of the chain in ``build``.
    gradient's name and its shape after the batch axis (see
    `rbnodia.nn.onnx.translate.keras_to_onnx`).

    The gradient of the top class's probability starts at the softmax,
    ``d P_t / d z_j = P_t (delta_tj - P_j)`` with ``t`` the first argmax (ties
    go to class 0, as in `rbnodia.nn.saliency`).  It is computed from the
    logits ``z`` in log space, ``P_t P_j = exp(log P_t + log P_j)``, so that
    it stays exact where the softmax saturates (a probability that rounds to
    1 still has a non-zero gradient), and it is divided by its largest entry
    before going back through the network, so that the backward pass never
    works on vanishing (denormal) numbers; the maps are multiplied by that
    entry at the end.  Each forward node is then undone in turn: ``Gemm``
    by the transposed kernel; ``Conv`` as `conv_gradient` says;
    non-overlapping ``MaxPool`` by ``MaxUnpool`` to the pooling indices;
    inference batch norm by its per-channel slope (folded into the filters
    of the layer before it); activations by their derivative at the forward
    output (relu: `relu_derivative`); reshapes and transposes by their
    inverses (the reshape back from a ``Flatten`` with its shape declared,
    batch included, so that ONNX Runtime can prove the shapes of the
    gradients and relu derivatives below it equal).  Each sample's gradient
    depends only on that sample, as with TensorFlow's.

    Parameters
    ----------
    build : `rbnodia.nn.onnx.builder.GraphBuilder`
        The forward graph being built, ending in the softmax.
    probabilities : `str`
        Name of the softmax output.
    classes : `int`
        Number of classes.

    Returns
    -------
    gradient : `str`
        The gradient's tensor name.
    shape : `tuple` [`int`, ...]
        Its shape after the batch axis.

    Raises
    ------
    OnnxUnsupportedError
        If the graph does not end in a softmax or holds an operator whose
        gradient is not written here.
    """
    return _Backward(build).run(probabilities, classes)


class _Backward:
    """The state of one backward pass while it walks the forward nodes."""

    def __init__(self, build: GraphBuilder) -> None:
        self.build = build
        self.forward = [node for node in build.nodes if node.op_type != "Identity"]
        self.constants: dict[float, str] = {}
        self.weights = {init.name: init for init in build.initializers}
        self.slope: np.ndarray | None = None  # a batch norm's slope, folded into the layer before it
        self.slope_of = ""
        self.scale = ""  # the (n, 1) scale the seed was divided by
        self.scaled = False
        self.blocked = False  # whether ``grad`` comes from a convolution run in the blocked layout
        self.view = build.notes.get("input_view")  # the input's reshape into NCHW, and its shape
        self.grad_shape = build.notes["input_shape"]  # of the gradient, after the batch axis

    def scalar(self, value: float) -> str:
        """Return a shared scalar constant, made when first needed."""
        if value not in self.constants:
            self.constants[value] = self.build.const("scalar", np.array(value, np.float32))
        return self.constants[value]

    def run(self, probabilities: str, classes: int) -> tuple[str, tuple[int, ...]]:
        forward, build = self.forward, self.build
        if not forward or forward[-1].op_type != "Softmax" or forward[-1].output[0] != probabilities:
            raise OnnxUnsupportedError("Saliency needs a network that ends in a softmax.")
        grad = self.seed(probabilities, forward[-1].input[0], classes)
        # The scale goes back in before the first layer's gradient, whose output
        # (shaped like the input) is the largest tensor of the backward pass; in
        # a folded graph that layer's batch axis is not the stamps', so at the end.
        first = next((node for node in forward if node.op_type in ("Conv", "Gemm")), None)
        for node in reversed(forward[:-1]):
            if node is first and not build.notes["folded"]:
                grad, self.scaled = self.true_scale(grad, 4 if node.op_type == "Conv" else 2), True
            grad = self.step(node, grad)
        if self.slope is not None:  # a batch norm on the inputs themselves
            grad = build.node("Mul", [grad, build.const("bn_slope", build.notes[self.slope_of])], "grad_bn")
        if not self.scaled:
            grad = self.true_scale(grad, len(build.notes["input_shape"]) + 1)
        return grad, self.grad_shape

    def seed(self, probabilities: str, logits: str, classes: int) -> str:
        """``d P_t / d z`` divided by its largest entry (see `append_saliency`)."""
        build, scalar = self.build, self.scalar
        axis1 = build.const("axes", np.array([1], np.int64))
        top = build.node("ArgMax", [probabilities], "top", axis=1, keepdims=0)
        onehot = build.node("OneHot", [top, build.const("depth", np.array([classes], np.int64)),
                                       build.const("off_on", np.array([0.0, 1.0], np.float32))], "onehot",
                            axis=-1)
        z_max = build.node("ReduceMax", [logits], "z_max", axes=[1], keepdims=1)
        shifted = build.node("Sub", [logits, z_max], "z_shifted")
        log_sum = build.node("Log", [build.node("ReduceSum", [build.node("Exp", [shifted], "exp"), axis1],
                                                "sum_exp", keepdims=1)], "log_sum")
        log_p = build.node("Sub", [shifted, log_sum], "log_p")
        log_p_top = build.node("ReduceSum", [build.node("Mul", [log_p, onehot], "log_p_masked"), axis1],
                               "log_p_top", keepdims=1)
        # P_t P_j for j != t; the top class's own entry is P_t (1 - P_t) = sum of those.
        pp = build.node("Exp", [build.node("Add", [log_p, log_p_top], "log_pp")], "pp")
        others = build.node("Mul", [pp, build.node("Sub", [scalar(1.0), onehot], "not_top")], "p_top_p_other")
        grad = build.node("Sub", [build.node("Mul", [onehot, build.node("ReduceSum", [others, axis1],
                                                                       "p_top_rest", keepdims=1)],
                                             "seed_top"), others], "grad_logits")
        self.scale = build.node("ReduceMax", [build.node("Abs", [grad], "grad_abs")], "grad_scale", axes=[1],
                                keepdims=1)
        tiny = scalar(float(np.finfo(np.float32).tiny))
        return build.node("Div", [grad, build.node("Max", [self.scale, tiny], "safe_scale")], "grad_unit")

    def true_scale(self, grad: str, rank: int) -> str:
        """``grad`` times the seed's scale, (n, 1) broadcast to ``rank``."""
        build = self.build
        shape = build.const("shape", np.array([-1] + [1] * (rank - 1), np.int64))
        scale = build.node("Reshape", [self.scale, shape], "grad_scale_b")
        return build.node("Mul", [grad, scale], "grad_true")

    def weight_array(self, name: str, axis: int) -> np.ndarray:
        """Return a forward weight, times the pending batch-norm slope along ``axis``."""
        weight = numpy_helper.to_array(self.weights[name])
        if self.slope is None:
            return weight
        shape = [1] * weight.ndim
        shape[axis] = -1
        return (weight * self.slope.reshape(shape)).astype(np.float32)

    def step(self, node, grad: str) -> str:
        """Return the gradient with respect to ``node``'s input, from that with respect to its output."""
        build = self.build
        op, x, y = node.op_type, node.input[0], node.output[0]
        attributes = {a.name: a for a in node.attribute}
        was_blocked, self.blocked = self.blocked, False
        if self.slope is not None and op not in ("Gemm", "Conv"):
            grad = build.node("Mul", [grad, build.const("bn_slope", build.notes[self.slope_of])], "grad_bn")
            self.slope, was_blocked = None, False
        if op == "Gemm":
            grad = build.node("Gemm", [grad, build.const("weight", self.weight_array(node.input[1], 1))],
                              "grad_dense", transB=1)
            self.slope = None
        elif op == "Conv":
            grad, self.blocked = conv_gradient(build, grad, self.weight_array(node.input[1], 0), attributes,
                                               build.notes[y])
            self.slope = None
        elif op == "Reshape" and self.view is not None and y == self.view[0]:
            self.grad_shape = self.view[1]  # the input as the first layer read it: nothing to undo
        elif op == "MaxPool":
            shape = build.node("Shape", [x], "pool_shape")
            grad = build.node("MaxUnpool", [grad, node.output[1], shape], "grad_pool",
                              kernel_shape=list(attributes["kernel_shape"].ints),
                              strides=list(attributes["strides"].ints))
        elif op == "BatchNormalization":
            self.slope, self.slope_of = build.notes[y].ravel(), y
        elif op == "Relu":
            grad = build.node("Mul", [grad, relu_derivative(build, y, self.scalar, was_blocked)], "grad_relu")
            self.blocked = was_blocked
        elif op in ("Sigmoid", "Tanh"):
            grad = build.node("Mul", [grad, self.activation_slope(op, y)], f"grad_{op.lower()}")
        elif op == "Reshape":
            grad = self.unreshape(grad, x, y)
        elif op == "Transpose":
            inverse = np.argsort(list(attributes["perm"].ints)).tolist()
            grad = build.node("Transpose", [grad], "grad_transpose", perm=inverse)
        else:
            raise OnnxUnsupportedError(f"No saliency gradient for ONNX op {op}.")
        return grad

    def activation_slope(self, op: str, y: str) -> str:
        """Return the derivative of a sigmoid or tanh at its output ``y``."""
        build, one = self.build, self.scalar(1.0)
        if op == "Sigmoid":
            return build.node("Mul", [y, build.node("Sub", [one, y], "one_minus")], "sigmoid_slope")
        return build.node("Sub", [one, build.node("Mul", [y, y], "square")], "tanh_slope")

    def unreshape(self, grad: str, x: str, y: str) -> str:
        """Undo the reshape of ``x`` into ``y``."""
        build = self.build
        if ("image_dims", y) not in build.notes:
            return build.node("Reshape", [grad, build.node("Shape", [x], "shape_of")], "grad_reshape")
        # Back from a Flatten to the image, with its shape declared (batch
        # "n" included): ONNX Runtime then knows that the gradients and
        # relu derivatives of the layers below have equal shapes and
        # multiplies them in its blocked layout.
        dims = build.notes[("image_dims", y)]
        grad = build.node("Reshape", [grad, build.const("shape", np.array([-1, *dims], np.int64))],
                          "grad_reshape")
        build.value_info.append(helper.make_tensor_value_info(grad, TensorProto.FLOAT, ["n", *dims]))
        return grad


def relu_derivative(build: GraphBuilder, y: str, scalar: Callable[[float], str], blocked: bool) -> str:
    """Return the derivative of ``y = relu(x)``: 1 where ``y > 0``, 0 elsewhere (0 at
    0, as TensorFlow's), to multiply a gradient by.

    Where that gradient is in ONNX Runtime's blocked layout (``blocked``:
    it comes from a flipped convolution, see `conv_gradient`) and the
    image's channels fill whole blocks, it is computed as
    ``tanh(gain * y)`` with a huge gain (`RELU_MASK_GAIN`), written as a
    ``BatchNormalization`` and a ``Tanh``: ONNX Runtime runs those, and the
    ``Mul``, in the blocked layout, so the gradient is not reordered to
    plain NCHW and back at every layer.  It differs from the exact
    derivative only for ``0 < y < 1e-29``.  Elsewhere it is ``Greater`` +
    ``Cast``, the fastest exact form on plain tensors (faster than ``Sign``
    or ``Where``; ``doc/performance.rst``).

    Parameters
    ----------
    build : `rbnodia.nn.onnx.builder.GraphBuilder`
        The graph being built.
    y : `str`
        The relu's output tensor.
    scalar : `~collections.abc.Callable` [[`float`], `str`]
        Returns the name of a shared scalar constant.
    blocked : `bool`
        Whether the gradient it multiplies is in the blocked layout.

    Returns
    -------
    derivative : `str`
        The derivative's tensor name.
    """
    channels = build.notes.get(("image_channels", y))
    if not (blocked and channels and channels % NCHWC_BLOCK == 0):
        return build.node("Cast", [build.node("Greater", [y, scalar(0.0)], "relu_positive")], "relu_on",
                          to=TensorProto.FLOAT)
    gain = build.const("relu_gain", np.full(channels, RELU_MASK_GAIN, np.float32))
    zeros = build.const("zeros", np.zeros(channels, np.float32))
    ones = build.const("ones", np.ones(channels, np.float32))
    steep = build.node("BatchNormalization", [y, gain, zeros, zeros, ones], "relu_steep", epsilon=0.0)
    return build.node("Tanh", [steep], "relu_on")


def conv_gradient(
    build: GraphBuilder, grad: str, weight: np.ndarray, attributes: dict, geometry: dict
) -> tuple[str, bool]:
    """Compute the gradient of a ``Conv`` node with respect to its input, from
    ``grad`` with respect to its output, and whether ONNX Runtime computes it
    in its blocked layout.

    Where ONNX Runtime's blocked convolutions do it well, a stride-1
    convolution is undone by the "full" convolution with the flipped
    filters (input and output channels swapped): for a depthwise one (the
    folded first layer, see `rbnodia.nn.onnx.translate`; several times
    faster than the grouped ``ConvTranspose`` for ``paper_nodia``'s 7x7
    layer), and for a plain one with a kernel of at most 3x3 whose inputs
    fill whole blocks (`NCHWC_BLOCK`).  Other stride-1 layers (``paper_dia``'s
    5x5 layers, inputs of one channel, padded to a block) are slower that
    way than as a ``ConvTranspose``.  Every other convolution is undone by
    the ``ConvTranspose`` with the same filters, a per-image GEMM plus an
    unblocked col2im: for strided layers that is faster than a polyphase
    ``Conv`` plus an interleave, whose interleave costs more than it saves.
    ``doc/performance.rst`` says how these choices were measured.

    Parameters
    ----------
    build : `rbnodia.nn.onnx.builder.GraphBuilder`
        The graph being built.
    grad : `str`
        Gradient with respect to the convolution's output.
    weight : `numpy.ndarray`
        The convolution's filters.
    attributes : `dict`
        The ``Conv`` node's attributes.
    geometry : `dict`
        Input and output image sizes and channels.

    Returns
    -------
    gradient : `str`
        Gradient with respect to the convolution's input.
    blocked : `bool`
        Whether ONNX Runtime computes it in its blocked layout.
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
    grad = build.node("ConvTranspose", [grad, build.const("weight", weight)], "grad_conv",
                      kernel_shape=kernel, strides=strides, dilations=dilations, group=group, **geometry)
    return grad, False
