"""The ``computeReliability`` step of Alert Production, done by rbnodia.

A drop-in for ``lsst.meas.transiNet.RBTransiNetTask`` in ApPipe: the same
connection names (``science``, ``template``, ``difference``, ``diaSources``,
``pretrainedModel``, ``classifications``), dataset types and dimensions,
and the output that ``lsst.ap.association.FilterDiaSourceReliabilityTask``
reads: ``dia_source_reliability`` with ``id`` (equal to the input ids row by
row), ``score`` (float32 P(real), never NaN) and ``version`` (at most 7
characters, the APDB's ``reliabilityVersion`` size).  The scoring itself is
`rbnodia.tasks.scoring`, shared with `rbnodia.tasks.classify`; the full
catalog (positions, flags, saliency) is a second, optional output.

Unscorable detections (``flag_no_data`` in the full catalog: no finite
position, centre off the image, no usable pixel) get ``unscorableScore``,
0 by default, so that AP's ``minReliability`` cut removes them.
"""

from __future__ import annotations

__all__ = [
    "AP_RELIABILITY_COLUMNS",
    "AP_VERSION_LENGTH",
    "ComputeReliabilityConfig",
    "ComputeReliabilityConnections",
    "ComputeReliabilityTask",
]

import dataclasses
from typing import Any, override

import numpy as np
from astropy.table import Table

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from .connection_types import DETECTOR_DIMENSIONS, detector_table, model_dataset
from .scoring import score_detections
from .scoring_config import ImageConnections, ScoringConfig

AP_VERSION_LENGTH = 7
"""Characters of ``version``: the size of the DiaSource ``reliabilityVersion``
field (ip_diffim schema, APDB ``length: 7``)."""

AP_RELIABILITY_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("int64", "DiaSource id, equal to the input catalog's id row by row."),
    "score": ("float32", "Reliability: probability that the source is real (P(real)); never NaN: "
              "unscorable sources get config.unscorableScore."),
    "version": ("str", f"Model that scored the source: the first {AP_VERSION_LENGTH} hex digits of its "
                "content hash."),
}
"""``dia_source_reliability`` schema: column -> (dtype, description)."""


class ComputeReliabilityConnections(ImageConnections, dimensions=DETECTOR_DIMENSIONS):
    """Connections of `ComputeReliabilityTask`, named as those of ApPipe's
    ``computeReliability`` (meas_transiNet's ``RBTransiNetTask``), so that
    AP's configuration and contracts resolve unchanged.  ``difference`` is
    always declared, for those contracts; a noDIA model never reads its
    pixels.

    Parameters
    ----------
    config : `ComputeReliabilityConfig`
        Task configuration: it removes ``pretrainedModel`` unless
        ``modelSource='butler'`` and ``reliability`` unless
        ``doWriteFullCatalog``, and sets the storage classes.
    """

    diaSources = detector_table(
        doc="Detected sources on the difference image (id and pixel position columns per config).",
        name="dia_source_unstandardized",
    )
    pretrainedModel = model_dataset(
        cT.PrerequisiteInput,
        doc="Trained real/bogus model, chosen by input collection (e.g. pretrained_models/rbnodia_...); "
        "used when config.modelSource='butler'.",
    )
    classifications = detector_table(
        cT.Output,
        doc="Reliability of each diaSource, row-aligned with diaSources: id, score (P(real)), version.",
        name="dia_source_reliability",
    )
    reliability = detector_table(
        cT.Output,
        doc="rbnodia's full catalog: one row per diaSource with position, score, is_real, model version "
        "and quality flags (written when config.doWriteFullCatalog).",
        name="rbnodia_reliability",
    )

    def __init__(self, *, config: ComputeReliabilityConfig):
        if config.modelSource != "butler":
            del self.pretrainedModel
        if not config.doWriteFullCatalog:
            del self.reliability
        self.set_storage_classes(config, "diaSources")
        self.classifications = dataclasses.replace(self.classifications,
                                                   storageClass=config.outputStorageClass)


