"""Saliency-map figures after Acero-Cuellar et al. (Figures 8-11, Appendix C).

- `plot_stamps_with_saliency`: raw stamps in their natural flux scale beside
  the saliency map of the whole input (Figures 8 and 9);
- `plot_dominant_breakdown`: per confusion-matrix quadrant, the share of
  objects whose dominant segment is ``diff``, ``srch`` or ``tmpl``
  (Figure 10);
- `plot_importance_distributions`: histograms of each segment importance
  ``I_seg`` per quadrant (Figure 11);
- `plot_examples_per_quadrant`: a few example stamps and maps per quadrant
  (Appendix C).

Groups are the quadrants ``TP``, ``FN``, ``FP``, ``TN`` of
`rbnodia.core.saliency.confusion_quadrant` (real is positive) or, for
unlabelled objects, ``predicted real`` / ``predicted bogus``
(`rbnodia.core.saliency.prediction_class`); every function accepts either
and draws empty groups as empty panels.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas (no
pyplot state), so they are safe in pipelines; every function returns its
figure(s) and, given a path, writes PNG.
"""

from __future__ import annotations

__all__ = [
    "GROUP_COLORS",
    "SALIENCY_CMAP",
    "plot_dominant_breakdown",
    "plot_examples_per_quadrant",
    "plot_importance_distributions",
    "plot_stamps_with_saliency",
]

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.layouts import SEGMENT_NAMES, Layout, Stacking, split_segments
from ..core.saliency import (
    DOMINANT_CUT,
    NO_DOMINANT,
    PREDICTION_CLASSES,
    QUADRANTS,
    group_names,
    is_prediction_only,
    segment_importances,
)
from .figures import finish_figure
from .figures import new_figure as _figure

_LOG = logging.getLogger(__name__)

SALIENCY_CMAP = "Greens"
"""White-to-green colour map of the saliency panels, as in the paper."""

GROUP_COLORS = {
    "TP": "#1f4e9c",
    "TN": "#6fa8dc",
    "FP": "#e06c00",
    "FN": "#f6b26b",
    PREDICTION_CLASSES[0]: "#1f4e9c",
    PREDICTION_CLASSES[1]: "#e06c00",
}
"""Group colours: blue shades for correct predictions (TP, TN), orange
shades for errors (FP, FN), as in the paper's Figures 10 and 11."""

_CORRECT = {"TP", "TN"}
_GROUP_TITLES = {
    "TP": "TP: real, predicted real",
    "FN": "FN: real, predicted bogus",
    "FP": "FP: bogus, predicted real",
    "TN": "TN: bogus, predicted bogus",
    PREDICTION_CLASSES[0]: "predicted real",
    PREDICTION_CLASSES[1]: "predicted bogus",
}


def _slug(group: str) -> str:
    return group.replace(" ", "_")


def _display_range(*stamps: np.ndarray, symmetric: bool = False) -> tuple[float, float]:
    """Robust grey range (0.5-99.5 percentiles of the finite pixels)."""
    values = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in stamps])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [0.5, 99.5])
    if symmetric:
        high = max(abs(low), abs(high))
        low = -high
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return float(low), float(high)


def _combined_map(maps: np.ndarray, layout: Layout, stacking: Stacking) -> np.ndarray:
    """``(n, H, k*W)`` maps with the segments side by side, whatever the stacking."""
    segments = split_segments(maps, layout, stacking)
    return np.concatenate([segments[name] for name in layout.segments], axis=2)


def _finish(fig: Any, title: str | None, path: str | os.PathLike | None) -> Any:
    """Give ``fig`` its title (if any), write it to ``path`` (if given) at
    this module's resolution, and return it.
    """
    return finish_figure(fig, title, path, dpi=110, fontsize=10)


