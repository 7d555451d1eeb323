"""Training real/bogus networks on labelled stamp sets.

The faithful recipe reproduces Acero-Cuellar et al.: plain SGD (learning
rate 0.01), sparse categorical cross-entropy, batch 200, 20% validation,
early stopping on the validation loss keeping the best weights.  Other
optimizers, augmentation by the eight flips/rotations of the square, class
balancing, threshold tuning and checkpoints are settings of `TrainingConfig`
(the one definition of every setting); named presets are in
`TRAINING_RECIPES`.

Modules, each with one job:

`~rbnodia.training.settings`
    `TrainingConfig`, the settings.
`~rbnodia.training.recipes`
    Optimizer recipes and named training presets.
`~rbnodia.training.data`
    Validation split, balancing, network inputs, augmentation, batch feed.
`~rbnodia.training.checkpoint`
    Training state and its atomic checkpoint file.
`~rbnodia.training.loop`
    The fit loop: resume, early stopping, checkpoints, progress.
`~rbnodia.training.thresholds`
    Choosing the decision threshold.
`~rbnodia.training.evaluation`
    Metrics of labelled stamps, per family and S/N bin; network cost.
`~rbnodia.training.finalize`
    Provenance and metrics in the model file.
`~rbnodia.training.run`
    `train_model`, which strings them together.

TensorFlow is imported only inside the functions that need it.
"""

from .checkpoint import *
from .data import *
from .evaluation import *
from .finalize import *
from .loop import *
from .recipes import *
from .run import *
from .settings import *
from .thresholds import *
