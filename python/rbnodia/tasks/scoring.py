"""The classification core shared by the real/bogus PipelineTasks.

`score_detections` runs one detector through the settings of
`rbnodia.tasks.scoring_config.ScoringConfig` and returns the full
per-detection catalog described by `RELIABILITY_COLUMNS` (and
`SALIENCY_COLUMNS` with saliency).  The tasks
(`rbnodia.tasks.classify`, `rbnodia.tasks.compute_reliability`) only add
their connections and turn that catalog into their outputs.
"""

from __future__ import annotations

__all__ = [
    "RELIABILITY_COLUMNS",
    "SALIENCY_COLUMNS",
    "ScoringResult",
    "load_configured_model",
    "score_detections",
]

import dataclasses
import logging
import time
from typing import Any

import numpy as np
from astropy.table import Table

from ..adapters import to_detections
from ..adapters.strips import ImageStrips, image_strips
from ..core.flags import FLAG_COLUMNS, StampFlag, flag_columns
from ..core.layouts import Layout
from ..core.preprocess import make_model_inputs
from ..core.stamps import plan_row_strips, usable_positions
from .scoring_config import ScoringConfig

RELIABILITY_COLUMNS: dict[str, tuple[str, str | None, str]] = {
    "id": ("int64", None, "Detection id, copied from the input catalog."),
    "x": ("float64", "pix", "Detection x position on the science image."),
    "y": ("float64", "pix", "Detection y position on the science image."),
    "ra": ("float64", "deg", "ICRS right ascension from the science image WCS (NaN without a WCS or "
           "without a finite position)."),
    "dec": ("float64", "deg", "ICRS declination from the science image WCS (NaN without a WCS or "
            "without a finite position)."),
    "score": ("float32", None, "Reliability: probability that the detection is REAL (Rubin convention); "
              "NaN exactly when flag_no_data is set."),
    "is_real": ("bool", None, "score >= threshold (the model's unless config.threshold is set); False "
                "when flag_no_data is set."),
    "version": ("str", None, "Model that produced the score: <name>@<content hash prefix>."),
    **{name: ("bool", None, doc) for name, (_, doc) in FLAG_COLUMNS.items()},
}
"""Full catalog schema: column -> (dtype, unit, description), in output order."""

SALIENCY_COLUMNS: dict[str, tuple[str, str | None, str]] = {
    "saliency_diff": ("float32", None, "Fraction of the gradient saliency on the difference stamp (I_diff; "
                      "NaN for noDIA models or unscored rows)."),
    "saliency_srch": ("float32", None, "Fraction of the gradient saliency on the science stamp (I_srch)."),
    "saliency_tmpl": ("float32", None, "Fraction of the gradient saliency on the template stamp (I_tmpl)."),
    "saliency_dominant": ("str", None, "Segment with the largest saliency fraction (diff, srch, tmpl; "
                          "'none' if undefined)."),
}
"""Columns added when ``doSaliency`` is True."""


@dataclasses.dataclass
class ScoringResult:
    """One detector scored by `score_detections`.

    Attributes
    ----------
    catalog : `astropy.table.Table`
        One row per input detection, in input order (`RELIABILITY_COLUMNS`,
        plus `SALIENCY_COLUMNS` with ``doSaliency``).
    model : `rbnodia.nn.RealBogusModel`
        The model that scored it.
    saliency_maps : `astropy.table.Table` or `None`
        Maps and raw stamps, when asked for with ``keep_saliency_maps``.
    """

    catalog: Table
    model: Any
    saliency_maps: Table | None = None


def load_configured_model(config: ScoringConfig, model: Any = None) -> Any:
    """Return the model a task must use.

    Parameters
    ----------
    config : `ScoringConfig`
        Task configuration (``modelSource``, ``modelName``, ``layout``).
    model : `rbnodia.nn.RealBogusModel`, optional
        The model read from the Butler, if any.

    Returns
    -------
    model : `rbnodia.nn.RealBogusModel`
        ``model`` when given, else the packaged model or file the
        configuration names.

    Raises
    ------
    ValueError
        If ``modelSource='butler'`` and no model was given.
    """
    from ..nn.model import load_model

    if model is not None:
        return model
    if config.modelSource == "butler":
        raise ValueError("modelSource='butler' but no model was given: the rbnodia_model dataset must be "
                         "found in the input collections.")
    return load_model(config.packaged_model_name())


