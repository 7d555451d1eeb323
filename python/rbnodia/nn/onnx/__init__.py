"""ONNX graphs of real/bogus networks: translation from Keras and execution
with ONNX Runtime.

The subpackage is split by job and by what each job needs installed:

`rbnodia.nn.onnx.translate`
    Keras network -> ONNX forward graph (layer by layer; no TensorFlow
    tracing, no tf2onnx), and the set of graphs a model file carries
    (`translate_model_graphs`).  Needs Keras layer objects and the ``onnx``
    package (the ``[train]`` extra).
`rbnodia.nn.onnx.gradient`
    The hand-written backward pass appended to a forward graph for
    saliency maps.  Needs ``onnx``.
`rbnodia.nn.onnx.builder`
    The node/constant collector both of them write into.  Needs ``onnx``.
`rbnodia.nn.onnx.runtime`
    ONNX Runtime sessions for serialised graphs and the chunked,
    multi-threaded runners `OnnxPredictor` and `OnnxSaliency`.  Needs only
    ``onnxruntime`` and numpy: this is all a pipeline imports.

Importing this package imports none of them.
"""

from __future__ import annotations

__all__ = ["OnnxUnsupportedError"]


class OnnxUnsupportedError(RuntimeError):
    """The network uses something the ONNX translation does not handle."""
