"""Figures of the stress-test report: ROC curves, the fraction of each
family called real, AUC against detection significance, and example
stamps per family.
"""

from __future__ import annotations

__all__ = ["plot_examples", "plot_family_bars", "plot_roc", "plot_snr_auc"]

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.metrics import roc_curve
from ..core.stampset import REAL, LabelledStamps
from ..plots.figures import new_figure, save_figure


def plot_roc(curves: dict[str, dict[str, Any]], path: str | os.PathLike) -> Path:
    """Plot ROC curves: per model, the stress set (solid) and the own test split
    (dashed) when given.

    Parameters
    ----------
    curves : `dict`
        Per model name: ``stress`` and optionally ``own`` as ``(labels,
        scores, auc)`` tuples.
    path : path-like
        PNG to write.

    Returns
    -------
    path : `pathlib.Path`
        The file written.
    """
    fig = new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    for i, (name, sets) in enumerate(curves.items()):
        colour = f"C{i}"
        for key, style in (("stress", "-"), ("own", "--")):
            if key not in sets:
                continue
            labels, scores, auc = sets[key]
            fpr, tpr, _ = roc_curve(labels, scores)
            ax.plot(fpr, tpr, style, color=colour, label=f"{name} {key} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    ax.set_xlabel("false-positive rate (bogus called real)")
    ax.set_ylabel("true-positive rate (reals called real)")
    ax.set_title("Stress test (solid) vs own test split (dashed)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    return save_figure(fig, path)


def plot_family_bars(
    per_model: dict[str, dict[str, dict[str, Any]]], labels: dict[str, int], path: str | os.PathLike
) -> Path:
    """Plot the fraction of each family called real, one bar per model.

    Parameters
    ----------
    per_model : `dict`
        Per model name, per family: a dict with ``fraction_called_real``.
    labels : `dict` [`str`, `int`]
        True label of each family (reals are drawn hatched, and should be
        near 1; bogus families near 0).
    path : path-like
        PNG to write.

    Returns
    -------
    path : `pathlib.Path`
        The file written.
    """
    from matplotlib.patches import Patch

    families = list(labels)
    fig = new_figure(max(7.0, 0.75 * len(families) + 2), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / max(len(per_model), 1)
    x = np.arange(len(families))
    for i, (name, rows) in enumerate(per_model.items()):
        values = [rows.get(f, {}).get("fraction_called_real", math.nan) for f in families]
        bars = ax.bar(x + (i - (len(per_model) - 1) / 2) * width, values, width, color=f"C{i}", label=name)
        for bar, family in zip(bars, families):
            if labels[family] == REAL:
                bar.set_hatch("//")
    ax.set_xticks(
        x,
        [f"{f}\n({'real' if labels[f] == REAL else 'bogus'})" for f in families],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("fraction called real")
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.set_title("Fraction called real per family (real families hatched: higher is better)")
    ax.legend(handles=[Patch(facecolor=f"C{i}", label=name) for i, name in enumerate(per_model)], fontsize=8)
    return save_figure(fig, path)


def plot_snr_auc(per_model: dict[str, list[dict[str, Any]]], path: str | os.PathLike) -> Path:
    """Plot ROC AUC in bins of detection significance, one line per model.

    Parameters
    ----------
    per_model : `dict` [`str`, `list` [`dict`]]
        Per model name, the bins of `rbnodia.core.group_metrics.auc_by_bin`.
    path : `str` or `os.PathLike`
        PNG to write.

    Returns
    -------
    path : `pathlib.Path`
        The file written.
    """
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for i, (name, bins) in enumerate(per_model.items()):
        ticks = [b["bin"] for b in bins]
        ax.plot(range(len(bins)), [b["roc_auc"] for b in bins], "o-", color=f"C{i}", label=name)
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_xlabel("detection significance (S/N) bin")
    ax.set_ylabel("ROC AUC")
    ax.set_title("Stress-test AUC against S/N")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_examples(
    stamps: LabelledStamps,
    path: str | os.PathLike,
    per_family: int = 3,
    seed: int = 0,
    order: Sequence[str] = (),
) -> Path:
    """Plot example ``diff | srch | tmpl`` triplets of each family (rows), each
    stamp shown with its own 1-99 percentile stretch; families in ``order``
    come first, in that order, then any others.

    Parameters
    ----------
    stamps : `rbnodia.core.LabelledStamps`
        The stress set.
    path : `str` or `os.PathLike`
        PNG to write.
    per_family : `int`, optional
        Examples per family.
    seed : `int`, optional
        Seed of the choice.
    order : `~collections.abc.Sequence` [`str`], optional
        Families shown first.

    Returns
    -------
    path : `pathlib.Path`
        The file written.
    """
    rng = np.random.default_rng(seed)
    present = set(stamps.family.tolist())
    families = [f for f in order if f in present] + sorted(present.difference(order))
    fig = new_figure(1.2 * 3 * per_family, 1.25 * len(families))
    grid = fig.add_gridspec(len(families), 3 * per_family, wspace=0.02, hspace=0.05)
    for row, family in enumerate(families):
        members = np.flatnonzero(stamps.family == family)
        picks = rng.choice(members, size=min(per_family, len(members)), replace=False)
        for k, index in enumerate(picks):
            for j, name in enumerate(("diff", "srch", "tmpl")):
                ax = fig.add_subplot(grid[row, 3 * k + j])
                image = getattr(stamps, name)[index]
                lo, hi = np.nanpercentile(image, [1, 99])
                ax.imshow(image, origin="lower", cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(name, fontsize=7)
                if k == 0 and j == 0:
                    ax.set_ylabel(f"{family}\n(label {int(stamps.label[index])})", fontsize=6)
    return save_figure(fig, path, dpi=90)
