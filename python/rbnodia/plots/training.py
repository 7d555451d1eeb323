"""Training and evaluation figures: learning curves, ROC curves, confusion
matrices and score histograms.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot state,
Agg rendering), so they are safe in pipelines and threads.  Every function
returns the figure and, given ``path``, also writes it as PNG.

Conventions: ``scores`` are P(real); ``labels`` 0 = real, 1 = bogus; the
positive class is real; a detection is called real when
``score >= threshold``.
"""

from __future__ import annotations

__all__ = [
    "CORRECT_COLOR",
    "INCORRECT_COLOR",
    "plot_confusion_matrix",
    "plot_history",
    "plot_roc",
    "plot_score_histograms",
    "save_figure",
]

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.metrics import roc_auc, roc_curve
from .figures import LABEL_COLORS, finish_figure, save_figure
from .figures import new_figure as _figure

CORRECT_COLOR = "#1f77b4"
"""Cells of correct classifications (blue, as in the paper's figures)."""
INCORRECT_COLOR = "#ff7f0e"
"""Cells of incorrect classifications (orange, as in the paper's figures)."""

_CLASS_NAMES = {0: "real", 1: "bogus"}


def plot_history(
    history: Mapping[str, Sequence[float]],
    *,
    best_epoch: int | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Loss and accuracy per epoch, training and validation.

    Parameters
    ----------
    history : `~collections.abc.Mapping`
        Keras-style history with ``loss``/``val_loss`` and
        ``accuracy``/``val_accuracy`` lists (missing keys are skipped).
    best_epoch : `int`, optional
        1-based epoch whose weights were kept; marked with a vertical line.
    title : `str`, optional
        Figure title.
    path : path-like, optional
        Where to write the PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    fig = _figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, style, name in (("", "-", "training"), ("val_", "-", "validation")):
            values = history.get(prefix + key)
            if values is None or len(values) == 0:
                continue
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, style, label=name, marker="." if len(values) < 30 else None)
        if best_epoch:
            ax.axvline(best_epoch, color="0.5", ls=":", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    return finish_figure(fig, title, path)


def plot_roc(
    curves: Mapping[str, tuple[Any, Any]],
    *,
    operating_points: Mapping[str, float] | None = None,
    log_fpr: bool = False,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """ROC curves of several models on one plot, AUC in the legend.

    Parameters
    ----------
    curves : `~collections.abc.Mapping` [`str`, `tuple`]
        Model name -> ``(labels, scores)``.
    operating_points : `~collections.abc.Mapping` [`str`, `float`], optional
        Model name -> threshold, marked on its curve.
    log_fpr : `bool`
        Logarithmic false-positive axis (to read FPR at low FNR).
    title : `str`, optional
        Axes title.
    path : path-like, optional
        Where to write the PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    fig = _figure(5.5, 5)
    ax = fig.subplots()
    for name, (labels, scores) in curves.items():
        labels = np.asarray(labels)
        scores = np.asarray(scores, dtype=np.float64)
        fpr, tpr, _ = roc_curve(labels, scores)
        (line,) = ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(labels, scores):.4f})")
        if operating_points and name in operating_points:
            threshold = operating_points[name]
            called = scores >= threshold
            real = labels == 0
            x = called[~real].mean() if (~real).any() else np.nan
            y = called[real].mean() if real.any() else np.nan
            ax.plot([x], [y], "o", color=line.get_color(), ms=6, label=f"{name} threshold {threshold:.3g}")
    if log_fpr:
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
    else:
        ax.plot([0, 1], [0, 1], color="0.7", ls="--", lw=1)
        ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (bogus called real)")
    ax.set_ylabel("true-positive rate (reals recovered)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return finish_figure(fig, title, path, ax=ax)


def plot_confusion_matrix(
    matrix: Any, *, title: str | None = None, path: str | os.PathLike | None = None
) -> Any:
    """Confusion matrix with counts and fractions of each true class.

    Parameters
    ----------
    matrix : array-like
        ``(2, 2)`` counts, rows true (real, bogus), columns predicted
        (real, bogus), as from `rbnodia.core.metrics.confusion_matrix`.
    title : `str`, optional
        Axes title.
    path : path-like, optional
        Where to write the PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
        Correct cells blue, incorrect orange, shaded by the row fraction.
    """
    from matplotlib.colors import to_rgba

    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.shape != (2, 2):
        raise ValueError(f"Expected a 2x2 confusion matrix, got shape {matrix.shape}.")
    totals = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(matrix, totals, out=np.full(matrix.shape, np.nan), where=totals > 0)
    fig = _figure(4.6, 4)
    ax = fig.subplots()
    image = np.zeros((2, 2, 4))
    for i in range(2):
        for j in range(2):
            color = CORRECT_COLOR if i == j else INCORRECT_COLOR
            strength = 0.0 if np.isnan(fractions[i, j]) else fractions[i, j]
            image[i, j] = to_rgba(color, alpha=0.15 + 0.85 * strength)
            text = f"{matrix[i, j]:d}\n" + ("n/a" if np.isnan(fractions[i, j]) else f"{fractions[i, j]:.1%}")
            ax.text(j, i, text, ha="center", va="center", fontsize=12, color="black")
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([0, 1], ["real", "bogus"])
    ax.set_yticks([0, 1], ["real", "bogus"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return finish_figure(fig, title, path, ax=ax)


def plot_score_histograms(
    labels: Any,
    scores: Any,
    *,
    threshold: float | None = 0.5,
    bins: int = 50,
    log: bool = True,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Histograms of P(real) for true reals and true bogus detections.

    Parameters
    ----------
    labels, scores : array-like
        0 real / 1 bogus; P(real).
    threshold : `float`, optional
        Marked with a vertical line.
    bins : `int`
        Number of bins on [0, 1].
    log : `bool`
        Logarithmic counts axis.
    title : `str`, optional
        Axes title.
    path : path-like, optional
        Where to write the PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    fig = _figure(6, 4)
    ax = fig.subplots()
    edges = np.linspace(0, 1, bins + 1)
    for value in (0, 1):
        chosen = scores[(labels == value) & np.isfinite(scores)]
        ax.hist(
            chosen,
            bins=edges,
            histtype="step",
            lw=1.5,
            color=LABEL_COLORS[value],
            label=f"true {_CLASS_NAMES[value]} ({chosen.size})",
        )
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    if log:
        ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("score = P(real)")
    ax.set_ylabel("detections")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return finish_figure(fig, title, path, ax=ax)