def score_detections(
    config: ScoringConfig,
    science: Any,
    template: Any,
    detections: Any,
    difference: Any = None,
    model: Any = None,
    *,
    log: logging.Logger | Any,
    keep_saliency_maps: bool = False,
) -> ScoringResult:
    """Score every detection of one detector.

    Parameters
    ----------
    config : `ScoringConfig`
        Task configuration.
    science, template : image or `lsst.daf.butler.DeferredDatasetHandle`
        Aligned science and template images (lsst.images, afw or numpy;
        see `rbnodia.adapters.images`), in memory or behind deferred
        handles read in strips of ``config.readRows`` rows
        (`rbnodia.adapters.strips`).
    detections : table
        Detection catalog with the configured id and x/y columns.
    difference : image or `lsst.daf.butler.DeferredDatasetHandle`, optional
        Difference image; read only for DIA models.
    model : `rbnodia.nn.RealBogusModel`, optional
        Model to use; defaults to the configured one.
    log : `logging.Logger`
        Where progress goes.
    keep_saliency_maps : `bool`
        Also return the saliency maps and raw stamps (needs ``doSaliency``).

    Returns
    -------
    result : `ScoringResult`

    Raises
    ------
    rbnodia.nn.ModelMismatchError
        If the model does not fit the configured layout or stamp size.
    ValueError
        If a DIA model has no difference image, or the ids are not usable.
    """
    layout = Layout(config.layout)
    model = load_configured_model(config, model)
    model.check_compatible(layout, config.stampSize)
    threshold = model.threshold if config.threshold is None else config.threshold
    found = to_detections(detections, config.idColumn, config.xColumn, config.yColumn)
    sources = _image_sources(science, template, difference, layout, list(config.badMaskPlanes))
    reference = sources["srch"]
    strips = plan_row_strips(found.x, found.y, reference.y0, reference.height, config.readRows,
                             config.stampSize)

    n = len(found)
    scores = np.full(n, np.nan, dtype=np.float32)
    flags = np.zeros(n, dtype=np.int32)
    saliency = None
    if config.doSaliency:
        saliency = _SaliencyAccumulator(n, layout, model, config, keep_saliency_maps)
    log.info("Classifying %d detections with model %s (layout %s, threshold %.3f, saliency %s).",
             n, model.version, layout.value, threshold, "on" if saliency else "off")
    start = last_log = time.monotonic()
    done = 0
    for strip in strips:
        images = {name: sources[name].read(strip.begin, strip.end) for name in layout.segments}
        for begin in range(0, len(strip.rows), config.batchSize):
            chunk = strip.rows[begin:begin + config.batchSize]
            prepared = make_model_inputs(images, found.x[chunk], found.y[chunk], layout, config.stampSize,
                                         model.stacking, model.scaling)
            flags[chunk] = prepared.flags
            scorable = np.flatnonzero((prepared.flags & StampFlag.NO_DATA) == 0)
            if len(scorable):
                rows = chunk[scorable]
                if saliency is not None:
                    scores[rows] = saliency.add(rows, prepared, scorable)
                else:
                    scores[rows] = model.predict(prepared.inputs[scorable], config.batchSize,
                                                 backend=config.inferenceBackend,
                                                 threads=config.inferenceThreads or None)
            done += len(chunk)
            now = time.monotonic()
            if now - last_log >= config.logInterval and done < n:
                log.info("Classified %d/%d detections (%.0f s).", done, n, now - start)
                last_log = now
        del images
    _flag_unscored(scores, flags, found.id, log)

    ra, dec = _sky_positions(reference, found.x, found.y)
    catalog = _make_catalog(found, ra, dec, scores, flags, threshold, model.version)
    if saliency is not None:
        saliency.add_columns(catalog)
    catalog.meta.update(
        {"rbnodia_model": model.version, "rbnodia_threshold": float(threshold),
         "rbnodia_layout": layout.value, "rbnodia_score_convention": "P(real)"}
    )
    n_unscored = int(np.isnan(scores).sum())
    n_real = int(catalog["is_real"].sum())
    log.info("Classified %d detections in %.1f s: %d real, %d bogus, %d not scorable (flag_no_data).",
             n, time.monotonic() - start, n_real, n - n_real - n_unscored, n_unscored)
    maps = saliency.maps_table(found.id, scores) if keep_saliency_maps and saliency is not None else None
    return ScoringResult(catalog=catalog, model=model, saliency_maps=maps)


def _image_sources(science, template, difference, layout: Layout,
                   planes: list[str]) -> dict[str, ImageStrips]:
    """Wrap the images the layout reads as strips; noDIA layouts never touch
    the difference image (or its handle).
    """
    sources = {"srch": image_strips(science, planes), "tmpl": image_strips(template, planes)}
    if layout.needs_difference:
        if difference is None:
            raise ValueError("A DIA-layout model needs the difference image, but none was given.")
        sources["diff"] = image_strips(difference, planes)
    return sources


