"""Network architectures, registered by name.

A new architecture plugs in with `register_architecture`; tasks and the
training code look architectures up by name only.  The two paper networks
(Acero-Cuellar et al., Appendix B) are registered here as ``paper_nodia``
(45,908 parameters) and ``paper_dia`` (126,050 parameters); beside them, the
channel-stacked ``improved_*`` networks (strided convolutions) and the
``patch_*`` networks of the packaged models (a patch stem, then stride-1
convolutions, whose saliency is cheap on ONNX Runtime).
"""

from __future__ import annotations

__all__ = [
    "Architecture",
    "architecture_names",
    "build_network",
    "get_architecture",
    "register_architecture",
]

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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
    """Register a network builder under ``name`` (a decorator).

    Parameters
    ----------
    name : `str`
        Registry key.
    layout : `rbnodia.core.Layout` or `str`
        The stamps the network reads.
    stacking : `rbnodia.core.Stacking` or `str`, optional
        Side by side (the paper) or as channels.
    description : `str`
        One line for listings and model metadata.

    Returns
    -------
    decorator : `~collections.abc.Callable`
        Registers ``builder(stamp_size)`` and returns it unchanged.

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

    Parameters
    ----------
    name : `str`
        Registry key.

    Returns
    -------
    architecture : `Architecture`
        The registered architecture.

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
    """Return the names of all registered architectures.

    Returns
    -------
    names : `list` [`str`]
        Sorted names.
    """
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

    Raises
    ------
    ImportError
        If Keras is missing (the ``[train]`` extra).
    """
    from .keras_io import import_keras

    arch = get_architecture(name)
    import_keras(f"Building the {name} network")
    return arch.builder(input_shape(arch.layout, stamp_size, arch.stacking))


def _conv_block(layers, filters, kernel, dropout):
    block = [layers.Conv2D(filters, kernel, padding="valid", activation="relu"), layers.MaxPooling2D(2)]
    if dropout:
        block.append(layers.Dropout(dropout))
    return block


def _paper_network(shape, name, blocks):
    """Build a paper network: ``_conv_block`` per ``(filters, kernel,
    dropout)`` of ``blocks``, then flatten, dense 32, 2-way softmax.
    """
    import keras
    from keras import layers

    convolutions = [layer for block in blocks for layer in _conv_block(layers, *block)]
    return keras.Sequential(
        [keras.Input(shape)]
        + convolutions
        + [layers.Flatten(), layers.Dense(32, activation="relu"), layers.Dense(2, activation="softmax")],
        name=name,
    )


@register_architecture(
    "paper_dia",
    layout=Layout.DIA,
    description="Acero-Cuellar et al. DIA CNN: 3 conv(5x5: 16/32/64)+pool+dropout 0.4, dense 32, softmax 2",
)
def _paper_dia(shape):
    return _paper_network(shape, "paper_dia", ((16, 5, 0.4), (32, 5, 0.4), (64, 5, 0.4)))


@register_architecture(
    "paper_nodia",
    layout=Layout.NODIA,
    description="Acero-Cuellar et al. noDIA CNN: conv(1,7x7)+pool, conv(16,3x3)/conv(32,3x3)+pool+dropout"
    " 0.4, dense 32, softmax 2",
)
def _paper_nodia(shape):
    return _paper_network(shape, "paper_nodia", ((1, 7, 0.0), (16, 3, 0.4), (32, 3, 0.4)))


# Improved recipes (beyond the paper).  The paper's noDIA network puts the
# science and template stamps side by side, so only its last layers ever see
# both images of one sky position together.  These networks stack them as
# channels instead: every convolution sees srch and tmpl at the same pixel and
# can learn a local, PSF-aware "difference" itself.  Three strided
# convolutions with batch normalisation (momentum 0.9, so short trainings get
# usable statistics) shrink 51 -> 24 -> 11 -> 5 pixels; flattening the 5x5
# map keeps where features sit relative to the centred detection.  Cost per
# stamp (multiply-adds): improved_nodia 1.27 M, improved_nodia_fast 0.51 M,
# paper_nodia 1.16 M; but the strided layers run several times faster than
# the paper's full-resolution 1-filter first layer.


