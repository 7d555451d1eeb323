"""Named optimizers and named training presets.

An *optimizer recipe* builds a Keras optimizer from a learning rate and the
total number of training steps (for schedules); ``paper_sgd`` is the paper's
plain SGD at 0.01.  A *training recipe* is a named set of
`~rbnodia.training.settings.TrainingConfig` field values (the paper's two
networks, and the channel-stacked networks with Adam and augmentation);
`~rbnodia.training.settings.TrainingConfig.from_recipe` applies one.

Keras is imported only when an optimizer is built.
"""

from __future__ import annotations

__all__ = [
    "SCHEDULED_OPTIMIZERS",
    "TRAINING_RECIPES",
    "OptimizerRecipe",
    "get_optimizer_recipe",
    "optimizer_names",
    "register_optimizer",
]

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class OptimizerRecipe:
    """A named way to build a Keras optimizer.

    Attributes
    ----------
    name : `str`
        Registry key.
    description : `str`
        One line for listings and model metadata.
    learning_rate : `float`
        Default (initial) learning rate.
    builder : callable
        ``builder(learning_rate, total_steps) -> keras.optimizers.Optimizer``.
    scheduled : `bool`
        Whether the learning rate follows a schedule over ``total_steps``
        (so the number of epochs changes the optimizer).
    """

    name: str
    description: str
    learning_rate: float
    builder: Callable[[float, int], Any]
    scheduled: bool = False

    def build(self, learning_rate: float | None = None, total_steps: int = 1) -> Any:
        """Return the optimizer, with ``learning_rate`` overriding the default.

        Parameters
        ----------
        learning_rate : `float`, optional
            Initial learning rate; default the recipe's.
        total_steps : `int`, optional
            Optimizer steps of the whole run (for learning-rate schedules).

        Returns
        -------
        optimizer : `keras.optimizers.Optimizer`
            A new optimizer.
        """
        return self.builder(
            self.learning_rate if learning_rate is None else learning_rate, max(1, total_steps)
        )


_OPTIMIZERS: dict[str, OptimizerRecipe] = {}


def register_optimizer(
    name: str, *, description: str, learning_rate: float, scheduled: bool = False
) -> Callable:
    """Register ``builder(learning_rate, total_steps)`` (a decorator) as an
    optimizer recipe.

    Parameters
    ----------
    name, description, learning_rate, scheduled
        The recipe's fields, as in `OptimizerRecipe`.

    Returns
    -------
    decorator : `~collections.abc.Callable`
        Registers the builder and returns it unchanged.

    Raises
    ------
    ValueError
        If ``name`` is already registered.
    """

    def decorator(builder: Callable) -> Callable:
        if name in _OPTIMIZERS:
            raise ValueError(f"Optimizer recipe {name!r} is already registered.")
        _OPTIMIZERS[name] = OptimizerRecipe(name, description, learning_rate, builder, scheduled)
        return builder

    return decorator


def optimizer_names() -> list[str]:
    """Return the names of all registered optimizer recipes.

    Returns
    -------
    names : `list` [`str`]
        Sorted names.
    """
    return sorted(_OPTIMIZERS)


def get_optimizer_recipe(name: str) -> OptimizerRecipe:
    """Look an optimizer recipe up by name.

    Parameters
    ----------
    name : `str`
        Recipe name.

    Returns
    -------
    recipe : `OptimizerRecipe`
        The recipe.

    Raises
    ------
    ValueError
        If unknown; the message lists the known names.
    """
    try:
        return _OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}; known: {optimizer_names()}.") from None


@register_optimizer("paper_sgd", description="SGD, no momentum (Acero-Cuellar et al.)", learning_rate=0.01)
def _paper_sgd(learning_rate, total_steps):
    import keras

    return keras.optimizers.SGD(learning_rate=learning_rate)


@register_optimizer("sgd_momentum", description="SGD with Nesterov momentum 0.9", learning_rate=0.01)
def _sgd_momentum(learning_rate, total_steps):
    import keras

    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True)


@register_optimizer("adam", description="Adam", learning_rate=1e-3)
def _adam(learning_rate, total_steps):
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate)


@register_optimizer(
    "adam_cosine",
    description="Adam with cosine learning-rate decay to 1% over all epochs",
    learning_rate=2e-3,
    scheduled=True,
)
def _adam_cosine(learning_rate, total_steps):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps, alpha=0.01)
    return keras.optimizers.Adam(learning_rate=schedule)


SCHEDULED_OPTIMIZERS = frozenset(name for name, recipe in _OPTIMIZERS.items() if recipe.scheduled)
"""Built-in optimizer recipes whose learning rate depends on the number of epochs."""

TRAINING_RECIPES: dict[str, dict[str, Any]] = {
    "paper_dia": dict(
        architecture="paper_dia", optimizer="paper_sgd", epochs=500, patience=30, batchSize=200
    ),
    "paper_nodia": dict(
        architecture="paper_nodia", optimizer="paper_sgd", epochs=500, patience=100, batchSize=200
    ),
    # The paper's networks with Adam: the same architectures under the training
    # budget a 2-core machine affords (plain SGD at 0.01 needs hundreds of
    # epochs, as in the paper).
    "paper_dia_adam": dict(architecture="paper_dia", optimizer="adam", epochs=40, patience=8, batchSize=200),
    "paper_nodia_adam": dict(
        architecture="paper_nodia", optimizer="adam", epochs=40, patience=8, batchSize=200
    ),
    # The channel-stacked networks: one recipe, Adam with cosine decay and augmentation.
    **{
        name: dict(
            architecture=name, optimizer="adam_cosine", epochs=60, patience=15, batchSize=200, augment=True
        )
        for name in ("improved_nodia", "improved_nodia_fast", "improved_dia", "patch_nodia", "patch_dia")
    },
}
"""Named training presets (`~rbnodia.training.settings.TrainingConfig` field
values): the paper's two (faithful: plain SGD, no augmentation, the paper's
patience), the paper's networks with Adam, and the channel-stacked networks
(Adam with cosine decay, flips/rotations)."""
