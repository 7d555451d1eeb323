"""``rbnodia saliency``: saliency-map diagnostics of a model on labelled stamps.

Computes vanilla gradient saliency maps (Acero-Cuellar et al., Section 4.3)
for the stamps, the share of saliency on each input segment (their Eq. 4),
and writes into ``--out``:

``saliency_summary.json``
    Per confusion-matrix quadrant (or per predicted class with
    ``--ignore-labels``): counts, dominant-segment fractions (largest
    ``I_seg``), fractions above the paper's cut, mean ``I_seg``.
``saliency_importances.npz``
    Per object: ``id``, ``label``, ``score`` (P(real)), ``group``,
    ``dominant`` and ``I_<segment>``.
``saliency_breakdown.png``, ``saliency_distributions.png``
    The paper's Figures 10 and 11.
``saliency_stamps.png``
    Figures 8-9: one example per group, raw stamps beside their map.
``saliency_examples_<group>.png``
    Appendix C: up to 6 examples per non-empty group.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

import argparse
import logging
from pathlib import Path

import numpy as np

from .arguments import Command
from .reports import write_json

_LOG = logging.getLogger(__name__)


def _saliency(args: argparse.Namespace) -> int:
    from ..core.saliency import (
        confusion_quadrant,
        dominant_segment,
        group_names,
        segment_importances,
        summarize_importances,
    )
    from ..core.stampset import LabelledStamps
    from ..nn.model import load_model
    from ..nn.saliency import saliency_maps
    from ..plots.saliency import (
        plot_dominant_breakdown,
        plot_examples_per_quadrant,
        plot_importance_distributions,
        plot_stamps_with_saliency,
    )

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}.")
    if args.max is not None and args.max < 1:
        raise ValueError(f"--max must be positive, got {args.max}.")
    stamps = LabelledStamps.load(args.stamps)
    if args.max is not None and len(stamps) > args.max:
        rng = np.random.default_rng(args.seed)
        stamps = stamps.subset(np.sort(rng.choice(len(stamps), args.max, replace=False)))
        _LOG.info("Using a random subset of %d stamps (seed %d).", args.max, args.seed)
    if len(stamps) == 0:
        raise ValueError(f"No stamps in {args.stamps}.")
    model = load_model(args.model)
    model.check_compatible(model.layout, stamps.stamp_size)
    threshold = model.threshold if args.threshold is None else float(args.threshold)
    layout, stacking = model.layout, model.stacking
    _LOG.info(
        "Saliency of %s (%s, %s) on %d stamps; called real when P(real) >= %.3g.",
        model.version, layout.value, stacking.value, len(stamps), threshold,
    )

    inputs, flags = stamps.model_inputs(layout, stacking, model.scaling)
    result = saliency_maps(model, inputs, args.batch_size, progress=True)
    scores = result.score
    labels = None if args.ignore_labels else stamps.label
    groups = confusion_quadrant(labels, scores >= threshold)
    importances = segment_importances(result.maps, layout, stacking)
    dominant = dominant_segment(importances)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": model.version,
        "layout": layout.value,
        "stacking": stacking.value,
        "stamps": [str(p) for p in args.stamps],
        "n": len(stamps),
        "n_flagged": int((flags != 0).sum()),
        "threshold": threshold,
        "has_labels": labels is not None,
        "saliency": "|d P(top class) / d input| (Simonyan et al. 2014); I_seg as Acero-Cuellar et al. Eq. 4",
        "positive_class": "real (labels: 0 real, 1 bogus)",
        **summarize_importances(importances, groups, args.cut),
    }
    write_json(out / "saliency_summary.json", summary)
    np.savez(
        out / "saliency_importances.npz",
        id=stamps.id,
        label=stamps.label,
        score=scores,
        group=groups,
        dominant=dominant,
        **{f"I_{name}": value for name, value in importances.items()},
    )

    raw = {"diff": stamps.diff, "srch": stamps.srch, "tmpl": stamps.tmpl}
    show = ("diff", "srch", "tmpl")  # the difference helps a human even when the model does not see it
    model_title = f"{model.version} ({layout.value})"
    plot_dominant_breakdown(
        groups, dominant, layout, title=f"Dominant segment per quadrant: {model_title}",
        path=out / "saliency_breakdown.png",
    )
    plot_importance_distributions(
        importances, groups, layout, cut=args.cut, title=f"Segment importances: {model_title}",
        path=out / "saliency_distributions.png",
    )
    # Figures 8-9: one example per group (the paper shows two bogus and two real).
    rng = np.random.default_rng(args.seed)
    picks = [int(rng.choice(np.flatnonzero(groups == g))) for g in group_names(groups) if (groups == g).any()]
    titles = [f"id {stamps.id[i]}\n{groups[i]}\nP(real)={scores[i]:.2f}" for i in picks]
    plot_stamps_with_saliency(
        {k: v[picks] for k, v in raw.items()}, result.maps[picks], layout, stacking, titles,
        importances={k: v[picks] for k, v in importances.items()}, show=show,
        suptitle=f"Saliency maps: {model_title}", path=out / "saliency_stamps.png",
    )
    figures = plot_examples_per_quadrant(
        raw, result.maps, groups, layout, stacking, importances=importances, scores=scores,
        ids=stamps.id, seed=args.seed, show=show, out_dir=out,
    )

    for group, entry in summary["groups"].items():
        fractions = ", ".join(
            f"{name} {value:.0%}" if value is not None else f"{name} n/a"
            for name, value in entry["dominant_fraction"].items()
        )
        print(f"{group:>16s}: n={entry['n']:<6d} dominant {fractions}")
    print(f"Wrote saliency_summary.json, saliency_importances.npz and {3 + len(figures)} figures to {out}.")
    return 0


def _saliency_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stamps", nargs="+", required=True, metavar="PATH",
        help="Labelled stamp files (.npz) or folders of them.",
    )
    parser.add_argument(
        "--model", required=True, metavar="NAME_OR_PATH", help="Model file or packaged model name."
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="Folder for the figures and summary.")
    parser.add_argument(
        "--threshold", type=float, help="Call real when P(real) >= this (default: the model's threshold)."
    )
    parser.add_argument("--max", type=int, metavar="N", help="Use a random subset of at most N stamps.")
    parser.add_argument(
        "--batch-size", type=int, default=1024, help="Stamps per saliency batch (default 1024)."
    )
    parser.add_argument(
        "--cut", type=float, default=1.0 / 3.0,
        help="I_seg cut for the summary's above_cut_fraction (paper: 1/3).",
    )
    parser.add_argument(
        "--ignore-labels", action="store_true",
        help="Group by prediction only (for stamps without meaningful labels).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed for --max and the example choice.")


COMMANDS = (
    Command(
        "saliency",
        help="Saliency-map diagnostics of a model on labelled stamps (paper Figures 8-11).",
        description="Vanilla gradient saliency maps of a model on labelled stamps and the share of saliency "
        "on each input segment (Acero-Cuellar et al., Section 4.3, Eq. 4).  Writes saliency_summary.json, "
        "saliency_importances.npz and PNG figures (the paper's Figures 8-11 and Appendix C) into --out.",
        run=_saliency,
        arguments=_saliency_arguments,
    ),
)
