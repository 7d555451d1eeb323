"""Real/bogus classification of difference-image detections from aligned
template and science stamps (noDIA) or the full triplet (DIA), writing
rbnodia's full per-detection catalog.

For the Alert Production drop-in (label ``computeReliability``, AP's
connection and dataset names) see `rbnodia.tasks.compute_reliability`.
"""

from __future__ import annotations

__all__ = [
    "RELIABILITY_COLUMNS",
    "SALIENCY_COLUMNS",
    "ClassifyRealBogusConfig",
    "ClassifyRealBogusConnections",
    "ClassifyRealBogusTask",
]

from typing import Any, override

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..core.layouts import Layout
from .connection_types import DETECTOR_DIMENSIONS, detector_table, model_dataset
from .scoring import RELIABILITY_COLUMNS, SALIENCY_COLUMNS, score_detections
from .scoring_config import ImageConnections, ScoringConfig


class ClassifyRealBogusConnections(ImageConnections, dimensions=DETECTOR_DIMENSIONS):
    """Connections of `ClassifyRealBogusTask`: the aligned images and the
    detections of one detector in, the reliability catalog (and optionally
    the saliency maps) out.  Connections the configuration does not use are
    removed: ``difference`` for noDIA layouts, ``model`` unless
    ``modelSource='butler'``, ``saliency`` unless ``doWriteSaliencyMaps``.

    Parameters
    ----------
    config : `ClassifyRealBogusConfig`
        Task configuration; it also sets the storage classes.
    """

    detections = detector_table(
        doc="Detections on the difference image (id and pixel position columns per config).",
        name="dia_source_unstandardized",
    )
    model = model_dataset(
        cT.PrerequisiteInput,
        doc="Trained real/bogus model, chosen by input collection (used when config.modelSource='butler').",
    )
    reliability = detector_table(
        cT.Output,
        doc="One row per input detection, in input order: id, position, score (P(real)), is_real, "
        "model version and quality flags.",
        name="rbnodia_reliability",
    )
    saliency = detector_table(
        cT.Output,
        doc="Saliency maps per detection (written when config.doWriteSaliencyMaps): id, score, the "
        "|gradient| map laid out like the network input, and the raw stamps.",
        name="rbnodia_saliency",
    )

    def __init__(self, *, config: ClassifyRealBogusConfig):
        if not config.doWriteSaliencyMaps:
            del self.saliency
        if not Layout(config.layout).needs_difference:
            del self.difference
        if config.modelSource != "butler":
            del self.model
        self.set_storage_classes(config, "detections")


class ClassifyRealBogusConfig(ScoringConfig, pipelineConnections=ClassifyRealBogusConnections):
    """Configuration of `ClassifyRealBogusTask`: the scoring settings of
    `rbnodia.tasks.scoring_config.ScoringConfig` and the saliency-map output.
    """

    doWriteSaliencyMaps = pexConfig.Field(
        dtype=bool,
        doc="Also write the saliency maps and raw stamps as rbnodia_saliency (large; implies doSaliency).",
        default=False,
    )

    @override
    def validate(self):
        super().validate()
        if self.doWriteSaliencyMaps and not self.doSaliency:
            raise pexConfig.FieldValidationError(
                ClassifyRealBogusConfig.doWriteSaliencyMaps, self, "needs doSaliency=True"
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
    or on unusable pixels (or with no finite position) get ``score`` NaN
    and ``flag_no_data``.  The model is loaded once per process and
    inference is batched (`rbnodia.tasks.scoring`).
    """

    ConfigClass = ClassifyRealBogusConfig
    _DefaultName = "classifyRealBogus"

    @timeMethod
    def run(self, science: Any, template: Any, detections: Any, difference: Any = None, model: Any = None):
        """Classify the detections of one detector.

        Parameters
        ----------
        science, template : image or `lsst.daf.butler.DeferredDatasetHandle`
            Aligned science and template images (lsst.images, afw or numpy;
            see `rbnodia.adapters.images`), or deferred handles, read in
            strips (`rbnodia.adapters.strips`).
        detections : table
            Detection catalog with the configured id and x/y columns.
        difference : image or `lsst.daf.butler.DeferredDatasetHandle`, optional
            Difference image; required for DIA models.
        model : `rbnodia.nn.RealBogusModel`, optional
            Model to use; defaults to the configured packaged model or file.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``reliability``: `astropy.table.Table` (see `RELIABILITY_COLUMNS`);
            ``saliency`` with ``doWriteSaliencyMaps``.

        Raises
        ------
        rbnodia.nn.ModelMismatchError
            If the model does not fit the configured layout or stamp size.
        ValueError
            If a DIA model is used without a difference image.
        """
        scored = score_detections(self.config, science, template, detections, difference, model,
                                  log=self.log, keep_saliency_maps=self.config.doWriteSaliencyMaps)
        result = pipeBase.Struct(reliability=scored.catalog)
        if self.config.doWriteSaliencyMaps:
            result.saliency = scored.saliency_maps
        return result
