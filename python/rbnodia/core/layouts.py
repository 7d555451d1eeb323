"""How scaled stamps are arranged into one network input.

The paper stacks the scaled stamps side by side into a single-channel image:
``diff | srch | tmpl`` (51 x 153 x 1) for the DIA model and ``srch | tmpl``
(51 x 102 x 1) for the noDIA model.  Stacking them as channels
(51 x 51 x k) is offered for architectures that want it.
"""

from __future__ import annotations

__all__ = ["SEGMENT_NAMES", "Layout", "Stacking", "input_shape", "split_segments", "stack_segments"]

import enum
from collections.abc import Container, Mapping

import numpy as np

SEGMENT_NAMES = ("diff", "srch", "tmpl")
"""All segment names: difference, science ("search") and template stamps."""


class Layout(enum.StrEnum):
    """Which stamps a model sees, in input order."""

    NODIA = "noDIA"
    """Science and template only: ``srch | tmpl``."""
    DIA = "DIA"
    """Difference, science and template: ``diff | srch | tmpl``."""

    @property
    def segments(self) -> tuple[str, ...]:
        """Segment names in input order."""
        return ("srch", "tmpl") if self is Layout.NODIA else ("diff", "srch", "tmpl")

    @property
    def needs_difference(self) -> bool:
        """Whether this layout reads the difference image."""
        return "diff" in self.segments

    def require(self, given: Container[str], what: str = "segments") -> None:
        """Check that every segment of this layout is given.

        Parameters
        ----------
        given : `~collections.abc.Container` [`str`]
            The names given (e.g. the keys of a mapping).
        what : `str`, optional
            What the names stand for, in the message.

        Raises
        ------
        KeyError
            If a segment this layout needs is not in ``given``.
        """
        missing = [name for name in self.segments if name not in given]
        if missing:
            raise KeyError(f"Layout {self.value} needs {what} {missing} that were not given.")


class Stacking(enum.StrEnum):
    """How segments are combined into one array."""

    HORIZONTAL = "horizontal"
    """Side by side along x into one channel, as in the paper."""
    CHANNELS = "channels"
    """One channel per segment."""


def input_shape(layout: Layout | str, size: int, stacking: Stacking | str = Stacking.HORIZONTAL) -> tuple:
    """Return the shape of one network input ``(height, width, channels)``.

    Parameters
    ----------
    layout : `Layout` or `str`
        Which segments.
    size : `int`
        Stamp size in pixels.
    stacking : `Stacking` or `str`, optional
        Side by side (the paper) or as channels.

    Returns
    -------
    shape : `tuple` [`int`, `int`, `int`]
        The input shape, without the batch axis.
    """
    k = len(Layout(layout).segments)
    if Stacking(stacking) is Stacking.HORIZONTAL:
        return (size, size * k, 1)
    return (size, size, k)


def stack_segments(
    scaled: Mapping[str, np.ndarray],
    layout: Layout | str,
    stacking: Stacking | str = Stacking.HORIZONTAL,
) -> np.ndarray:
    """Arrange scaled stamps into network inputs.

    Parameters
    ----------
    scaled : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        ``(n, size, size)`` scaled stamps keyed by segment name; keys the
        layout does not use are ignored.
    layout : `Layout` or `str`
        Which segments, in which order.
    stacking : `Stacking` or `str`
        Side by side (the paper) or as channels.

    Returns
    -------
    inputs : `numpy.ndarray`
        Float32 array of shape ``(n,) + input_shape(layout, size, stacking)``.

    Raises
    ------
    KeyError
        If a segment the layout needs is missing.
    """
    layout = Layout(layout)
    layout.require(scaled)
    parts = [np.asarray(scaled[name], dtype=np.float32) for name in layout.segments]
    if Stacking(stacking) is Stacking.HORIZONTAL:
        return np.concatenate(parts, axis=2)[..., None]
    return np.stack(parts, axis=-1)


def split_segments(
    inputs: np.ndarray, layout: Layout | str, stacking: Stacking | str = Stacking.HORIZONTAL
) -> dict[str, np.ndarray]:
    """Split network inputs into ``(n, size, size)`` arrays per segment.

    The inverse of `stack_segments`.

    Works for any array laid out like the inputs (e.g. saliency maps).

    Parameters
    ----------
    inputs : `numpy.ndarray`
        ``(n,) + input_shape`` array.
    layout : `Layout` or `str`
        Which segments, in which order.
    stacking : `Stacking` or `str`, optional
        How the segments were stacked.

    Returns
    -------
    segments : `dict` [`str`, `numpy.ndarray`]
        Segment name -> ``(n, size, size)`` view.
    """
    layout = Layout(layout)
    inputs = np.asarray(inputs)
    k = len(layout.segments)
    if Stacking(stacking) is Stacking.HORIZONTAL:
        width = inputs.shape[2] // k
        return {name: inputs[:, :, i * width : (i + 1) * width, 0] for i, name in enumerate(layout.segments)}
    return {name: inputs[..., i] for i, name in enumerate(layout.segments)}
