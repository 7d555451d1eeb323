"""Networks (Keras builders registered by name), the model file, and
inference and saliency on ONNX Runtime.

Importing this package imports neither TensorFlow nor ONNX Runtime: Keras
is imported when a network is built, trained or read from a model file
(`rbnodia.nn.keras_io`), ONNX Runtime when a model first predicts.
"""

from .architectures import *
from .metadata import ModelFileError, ModelMetadata
from .model import *

__all__ = architectures.__all__ + ["ModelFileError", "ModelMetadata"] + model.__all__  # noqa: F405
