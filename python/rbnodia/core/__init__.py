"""Pure-numpy core of rbnodia: nothing here imports the Butler or TensorFlow."""

from .flags import *
from .layouts import *
from .preprocess import *
from .scaling import *
from .stamps import *
from .stampset import *
