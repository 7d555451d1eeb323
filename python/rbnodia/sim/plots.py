"""Example grids of labelled stamps, like Figure 1 of Acero-Cuellar et al.

Each example is shown as ``diff | srch | tmpl``; ``srch`` and ``tmpl`` share
one colour range (as in the paper's figure), ``diff`` is shown on a
symmetric range around zero.  Rows are families.
"""

from __future__ import annotations

__all__ = ["plot_examples"]

from pathlib import Path

import numpy as np

from ..core.stampset import LabelledStamps


def _limits(*stamps: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([s[np.isfinite(s)].ravel() for s in stamps]) if stamps else np.zeros(1)
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(values, [1.0, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def plot_examples(
    stamps: LabelledStamps,
    out: str | Path,
    *,
    per_family: int = 4,
    families: list[str] | None = None,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """Write a PNG grid of examples per family.

    Parameters
    ----------
    stamps : `~rbnodia.core.LabelledStamps`
        Raw stamps.
    out : `str` or `pathlib.Path`
        PNG path.
    per_family : `int`
        Examples per row.
    families : `list` [`str`], optional
        Rows to show (default: every family present, real ones first).
    seed : `int`
        Which examples are picked.
    title : `str`, optional
        Figure title (default: what the panels show and the label
        convention).

    Returns
    -------
    path : `pathlib.Path`
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    present = list(dict.fromkeys(np.asarray(stamps.family).tolist()))
    if families is None:
        real = sorted({f for f, lab in zip(stamps.family, stamps.label) if lab == 0})
        families = real + sorted(set(present) - set(real))
    families = [f for f in families if f in present]
    if not families:
        raise ValueError("No stamps to plot.")
    n_rows, n_cols = len(families), per_family * 3
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.25 * n_cols, 1.45 * n_rows + 0.4), squeeze=False, constrained_layout=True
    )
    for r, fam in enumerate(families):
        idx = np.flatnonzero(stamps.family == fam)
        pick = rng.choice(idx, size=min(per_family, len(idx)), replace=False)
        for c in range(per_family):
            for k in range(3):
                ax = axes[r, 3 * c + k]
                ax.set_xticks([])
                ax.set_yticks([])
            if c >= len(pick):
                for k in range(3):
                    axes[r, 3 * c + k].axis("off")
                continue
            i = pick[c]
            diff, srch, tmpl = stamps.diff[i], stamps.srch[i], stamps.tmpl[i]
            finite = diff[np.isfinite(diff)]
            scale = (
                5.0 * (1.4826 * np.median(np.abs(finite - np.median(finite))) if finite.size else 1.0) or 1.0
            )
            dmax = max(scale, float(np.nanmax(np.abs(diff))) if finite.size else 1.0)
            lo, hi = _limits(srch, tmpl)
            axes[r, 3 * c].imshow(diff, origin="lower", cmap="RdBu_r", vmin=-dmax, vmax=dmax)
            axes[r, 3 * c + 1].imshow(srch, origin="lower", cmap="gray", vmin=lo, vmax=hi)
            axes[r, 3 * c + 2].imshow(tmpl, origin="lower", cmap="gray", vmin=lo, vmax=hi)
            mag = stamps.mag[i]
            info = f"{fam} L={int(stamps.label[i])}"
            info += f"\nS/N {stamps.snr[i]:.0f}" + (f" m={mag:.1f}" if np.isfinite(mag) else "")
            axes[r, 3 * c].set_title(info, fontsize=6, loc="left")
        axes[r, 0].set_ylabel(fam, fontsize=8)
    for k, name in enumerate(("diff", "srch", "tmpl")):
        axes[0, k].set_xlabel(name, fontsize=7)
        axes[0, k].xaxis.set_label_position("top")
    fig.suptitle(
        title or "Simulated stamps per family (diff | srch | tmpl); label 0 = real, 1 = bogus", fontsize=9
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
