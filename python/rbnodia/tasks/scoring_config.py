"""Settings and image connections shared by the real/bogus PipelineTasks.

`ScoringConfig` holds the settings every task that scores detections needs
(model, stamps, columns, strips, batching, saliency), and `ImageConnections`
the image inputs they all read, with Rubin AP's dataset names.  The tasks
(`rbnodia.tasks.classify`, `rbnodia.tasks.compute_reliability`) subclass
both; `rbnodia.tasks.scoring.score_detections` runs a detector through them.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MODELS", "ImageConnections", "ScoringConfig"]

import dataclasses
from typing import override

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase

from ..core.layouts import Layout
from .connection_types import DETECTOR_DIMENSIONS, detector_image

DEFAULT_MODELS: dict[str, str] = {Layout.NODIA.value: "nodia_default", Layout.DIA.value: "dia_default"}
"""Packaged model used for each layout when ``modelName`` is not set."""


class _NoConnections(pipeBase.PipelineTaskConnections, dimensions=()):
    """Placeholder: each task's config brings its own connections."""


class ImageConnections(pipeBase.PipelineTaskConnections, dimensions=DETECTOR_DIMENSIONS):
    """The image inputs every scoring task reads, with Rubin AP's names.

    The images are deferred: `score_detections` reads them in strips of
    ``readRows`` rows.  Subclasses add their catalogs and call
    `set_storage_classes`.
    """

    science = detector_image(
        doc="Science image of one detector (deferred: read in strips of config.readRows rows).",
        name="preliminary_visit_image",
        deferLoad=True,
    )
    template = detector_image(
        doc="Template warped to the science image's pixel grid (not PSF-matched; read in strips).",
        name="template_detector",
        deferLoad=True,
    )
    difference = detector_image(
        doc="Difference image; its pixels are read (in strips) only for DIA-layout models.",
        name="difference_image",
        deferLoad=True,
    )

    def set_storage_classes(self, config: ScoringConfig, catalog: str) -> None:
        """Give the images and the detection catalog the configured storage
        classes.

        Parameters
        ----------
        config : `ScoringConfig`
            Task configuration (``imageStorageClass``,
            ``catalogStorageClass``).
        catalog : `str`
            Name of the detection-catalog connection.
        """
        for name in ("science", "template", "difference"):
            if name in self.inputs:
                setattr(self, name,
                        dataclasses.replace(getattr(self, name), storageClass=config.imageStorageClass))
        setattr(self, catalog, dataclasses.replace(getattr(self, catalog),
                                                   storageClass=config.catalogStorageClass))


class ScoringConfig(pipeBase.PipelineTaskConfig, pipelineConnections=_NoConnections):
    """Settings shared by every task that scores detections.

    Task configs subclass it with their own ``pipelineConnections``.
    """

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
                 "butler": "the rbnodia_model dataset found in the input collections (modelName must be "
                           "unset: the collection chooses the model)"},
    )
    modelName = pexConfig.Field(
        dtype=str,
        doc="Packaged model name (see `rbnodia info`) or path of a .rbmodel file, used when "
        "modelSource='package'; None means the layout's packaged default (DEFAULT_MODELS).  Must be None "
        "when modelSource='butler'.",
        default=None,
        optional=True,
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
        dtype=int, doc="Detections cut, scaled and classified per batch (a batch never spans two strips, "
        "see readRows).", default=2048, min=1,
    )
    readRows = pexConfig.RangeField(
        dtype=int,
        doc="Height in rows of the horizontal strips the images are processed in; 0 means the whole image "
        "at once.  Images behind deferred Butler handles are read strip by strip (the strip's rows, padded "
        "by half a stamp on each side, and only the image and mask planes), so that a task never holds a "
        "whole detector; in-memory images are cut from views of the same strips.  The strips do not "
        "change the results: each detection's stamps are cut exactly as from the whole image.",
        default=512,
        min=0,
    )
    doSaliency = pexConfig.Field(
        dtype=bool,
        doc="Compute vanilla-gradient saliency (Simonyan et al. 2014, as in the paper) in the same pass and "
        "add the saliency_* segment-importance columns.  Off by default: the backward pass costs a few "
        "times the plain inference (doc/performance.rst).",
        default=False,
    )
    inferenceBackend = pexConfig.ChoiceField(
        dtype=str,
        doc="Where the network runs.",
        default="auto",
        allowed={"auto": "ONNX Runtime with the model file's graphs (TensorFlow only for a network ONNX "
                         "cannot run)",
                 "onnx": "ONNX Runtime; an error if the model has no usable graph",
                 "tensorflow": "the Keras network on TensorFlow (needs the [train] extra); for cross-checks"},
    )
    inferenceThreads = pexConfig.RangeField(
        dtype=int,
        doc="Threads the network may use; 0 means every CPU this process may run on.",
        default=0,
        min=0,
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

    @override
    def validate(self):
        super().validate()
        if self.stampSize % 2 == 0:
            raise pexConfig.FieldValidationError(
                ScoringConfig.stampSize, self, f"must be odd, got {self.stampSize}"
            )
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise pexConfig.FieldValidationError(
                ScoringConfig.threshold, self, f"must be in [0, 1], got {self.threshold}"
            )
        if self.modelSource == "butler" and self.modelName is not None:
            raise pexConfig.FieldValidationError(
                ScoringConfig.modelName, self,
                f"is {self.modelName!r}, but with modelSource='butler' the model is chosen by the input "
                "collections (put it into a collection with `rbnodia put-model` and list that collection "
                "in -i); leave modelName unset",
            )

    def packaged_model_name(self) -> str:
        """Return the ``modelName`` to load with ``modelSource='package'``.

        Returns
        -------
        name : `str`
            ``modelName``, or the default model of ``layout`` when unset.
        """
        return self.modelName if self.modelName is not None else DEFAULT_MODELS[self.layout]
