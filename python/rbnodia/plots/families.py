"""Figures of metrics within subgroups: the fraction of each family called
real, and ROC AUC per S/N bin, for one model or several side by side.

Inputs are the dictionaries of `rbnodia.core.group_metrics`, so family names
and bins come from the data.  Figures are pyplot-free (`new_figure`), and
each function can write its PNG.
"""

from __future__ import annotations

__all__ = ["plot_auc_vs_snr", "plot_family_fractions"]

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .figures import LABEL_COLORS, finish_figure, new_figure


def _family_order(by_model: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[tuple[str, int, int]]:
    """(family, label, n) sorted reals first, then by name."""
    seen: dict[str, tuple[int, int]] = {}
    for groups in by_model.values():
        for name, row in groups.items():
            seen.setdefault(name, (int(row["label"]), int(row["n"])))
    return sorted(((name, label, n) for name, (label, n) in seen.items()), key=lambda t: (t[1], t[0]))


def plot_family_fractions(
    by_model: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Horizontal bars: the fraction of each family called real, per model.

    Parameters
    ----------
    by_model : `~collections.abc.Mapping`
        Model name -> `rbnodia.core.group_metrics.metrics_by_group` result.
    title : `str`, optional
        Figure title.
    path : path-like, optional
        Where to write the PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
        Family names are coloured by their (majority) true label, green for
        real and red for bogus, with their counts; a perfect model reaches 1
        on the real families and 0 on the bogus ones.
    """
    families = _family_order(by_model)
    models = list(by_model)
    fig = new_figure(7, 1.2 + 0.32 * max(1, len(families)) * max(1, len(models)) ** 0.5)
    ax = fig.subplots()
    height = 0.8 / max(1, len(models))
    y = np.arange(len(families))
    for k, model in enumerate(models):
        values = [
            by_model[model].get(name, {}).get("fraction_called_real", np.nan) for name, _, _ in families
        ]
        ax.barh(y - 0.4 + height * (k + 0.5), values, height=height, label=model)
    ax.set_yticks(y, [f"{name} (n={n})" for name, _, n in families])
    for tick, (_, label, _) in zip(ax.get_yticklabels(), families):
        tick.set_color(LABEL_COLORS.get(label, "black"))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction called real")
    ax.grid(axis="x", alpha=0.3)
    if len(models) > 1:
        ax.legend(loc="lower right", fontsize="small")
    return finish_figure(
        fig, title or "fraction called real per family (green: real, red: bogus)", path, ax=ax
    )


def plot_auc_vs_snr(
    by_model: Mapping[str, Mapping[str, Any]],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """ROC AUC per S/N bin, one line per model.

    Parameters
    ----------
    by_model : `~collections.abc.Mapping`
        Model name -> `rbnodia.core.group_metrics.auc_by_bin` result (same
        edges for every model).
    title : `str`, optional
        Axes title.
    path : path-like, optional
        Where to write the PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
        Bins without both classes have no point and say ``one class``; each
        bin's label gives its real/bogus counts.
    """
    fig = new_figure(7, 4)
    ax = fig.subplots()
    models = list(by_model)
    bins = by_model[models[0]].get("bins", []) if models else []
    x = np.arange(len(bins))
    for model in models:
        auc = np.array(
            [
                b["roc_auc"] if b["both_classes"] and b["roc_auc"] is not None else np.nan
                for b in by_model[model].get("bins", [])
            ],
            dtype=float,
        )
        ax.plot(x, auc, "o-", label=model)
    for i, b in enumerate(bins):
        if not b["both_classes"]:
            ax.text(
                i,
                0.5,
                "one class" if b["n"] else "empty",
                ha="center",
                va="center",
                fontsize="small",
                rotation=90,
                color="0.4",
                transform=ax.get_xaxis_transform(),
            )
    ax.set_xticks(x, [f"{b['label']}\n{b['n_real']}r/{b['n_bogus']}b" for b in bins], fontsize="small")
    ax.set_xlim(-0.5, max(len(bins), 1) - 0.5)
    ax.set_xlabel("detection S/N (counts: real/bogus)")
    ax.set_ylabel("ROC AUC")
    ax.grid(alpha=0.3)
    if models:
        ax.legend(loc="lower right", fontsize="small")
    return finish_figure(fig, title or "ROC AUC per S/N bin", path, ax=ax)
