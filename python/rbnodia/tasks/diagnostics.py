"""Diagnostics across visits and detectors: which stamp segment the network
relied on, per confusion-matrix quadrant (the paper's Figures 8-11 and
Appendix C), and, with truth, the count, accuracy and fraction called real of
every family and the ROC AUC per S/N bin, as a summary and PNG plots in the
Butler.
"""

from __future__ import annotations

__all__ = ["SaliencyDiagnosticsConfig", "SaliencyDiagnosticsConnections", "SaliencyDiagnosticsTask"]

from typing import Any

import numpy as np
from astropy.table import Table, vstack

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..core.group_metrics import SNR_BIN_EDGES
from ..core.layouts import Layout
from .connection_types import detector_table, plot_output


class SaliencyDiagnosticsConnections(pipeBase.PipelineTaskConnections, dimensions=()):
    """Connections of `SaliencyDiagnosticsTask`: every classification
    catalog of the input collections in, summary and figures out.

    Parameters
    ----------
    config : `SaliencyDiagnosticsConfig`
        The task's configuration: truth and example inputs and outputs are
        dropped when ``useTruth`` or ``doExamples`` is off.
    """

    reliability = detector_table(
        doc="Classification catalogs with saliency columns (classifyRealBogus with doSaliency=True).",
        name="rbnodia_reliability", multiple=True,
    )
    truth = detector_table(
        doc="Truth per detection (label 0 real, 1 bogus); used when config.useTruth.",
        name="rbnodia_truth", multiple=True,
    )
    saliencyMaps = detector_table(
        doc="Saliency maps and raw stamps (classifyRealBogus with doWriteSaliencyMaps=True); used when "
        "config.doExamples.",
        name="rbnodia_saliency", multiple=True,
    )
    summary = cT.Output(
        doc="Dominant-segment fractions and mean segment importances per quadrant (or predicted class).",
        name="rbnodia_saliency_summary", storageClass="StructuredDataDict", dimensions=(),
    )
    dominantPlot = plot_output(
        doc="Dominant segment per confusion-matrix quadrant (the paper's Figure 10).",
        name="rbnodia_saliency_dominant_plot",
    )
    distributionPlot = plot_output(
        doc="Distributions of each segment importance per quadrant (the paper's Figure 11).",
        name="rbnodia_saliency_distribution_plot",
    )
    examplesPlot = plot_output(
        doc="Example stamps beside their saliency maps, per quadrant (Figures 8-9, Appendix C).",
        name="rbnodia_saliency_examples_plot",
    )
    familyPlot = plot_output(
        doc="Fraction of each family (from rbnodia_truth) called real; used when config.useTruth.",
        name="rbnodia_diagnostics_family_plot",
    )
    snrPlot = plot_output(
        doc="ROC AUC per detection S/N bin (from rbnodia_truth); used when config.useTruth.",
        name="rbnodia_diagnostics_snr_plot",
    )

    def __init__(self, *, config: SaliencyDiagnosticsConfig):
        if not config.useTruth:
            del self.truth
            del self.familyPlot
            del self.snrPlot
        if not config.doExamples:
            del self.saliencyMaps
            del self.examplesPlot


