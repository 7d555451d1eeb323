"""Classification metrics for real/bogus scores, in pure numpy.

Conventions used throughout this module:

- ``labels`` follow the DES autoscan convention: ``0 = real``, ``1 = bogus``
  (`~rbnodia.core.stampset.REAL`, `~rbnodia.core.stampset.BOGUS`).
- ``scores`` are Rubin reliability scores, the probability that a detection
  is REAL (the network's softmax column 0).
- The positive class is REAL.  A detection is predicted real when
  ``score >= threshold``.
- The confusion matrix is laid out as in Acero-Cuellar et al.: rows are the
  true class (real, bogus), columns the predicted class (real, bogus), i.e.
  ``[[TP, FN], [FP, TN]]``.

Degenerate inputs:

- Labels other than 0/1, or ``labels`` and ``scores`` of different lengths,
  raise `ValueError`.
- NaN scores raise `ValueError` (their rank is undefined); drop them first,
  or use ``evaluate(..., nan_policy="omit")``.
- A rate whose denominator is zero (e.g. the TP rate of a set with no reals,
  or any rate of an empty set) is NaN, never an error; so are ROC AUC and the
  fixed-rate figures when one class is absent.
- `choose_threshold` raises `ValueError` when the requested method is
  undefined for the data (e.g. ``youden`` with one class only).

Metrics within families and S/N bins are in `rbnodia.core.group_metrics`.
"""

from __future__ import annotations

__all__ = [
    "THRESHOLD_METHODS",
    "choose_threshold",
    "confusion_matrix",
    "evaluate",
    "fpr_at_fnr",
    "mdr_at_fpr",
    "rates",
    "roc_auc",
    "roc_curve",
]

import math
from typing import Any

import numpy as np

THRESHOLD_METHODS = {
    "fixed": "0.5, or 'fixed:<t>' for any t (Rubin's downstream filter uses 0.5)",
    "max_accuracy": "the threshold maximising accuracy",
    "youden": "the threshold maximising Youden's J = TPR - FPR",
    "fnr:<x>": "the largest threshold whose false-negative (missed real) rate is <= x, e.g. fnr:0.01",
}
"""Threshold selection methods understood by `choose_threshold`."""

# Counts are compared with a small relative tolerance so that a rate given as
# a decimal (0.01) matches a count ratio (1/100) despite rounding.
_RATE_TOLERANCE = 1e-9


