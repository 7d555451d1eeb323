"""Real/bogus classification of difference-image detections from aligned
template and science stamps (noDIA) or the full triplet (DIA)."""

from __future__ import annotations

__all__ = [
    "ClassifyRealBogusConnections",
    "ClassifyRealBogusConfig",
    "ClassifyRealBogusTask",
    "RELIABILITY_COLUMNS",
    "SALIENCY_COLUMNS",
]

import dataclasses
import time
from typing import Any

import numpy as np
from astropy.table import Table

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..adapters import pixel_to_sky, to_detections, to_pixel_image
from ..core.flags import FLAG_COLUMNS, StampFlag, flag_columns
from ..core.layouts import Layout
from ..core.preprocess import make_model_inputs

RELIABILITY_COLUMNS: dict[str, tuple[str, str | None, str]] = {
    "id": ("int64", None, "Detection id, copied from the input catalog."),
    "x": ("float64", "pix", "Detection x position on the science image."),
    "y": ("float64", "pix", "Detection y position on the science image."),
    "ra": ("float64", "deg", "ICRS right ascension from the science image WCS (NaN without a WCS)."),
    "dec": ("float64", "deg", "ICRS declination from the science image WCS (NaN without a WCS)."),
    "score": ("float32", None, "Reliability: probability that the detection is REAL (Rubin convention); "
              "NaN when flag_no_data is set."),
    "is_real": ("bool", None, "score >= threshold (the model's unless config.threshold is set)."),
    "version": ("str", None, "Model that produced the score: <name>@<content hash prefix>."),
    **{name: ("bool", None, doc) for name, (_, doc) in FLAG_COLUMNS.items()},
}
"""Output schema: column -> (dtype, unit, description), in output order."""

SALIENCY_COLUMNS: dict[str, tuple[str, str | None, str]] = {
    "saliency_diff": ("float32", None, "Fraction of the gradient saliency on the difference stamp (I_diff; "
                      "NaN for noDIA models or unscored rows)."),
    "saliency_srch": ("float32", None, "Fraction of the gradient saliency on the science stamp (I_srch)."),
    "saliency_tmpl": ("float32", None, "Fraction of the gradient saliency on the template stamp (I_tmpl)."),
    "saliency_dominant": ("str", None, "Segment with the largest saliency fraction (diff, srch, tmpl; "
                          "'none' if undefined)."),
}
"""Columns added when config.doSaliency is True."""


class ClassifyRealBogusConnections(
    pipeBase.PipelineTaskConnections, dimensions=("instrument", "visit", "detector")
):
    science = cT.Input(
        doc="Science ('search') image of one detector.",
        name="preliminary_visit_image",
        storageClass="MaskedImageV2",
        dimensions=("instrument", "visit", "detector"),
    )
    template = cT.Input(
        doc="Template warped to the science image's pixel grid (not PSF-matched).",
        name="template_detector",
        storageClass="MaskedImageV2",
        dimensions=("instrument", "visit", "detector"),
    )
    difference = cT.Input(
        doc="Difference image; read only by DIA-layout models.",
        name="difference_image",
        storageClass="MaskedImageV2",
        dimensions=("instrument", "visit", "detector"),
    )
    detections = cT.Input(
        doc="Detections on the difference image (id and pixel position columns per config).",
        name="dia_source_unstandardized",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )
    model = cT.PrerequisiteInput(
        doc="Trained real/bogus model, chosen by input collection (used when config.modelSource='butler').",
        name="rbnodia_model",
        storageClass="RealBogusModel",
        dimensions=(),
    )
    reliability = cT.Output(
        doc="One row per input detection, in input order: id, position, score (P(real)), is_real, "
        "model version and quality flags.",
        name="rbnodia_reliability",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )
    saliency = cT.Output(
        doc="Saliency maps per detection (written when config.doWriteSaliencyMaps): id, score, the "
        "|gradient| map laid out like the network input, and the raw stamps.",
        name="rbnodia_saliency",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )

    def __init__(self, *, config: ClassifyRealBogusConfig):
        if not config.doWriteSaliencyMaps:
            del self.saliency
        if not Layout(config.layout).needs_difference:
            del self.difference
        if config.modelSource != "butler":
            del self.model
        for name in ("science", "template", "difference"):
            if name in self.inputs:
                setattr(self, name, dataclasses.replace(getattr(self, name), storageClass=config.imageStorageClass))
        self.detections = dataclasses.replace(self.detections, storageClass=config.catalogStorageClass)


