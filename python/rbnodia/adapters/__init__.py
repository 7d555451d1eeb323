"""Thin adapters from the types the stack hands us (lsst.images, afw,
astropy, pandas, numpy) to the plain arrays of `rbnodia.core`.

Nothing here imports afw: afw objects are recognised by their methods, so the
same code runs in the LSST stack container and in a pip environment.
"""

from .catalogs import *
from .images import *