def _check(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``labels`` and ``scores``; return (is_real, scores)."""
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) differ in length.")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (bogus).")
    n_nan = int(np.isnan(scores).sum())
    if n_nan:
        raise ValueError(f"{n_nan} of {scores.size} scores are NaN; drop them before computing metrics.")
    return labels == 0, scores


def _divide(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else math.nan


def _cumulative_counts(is_real: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count true and false positives when the threshold is each distinct score.

    Returns ``(tps, fps, thresholds)`` with thresholds decreasing; element
    ``i`` counts the detections with ``score >= thresholds[i]``.
    """
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    sorted_real = is_real[order]
    # Last index of each run of equal scores: all tied detections switch
    # together, so only these points are on the curve.
    last_of_run = np.flatnonzero(np.diff(sorted_scores) != 0)
    last_of_run = np.append(last_of_run, sorted_scores.size - 1)
    tps = np.cumsum(sorted_real)[last_of_run]
    fps = (last_of_run + 1) - tps
    return tps, fps, sorted_scores[last_of_run]


def roc_curve(
    labels: Any, scores: Any, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver operating characteristic curve, real as the positive class.

    Parameters
    ----------
    labels : array-like
        0 (real) / 1 (bogus).
    scores : array-like
        P(real).
    drop_intermediate : `bool`
        Drop points on straight segments of the curve (they do not change
        its shape or area), as scikit-learn does by default.

    Returns
    -------
    fpr : `numpy.ndarray`
        False-positive rate (fraction of bogus called real) per threshold.
    tpr : `numpy.ndarray`
        True-positive rate (fraction of reals called real) per threshold.
    thresholds : `numpy.ndarray`
        Decreasing thresholds; ``thresholds[0]`` is ``inf`` (nothing called
        real), the others are the distinct score values.  Tied scores give
        one point.

    Notes
    -----
    With no reals ``tpr`` is NaN, with no bogus ``fpr`` is NaN.  An empty
    input gives the single point ``(nan, nan, inf)``.
    """
    is_real, scores = _check(labels, scores)
    if scores.size == 0:
        return np.array([math.nan]), np.array([math.nan]), np.array([np.inf])
    tps, fps, thresholds = _cumulative_counts(is_real, scores)
    if drop_intermediate and tps.size > 2:
        # Keep the corners: points where the slope changes.
        corner = np.ones(tps.size, dtype=bool)
        corner[1:-1] = (np.diff(tps, 2) != 0) | (np.diff(fps, 2) != 0)
        tps, fps, thresholds = tps[corner], fps[corner], thresholds[corner]
    tps = np.concatenate([[0], tps])
    fps = np.concatenate([[0], fps])
    thresholds = np.concatenate([[np.inf], thresholds])
    n_real, n_bogus = tps[-1], fps[-1]
    tpr = tps / n_real if n_real else np.full(tps.shape, math.nan)
    fpr = fps / n_bogus if n_bogus else np.full(fps.shape, math.nan)
    return fpr, tpr, thresholds


def roc_auc(labels: Any, scores: Any) -> float:
    """Compute the area under the ROC curve (real positive); NaN unless both classes occur.

    Tied scores count one half, so this equals the probability that a random
    real scores higher than a random bogus detection (Mann-Whitney U).

    Parameters
    ----------
    labels, scores : array-like
        As in `roc_curve`.

    Returns
    -------
    auc : `float`
        The ROC AUC.
    """
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def confusion_matrix(labels: Any, scores: Any, threshold: float = 0.5) -> np.ndarray:
    """Count true versus predicted classes.

    Parameters
    ----------
    labels, scores : array-like
        As in `roc_curve`.
    threshold : `float`
        A detection is predicted real when ``score >= threshold``.

    Returns
    -------
    matrix : `numpy.ndarray`
        ``(2, 2)`` int64: rows true (real, bogus), columns predicted
        (real, bogus), i.e. ``[[TP, FN], [FP, TN]]``.
    """
    is_real, scores = _check(labels, scores)
    called_real = scores >= threshold
    tp = int(np.sum(is_real & called_real))
    fn = int(np.sum(is_real & ~called_real))
    fp = int(np.sum(~is_real & called_real))
    tn = int(np.sum(~is_real & ~called_real))
    return np.array([[tp, fn], [fp, tn]], dtype=np.int64)


def rates(labels: Any, scores: Any, threshold: float = 0.5) -> dict[str, float]:
    """Rates at one threshold.

    Parameters
    ----------
    labels, scores, threshold
        As in `confusion_matrix`.

    Returns
    -------
    rates : `dict` [`str`, `float`]
        ``tp_rate`` (recall/efficiency on reals, TP/(TP+FN)), ``tn_rate``
        (TN/(TN+FP)), ``fpr`` (FP/(FP+TN), bogus called real), ``fnr``
        (FN/(TP+FN), missed reals), ``precision`` (TP/(TP+FP)) and
        ``accuracy``.  A rate with a zero denominator is NaN.
    """
    (tp, fn), (fp, tn) = confusion_matrix(labels, scores, threshold)
    return {
        "tp_rate": _divide(tp, tp + fn),
        "tn_rate": _divide(tn, tn + fp),
        "fpr": _divide(fp, fp + tn),
        "fnr": _divide(fn, tp + fn),
        "precision": _divide(tp, tp + fp),
        "accuracy": _divide(tp + tn, tp + fn + fp + tn),
    }


def _fnr_threshold(is_real: np.ndarray, scores: np.ndarray, fnr: float) -> float:
    """Largest threshold with FNR <= fnr (NaN without reals)."""
    if not 0.0 <= fnr < 1.0:
        raise ValueError(f"fnr must be in [0, 1), got {fnr}.")
    real_scores = np.sort(scores[is_real])
    if real_scores.size == 0:
        return math.nan
    # Up to `allowed` reals may score below the threshold; the threshold can
    # rise to the score of the next real without losing it.
    allowed = int(math.floor(fnr * real_scores.size * (1 + _RATE_TOLERANCE)))
    return float(real_scores[allowed])


def fpr_at_fnr(labels: Any, scores: Any, fnr: float = 0.01) -> float:
    """Compute the false-positive rate at the operating point that misses at most ``fnr``
    of the reals.

    The threshold is the largest one whose false-negative rate is <= ``fnr``
    (see `choose_threshold` method ``fnr:<x>``), so this is the lowest FPR
    achievable with that completeness.  The field quotes it at 1% and 5%
    FNR (e.g. ZTF braai: 1.7% FPR at 1.7% FNR).

    Parameters
    ----------
    labels, scores : array-like
        As in `roc_curve`.
    fnr : `float`, optional
        The largest fraction of reals missed.

    Returns
    -------
    fpr : `float`
        NaN unless both classes occur.
    """
    is_real, scores = _check(labels, scores)
    if not is_real.any() or is_real.all():
        return math.nan
    threshold = _fnr_threshold(is_real, scores, fnr)
    bogus_scores = scores[~is_real]
    return float(np.mean(bogus_scores >= threshold))


def mdr_at_fpr(labels: Any, scores: Any, fpr: float = 0.01) -> float:
    """Compute the missed-detection rate (FNR) at the operating point that lets at most
    ``fpr`` of the bogus detections through.

    The threshold is the lowest one whose false-positive rate is <= ``fpr``,
    so this is the lowest MDR achievable with that purity (Pan-STARRS1 and
    ATLAS quote it at 1% FPR).

    Parameters
    ----------
    labels, scores : array-like
        As in `roc_curve`.
    fpr : `float`, optional
        The largest fraction of bogus detections let through.

    Returns
    -------
    mdr : `float`
        NaN unless both classes occur.
    """
    is_real, scores = _check(labels, scores)
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}.")
    if not is_real.any() or is_real.all():
        return math.nan
    tps, fps, _ = _cumulative_counts(is_real, scores)
    n_real, n_bogus = tps[-1], fps[-1]
    ok = fps <= fpr * n_bogus * (1 + _RATE_TOLERANCE)
    # fps grows as the threshold falls: the last admissible point has the most reals.
    best_tp = tps[ok][-1] if ok.any() else 0
    return float(1.0 - best_tp / n_real)


def choose_threshold(labels: Any, scores: Any, method: str = "fixed") -> tuple[float, str]:
    """Pick a decision threshold on P(real).

    Parameters
    ----------
    labels, scores : array-like
        Held-out data to tune on (never the test set).
    method : `str`
        One of `THRESHOLD_METHODS`:

        ``fixed`` or ``fixed:<t>``
            0.5 (or ``t``), whatever the data.
        ``max_accuracy``
            The score value that maximises accuracy (the largest such value
            on ties).
        ``youden``
            The score value that maximises TPR - FPR (the largest on ties).
        ``fnr:<x>``
            The largest threshold whose FNR (fraction of reals scored below
            it) is <= ``x``; ``x`` in [0, 1).

    Returns
    -------
    threshold : `float`
        Predict real when ``score >= threshold``.
    description : `str`
        How it was chosen, with the rates reached on the data given.

    Raises
    ------
    ValueError
        For an unknown method, or one that the data cannot support
        (``youden`` without both classes, ``fnr`` without reals,
        ``max_accuracy`` on an empty set).
    """
    is_real, scores = _check(labels, scores)
    method = method.strip()
    name, _, argument = method.partition(":")
    if name == "fixed":
        threshold = float(argument) if argument else 0.5
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"Fixed threshold must be in [0, 1], got {threshold}.")
        return threshold, f"fixed at {threshold:g}"
    if name == "fnr":
        try:
            target = float(argument)
        except ValueError:
            raise ValueError(
                f"Threshold method {method!r}: expected 'fnr:<rate>', e.g. 'fnr:0.01'."
            ) from None
        if not is_real.any():
            raise ValueError(f"Threshold method {method!r} needs real detections to tune on.")
        threshold = _fnr_threshold(is_real, scores, target)
        r = rates(np.where(is_real, 0, 1), scores, threshold)
        return threshold, (
            f"fnr:{target:g}: largest threshold with FNR <= {target:g} on {scores.size} tuning detections "
            f"(FNR {r['fnr']:.4f}, FPR {r['fpr']:.4f})"
        )
    if name in ("max_accuracy", "youden") and not argument:
        if scores.size == 0:
            raise ValueError(f"Threshold method {method!r} needs data to tune on.")
        tps, fps, thresholds = _cumulative_counts(is_real, scores)
        n_real, n_bogus = tps[-1], fps[-1]
        # Candidate 0: nothing called real (threshold just above the top score).
        tps = np.concatenate([[0], tps])
        fps = np.concatenate([[0], fps])
        thresholds = np.concatenate([[np.nextafter(thresholds[0], np.inf)], thresholds])
        if name == "max_accuracy":
            objective = (tps + (n_bogus - fps)) / scores.size
        else:
            if not n_real or not n_bogus:
                raise ValueError("Threshold method 'youden' needs both real and bogus detections.")
            objective = tps / n_real - fps / n_bogus
        best = int(np.argmax(objective))  # first = largest threshold on ties
        threshold = float(thresholds[best])
        r = rates(np.where(is_real, 0, 1), scores, threshold)
        return threshold, (
            f"{name}: maximises {'accuracy' if name == 'max_accuracy' else 'TPR - FPR'} on {scores.size} "
            f"tuning detections (accuracy {r['accuracy']:.4f}, TPR {r['tp_rate']:.4f}, FPR {r['fpr']:.4f})"
        )
    raise ValueError(f"Unknown threshold method {method!r}; known: {sorted(THRESHOLD_METHODS)}.")


def evaluate(labels: Any, scores: Any, threshold: float = 0.5, nan_policy: str = "raise") -> dict[str, Any]:
    """All headline metrics of one model on one labelled set.

    Parameters
    ----------
    labels, scores, threshold
        As in `confusion_matrix`; ``threshold`` is used by the
        threshold-dependent metrics.
    nan_policy : `str`
        ``"raise"``: NaN scores raise `ValueError`; ``"omit"``: they are
        dropped and counted in ``n_nan``.

    Returns
    -------
    metrics : `dict` [`str`, `typing.Any`]
        Plain Python numbers and lists (JSON-ready; undefined values are
        ``nan``): ``accuracy``, ``roc_auc``, ``tp_rate``, ``tn_rate``,
        ``fpr``, ``fnr``, ``precision``, ``confusion_matrix`` (``[[TP, FN],
        [FP, TN]]``), ``fpr_at_fnr_1pct``, ``fpr_at_fnr_5pct``,
        ``mdr_at_fpr_1pct``, ``threshold``, ``n``, ``n_real``, ``n_bogus``,
        ``n_nan``.
    """
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}.")
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_nan = 0
    if nan_policy == "omit" and labels.shape == scores.shape:
        keep = ~np.isnan(scores)
        n_nan = int((~keep).sum())
        labels, scores = labels[keep], scores[keep]
    is_real, scores = _check(labels, scores)
    result: dict[str, Any] = {"threshold": float(threshold)}
    result.update(rates(labels, scores, threshold))
    result.update(
        {
            "roc_auc": roc_auc(labels, scores),
            "confusion_matrix": confusion_matrix(labels, scores, threshold).tolist(),
            "fpr_at_fnr_1pct": fpr_at_fnr(labels, scores, 0.01),
            "fpr_at_fnr_5pct": fpr_at_fnr(labels, scores, 0.05),
            "mdr_at_fpr_1pct": mdr_at_fpr(labels, scores, 0.01),
            "n": int(scores.size),
            "n_real": int(is_real.sum()),
            "n_bogus": int((~is_real).sum()),
            "n_nan": n_nan,
        }
    )
    return result

