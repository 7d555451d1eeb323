"""From aligned full images and detection positions to network inputs."""

from __future__ import annotations

__all__ = ["ModelInputs", "PixelImage", "make_model_inputs", "scale_cutouts"]

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .flags import StampFlag
from .layouts import Layout, Stacking, input_shape, split_segments
from .scaling import Scaling, interval_scale, shared_span_scale, standardize
from .stamps import Cutouts, cut_stamps

_SCALERS = {"diff": standardize, "srch": interval_scale, "tmpl": interval_scale}


@dataclass(frozen=True)
class PixelImage:
    """An image as the core sees it: pixels, unusable-pixel mask and origin.

    Attributes
    ----------
    array : `numpy.ndarray`
        2-d pixel values indexed ``[y, x]``.
    bad : `numpy.ndarray` or `None`
        2-d bool, True for pixels that must not be used; `None` if no mask.
    origin : `tuple` [`int`, `int`]
        ``(x0, y0)``, the pixel coordinates of ``array[0, 0]``.
    """

    array: np.ndarray
    bad: np.ndarray | None = None
    origin: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class ModelInputs:
    """Network inputs for a batch of detections.

    Attributes
    ----------
    inputs : `numpy.ndarray`
        float32 network inputs, ``(n,) + input_shape``.
    flags : `numpy.ndarray`
        ``(n,)`` int32 `StampFlag` bits, combined over all segments.
    scaled : `dict` [`str`, `numpy.ndarray`]
        The scaled ``(n, size, size)`` stamps per segment.
    raw : `dict` [`str`, `numpy.ndarray`]
        The unscaled stamps per segment (NaN where unusable), for plots.
    """

    inputs: np.ndarray
    flags: np.ndarray
    scaled: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]


def scale_cutouts(
    cutouts: Mapping[str, Cutouts],
    out: Mapping[str, np.ndarray] | None = None,
    scaling: Scaling | str = Scaling.PAPER,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Scale each segment's cutouts with its recipe and merge the flags.

    Parameters
    ----------
    cutouts : `~collections.abc.Mapping` [`str`, `Cutouts`]
        Cutouts keyed by segment name (``diff``, ``srch``, ``tmpl``).
    out : `~collections.abc.Mapping` [`str`, `numpy.ndarray`], optional
        The float32 ``(n, size, size)`` arrays (or views, e.g. of the network
        input array) to write each segment's scaled stamps into.
    scaling : `~rbnodia.core.scaling.Scaling` or `str`, optional
        The recipe (a model's ``scaling``); with ``SHARED_SPAN`` the science
        and template stamps are scaled together and both must be given.

    Returns
    -------
    scaled : `dict` [`str`, `numpy.ndarray`]
        Scaled stamps per segment (the ``out`` arrays if given).
    flags : `numpy.ndarray`
        Combined `StampFlag` bits.

    Raises
    ------
    KeyError
        If ``SHARED_SPAN`` is asked for without both ``srch`` and ``tmpl``.
    """
    scaling = Scaling(scaling)
    failed = {}
    scaled = {}
    for name, cut in cutouts.items():
        if scaling is Scaling.SHARED_SPAN and name in ("srch", "tmpl"):
            continue
        target = None if out is None else out[name]
        scaled[name], failed[name] = _SCALERS[name](cut.pixels, cut.usable, out=target)
    if scaling is Scaling.SHARED_SPAN:
        srch, tmpl = cutouts["srch"], cutouts["tmpl"]
        scaled["srch"], scaled["tmpl"], failed["srch"], failed["tmpl"] = shared_span_scale(
            srch.pixels,
            tmpl.pixels,
            srch.usable,
            tmpl.usable,
            out_srch=None if out is None else out["srch"],
            out_tmpl=None if out is None else out["tmpl"],
        )
    flags = None
    for name, cut in cutouts.items():
        segment_flags = cut.flags | np.where(failed[name], np.int32(StampFlag.SCALING_FAILED), np.int32(0))
        flags = segment_flags if flags is None else flags | segment_flags
    return {name: scaled[name] for name in cutouts}, flags


def make_model_inputs(
    images: Mapping[str, PixelImage],
    x: np.ndarray,
    y: np.ndarray,
    layout: Layout | str,
    size: int = 51,
    stacking: Stacking | str = Stacking.HORIZONTAL,
    scaling: Scaling | str = Scaling.PAPER,
) -> ModelInputs:
    """Cut, scale and stack the stamps of every detection.

    Parameters
    ----------
    images : `~collections.abc.Mapping` [`str`, `PixelImage`]
        Aligned images keyed by segment name; those the layout does not use
        are ignored.
    x, y : array-like
        Detection positions in pixel coordinates.
    layout : `rbnodia.core.layouts.Layout` or `str`
        Which segments, in which order; see `rbnodia.core.layouts`.
    size : `int`
        Stamp size (odd).
    stacking : `rbnodia.core.layouts.Stacking` or `str`
        How the segments are stacked; see `rbnodia.core.layouts`.
    scaling : `rbnodia.core.scaling.Scaling` or `str`, optional
        The scaling recipe (the model's); see `rbnodia.core.scaling`.

    Returns
    -------
    model_inputs : `ModelInputs`
        Inputs, flags, and the scaled and raw stamps.  The scaled stamps are
        views of the input array (the scalers write straight into it).

    Raises
    ------
    KeyError
        If an image the layout needs is missing.
    """
    layout = Layout(layout)
    layout.require(images, "images")
    cutouts = {
        name: cut_stamps(images[name].array, x, y, size, bad=images[name].bad, origin=images[name].origin)
        for name in layout.segments
    }
    n = len(next(iter(cutouts.values())))
    inputs = np.empty((n,) + input_shape(layout, size, stacking), dtype=np.float32)
    scaled, flags = scale_cutouts(cutouts, out=split_segments(inputs, layout, stacking), scaling=scaling)
    return ModelInputs(
        inputs=inputs, flags=flags, scaled=scaled, raw={k: c.pixels for k, c in cutouts.items()}
    )
