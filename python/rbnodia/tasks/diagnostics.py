"""Saliency diagnostics across visits and detectors: which stamp segment the
network relied on, per confusion-matrix quadrant (the paper's Figures 8-11
and Appendix C), as PNG plots in the Butler."""

from __future__ import annotations

__all__ = ["SaliencyDiagnosticsConnections", "SaliencyDiagnosticsConfig", "SaliencyDiagnosticsTask"]

from typing import Any

import numpy as np
from astropy.table import Table, vstack

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..core.layouts import Layout

_DETECTOR = ("instrument", "visit", "detector")


class SaliencyDiagnosticsConnections(pipeBase.PipelineTaskConnections, dimensions=()):
    reliability = cT.Input(
        doc="Classification catalogs with saliency columns (classifyRealBogus with doSaliency=True).",
        name="rbnodia_reliability", storageClass="ArrowAstropy", dimensions=_DETECTOR, multiple=True,
    )
    truth = cT.Input(
        doc="Truth per detection (label 0 real, 1 bogus); used when config.useTruth.",
        name="rbnodia_truth", storageClass="ArrowAstropy", dimensions=_DETECTOR, multiple=True,
    )
    saliencyMaps = cT.Input(
        doc="Saliency maps and raw stamps (classifyRealBogus with doWriteSaliencyMaps=True); used when "
        "config.doExamples.",
        name="rbnodia_saliency", storageClass="ArrowAstropy", dimensions=_DETECTOR, multiple=True,
    )
    summary = cT.Output(
        doc="Dominant-segment fractions and mean segment importances per quadrant (or predicted class).",
        name="rbnodia_saliency_summary", storageClass="StructuredDataDict", dimensions=(),
    )
    dominantPlot = cT.Output(
        doc="Dominant segment per confusion-matrix quadrant (the paper's Figure 10).",
        name="rbnodia_saliency_dominant_plot", storageClass="Plot", dimensions=(),
    )
    distributionPlot = cT.Output(
        doc="Distributions of each segment importance per quadrant (the paper's Figure 11).",
        name="rbnodia_saliency_distribution_plot", storageClass="Plot", dimensions=(),
    )
    examplesPlot = cT.Output(
        doc="Example stamps beside their saliency maps, per quadrant (Figures 8-9, Appendix C).",
        name="rbnodia_saliency_examples_plot", storageClass="Plot", dimensions=(),
    )

    def __init__(self, *, config: SaliencyDiagnosticsConfig):
        if not config.useTruth:
            del self.truth
        if not config.doExamples:
            del self.saliencyMaps
            del self.examplesPlot


class SaliencyDiagnosticsConfig(pipeBase.PipelineTaskConfig, pipelineConnections=SaliencyDiagnosticsConnections):
    useTruth = pexConfig.Field(
        dtype=bool,
        doc="Read rbnodia_truth and break down by confusion-matrix quadrant (TP, FN, FP, TN).  Without truth "
        "(set False for survey data) the breakdown is by predicted class alone.",
        default=True,
    )
    doExamples = pexConfig.Field(
        dtype=bool,
        doc="Plot example stamps beside their saliency maps (needs rbnodia_saliency).",
        default=True,
    )
    examplesPerGroup = pexConfig.RangeField(dtype=int, doc="Examples per quadrant (the paper: 6).", default=6,
                                            min=1, max=24)
    seed = pexConfig.Field(dtype=int, doc="Seed for choosing the examples.", default=0)


