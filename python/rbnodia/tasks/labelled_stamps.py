"""Cut labelled (diff, srch, tmpl) stamps of every detection with a truth
label, as training and evaluation data.
"""

from __future__ import annotations

__all__ = ["MakeLabelledStampsConfig", "MakeLabelledStampsConnections", "MakeLabelledStampsTask"]

import dataclasses
from typing import Any, override

import numpy as np

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..adapters import to_detections, to_pixel_image
from ..core.stampset import cut_labelled_stamps
from .connection_types import DETECTOR_DIMENSIONS, detector_image, detector_table


class MakeLabelledStampsConnections(pipeBase.PipelineTaskConnections, dimensions=DETECTOR_DIMENSIONS):
    """Connections of `MakeLabelledStampsTask`: one detector's images,
    detections and truth in, its labelled stamps out.

    Parameters
    ----------
    config : `MakeLabelledStampsConfig`
        The task's configuration (the images' storage class).
    """

    science = detector_image(doc="Science image.", name="preliminary_visit_image")
    template = detector_image(doc="Template warped to the science grid.", name="template_detector")
    difference = detector_image(doc="Difference image.", name="difference_image")
    detections = detector_table(doc="Difference-image detections.", name="dia_source_unstandardized")
    truth = detector_table(doc="Truth per detection id: label (0 real, 1 bogus), family, mag, snr.",
                           name="rbnodia_truth")
    stamps = cT.Output(doc="Raw labelled stamps of every detection that has a truth row.",
                       name="rbnodia_labelled_stamps", storageClass="LabelledStamps",
                       dimensions=DETECTOR_DIMENSIONS)

    def __init__(self, *, config: MakeLabelledStampsConfig):
        for name in ("science", "template", "difference"):
            connection = dataclasses.replace(getattr(self, name), storageClass=config.imageStorageClass)
            setattr(self, name, connection)


class MakeLabelledStampsConfig(
    pipeBase.PipelineTaskConfig, pipelineConnections=MakeLabelledStampsConnections
):
    """Configuration of `MakeLabelledStampsTask`."""

    stampSize = pexConfig.RangeField(dtype=int, doc="Stamp size in pixels (odd).", default=51, min=3)
    idColumn = pexConfig.Field(dtype=str, doc="Detection id column (also in the truth table).", default="id")
    xColumn = pexConfig.Field(dtype=str, doc="Detection x column.", default="x")
    yColumn = pexConfig.Field(dtype=str, doc="Detection y column.", default="y")
    badMaskPlanes = pexConfig.ListField(dtype=str, doc="Mask planes treated as missing pixels.",
                                        default=["NO_DATA"])
    imageStorageClass = pexConfig.ChoiceField(
        dtype=str, doc="Storage class the images are read as.", default="MaskedImageV2",
        allowed={"MaskedImageV2": "lsst.images MaskedImage", "VisitImage": "lsst.images VisitImage",
                 "ExposureF": "afw ExposureF"},
    )

    @override
    def validate(self):
        super().validate()
        if self.stampSize % 2 == 0:
            raise pexConfig.FieldValidationError(MakeLabelledStampsConfig.stampSize, self, "must be odd")


class MakeLabelledStampsTask(pipeBase.PipelineTask):
    """Cut raw stamps of labelled detections for training.

    Detections without a truth row cannot be labelled and are left out (the
    count is logged); truth rows without a detection (undetected injections)
    are ignored.
    """

    ConfigClass = MakeLabelledStampsConfig
    _DefaultName = "makeLabelledStamps"

    @timeMethod
    def run(self, science: Any, template: Any, difference: Any, detections: Any, truth: Any):
        """Cut the stamps.

        Parameters
        ----------
        science : `object`
            Science image (any type `rbnodia.adapters.to_pixel_image` reads).
        template : `object`
            Template warped to the science image's pixel grid.
        difference : `object`
            Difference image.
        detections : `object`
            Detection catalog with id, x and y columns.
        truth : `astropy.table.Table`
            Truth per detection id: ``label`` (0 real, 1 bogus), and ``family``,
            ``mag`` and ``snr`` where present.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``stamps``: `rbnodia.core.LabelledStamps`.
        """
        found = to_detections(detections, self.config.idColumn, self.config.xColumn, self.config.yColumn)
        row_of_id = {int(i): k for k, i in enumerate(np.asarray(truth[self.config.idColumn], dtype=np.int64))}
        truth_row = np.array([row_of_id.get(int(i), -1) for i in found.id], dtype=np.int64)
        has_truth = truth_row >= 0
        rows = truth_row[has_truth]
        if (~has_truth).any():
            self.log.warning("%d of %d detections have no truth row and are not labelled.",
                             int((~has_truth).sum()), len(found))
        planes = list(self.config.badMaskPlanes)
        images = {
            "srch": to_pixel_image(science, planes),
            "tmpl": to_pixel_image(template, planes),
            "diff": to_pixel_image(difference, planes),
        }

        def truth_column(name, default):
            return np.asarray(truth[name])[rows] if name in truth.colnames else np.full(len(rows), default)

        stamps = cut_labelled_stamps(
            images, found.x[has_truth], found.y[has_truth],
            ids=found.id[has_truth], labels=np.asarray(truth["label"])[rows],
            family=truth_column("family", "unknown"), mag=truth_column("mag", np.nan),
            snr=truth_column("snr", np.nan), size=self.config.stampSize,
            meta={"task": self._DefaultName, "n_detections": len(found)},
        )
        summary = stamps.summary()
        self.log.info("Cut %d labelled stamps (%d real, %d bogus).", summary["n"], summary["n_real"],
                      summary["n_bogus"])
        return pipeBase.Struct(stamps=stamps)
