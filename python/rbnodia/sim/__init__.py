"""Simulated survey data: science exposures, warped deep templates,
PSF-matched difference images, detections and real/bogus labels.

Nobody can download the paper's DES data, so training sets, demos, tests
and benchmarks rest on this simulator.  See ``doc/simulation.rst``.

Main entry points
-----------------
`simulate_detector`
    One detector of one visit, as a `SimulatedDetector`.
`write_simulated_repo`
    A Butler repository of pipeline inputs.
`make_training_set`, `make_training_splits`
    Many labelled stamps, fast (small sub-images, several processes), in
    resumable shards, with domain randomization
    (`rbnodia.sim.randomize`) and a set bogus composition
    (`rbnodia.sim.composition`).
`labelled_stamps_from_detector`
    Stamps and truth of one `SimulatedDetector`.
`read_autoscan`, `ingest_autoscan_to_butler`
    The real DES autoscan stamps.
"""

from .autoscan import *
from .composition import *
from .detector import *
from .patches import *
from .plots import *
from .presets import *
from .randomize import *
from .repo import *
from .stamps import *
from .training import *
from .truth import *
