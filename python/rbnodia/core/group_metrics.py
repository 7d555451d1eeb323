"""Metrics within subgroups of detections: per family (what made the
detection) and per bin of a continuous quantity such as the detection S/N.

Conventions are those of `rbnodia.core.metrics`: labels 0 = real, 1 = bogus;
scores are P(real); a detection is called real when ``score >= threshold``.
Group names come from the data (never a fixed list), so any simulator or
survey labelling works.
"""

from __future__ import annotations

__all__ = ["SNR_BIN_EDGES", "auc_by_bin", "bin_label", "completeness_by_bin", "metrics_by_group"]

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import roc_auc

SNR_BIN_EDGES = (-math.inf, 5.0, 10.0, 20.0, 50.0, 100.0, math.inf)
"""Default detection S/N bin edges for `auc_by_bin` (the first bin holds
everything below 5, negative S/N included)."""


def _labels(labels: Any) -> np.ndarray:
    labels = np.asarray(labels).ravel()
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (bogus).")
    return labels


def _check_same_length(**arrays: np.ndarray) -> None:
    """Raise `ValueError`, naming each array and its size, unless the 1-d
    ``arrays`` have one length.
    """
    if len({array.size for array in arrays.values()}) > 1:
        sizes = [f"{name} ({array.size})" for name, array in arrays.items()]
        raise ValueError(f"{', '.join(sizes[:-1])} and {sizes[-1]} differ in length.")


def _bin_edges(edges: Sequence[float]) -> list[float]:
    """Return ``edges`` as floats; raise `ValueError` unless they increase
    and make at least one bin.
    """
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"Bin edges must increase, got {edges}.")
    return edges


def metrics_by_group(labels: Any, called_real: Any, groups: Any) -> dict[str, dict[str, Any]]:
    """Count, accuracy and fraction called real within each group.

    Parameters
    ----------
    labels : array-like
        0 (real) / 1 (bogus).
    called_real : array-like of `bool`
        The decision per detection (e.g. ``scores >= threshold``).
    groups : array-like
        One group name per detection (e.g. the family).

    Returns
    -------
    by_group : `dict` [`str`, `dict`]
        Per group name, sorted: ``n``, ``n_real``, ``n_bogus``, ``label``
        (the group's majority true label, 0 on ties), ``accuracy``
        (fraction whose decision matches its label) and
        ``fraction_called_real``.

    Raises
    ------
    ValueError
        For labels other than 0/1 or inputs of different lengths.
    """
    labels = _labels(labels)
    called_real = np.asarray(called_real, dtype=bool).ravel()
    groups = np.asarray(groups).ravel()
    _check_same_length(labels=labels, called_real=called_real, groups=groups)
    is_real = labels == 0
    correct = called_real == is_real
    result = {}
    for name in np.unique(groups):
        members = groups == name
        n_real = int(is_real[members].sum())
        n = int(members.sum())
        result[str(name)] = {
            "n": n,
            "n_real": n_real,
            "n_bogus": n - n_real,
            "label": 0 if 2 * n_real >= n else 1,
            "accuracy": float(correct[members].mean()),
            "fraction_called_real": float(called_real[members].mean()),
        }
    return result


def bin_label(low: float, high: float) -> str:
    """Name the bin ``[low, high)`` readably: ``< 5``, ``5-10``, ``>= 100``.

    Parameters
    ----------
    low, high : `float`
        Bin edges (infinite for open bins).

    Returns
    -------
    label : `str`
        The name.
    """
    if math.isinf(low) and math.isinf(high):
        return "all"
    if math.isinf(low):
        return f"< {high:g}"
    if math.isinf(high):
        return f">= {low:g}"
    return f"{low:g}-{high:g}"


def auc_by_bin(
    labels: Any, scores: Any, values: Any, edges: Sequence[float] = SNR_BIN_EDGES
) -> dict[str, Any]:
    """ROC AUC within bins of ``values`` (e.g. the detection S/N).

    Parameters
    ----------
    labels : array-like
        0 (real) / 1 (bogus).
    scores : array-like
        P(real), finite.
    values : array-like
        The binned quantity; NaN rows fall in no bin and are counted.
    edges : sequence of `float`
        Increasing bin edges; bins are ``[edges[i], edges[i + 1])``.

    Returns
    -------
    result : `dict`
        ``bins``: one entry per bin with ``low``, ``high``, ``label``
        (`bin_label`), ``n``, ``n_real``, ``n_bogus``, ``both_classes``
        and ``roc_auc`` (NaN unless both classes occur in the bin);
        ``bins_with_auc``: labels of the bins with both classes;
        ``n_unbinned``: rows with a NaN value or outside the edges.

    Raises
    ------
    ValueError
        For bad labels, NaN scores, unequal lengths or non-increasing edges.
    """
    labels = _labels(labels)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    _check_same_length(labels=labels, scores=scores, values=values)
    edges = _bin_edges(edges)
    bins, binned = [], np.zeros(labels.size, dtype=bool)
    for low, high in zip(edges, edges[1:]):
        members = (values >= low) & (values < high)
        binned |= members
        n_real = int((labels[members] == 0).sum())
        n = int(members.sum())
        both = 0 < n_real < n
        bins.append(
            {
                "low": low,
                "high": high,
                "label": bin_label(low, high),
                "n": n,
                "n_real": n_real,
                "n_bogus": n - n_real,
                "both_classes": both,
                "roc_auc": roc_auc(labels[members], scores[members]) if both else math.nan,
            }
        )
    return {
        "bins": bins,
        "bins_with_auc": [b["label"] for b in bins if b["both_classes"]],
        "n_unbinned": int((~binned).sum()),
    }


def completeness_by_bin(
    labels: Any, called_real: Any, values: Any, edges: Sequence[float]
) -> list[dict[str, Any]]:
    """Fraction of the real detections called real within bins of ``values``
    (e.g. `rbnodia.core.contrast.host_contrast`).

    Parameters
    ----------
    labels : array-like
        0 (real) / 1 (bogus); bogus rows are ignored.
    called_real : array-like
        Booleans, aligned with ``labels``.
    values : array-like
        The binned quantity; NaN rows fall in no bin.
    edges : sequence of `float`
        Increasing bin edges; bins are ``[edges[i], edges[i + 1])``.

    Returns
    -------
    bins : `list` [`dict`]
        Per bin: ``low``, ``high``, ``label`` (`bin_label`), ``n_real`` and
        ``fraction_called_real`` (NaN for a bin without reals).

    Raises
    ------
    ValueError
        For bad labels, unequal lengths or non-increasing edges.
    """
    labels = _labels(labels)
    called_real = np.asarray(called_real, dtype=bool).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    _check_same_length(labels=labels, called_real=called_real, values=values)
    edges = _bin_edges(edges)
    real = labels == 0
    bins = []
    for low, high in zip(edges, edges[1:]):
        members = real & (values >= low) & (values < high)
        n_real = int(members.sum())
        bins.append(
            {
                "low": low,
                "high": high,
                "label": bin_label(low, high),
                "n_real": n_real,
                "fraction_called_real": float(called_real[members].mean()) if n_real else math.nan,
            }
        )
    return bins