class SaliencyDiagnosticsTask(pipeBase.PipelineTask):
    """Aggregate per-detection saliency into the paper's diagnostics.

    Rows without a score (``flag_no_data``) or without defined importances
    are left out of the fractions and counted in the summary.  If some
    detections lack a truth row, the whole breakdown falls back to the
    predicted class, and the log says how many were missing.
    """

    ConfigClass = SaliencyDiagnosticsConfig
    _DefaultName = "saliencyDiagnostics"

    @timeMethod
    def run(self, reliability: list[Table], truth: list[Table] | None = None,
            saliencyMaps: list[Table] | None = None):
        """Compute the breakdowns and draw the figures.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``summary``, ``dominantPlot``, ``distributionPlot`` and, with
            ``doExamples``, ``examplesPlot``.

        Raises
        ------
        ValueError
            If the catalogs carry no saliency columns.
        """
        from ..core.saliency import confusion_quadrant, dominant_segment, summarize_importances
        from ..plots.saliency import plot_dominant_breakdown, plot_importance_distributions

        catalog = vstack([t for t in reliability if len(t)] or reliability[:1], metadata_conflicts="silent")
        if "saliency_srch" not in catalog.colnames:
            raise ValueError("rbnodia_reliability has no saliency columns; run classifyRealBogus with "
                             "doSaliency=True.")
        # Table metadata does not survive the Butler (ArrowAstropy strips it
        # on read), so the layout comes from the data: DIA models put some
        # saliency on the difference stamp, noDIA models leave it NaN.
        layout = Layout.DIA if np.isfinite(np.asarray(catalog["saliency_diff"], dtype=float)).any() else Layout.NODIA
        scored = ~np.asarray(catalog["flag_no_data"])
        catalog = catalog[scored]
        importances = {name: np.asarray(catalog[f"saliency_{name}"], dtype=np.float64)
                       for name in layout.segments}
        labels = self._labels(catalog, truth)
        groups = confusion_quadrant(labels, np.asarray(catalog["is_real"]))
        summary = summarize_importances(importances, groups)
        summary.update({"layout": layout.value, "n_catalogs": len(reliability),
                        "n_unscored": int((~scored).sum()), "by": "quadrant" if labels is not None else "prediction",
                        "models": sorted({str(v) for v in catalog["version"]})})
        self.log.info("Saliency diagnostics for %d detections from %d catalogs, grouped by %s.",
                      len(catalog), len(reliability), summary["by"])
        title = f"{layout.value} model {', '.join(summary['models'])}"
        result = pipeBase.Struct(
            summary=summary,
            dominantPlot=plot_dominant_breakdown(groups, dominant_segment(importances), layout, title=title),
            distributionPlot=plot_importance_distributions(importances, groups, layout, title=title),
        )
        if self.config.doExamples:
            result.examplesPlot = self._examples(saliencyMaps, catalog, groups, layout, title)
        return result

    def _labels(self, catalog: Table, truth: list[Table] | None) -> np.ndarray | None:
        if not truth:
            return None
        table = vstack([t for t in truth if len(t)] or truth[:1], metadata_conflicts="silent")
        label_of = {int(i): int(lab) for i, lab in zip(table["id"], table["label"])}
        labels = np.array([label_of.get(int(i), -1) for i in catalog["id"]], dtype=np.int64)
        missing = int((labels < 0).sum())
        if missing:
            self.log.warning("%d of %d detections have no truth label; grouping by prediction only.",
                             missing, len(labels))
            return None
        return labels

    def _examples(self, saliency_maps: list[Table], catalog: Table, groups: np.ndarray, layout: Layout,
                  title: str) -> Any:
        from ..core.layouts import Stacking
        from ..plots.saliency import plot_stamps_with_saliency

        maps_table = vstack([t for t in saliency_maps if len(t)] or saliency_maps[:1],
                            metadata_conflicts="silent")
        # Maps are laid out like the network input: one channel per segment
        # when the model stacks them as channels, else side by side.
        shape = np.asarray(maps_table["saliency"]).shape
        stacking = Stacking.CHANNELS if shape[-1] > 1 else Stacking.HORIZONTAL
        row_of = {int(i): k for k, i in enumerate(maps_table["id"])}
        rng = np.random.default_rng(self.config.seed)
        chosen, titles = [], []
        for group in dict.fromkeys(groups):
            members = np.flatnonzero(groups == group)
            members = members[[int(catalog["id"][m]) in row_of for m in members]]
            pick = rng.choice(members, size=min(self.config.examplesPerGroup, len(members)), replace=False)
            for m in sorted(pick):
                chosen.append(row_of[int(catalog["id"][m])])
                titles.append(f"{group}  id {int(catalog['id'][m])}  score {float(catalog['score'][m]):.2f}")
        if not chosen:
            self.log.warning("No saliency maps match the catalogs; the examples figure is empty.")
        rows = maps_table[chosen] if chosen else maps_table[:0]
        raw = {name: np.asarray(rows[f"stamp_{name}"]) for name in layout.segments if f"stamp_{name}" in rows.colnames}
        maps = np.asarray(rows["saliency"])
        return plot_stamps_with_saliency(raw, maps, layout, stacking, titles, max_rows=len(chosen) or 1,
                                         suptitle=f"Saliency examples per group: {title}")
