"""The one definition of every training setting.

`TrainingConfig` is a `lsst.pex.config.Config`: each field carries its
documentation, default and validation.  Everything else derives from it:

- ``TrainRealBogusTask`` holds it as the ``training`` sub-config
  (``-c trainRealBogus:training.epochs=40``);
- ``rbnodia train`` generates one command-line option per field
  (``--epochs``, ``--batch-size``, ...) with
  `rbnodia.commands.config_options.add_config_options`;
- the model file records `TrainingConfig.toDict` as its training provenance.

The defaults are the paper's recipe for the noDIA network, except the
early-stopping patience (the paper: 30 for DIA, 100 for noDIA; the
``paper_*`` recipes in `~rbnodia.training.recipes.TRAINING_RECIPES` set them).
"""

from __future__ import annotations

__all__ = ["BALANCE_METHODS", "RESUMABLE_CHANGES", "TrainingConfig"]

from typing import Any

import lsst.pex.config as pexConfig

from ..core.metrics import THRESHOLD_METHODS, choose_threshold
from ..core.scaling import SCALING_VERSION, Scaling
from ..core.stampset import BOGUS, REAL
from .recipes import TRAINING_RECIPES, get_optimizer_recipe

BALANCE_METHODS = {
    "none": "train on the classes as given",
    "weights": "per-class loss weights n / (2 n_class)",
    "undersample": "randomly drop majority-class stamps (training split only)",
    "snr": "per-stamp loss weights giving both classes the same detection S/N distribution and total "
    "weight (rbnodia.training.data.snr_weights)",
}
"""Class balancing methods."""

RESUMABLE_CHANGES = frozenset(
    {"epochs", "threads", "checkpointDir", "evaluateTrain", "name", "thresholdMethod"}
)
"""Fields that may differ between a checkpoint and the run resuming it:
raising ``epochs`` continues a finished run; the others do not change the
fitted weights."""


def _is_odd(value: int) -> bool:
    return value % 2 == 1


