"""The collector of ONNX nodes, constants and notes that the forward
translation (`rbnodia.nn.onnx.translate`) and the backward pass
(`rbnodia.nn.onnx.gradient`) write into, and the graph settings they share.
"""

from __future__ import annotations

__all__ = ["ACTIVATIONS", "IR_VERSION", "OPSET", "GraphBuilder"]

from dataclasses import dataclass, field

import numpy as np
from onnx import helper, numpy_helper

OPSET = 17
"""ONNX operator set the graphs are written for."""
IR_VERSION = 8
"""ONNX IR version (readable by every ONNX Runtime of the last years)."""
ACTIVATIONS = {"linear": None, "relu": "Relu", "sigmoid": "Sigmoid", "softmax": "Softmax", "tanh": "Tanh"}
"""Keras activation name -> ONNX operator (`None`: nothing to do)."""


@dataclass
class GraphBuilder:
    """Collects ONNX nodes and weights while walking the layers.

    Attributes
    ----------
    nodes : `list`
        ``onnx.NodeProto`` in execution order.
    initializers : `list`
        ``onnx.TensorProto`` constants (weights and shapes).
    counter : `int`
        Last number used for a unique tensor name.
    notes : `dict`
        What the backward pass needs to know about forward tensors, keyed
        by tensor name (convolution geometry, batch-norm slopes) or by
        ``(kind, tensor name)``, plus ``input_shape``, ``input_view`` and
        ``folded``.
    value_info : `list`
        Declared shapes of intermediate tensors.
    """

    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    counter: int = 0
    notes: dict = field(default_factory=dict)
    value_info: list = field(default_factory=list)

    def name(self, stem: str) -> str:
        """Return a new unique tensor name ``{stem}_{number}``.

        Parameters
        ----------
        stem : `str`
            Name stem.

        Returns
        -------
        name : `str`
            The new name.
        """
        self.counter += 1
        return f"{stem}_{self.counter}"

    def const(self, stem: str, array: np.ndarray) -> str:
        """Add ``array`` as a constant.

        Parameters
        ----------
        stem : `str`
            Name stem.
        array : `numpy.ndarray`
            The value.

        Returns
        -------
        name : `str`
            The constant's name.
        """
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attributes) -> str:
        """Add one ``op`` node.

        Parameters
        ----------
        op : `str`
            ONNX operator type.
        inputs : `list` [`str`]
            Input tensor names.
        stem : `str`
            Name stem of the node and its output.
        **attributes
            The node's attributes.

        Returns
        -------
        output : `str`
            The name of its (first) output.
        """
        output = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def rename(self, old: str, new: str) -> None:
        """Rename tensor ``old`` to ``new`` wherever it appears.

        Parameters
        ----------
        old : `str`
            The current name.
        new : `str`
            The new name.
        """
        for node in self.nodes:
            for names in (node.input, node.output):
                for i, name in enumerate(names):
                    if name == old:
                        names[i] = new
        for info in self.value_info:
            if info.name == old:
                info.name = new

    def activation(self, x: str, name: str, stem: str) -> str:
        """Apply the Keras activation ``name`` (a key of `ACTIVATIONS`) to ``x``.

        Parameters
        ----------
        x : `str`
            Input tensor name.
        name : `str`
            Keras activation name.
        stem : `str`
            Name stem of the node.

        Returns
        -------
        output : `str`
            The activated tensor's name (``x`` itself for ``linear``).
        """
        op = ACTIVATIONS[name]
        if op is None:
            return x
        if op == "Softmax":
            return self.node(op, [x], stem, axis=-1)
        return self.node(op, [x], stem)