class SaliencyDiagnosticsConfig(
    pipeBase.PipelineTaskConfig, pipelineConnections=SaliencyDiagnosticsConnections
):
    """Configuration of `SaliencyDiagnosticsTask`."""

    useTruth = pexConfig.Field(
        dtype=bool,
        doc="Read rbnodia_truth, break down by confusion-matrix quadrant (TP, FN, FP, TN), and report the "
        "metrics per family and S/N bin.  Without truth (set False for survey data) the breakdown is by "
        "predicted class alone.",
        default=True,
    )
    snrBinEdges = pexConfig.ListField(
        dtype=float,
        doc="Increasing inner detection S/N bin edges for the ROC AUC per bin; the first bin holds every S/N "
        "below the first edge (negative included), the last every S/N from the last edge up.",
        default=list(SNR_BIN_EDGES[1:-1]),
        listCheck=lambda edges: len(edges) >= 1 and all(b > a for a, b in zip(edges, edges[1:])),
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

    With truth, the summary also holds ``by_family`` (count, accuracy and
    fraction called real of every family found in the truth, by the
    catalogs' ``is_real``) and ``auc_by_snr`` (ROC AUC of ``score`` per S/N
    bin, for the bins with both classes); truth without a ``family`` column
    counts as one family ``unknown``, without ``snr`` as unbinned.
    """

    ConfigClass = SaliencyDiagnosticsConfig
    _DefaultName = "saliencyDiagnostics"

    @timeMethod
    def run(self, reliability: list[Table], truth: list[Table] | None = None,
            saliencyMaps: list[Table] | None = None):
        """Compute the breakdowns and draw the figures.

        Parameters
        ----------
        reliability : `list` [`astropy.table.Table`]
            Classification catalogs with saliency columns.
        truth : `list` [`astropy.table.Table`], optional
            Truth tables matching ``reliability`` (with ``useTruth``).
        saliencyMaps : `list` [`astropy.table.Table`], optional
            Saliency maps and raw stamps (with ``doExamples``).

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``summary``, ``dominantPlot``, ``distributionPlot``, with
            ``doExamples`` ``examplesPlot``, and with ``useTruth``
            ``familyPlot`` and ``snrPlot`` (empty figures if some detections
            lack truth).

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
        has_diff = np.isfinite(np.asarray(catalog["saliency_diff"], dtype=float)).any()
        layout = Layout.DIA if has_diff else Layout.NODIA
        scored = ~np.asarray(catalog["flag_no_data"])
        catalog = catalog[scored]
        importances = {name: np.asarray(catalog[f"saliency_{name}"], dtype=np.float64)
                       for name in layout.segments}
        matched = self._truth(catalog, truth)
        labels = None if matched is None else matched["label"]
        groups = confusion_quadrant(labels, np.asarray(catalog["is_real"]))
        summary = summarize_importances(importances, groups)
        summary.update({"layout": layout.value, "n_catalogs": len(reliability),
                        "n_unscored": int((~scored).sum()),
                        "by": "quadrant" if labels is not None else "prediction",
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
        if self.config.useTruth:
            self._family_report(result, catalog, matched, title)
        return result

    def _family_report(self, result: pipeBase.Struct, catalog: Table, matched: dict | None,
                       title: str) -> None:
        """Per-family metrics and AUC per S/N bin into the summary and plots."""
        from ..core.group_metrics import auc_by_bin, metrics_by_group
        from ..plots.families import plot_auc_vs_snr, plot_family_fractions

        by_family, by_snr = {}, {}
        if matched is not None:
            labels = matched["label"]
            by_family = metrics_by_group(labels, np.asarray(catalog["is_real"]), matched["family"])
            by_snr = auc_by_bin(labels, np.asarray(catalog["score"], dtype=float), matched["snr"],
                                [-np.inf, *self.config.snrBinEdges, np.inf])
            self.log.info("Per family: %s; ROC AUC in S/N bins %s.",
                          ", ".join(f"{k} {v['n']} ({v['fraction_called_real']:.2f} called real)"
                                    for k, v in by_family.items()),
                          ", ".join(by_snr["bins_with_auc"]) or "none (no bin holds both classes)")
        result.summary.update({"by_family": by_family, "auc_by_snr": by_snr})
        result.familyPlot = plot_family_fractions({"model": by_family},
                                                  title=f"fraction called real: {title}")
        result.snrPlot = plot_auc_vs_snr({"model": by_snr}, title=f"ROC AUC per S/N bin: {title}")

    def _truth(self, catalog: Table, truth: list[Table] | None) -> dict[str, np.ndarray] | None:
        """Truth ``label``, ``family`` and ``snr`` per catalog row, or `None`
        without truth or when some rows have none.
        """
        if not truth:
            return None
        table = vstack([t for t in truth if len(t)] or truth[:1], metadata_conflicts="silent")
        row_of = {int(i): k for k, i in enumerate(table["id"])}
        rows = np.array([row_of.get(int(i), -1) for i in catalog["id"]], dtype=np.int64)
        missing = int((rows < 0).sum())
        if missing:
            self.log.warning("%d of %d detections have no truth label; grouping by prediction only.",
                             missing, len(rows))
            return None
        n = len(table)
        has = set(table.colnames)
        columns = {
            "label": np.asarray(table["label"], dtype=np.int64),
            "family": np.asarray(table["family"], dtype=str) if "family" in has else np.full(n, "unknown"),
            "snr": np.asarray(table["snr"], dtype=float) if "snr" in has else np.full(n, np.nan),
        }
        return {name: values[rows] for name, values in columns.items()}

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
        raw = {name: np.asarray(rows[f"stamp_{name}"])
               for name in layout.segments if f"stamp_{name}" in rows.colnames}
        maps = np.asarray(rows["saliency"])
        return plot_stamps_with_saliency(raw, maps, layout, stacking, titles, max_rows=len(chosen) or 1,
                                         suptitle=f"Saliency examples per group: {title}")