class TrainingConfig(pexConfig.Config):
    """How to train one real/bogus network."""

    architecture = pexConfig.Field(
        dtype=str,
        doc="Registered architecture (`rbnodia info` lists them); its layout (noDIA or DIA) and stacking "
        "decide which stamps the network reads.",
        default="paper_nodia",
    )
    epochs = pexConfig.RangeField(
        dtype=int, doc="Maximum number of epochs (the paper: up to 500, then 250 more).", default=500, min=1
    )
    batchSize = pexConfig.RangeField(dtype=int, doc="Minibatch size (the paper: 200).", default=200, min=1)
    optimizer = pexConfig.Field(
        dtype=str,
        doc="Optimizer recipe: paper_sgd (SGD at 0.01, the paper's), sgd_momentum, adam, adam_cosine "
        "(rbnodia.training.recipes).",
        default="paper_sgd",
    )
    learningRate = pexConfig.RangeField(
        dtype=float,
        doc="Overrides the optimizer recipe's (initial) learning rate.",
        default=None,
        optional=True,
        min=0.0,
        inclusiveMin=False,
    )
    patience = pexConfig.RangeField(
        dtype=int,
        doc="Early-stopping patience in epochs on the validation loss; 0 never stops early.  The weights "
        "of the epoch with the lowest validation loss are kept either way.  The paper: 30 (DIA), 100 "
        "(noDIA).",
        default=30,
        min=0,
    )
    validationFraction = pexConfig.RangeField(
        dtype=float,
        doc="Fraction of the training stamps held out (stratified by label, seeded) for early stopping "
        "and the threshold, when no separate validation set is given.",
        default=0.2,
        min=0.0,
        max=1.0,
        inclusiveMax=False,
    )
    seed = pexConfig.RangeField(
        dtype=int,
        doc="Seeds the validation split, shuffling, augmentation, weight initialisation and dropout.",
        default=0,
        min=0,
    )
    augment = pexConfig.Field(
        dtype=bool,
        doc="Apply one random flip/rotation by multiples of 90 degrees (a symmetry of the square) to each "
        "training stamp, the same to all its segments.",
        default=False,
    )
    balance = pexConfig.ChoiceField(
        dtype=str, doc="Class balancing.", default="none", allowed=BALANCE_METHODS, optional=False
    )
    thresholdMethod = pexConfig.Field(
        dtype=str,
        doc="How the decision threshold on P(real) is chosen on the validation split: "
        + "; ".join(f"{key}: {text}" for key, text in THRESHOLD_METHODS.items())
        + ".",
        default="fixed",
    )
    scaling = pexConfig.ChoiceField(
        dtype=str,
        doc="How the stamps are scaled into network inputs (rbnodia.core.scaling); recorded in the model "
        "file, which is then fed only stamps scaled this way.",
        default=SCALING_VERSION,
        allowed={
            Scaling.PAPER.value: "the paper's: science and template each by its own 3-sigma interval",
            Scaling.SHARED_SPAN.value: "science and template minus their medians, both over the science "
            "interval's span (one flux scale)",
        },
        optional=False,
    )
    stampSize = pexConfig.RangeField(
        dtype=int,
        doc="Stamp width and height in pixels (odd); must match the stamps.",
        default=51,
        min=3,
    )
    name = pexConfig.Field(
        dtype=str,
        doc="Model name recorded in the model file; the architecture's if unset.",
        default=None,
        optional=True,
    )
    threads = pexConfig.RangeField(
        dtype=int,
        doc="TensorFlow threads (effective only before TensorFlow starts); all cores if unset.",
        default=None,
        optional=True,
        min=1,
    )
    evaluateTrain = pexConfig.Field(
        dtype=bool, doc="Also score the training split after training (the train accuracy).", default=True
    )
    realFamilies = pexConfig.ListField(
        dtype=str,
        doc="Families whose stamps are labelled real whatever their files say, in the training, validation "
        "and test sets.  Rubin's reliability counts every astrophysical source as real, variable stars "
        "included, while the DES autoscan convention (and the simulator's DES preset) labels variable stars "
        "bogus; the packaged models are trained with variable_star here.",
        default=[],
    )
    initialWeights = pexConfig.Field(
        dtype=str,
        doc="Model file (path, or the name of a packaged model) whose network weights start the training "
        "instead of random ones: fine-tuning on new data.  Its architecture, stamp size and scaling must be "
        "this config's.  Random weights if unset.",
        default=None,
        optional=True,
    )
    checkpointDir = pexConfig.Field(
        dtype=str,
        doc="Folder for a checkpoint written after every epoch (weights, optimizer state, history, "
        "early-stopping state, best weights, random state); a run given a folder that holds one resumes "
        "from it.  No checkpoints if unset.",
        default=None,
        optional=True,
    )

    def validate(self) -> None:
        """Check every field, including the cross-field rules.

        Raises
        ------
        lsst.pex.config.FieldValidationError
            Naming the offending field and the accepted values (a
            `ValueError`).
        """
        super().validate()
        from ..nn.architectures import architecture_names

        cls = type(self)
        if self.architecture not in architecture_names():
            raise pexConfig.FieldValidationError(
                cls.architecture,
                self,
                f"Unknown architecture {self.architecture!r}; known: {architecture_names()}",
            )
        if not _is_odd(self.stampSize):
            raise pexConfig.FieldValidationError(
                cls.stampSize, self, f"stampSize must be odd, got {self.stampSize}"
            )
        try:
            get_optimizer_recipe(self.optimizer)
        except ValueError as err:
            raise pexConfig.FieldValidationError(cls.optimizer, self, str(err)) from None
        try:  # a dry run on two points checks the method's syntax
            choose_threshold([REAL, BOGUS], [0.9, 0.1], self.thresholdMethod)
        except ValueError as err:
            raise pexConfig.FieldValidationError(cls.thresholdMethod, self, str(err)) from None

    @property
    def model_name(self) -> str:
        """The model name to record."""
        return self.name or self.architecture

    def apply_recipe(self, recipe: str) -> None:
        """Set the fields of a named preset in `TRAINING_RECIPES`.

        Parameters
        ----------
        recipe : `str`
            Preset name.

        Raises
        ------
        ValueError
            For an unknown recipe.
        """
        if recipe not in TRAINING_RECIPES:
            raise ValueError(f"Unknown training recipe {recipe!r}; known: {sorted(TRAINING_RECIPES)}.")
        self.update(**TRAINING_RECIPES[recipe])

    @classmethod
    def from_recipe(cls, recipe: str, **overrides: Any) -> TrainingConfig:
        """Return a config from a named preset, with some fields changed.

        Parameters
        ----------
        recipe : `str`
            Preset name in `TRAINING_RECIPES`.
        **overrides
            Fields to change; `None` values are ignored.

        Returns
        -------
        config : `TrainingConfig`
            The validated config.

        Raises
        ------
        ValueError
            For an unknown recipe or field, or an invalid value.
        """
        config = cls()
        config.apply_recipe(recipe)
        unknown = sorted(set(overrides) - set(config.keys()))
        if unknown:
            raise ValueError(f"Unknown TrainingConfig fields {unknown}.")
        config.update(**{key: value for key, value in overrides.items() if value is not None})
        return config
