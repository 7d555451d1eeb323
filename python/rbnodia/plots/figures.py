"""Figure helpers shared by every plot module: pyplot-free figures (safe in
pipelines and threads) and PNG writing.
"""

from __future__ import annotations

__all__ = ["LABEL_COLORS", "finish_figure", "new_figure", "save_figure"]

import logging
import os
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

LABEL_COLORS = {0: "#2ca02c", 1: "#d62728"}
"""Colour of each true label, green for real (0) and red for bogus (1), in the
score histograms and the per-family figures."""


def new_figure(width: float, height: float) -> Any:
    """Return a `matplotlib.figure.Figure` with an Agg canvas and constrained layout.

    Parameters
    ----------
    width, height : `float`
        Size in inches.

    Returns
    -------
    figure : `matplotlib.figure.Figure`
        A figure not managed by pyplot (safe in worker threads).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike | None, dpi: int = 120) -> Path | None:
    """Write ``fig`` as PNG to ``path`` (creating folders); no-op for `None`.

    Parameters
    ----------
    fig : `matplotlib.figure.Figure`
        The figure.
    path : `str` or `os.PathLike` or `None`
        The PNG file, or `None` to write nothing.
    dpi : `int`, optional
        Resolution.

    Returns
    -------
    path : `pathlib.Path` or `None`
        The file written, or `None`.
    """
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    _LOG.debug("Wrote %s.", path)
    return path


def finish_figure(
    fig: Any, title: str | None, path: str | os.PathLike | None, ax: Any = None, dpi: int = 120, **kwargs: Any
) -> Any:
    """Title ``fig``, write it as PNG to ``path`` if given, and return it.

    Parameters
    ----------
    fig : `matplotlib.figure.Figure`
        The figure.
    title : `str` or `None`
        Title; `None` or empty for none.
    path : `str` or `os.PathLike` or `None`
        The PNG file, or `None` to write nothing.
    ax : `matplotlib.axes.Axes`, optional
        Axes to give the title to; by default the title is the figure's
        (``suptitle``).
    dpi : `int`, optional
        Resolution of the PNG.
    **kwargs
        Passed on to ``set_title`` or ``suptitle`` (e.g. ``fontsize``).

    Returns
    -------
    fig : `matplotlib.figure.Figure`
        ``fig`` itself.
    """
    if title:
        if ax is None:
            fig.suptitle(title, **kwargs)
        else:
            ax.set_title(title, **kwargs)
    save_figure(fig, path, dpi=dpi)
    return fig