class ComputeReliabilityConfig(ScoringConfig, pipelineConnections=ComputeReliabilityConnections):
    """Configuration of `ComputeReliabilityTask`: the scoring settings of
    `rbnodia.tasks.scoring_config.ScoringConfig`, the AP output's storage class and
    the score of unscorable sources.  The model comes from the Butler by
    default, as in AP.
    """

    outputStorageClass = pexConfig.ChoiceField(
        dtype=str,
        doc="Storage class of dia_source_reliability.",
        default="ArrowAstropy",
        allowed={"ArrowAstropy": "astropy Table (parquet); outside the LSST stack",
                 "Catalog": "afw BaseCatalog, what ApPipe's filterDiaSourcePostReliability reads "
                            "(needs afw)"},
    )
    unscorableScore = pexConfig.RangeField(
        dtype=float,
        doc="Score written for a diaSource that cannot be scored (flag_no_data in the full catalog).  The "
        "default 0 makes AP's minReliability cut reject it; it is never NaN, which that cut would pass.",
        default=0.0,
        min=0.0,
        max=1.0,
    )
    doWriteFullCatalog = pexConfig.Field(
        dtype=bool,
        doc="Also write rbnodia's full catalog (rbnodia_reliability: positions, flags, saliency columns).",
        default=True,
    )

    @override
    def setDefaults(self):
        super().setDefaults()
        self.modelSource = "butler"


class ComputeReliabilityTask(pipeBase.PipelineTask):
    """Score every diaSource of a detector, as ApPipe's ``computeReliability``.

    The scores are those of `rbnodia.tasks.classify.ClassifyRealBogusTask`
    with the same configuration; this task adds AP's connection names and
    the ``dia_source_reliability`` output.  A noDIA model never reads the
    difference image's pixels.
    """

    ConfigClass = ComputeReliabilityConfig
    _DefaultName = "computeReliability"

    @timeMethod
    def run(self, science: Any, template: Any, diaSources: Any, difference: Any = None,
            pretrainedModel: Any = None) -> pipeBase.Struct:
        """Score the diaSources of one detector.

        Parameters
        ----------
        science, template : image or `lsst.daf.butler.DeferredDatasetHandle`
            Aligned science and template images, in memory or deferred
            handles read in strips (`rbnodia.adapters.strips`).
        diaSources : table
            Difference-image detections (afw SourceCatalog, astropy Table...).
        difference : image or `lsst.daf.butler.DeferredDatasetHandle`, optional
            Difference image; read only for DIA models.
        pretrainedModel : `rbnodia.nn.RealBogusModel`, optional
            The model; defaults to the configured packaged model or file.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``classifications``: ``dia_source_reliability`` (afw
            ``BaseCatalog`` or astropy Table, `AP_RELIABILITY_COLUMNS`);
            ``reliability``: the full catalog, with ``doWriteFullCatalog``.
        """
        scored = score_detections(self.config, science, template, diaSources, difference, pretrainedModel,
                                  log=self.log)
        catalog = scored.catalog
        version = scored.model.metadata.content_hash[:AP_VERSION_LENGTH]
        unscored = np.asarray(catalog["flag_no_data"])
        scores = np.where(unscored, np.float32(self.config.unscorableScore), np.asarray(catalog["score"]))
        if unscored.any():
            self.log.info("%d diaSource(s) could not be scored; they get score %.3f (unscorableScore).",
                          int(unscored.sum()), self.config.unscorableScore)
        columns = {
            "id": np.asarray(catalog["id"], dtype=np.int64),
            "score": scores.astype(np.float32),
            "version": np.full(len(catalog), version, dtype=f"<U{AP_VERSION_LENGTH}"),
        }
        catalog.meta.update({"rbnodia_ap_version": version,
                             "rbnodia_unscorable_score": float(self.config.unscorableScore)})
        result = pipeBase.Struct(classifications=self._classifications(columns, catalog.meta))
        if self.config.doWriteFullCatalog:
            result.reliability = catalog
        return result

    def _classifications(self, columns: dict[str, np.ndarray], meta: dict) -> Any:
        docs = {name: doc for name, (_, doc) in AP_RELIABILITY_COLUMNS.items()}
        if self.config.outputStorageClass == "Catalog":
            from ..adapters.afw import to_afw_catalog

            return to_afw_catalog(columns, docs, {"version": AP_VERSION_LENGTH})
        table = Table(columns)
        for name, doc in docs.items():
            table[name].description = doc
        table.meta.update({key: meta[key] for key in ("rbnodia_model", "rbnodia_threshold", "rbnodia_layout",
                                                      "rbnodia_score_convention", "rbnodia_ap_version")})
        return table
