"""Figure helpers shared by every plot module: pyplot-free figures (safe in
pipelines and threads) and PNG writing.
"""

from __future__ import annotations

__all__ = ["new_figure", "save_figure"]

import logging
import os
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)


def new_figure(width: float, height: float) -> Any:
    """Return a `matplotlib.figure.Figure` with an Agg canvas and constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike | None, dpi: int = 120) -> Path | None:
    """Write ``fig`` as PNG to ``path`` (creating folders); no-op for `None`."""
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    _LOG.debug("Wrote %s.", path)
    return path