class ClassifyRealBogusConfig(pipeBase.PipelineTaskConfig, pipelineConnections=ClassifyRealBogusConnections):
    layout = pexConfig.ChoiceField(
        dtype=str,
        doc="Which stamps the model reads; must match the model.",
        default=Layout.NODIA.value,
        allowed={Layout.NODIA.value: "science and template only (srch|tmpl)",
                 Layout.DIA.value: "difference, science and template (diff|srch|tmpl)"},
    )
    modelSource = pexConfig.ChoiceField(
        dtype=str,
        doc="Where the model comes from.",
        default="package",
        allowed={"package": "modelName: a model file shipped with rbnodia, or a path to a .rbmodel file",
                 "butler": "the rbnodia_model dataset found in the input collections"},
    )
    modelName = pexConfig.Field(
        dtype=str,
        doc="Packaged model name (see `rbnodia info`) or path of a .rbmodel file; used when modelSource='package'.",
        default="nodia_default",
    )
    stampSize = pexConfig.RangeField(
        dtype=int, doc="Stamp width and height in pixels (odd); must match the model.", default=51, min=3,
    )
    threshold = pexConfig.Field(
        dtype=float,
        doc="Decision threshold on score for is_real; None uses the threshold stored in the model.",
        default=None,
        optional=True,
    )
    idColumn = pexConfig.Field(dtype=str, doc="Detection id column.", default="id")
    xColumn = pexConfig.Field(dtype=str, doc="Detection x (pixel) column.", default="x")
    yColumn = pexConfig.Field(dtype=str, doc="Detection y (pixel) column.", default="y")
    badMaskPlanes = pexConfig.ListField(
        dtype=str,
        doc="Mask planes whose pixels are treated as missing (filled, flagged).",
        default=["NO_DATA"],
    )
    batchSize = pexConfig.RangeField(
        dtype=int, doc="Detections cut, scaled and classified per batch.", default=2048, min=1,
    )
    doSaliency = pexConfig.Field(
        dtype=bool,
        doc="Compute vanilla-gradient saliency (Simonyan et al. 2014, as in the paper) in the same pass and "
        "add the saliency_* segment-importance columns.  Off by default: the backward pass (ONNX Runtime, "
        "or TensorFlow where a network's gradient has no ONNX translation) makes a stamp cost 2.6-2.9x "
        "the plain inference for the packaged models, 4-6x for the paper's networks (make bench, "
        "figures 1.packaged.*.saliency; benchmarks/bench_saliency.py; doc/performance.rst); this task "
        "on an LSST detector with 1,000 detections and nodia_default: 0.10 s, 0.14 s with saliency "
        "(figures 2.*.task_packaged*).  SaliencyDiagnostics.yaml switches it on.",
        default=False,
    )
    doWriteSaliencyMaps = pexConfig.Field(
        dtype=bool,
        doc="Also write the saliency maps and raw stamps as rbnodia_saliency (large; implies doSaliency).",
        default=False,
    )
    logInterval = pexConfig.RangeField(
        dtype=float, doc="Seconds between progress log lines on long runs.", default=10.0, min=0.0,
    )
    imageStorageClass = pexConfig.ChoiceField(
        dtype=str,
        doc="Storage class the images are read as.",
        default="MaskedImageV2",
        allowed={"MaskedImageV2": "lsst.images MaskedImage (no afw needed)",
                 "VisitImage": "lsst.images VisitImage (converts from afw Exposure datasets)",
                 "ExposureF": "afw ExposureF (LSST stack container)"},
    )
    catalogStorageClass = pexConfig.ChoiceField(
        dtype=str,
        doc="Storage class the detection catalog is read as.",
        default="ArrowAstropy",
        allowed={"ArrowAstropy": "astropy Table (parquet)", "DataFrame": "pandas DataFrame (parquet)",
                 "SourceCatalog": "afw SourceCatalog (LSST stack container)"},
    )

    def validate(self):
        super().validate()
        if self.stampSize % 2 == 0:
            raise pexConfig.FieldValidationError(
                ClassifyRealBogusConfig.stampSize, self, f"must be odd, got {self.stampSize}"
            )
        if self.doWriteSaliencyMaps and not self.doSaliency:
            raise pexConfig.FieldValidationError(
                ClassifyRealBogusConfig.doWriteSaliencyMaps, self, "needs doSaliency=True"
            )
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise pexConfig.FieldValidationError(
                ClassifyRealBogusConfig.threshold, self, f"must be in [0, 1], got {self.threshold}"
            )


