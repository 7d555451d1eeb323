"""Network architectures, registered by name.

A new architecture plugs in with `register_architecture`; tasks and the
training code look architectures up by name only.  The two paper networks
(Acero-Cuellar et al., Appendix B) are registered here as ``paper_nodia``
(45,908 parameters) and ``paper_dia`` (126,050 parameters).
"""

from __future__ import annotations

__all__ = [
    "Architecture",
    "register_architecture",
    "get_architecture",
    "architecture_names",
    "build_network",
]

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.layouts import Layout, Stacking, input_shape


@dataclass(frozen=True)
class Architecture:
    """A registered network architecture.

    Attributes
    ----------
    name : `str`
        Registry key.
    builder : callable
        ``builder(input_shape) -> keras.Model``; the model must end in a
        2-way softmax whose column 0 is P(real) (DES labels: 0 real, 1 bogus).
    layout : `~rbnodia.core.Layout`
        The stamps it is designed for.
    stacking : `~rbnodia.core.Stacking`
        How those stamps are arranged.
    description : `str`
        One line for listings and model metadata.
    """

    name: str
    builder: Callable[[tuple[int, ...]], Any]
    layout: Layout
    stacking: Stacking
    description: str


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(
    name: str, *, layout: Layout | str, stacking: Stacking | str = Stacking.HORIZONTAL, description: str
) -> Callable:
    """Decorator registering a network builder under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is already registered.
    """

    def decorator(builder: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"Architecture {name!r} is already registered.")
        _REGISTRY[name] = Architecture(name, builder, Layout(layout), Stacking(stacking), description)
        return builder

    return decorator


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name.

    Raises
    ------
    KeyError
        If no architecture of that name is registered; the message lists the
        known names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"Unknown architecture {name!r}; known: {sorted(_REGISTRY)}.") from None


def architecture_names() -> list[str]:
    """Names of all registered architectures."""
    return sorted(_REGISTRY)


def build_network(name: str, stamp_size: int = 51) -> Any:
    """Build an untrained, uncompiled Keras network.

    Parameters
    ----------
    name : `str`
        Registered architecture name.
    stamp_size : `int`
        Stamp width/height in pixels.

    Returns
    -------
    model : `keras.Model`
    """
    arch = get_architecture(name)
    return arch.builder(input_shape(arch.layout, stamp_size, arch.stacking))


def _conv_block(layers, filters, kernel, dropout):
    block = [layers.Conv2D(filters, kernel, padding="valid", activation="relu"), layers.MaxPooling2D(2)]
    if dropout:
        block.append(layers.Dropout(dropout))
    return block


@register_architecture(
    "paper_dia",
    layout=Layout.DIA,
    description="Acero-Cuellar et al. DIA CNN: 3 conv(5x5: 16/32/64)+pool+dropout 0.4, dense 32, softmax 2",
)
def _paper_dia(shape):
    import keras
    from keras import layers

    return keras.Sequential(
        [keras.Input(shape)]
        + _conv_block(layers, 16, 5, 0.4)
        + _conv_block(layers, 32, 5, 0.4)
        + _conv_block(layers, 64, 5, 0.4)
        + [layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(2, activation="softmax")],
        name="paper_dia",
    )


@register_architecture(
    "paper_nodia",
    layout=Layout.NODIA,
    description="Acero-Cuellar et al. noDIA CNN: conv(1,7x7)+pool, conv(16,3x3)/conv(32,3x3)+pool+dropout"
    " 0.4, dense 32, softmax 2",
)
def _paper_nodia(shape):
    import keras
    from keras import layers

    return keras.Sequential(
        [keras.Input(shape)]
        + _conv_block(layers, 1, 7, 0.0)
        + _conv_block(layers, 16, 3, 0.4)
        + _conv_block(layers, 32, 3, 0.4)
        + [layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(2, activation="softmax")],
        name="paper_nodia",
    )