def _conv_bn_relu(layers, x, filters, kernel, **options):
    """Convolution without bias, batch normalisation (momentum 0.9, so short
    trainings get usable statistics), relu.
    """
    x = layers.Conv2D(filters, kernel, use_bias=False, **options)(x)
    return layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))


def _dense_head(keras, layers, inputs, x, name):
    """Flatten (keeping where features sit relative to the centred
    detection), dropout 0.3, dense 32, 2-way softmax.
    """
    x = layers.Dropout(0.3)(layers.Flatten()(x))
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x), name=name)


def _improved_network(shape, name, widths=(16, 32, 32)):
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = inputs
    for filters, kernel in zip(widths, (5, 3, 3)):  # 51 -> 24 -> 11 -> 5
        x = _conv_bn_relu(layers, x, filters, kernel, strides=2, padding="valid")
    return _dense_head(keras, layers, inputs, x, name)


def _register_channel_stacked(family: str, network: Callable[..., Any], summary: str) -> None:
    """Register ``{family}_nodia`` and ``{family}_dia``: ``network(shape,
    name)`` on channel-stacked stamps (srch/tmpl, and diff/srch/tmpl).
    """
    for layout, segments in ((Layout.NODIA, "srch/tmpl"), (Layout.DIA, "diff/srch/tmpl")):
        name = f"{family}_{layout.value.lower()}"
        register_architecture(
            name, layout=layout, stacking=Stacking.CHANNELS,
            description=f"{layout.value} CNN on channel-stacked {segments}: {summary}",
        )(partial(network, name=name))


_register_channel_stacked(
    "improved", _improved_network,
    "3 strided conv(5x5:16, 3x3:32, 3x3:32)+batch norm, dropout 0.3, dense 32, softmax 2",
)


@register_architecture(
    "improved_nodia_fast",
    layout=Layout.NODIA,
    stacking=Stacking.CHANNELS,
    description="Cheaper improved_nodia: 3 strided conv(5x5:8, 3x3:16, 3x3:32)+batch norm, dropout 0.3,"
    " dense 32, softmax 2",
)
def _improved_nodia_fast(shape):
    return _improved_network(shape, "improved_nodia_fast", widths=(8, 16, 32))


# Patch-stem networks (the packaged defaults).  A 4x4 convolution with stride
# 4 cuts the stamp into 13x13 non-overlapping patches (the "patchify" stem of
# ConvNeXt-like networks), and two 3x3 stride-1 convolutions with batch
# normalisation work on that grid (13 -> 11 -> 9); flattening keeps where
# features sit relative to the centred detection.  Multiply-adds per stamp:
# 1.47 M (noDIA), about those of ``improved_nodia``.  Chosen for the cost of
# saliency: a stride-1 convolution's input gradient is the convolution with
# the flipped filters, which ONNX Runtime runs in its fast blocked layout,
# and the stem's non-overlapping transpose is cheap; the strided 3x3/5x5
# layers of the ``improved_*`` networks can only be undone by ONNX
# Runtime's much slower ``ConvTranspose`` (``doc/performance.rst``).


def _patch_network(shape, name, stem=16, widths=(32, 32)):
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = _conv_bn_relu(layers, inputs, stem, 4, strides=4, padding="same")  # 51 -> 13
    for filters in widths:  # 13 -> 11 -> 9
        x = _conv_bn_relu(layers, x, filters, 3, padding="valid")
    return _dense_head(keras, layers, inputs, x, name)


_register_channel_stacked(
    "patch", _patch_network,
    "4x4/4 patch conv (16), 2 conv(3x3: 32)+batch norm, dropout 0.3, dense 32, softmax 2",
)