def plot_stamps_with_saliency(
    raw_stamps: Mapping[str, np.ndarray],
    maps: np.ndarray,
    layout: Layout | str,
    stacking: Stacking | str = Stacking.HORIZONTAL,
    titles: Sequence[str] | None = None,
    *,
    importances: Mapping[str, np.ndarray] | None = None,
    show: Sequence[str] | None = None,
    max_rows: int = 24,
    suptitle: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Raw stamps and their saliency map, one object per row (Figures 8-9).

    Each row shows the raw segments in grey in their natural flux scale
    (``srch`` and ``tmpl`` share one colour range, as in the paper's
    Figure 1; ``diff`` has its own, symmetric about 0), then the saliency
    map of the whole input, segments side by side, in white-to-green,
    normalised to 1 at the row's most important pixel.  The map's title
    gives each ``I_seg``.

    Parameters
    ----------
    raw_stamps : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        ``(n, s, s)`` unscaled stamps per segment name (NaN allowed).
    maps : `numpy.ndarray`
        ``(n, H, W, C)`` saliency maps laid out like the network inputs.
    layout : `~rbnodia.core.Layout` or `str`
        Layout of the maps.
    stacking : `~rbnodia.core.Stacking` or `str`
        Stacking of the maps (channel maps are drawn side by side).
    titles : `~collections.abc.Sequence` [`str`], optional
        One label per row (e.g. id, label, score).
    importances : `~collections.abc.Mapping`, optional
        ``I_seg`` per segment; computed from ``maps`` if not given.
    show : `~collections.abc.Sequence` [`str`], optional
        Raw segments to draw, in order; defaults to the layout's segments.
        ``diff`` may be shown for a noDIA model (it is marked as not an
        input).  Segments missing from ``raw_stamps`` are skipped.
    max_rows : `int`
        At most this many rows are drawn (the first ones).
    suptitle : `str`, optional
        Figure title.
    path : path-like, optional
        Write the figure there as PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    layout = Layout(layout)
    stacking = Stacking(stacking)
    maps = np.asarray(maps)
    n = len(maps)
    if importances is None:
        if n:
            importances = segment_importances(maps, layout, stacking)
        else:
            importances = {name: np.zeros(0) for name in layout.segments}
    if n > max_rows:
        _LOG.warning("Drawing the first %d of %d objects.", max_rows, n)
        n = max_rows
    show = [s for s in (show or layout.segments) if s in raw_stamps]
    combined = _combined_map(maps[:n], layout, stacking) if n else np.zeros((0, 1, 1))
    ncols = len(show) + 1
    width_ratios = [1.0] * len(show) + [float(len(layout.segments))]
    fig = _figure(1.6 * sum(width_ratios) + 1.2, 1.7 * max(n, 1) + 0.4)
    if n == 0:
        fig.text(0.5, 0.5, "no objects", ha="center", va="center")
        return _finish(fig, None, path)
    axes = fig.subplots(n, ncols, squeeze=False, gridspec_kw={"width_ratios": width_ratios})
    for row in range(n):
        pair = [np.asarray(raw_stamps[s][row]) for s in show if s in ("srch", "tmpl")]
        pair_range = _display_range(*pair) if pair else (0.0, 1.0)
        for col, name in enumerate(show):
            ax = axes[row, col]
            stamp = np.asarray(raw_stamps[name][row], dtype=np.float64)
            low, high = _display_range(stamp, symmetric=True) if name == "diff" else pair_range
            ax.imshow(np.ma.masked_invalid(stamp), cmap="gray", vmin=low, vmax=high, origin="lower")
            if row == 0:
                note = "" if name in layout.segments else " (not an input)"
                ax.set_title(f"{name}{note}", fontsize=9)
        ax = axes[row, -1]
        image = combined[row].astype(np.float64)
        peak = image.max() if np.isfinite(image).all() else np.nan
        scaled = image / peak if peak > 0 else np.zeros_like(image)
        ax.imshow(scaled, cmap=SALIENCY_CMAP, vmin=0, vmax=1, origin="lower")
        seg_width = image.shape[1] // len(layout.segments)
        for i in range(1, len(layout.segments)):
            ax.axvline(i * seg_width - 0.5, color="0.6", lw=0.8)
        values = {name: float(importances[name][row]) for name in layout.segments}
        parts = [f"I_{k}={v:.2f}" if np.isfinite(v) else f"I_{k}=n/a" for k, v in values.items()]
        ax.set_title("saliency  " + "  ".join(parts), fontsize=8)
        if titles is not None and row < len(titles):
            axes[row, 0].set_ylabel(str(titles[row]), fontsize=8, rotation=0, ha="right", va="center")
        for a in axes[row]:
            a.set_xticks([])
            a.set_yticks([])
    return _finish(fig, suptitle, path)


def _panel_grid(groups: Sequence[str]) -> list[list[str]]:
    if tuple(groups) == QUADRANTS:
        return [["TP", "FN"], ["FP", "TN"]]
    return [list(groups)]


def plot_dominant_breakdown(
    quadrants: np.ndarray,
    dominant: np.ndarray,
    layout: Layout | str,
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Share of objects per dominant segment, per quadrant (Figure 10).

    Panels are arranged like a confusion matrix (rows: label real, bogus;
    columns: predicted real, bogus); without labels, one panel per predicted
    class.  Each panel shows, for every segment, the fraction of the group's
    objects whose largest ``I_seg`` is on that segment, annotated with the
    count.  Objects with undefined importances (all-zero maps) are left out
    of the fractions and reported in the panel title.

    Parameters
    ----------
    quadrants : `numpy.ndarray`
        ``(n,)`` str, from `~rbnodia.core.saliency.confusion_quadrant` or
        `~rbnodia.core.saliency.prediction_class`.
    dominant : `numpy.ndarray`
        ``(n,)`` str, from `~rbnodia.core.saliency.dominant_segment`.
    layout : `~rbnodia.core.Layout` or `str`
        Which segments to show.
    title : `str`, optional
        Figure title.
    path : path-like, optional
        Write the figure there as PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    layout = Layout(layout)
    quadrants = np.asarray(quadrants, dtype=str)
    dominant = np.asarray(dominant, dtype=str)
    if quadrants.shape != dominant.shape:
        raise ValueError(f"{quadrants.size} quadrants for {dominant.size} dominant segments.")
    grid = _panel_grid(group_names(quadrants))
    nrows, ncols = len(grid), len(grid[0])
    fig = _figure(3.3 * ncols + 0.6, 2.7 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    segments = list(layout.segments)
    x = np.arange(len(segments))
    for r, row in enumerate(grid):
        for c, group in enumerate(row):
            ax = axes[r, c]
            members = dominant[quadrants == group]
            undefined = int((members == NO_DOMINANT).sum())
            defined = members[members != NO_DOMINANT]
            counts = np.array([(defined == s).sum() for s in segments])
            total = int(counts.sum())
            color = GROUP_COLORS.get(group, "0.5")
            head = f"{_GROUP_TITLES.get(group, group)}\nn={len(members)}"
            if undefined:
                head += f" ({undefined} all-zero maps)"
            ax.set_title(head, fontsize=9)
            ax.set_xticks(x, segments)
            ax.set_xlim(-0.5, len(segments) - 0.5)
            ax.set_ylim(0, 1.25)
            if total == 0:
                ax.text(0.5, 0.5, "no objects", transform=ax.transAxes, ha="center", va="center", color="0.4")
                continue
            fractions = counts / total
            ax.bar(x, fractions, color=color, alpha=0.85, width=0.6)
            for xi, (f, k) in enumerate(zip(fractions, counts)):
                ax.text(xi, f + 0.02, f"{100 * f:.0f}%\n({k})", ha="center", va="bottom", fontsize=8)
        axes[r, 0].set_ylabel("fraction with largest I_seg")
    return _finish(fig, title, path)


def plot_importance_distributions(
    importances: Mapping[str, np.ndarray],
    quadrants: np.ndarray,
    layout: Layout | str,
    *,
    bins: int = 25,
    cut: float | None = DOMINANT_CUT,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Histograms of each ``I_seg`` per quadrant (Figure 11).

    One row per segment.  With labels there are two columns, correct
    predictions (TP, TN; blue shades) and errors (FP, FN; orange shades),
    since the error groups are much smaller; without labels one column with
    both predicted classes.  NaN importances (all-zero maps) are left out.

    Parameters
    ----------
    importances : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        ``(n,)`` ``I_seg`` per segment.
    quadrants : `numpy.ndarray`
        ``(n,)`` str group per object.
    layout : `~rbnodia.core.Layout` or `str`
        Which segments to show.
    bins : `int`
        Histogram bins over [0, 1].
    cut : `float` or `None`
        Draw the paper's cut there (dashed); `None` for no line.
    title : `str`, optional
        Figure title.
    path : path-like, optional
        Write the figure there as PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    layout = Layout(layout)
    quadrants = np.asarray(quadrants, dtype=str)
    if is_prediction_only(quadrants):
        columns = [list(PREDICTION_CLASSES)]
        column_titles = ["by prediction"]
    else:
        columns = [["TP", "TN"], ["FP", "FN"]]
        column_titles = ["correct (TP, TN)", "incorrect (FP, FN)"]
    segments = list(layout.segments)
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = _figure(3.6 * len(columns) + 0.6, 2.1 * len(segments) + 0.5)
    axes = fig.subplots(len(segments), len(columns), squeeze=False)
    for r, name in enumerate(segments):
        values = np.asarray(importances[name], dtype=np.float64)
        if values.shape != quadrants.shape:
            raise ValueError(f"{values.size} I_{name} values for {quadrants.size} objects.")
        for c, groups in enumerate(columns):
            ax = axes[r, c]
            for group in groups:
                member = values[(quadrants == group) & np.isfinite(values)]
                color = GROUP_COLORS[group]
                label = f"{group} (n={member.size})"
                if member.size:
                    ax.hist(member, bins=edges, histtype="stepfilled", alpha=0.35, color=color)
                    ax.hist(member, bins=edges, histtype="step", color=color, label=label)
                else:
                    ax.plot([], [], color=color, label=label)
            if cut is not None:
                ax.axvline(cut, color="k", ls="--", lw=0.8)
            ax.set_xlim(0, 1)
            ax.set_xlabel(f"I_{name}", fontsize=9)
            ax.legend(fontsize=7, loc="upper right")
            if r == 0:
                ax.set_title(column_titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel("objects")
    return _finish(fig, title, path)


def plot_examples_per_quadrant(
    raw_stamps: Mapping[str, np.ndarray],
    maps: np.ndarray,
    quadrants: np.ndarray,
    layout: Layout | str,
    stacking: Stacking | str = Stacking.HORIZONTAL,
    *,
    importances: Mapping[str, np.ndarray] | None = None,
    scores: np.ndarray | None = None,
    ids: np.ndarray | None = None,
    max_per_quadrant: int = 6,
    seed: int | None = 0,
    show: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    prefix: str = "saliency_examples",
) -> dict[str, Any]:
    """Plot example stamps and saliency maps for every quadrant (Appendix C).

    Parameters
    ----------
    raw_stamps : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        ``(n, s, s)`` unscaled stamps per segment.
    maps : `numpy.ndarray`
        ``(n, H, W, C)`` saliency maps.
    quadrants : `numpy.ndarray`
        ``(n,)`` str group per object.
    layout, stacking
        Layout and stacking of the maps.
    importances : `~collections.abc.Mapping`, optional
        ``I_seg`` per segment; computed from ``maps`` if not given.
    scores : `numpy.ndarray`, optional
        ``(n,)`` P(real), shown in the row labels.
    ids : `numpy.ndarray`, optional
        ``(n,)`` object ids, shown in the row labels.
    max_per_quadrant : `int`
        Examples per group (the paper shows 6).
    seed : `int` or `None`
        Random choice of the examples (`None`: the first ones).
    show : `~collections.abc.Sequence` [`str`], optional
        Raw segments to draw (see `plot_stamps_with_saliency`).
    out_dir : path-like, optional
        Write each figure there as ``{prefix}_{group}.png``.
    prefix : `str`
        File name prefix.

    Returns
    -------
    figures : `dict` [`str`, `matplotlib.figure.Figure`]
        One figure per non-empty group; empty groups are skipped.
    """
    layout = Layout(layout)
    stacking = Stacking(stacking)
    maps = np.asarray(maps)
    quadrants = np.asarray(quadrants, dtype=str)
    if importances is None:
        importances = segment_importances(maps, layout, stacking) if len(maps) else None
    rng = np.random.default_rng(seed) if seed is not None else None
    figures = {}
    for group in group_names(quadrants):
        index = np.flatnonzero(quadrants == group)
        if index.size == 0:
            _LOG.info("No %s objects: no example figure.", group)
            continue
        if index.size > max_per_quadrant:
            if rng is None:
                index = index[:max_per_quadrant]
            else:
                index = np.sort(rng.choice(index, max_per_quadrant, replace=False))
        titles = []
        for i in index:
            parts = [f"id {ids[i]}" if ids is not None else f"#{i}"]
            if scores is not None:
                parts.append(f"P(real)={scores[i]:.2f}")
            titles.append("\n".join(parts))
        path = None if out_dir is None else Path(out_dir) / f"{prefix}_{_slug(group)}.png"
        figures[group] = plot_stamps_with_saliency(
            {name: np.asarray(value)[index] for name, value in raw_stamps.items() if name in SEGMENT_NAMES},
            maps[index],
            layout,
            stacking,
            titles,
            importances={name: np.asarray(v)[index] for name, v in importances.items()},
            show=show,
            suptitle=_GROUP_TITLES.get(group, group),
            path=path,
        )
    return figures
