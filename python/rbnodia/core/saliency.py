"""Saliency-map diagnostics in pure numpy: segment importances, dominant
segments and confusion-matrix quadrants.

Acero-Cuellar et al. (Section 4.3, Eq. 4) measure how much a model relies on
each stamp of its input by the share of the total saliency that falls on the
stamp's pixels::

    I_seg = sum(s_p for p in seg) / sum(s_p for all p),     s_p = |dS_c/dI_p|

where the segments are the horizontal thirds (DIA: ``diff | srch | tmpl``) or
halves (noDIA: ``srch | tmpl``) of the stacked input, or its channels when the
stamps are stacked as channels.  The maps themselves are computed by
`rbnodia.nn.saliency`; this module only reduces them.

Positive class convention: *real* is positive, as in the paper's confusion
matrix, and labels follow the DES autoscan convention (0 = real, 1 = bogus).
"""

from __future__ import annotations

__all__ = [
    "DOMINANT_CUT",
    "NO_DOMINANT",
    "PREDICTION_CLASSES",
    "QUADRANTS",
    "confusion_quadrant",
    "dominant_by_cut",
    "dominant_segment",
    "group_names",
    "is_prediction_only",
    "prediction_class",
    "segment_importances",
    "summarize_importances",
]

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .layouts import Layout, Stacking, split_segments
from .stampset import BOGUS, REAL

DOMINANT_CUT = 1.0 / 3.0
"""The paper's cut: a segment with ``I_seg > 1/3`` was principally used."""

NO_DOMINANT = "none"
"""`dominant_segment` value for a map whose importances are undefined."""

QUADRANTS = ("TP", "FN", "FP", "TN")
"""Confusion-matrix quadrants in matrix order: rows are the labels (real,
bogus), columns the predictions (real, bogus).  Real is positive."""

PREDICTION_CLASSES = ("predicted real", "predicted bogus")
"""Group names used instead of `QUADRANTS` when there are no labels."""