def _flag_unscored(scores: np.ndarray, flags: np.ndarray, ids: np.ndarray, log: Any) -> None:
    """Give a scorable row whose network output is not finite ``NO_DATA``, so
    that a NaN score always comes with ``flag_no_data``.
    """
    lost = ~np.isfinite(scores) & ((flags & StampFlag.NO_DATA) == 0)
    if lost.any():
        log.warning("The network gave no finite score for %d detection(s) (first ids %s); they are flagged "
                    "flag_no_data.", int(lost.sum()), ids[lost][:5].tolist())
        flags[lost] |= np.int32(StampFlag.NO_DATA)
        scores[lost] = np.nan


def _sky_positions(science: ImageStrips, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS positions of the rows with a usable pixel position (NaN elsewhere)."""
    ra = np.full(len(x), np.nan)
    dec = np.full(len(x), np.nan)
    finite = usable_positions(x, y)
    if finite.any():
        ra[finite], dec[finite] = science.pixel_to_sky(x[finite], y[finite])
    return ra, dec


def _make_catalog(found, ra, dec, scores, flags, threshold, version) -> Table:
    values = {
        "id": found.id,
        "x": found.x,
        "y": found.y,
        "ra": ra,
        "dec": dec,
        "score": scores,
        "is_real": np.nan_to_num(scores, nan=-1.0) >= threshold,
        "version": np.full(len(found), version, dtype=f"<U{max(len(version), 1)}"),
        **flag_columns(flags),
    }
    table = Table()
    for name, (dtype, unit, doc) in RELIABILITY_COLUMNS.items():
        column = np.asarray(values[name])
        if dtype != "str":
            column = column.astype(dtype)
        table[name] = column
        table[name].unit = unit
        table[name].description = doc
    return table


class _SaliencyAccumulator:
    """Collects saliency importances (and optionally maps) batch by batch."""

    def __init__(self, n: int, layout: Layout, model: Any, config: ScoringConfig, keep_maps: bool) -> None:
        self.layout = layout
        self.model = model
        self.batch_size = config.batchSize
        self.backend = config.inferenceBackend
        self.threads = config.inferenceThreads or None
        stamp_size = config.stampSize
        self.importances = {name: np.full(n, np.nan, dtype=np.float32) for name in ("diff", "srch", "tmpl")}
        self.dominant = np.full(n, "none", dtype="<U4")
        self.keep_maps = keep_maps
        if self.keep_maps:
            shape = tuple(model.input_shape)
            self.maps = np.zeros((n,) + shape, dtype=np.float32)
            self.raw = {name: np.full((n, stamp_size, stamp_size), np.nan, dtype=np.float32)
                        for name in layout.segments}

    def add(self, rows: np.ndarray, prepared: Any, scorable: np.ndarray) -> np.ndarray:
        """Saliency for one batch; returns the scores of its scorable rows."""
        from ..core.saliency import dominant_segment, segment_importances
        from ..nn.saliency import saliency_maps

        # Without maps to keep, only their row sums leave the graph (enough for the fractions).
        result = saliency_maps(self.model, prepared.inputs[scorable], self.batch_size,
                               sum_rows=not self.keep_maps, backend=self.backend, threads=self.threads)
        fractions = segment_importances(result.maps, self.layout, self.model.stacking)
        for name, values in fractions.items():
            self.importances[name][rows] = values
        self.dominant[rows] = dominant_segment(fractions)
        if self.keep_maps:
            self.maps[rows] = result.maps
            for name in self.layout.segments:
                self.raw[name][rows] = prepared.raw[name][scorable]
        return result.score

    def add_columns(self, catalog: Table) -> None:
        values = {f"saliency_{name}": v for name, v in self.importances.items()}
        values["saliency_dominant"] = self.dominant
        for name, (dtype, unit, doc) in SALIENCY_COLUMNS.items():
            catalog[name] = values[name] if dtype == "str" else values[name].astype(dtype)
            catalog[name].description = doc

    def maps_table(self, ids: np.ndarray, scores: np.ndarray) -> Table:
        table = Table({"id": ids, "score": scores, "saliency": self.maps})
        table["saliency"].description = "|d P_top / d input|, laid out like the network input"
        for name, stamps in self.raw.items():
            table[f"stamp_{name}"] = stamps
            table[f"stamp_{name}"].description = f"raw {name} stamp (NaN where unusable)"
        table.meta.update({"rbnodia_layout": self.layout.value, "rbnodia_stacking": self.model.stacking.value,
                           "rbnodia_model": self.model.version})
        return table
