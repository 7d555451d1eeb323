"""rbnodia: real/bogus classification of transient detections from aligned
template and science stamps (noDIA) or the classic triplet with the
difference image (DIA), as LSST PipelineTasks.

The subpackages are arranged by how much of the LSST stack they know about:

``rbnodia.core``
    Pure numpy: stamps, scaling, input layouts, flags, labelled stamp sets;
    ``rbnodia.core.saliency`` (segment importances) and
    ``rbnodia.core.metrics`` (ROC, rates, thresholds).  Knows nothing of the
    Butler or of TensorFlow.
``rbnodia.nn``
    Keras network builders (registered by name), the model file format, the
    ONNX Runtime inference backend and gradient saliency.
``rbnodia.training``
    Training recipes and the training loop shared by the CLI and the
    training task.
``rbnodia.plots``
    PNG figures: training curves, ROC, confusion matrices, saliency.
``rbnodia.adapters``
    Thin converters from lsst.images, afw, astropy and numpy inputs to the
    arrays the core works on.
``rbnodia.tasks``
    PipelineTasks, one module per task (Connections, Config and Task).
``rbnodia.butler``
    Storage class and formatter for models, and data-repository helpers.
``rbnodia.sim``
    Simulated survey data for demos, tests and training sets, and the DES
    autoscan reader.
``rbnodia.commands``
    The ``rbnodia`` command line, one module per command group.

Heavy imports (TensorFlow, the middleware) are made lazily by the modules
that need them, so ``import rbnodia`` is cheap.
"""

from .version import __version__

__all__ = ["__version__"]