def segment_importances(
    maps: np.ndarray, layout: Layout | str, stacking: Stacking | str = Stacking.HORIZONTAL
) -> dict[str, np.ndarray]:
    """Fraction of each map's total saliency on each segment (the paper's Eq. 4).

    Parameters
    ----------
    maps : `numpy.ndarray`
        ``(n, H, W, C)`` saliency maps laid out like the network inputs
        (``(H, W, C)`` is taken as one map).  The absolute value is taken, so
        signed gradients may be passed as well.
    layout : `~rbnodia.core.Layout` or `str`
        Which segments the inputs hold, in input order.
    stacking : `~rbnodia.core.Stacking` or `str`
        ``horizontal`` (segments side by side along x, the paper) or
        ``channels``.

    Returns
    -------
    importances : `dict` [`str`, `numpy.ndarray`]
        ``(n,)`` float64 ``I_seg`` per segment name, in layout order; for a
        finite map they are in [0, 1] and sum to 1.  A map that is zero
        everywhere has no defined fractions: all its ``I_seg`` are NaN (a map
        containing NaN gives NaN too).  Nothing raises for such maps.

    Raises
    ------
    ValueError
        If the maps' shape cannot hold the layout's segments.
    """
    layout = Layout(layout)
    stacking = Stacking(stacking)
    maps = np.asarray(maps)
    if maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4:
        raise ValueError(f"Saliency maps must be (n, H, W, C); got shape {maps.shape}.")
    k = len(layout.segments)
    if stacking is Stacking.HORIZONTAL:
        if maps.shape[3] != 1 or maps.shape[2] % k:
            raise ValueError(
                f"Maps of shape {maps.shape[1:]} are not {k} segments side by side in one channel."
            )
    elif maps.shape[3] != k:
        raise ValueError(f"Maps of shape {maps.shape[1:]} do not have one channel per segment ({k}).")
    segments = split_segments(np.abs(maps), layout, stacking)
    sums = {name: seg.sum(axis=(1, 2), dtype=np.float64) for name, seg in segments.items()}
    total = np.sum(list(sums.values()), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {name: np.where(total > 0, value / total, np.nan) for name, value in sums.items()}


def _stack(importances: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    names = list(importances)
    if not names:
        raise ValueError("No segment importances given.")
    values = np.stack([np.asarray(importances[name], dtype=np.float64) for name in names], axis=-1)
    return names, values


def dominant_segment(importances: Mapping[str, np.ndarray]) -> np.ndarray:
    """Return the segment with the largest importance, per object.

    Parameters
    ----------
    importances : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        ``I_seg`` per segment, as returned by `segment_importances`.

    Returns
    -------
    dominant : `numpy.ndarray`
        ``(n,)`` str: the segment name; ties go to the segment earliest in
        the mapping (layout order).  `NO_DOMINANT` where the importances are
        not finite (e.g. an all-zero map).
    """
    names, values = _stack(importances)
    finite = np.isfinite(values).all(axis=-1)
    index = np.argmax(np.where(finite[..., None], values, -np.inf), axis=-1)
    choices = np.array(names + [NO_DOMINANT])
    return choices[np.where(finite, index, len(names))]


def dominant_by_cut(
    importances: Mapping[str, np.ndarray], cut: float = DOMINANT_CUT
) -> dict[str, np.ndarray]:
    """Return the paper's cut: which segments the model principally used.

    Parameters
    ----------
    importances : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        ``I_seg`` per segment, as returned by `segment_importances`.
    cut : `float`
        A segment counts when ``I_seg > cut`` (strict).  The paper uses 1/3
        for the DIA thirds; for the two noDIA halves at least one segment is
        always above 1/3, so 1/2 is the analogous "more than its share" cut.

    Returns
    -------
    used : `dict` [`str`, `numpy.ndarray`]
        ``(n,)`` bool per segment.  Several segments, or none, may pass for
        one object; NaN importances never pass.
    """
    return {name: np.greater(np.asarray(value, dtype=np.float64), cut) for name, value in importances.items()}


def prediction_class(predicted_real: np.ndarray) -> np.ndarray:
    """Group names when there are no labels: ``predicted real`` or ``predicted bogus``.

    Parameters
    ----------
    predicted_real : `numpy.ndarray`
        ``(n,)`` bool, True where the model classifies the object as real.

    Returns
    -------
    groups : `numpy.ndarray`
        ``(n,)`` str, values from `PREDICTION_CLASSES`.
    """
    predicted_real = np.asarray(predicted_real, dtype=bool)
    return np.where(predicted_real, PREDICTION_CLASSES[0], PREDICTION_CLASSES[1]).astype(str)


def confusion_quadrant(labels: np.ndarray | None, predicted_real: np.ndarray) -> np.ndarray:
    """Confusion-matrix quadrant of each object, with real as the positive class.

    ==========  ============== ===============
    label       predicted real predicted bogus
    ==========  ============== ===============
    0 (real)    ``TP``         ``FN``
    1 (bogus)   ``FP``         ``TN``
    ==========  ============== ===============

    Parameters
    ----------
    labels : `numpy.ndarray` or `None`
        ``(n,)`` DES labels, 0 real / 1 bogus.  `None` when the objects are
        unlabelled: the result is then `prediction_class` (``predicted
        real`` / ``predicted bogus``).
    predicted_real : `numpy.ndarray`
        ``(n,)`` bool, True where the model classifies the object as real
        (e.g. ``score >= threshold``).

    Returns
    -------
    quadrants : `numpy.ndarray`
        ``(n,)`` str, values from `QUADRANTS` (or `PREDICTION_CLASSES`).

    Raises
    ------
    ValueError
        If the lengths differ or a label is neither 0 nor 1.
    """
    predicted_real = np.asarray(predicted_real, dtype=bool)
    if labels is None:
        return prediction_class(predicted_real)
    labels = np.asarray(labels)
    if labels.shape != predicted_real.shape:
        raise ValueError(f"{labels.size} labels for {predicted_real.size} predictions.")
    if labels.size and not np.isin(labels, (REAL, BOGUS)).all():
        raise ValueError("Labels must be 0 (real) or 1 (bogus); pass labels=None for unlabelled objects.")
    real = labels == REAL
    return np.select(
        [real & predicted_real, real & ~predicted_real, ~real & predicted_real],
        ["TP", "FN", "FP"],
        default="TN",
    ).astype(str)


def is_prediction_only(groups: Sequence[str] | np.ndarray) -> bool:
    """Tell whether ``groups`` came from `prediction_class` rather than `confusion_quadrant`.

    An empty array counts as labelled.

    Parameters
    ----------
    groups : `~collections.abc.Sequence` [`str`] or `numpy.ndarray`
        Group name per object.

    Returns
    -------
    prediction_only : `bool`
        True if every group is a predicted class.
    """
    values = set(np.unique(np.asarray(groups, dtype=str)).tolist())
    return bool(values) and values <= set(PREDICTION_CLASSES)


def group_names(groups: Sequence[str] | np.ndarray) -> tuple[str, ...]:
    """Return all group names of that kind, in display order, present or not.

    `QUADRANTS` for confusion quadrants, `PREDICTION_CLASSES` when
    `is_prediction_only`.

    Parameters
    ----------
    groups : `~collections.abc.Sequence` [`str`] or `numpy.ndarray`
        Group name per object.

    Returns
    -------
    names : `tuple` [`str`, ...]
        The group names.
    """
    return PREDICTION_CLASSES if is_prediction_only(groups) else QUADRANTS


def _nan_to_none(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def summarize_importances(
    importances: Mapping[str, np.ndarray], groups: np.ndarray, cut: float = DOMINANT_CUT
) -> dict[str, Any]:
    """JSON-ready summary of segment importances per group (quadrant).

    Parameters
    ----------
    importances : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        ``I_seg`` per segment, as returned by `segment_importances`.
    groups : `numpy.ndarray`
        ``(n,)`` str, from `confusion_quadrant` or `prediction_class`.
    cut : `float`
        Cut for the ``above_cut_fraction`` entries (see `dominant_by_cut`).

    Returns
    -------
    summary : `dict`
        For every group of `group_names` (empty ones included) and for
        ``all``: ``n``; ``n_undefined`` (all-zero maps, excluded from the
        fractions); ``dominant_count`` and ``dominant_fraction`` per segment
        (largest ``I_seg``, fractions summing to 1); ``above_cut_fraction``
        per segment (``I_seg > cut``, need not sum to 1); and
        ``mean_importance`` per segment.  Undefined values are `None`.
    """
    groups = np.asarray(groups, dtype=str)
    names = list(importances)
    values = {name: np.asarray(importances[name], dtype=np.float64) for name in names}
    dominant = dominant_segment(values)
    above = dominant_by_cut(values, cut)
    defined = dominant != NO_DOMINANT

    def one(mask: np.ndarray) -> dict[str, Any]:
        usable = mask & defined
        n_usable = int(usable.sum())
        counts = {name: int((dominant[usable] == name).sum()) for name in names}
        return {
            "n": int(mask.sum()),
            "n_undefined": int((mask & ~defined).sum()),
            "dominant_count": counts,
            "dominant_fraction": {
                name: (counts[name] / n_usable if n_usable else None) for name in names
            },
            "above_cut_fraction": {
                name: (float(above[name][usable].mean()) if n_usable else None) for name in names
            },
            "mean_importance": {
                name: (_nan_to_none(values[name][usable].mean()) if n_usable else None) for name in names
            },
        }

    summary = {"cut": float(cut), "segments": names, "groups": {}}
    for group in group_names(groups):
        summary["groups"][group] = one(groups == group)
    summary["all"] = one(np.ones(len(groups), dtype=bool))
    return summary
