"""Networks (Keras builders registered by name) and the rbnodia model file.

TensorFlow is imported only when a network is built or a model is loaded.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # silence TensorFlow start-up chatter

from .architectures import *
from .model import *