class ClassifyRealBogusTask(pipeBase.PipelineTask):
    """Score every detection of a detector as real or bogus with a CNN.

    For each detection the task cuts ``stampSize`` stamps from the aligned
    science and template images (and the difference image for DIA models),
    scales them as the model was trained (`rbnodia.core.scaling`), and
    records the model's probability that the detection is real.

    Every input detection gets exactly one output row, in input order.
    Detections whose stamps reach past an image edge or contain unusable
    pixels are still scored, and flagged; detections centred off the image
    get ``score`` NaN and ``flag_no_data``.  The model is loaded once per
    process and inference is batched.
    """

    ConfigClass = ClassifyRealBogusConfig
    _DefaultName = "classifyRealBogus"

    @timeMethod
    def run(self, science: Any, template: Any, detections: Any, difference: Any = None, model: Any = None):
        """Classify the detections of one detector.

        Parameters
        ----------
        science, template : image
            Aligned science and template images (lsst.images, afw or numpy;
            see `rbnodia.adapters.images`).
        detections : table
            Detection catalog with the configured id and x/y columns.
        difference : image, optional
            Difference image; required for DIA models.
        model : `rbnodia.nn.RealBogusModel`, optional
            Model to use; defaults to ``config.modelName``.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``reliability``: `astropy.table.Table` (see `RELIABILITY_COLUMNS`).

        Raises
        ------
        rbnodia.nn.ModelMismatchError
            If the model does not fit the configured layout or stamp size.
        ValueError
            If a DIA model is used without a difference image.
        """
        from ..nn.model import load_model

        layout = Layout(self.config.layout)
        if model is None:
            model = load_model(self.config.modelName)
        model.check_compatible(layout, self.config.stampSize)
        threshold = model.threshold if self.config.threshold is None else self.config.threshold
        if layout.needs_difference and difference is None:
            raise ValueError("A DIA-layout model needs the difference image, but none was given.")

        found = to_detections(detections, self.config.idColumn, self.config.xColumn, self.config.yColumn)
        planes = list(self.config.badMaskPlanes)
        images = {"srch": to_pixel_image(science, planes), "tmpl": to_pixel_image(template, planes)}
        if layout.needs_difference:
            images["diff"] = to_pixel_image(difference, planes)

        n = len(found)
        scores = np.full(n, np.nan, dtype=np.float32)
        flags = np.zeros(n, dtype=np.int32)
        saliency = _SaliencyAccumulator(n, layout, model, self.config) if self.config.doSaliency else None
        self.log.info("Classifying %d detections with model %s (layout %s, threshold %.3f, saliency %s).",
                      n, model.version, layout.value, threshold, "on" if saliency else "off")
        start = last_log = time.monotonic()
        for begin in range(0, n, self.config.batchSize):
            chunk = slice(begin, min(begin + self.config.batchSize, n))
            prepared = make_model_inputs(
                images, found.x[chunk], found.y[chunk], layout, self.config.stampSize, model.stacking
            )
            flags[chunk] = prepared.flags
            scorable = np.flatnonzero((prepared.flags & StampFlag.NO_DATA) == 0)
            if len(scorable):
                rows = begin + scorable
                if saliency is not None:
                    scores[rows] = saliency.add(rows, prepared, scorable)
                else:
                    scores[rows] = model.predict(prepared.inputs[scorable])
            now = time.monotonic()
            if now - last_log >= self.config.logInterval and chunk.stop < n:
                self.log.info("Classified %d/%d detections (%.0f s).", chunk.stop, n, now - start)
                last_log = now

        ra, dec = pixel_to_sky(science, found.x, found.y)
        catalog = self._make_catalog(found, ra, dec, scores, flags, threshold, model.version)
        if saliency is not None:
            saliency.add_columns(catalog)
        catalog.meta.update(
            {"rbnodia_model": model.version, "rbnodia_threshold": float(threshold),
             "rbnodia_layout": layout.value, "rbnodia_score_convention": "P(real)"}
        )
        n_real = int(catalog["is_real"].sum())
        self.log.info("Classified %d detections in %.1f s: %d real, %d bogus, %d not scorable (flag_no_data).",
                      n, time.monotonic() - start, n_real, n - n_real - int(np.isnan(scores).sum()),
                      int(np.isnan(scores).sum()))
        result = pipeBase.Struct(reliability=catalog)
        if self.config.doWriteSaliencyMaps:
            result.saliency = saliency.maps_table(found.id, scores)
        return result

    @staticmethod
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

    def __init__(self, n: int, layout: Layout, model: Any, config: ClassifyRealBogusConfig) -> None:
        self.layout = layout
        self.model = model
        self.batch_size = config.batchSize
        self.importances = {name: np.full(n, np.nan, dtype=np.float32) for name in ("diff", "srch", "tmpl")}
        self.dominant = np.full(n, "none", dtype="<U4")
        self.keep_maps = config.doWriteSaliencyMaps
        if self.keep_maps:
            shape = tuple(model.input_shape)
            size = config.stampSize
            self.maps = np.zeros((n,) + shape, dtype=np.float32)
            self.raw = {name: np.full((n, size, size), np.nan, dtype=np.float32) for name in layout.segments}

    def add(self, rows: np.ndarray, prepared: Any, scorable: np.ndarray) -> np.ndarray:
        """Saliency for one batch; returns the scores of its scorable rows."""
        from ..core.saliency import dominant_segment, segment_importances
        from ..nn.saliency import saliency_maps

        # Without maps to keep, only their row sums leave the graph (enough for the fractions).
        result = saliency_maps(self.model, prepared.inputs[scorable], self.batch_size,
                               sum_rows=not self.keep_maps)
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
