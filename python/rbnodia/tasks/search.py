"""A transient search with no difference image: candidates found from the
science image and the template warped to it (not PSF-matched), scored by a
noDIA network.

The detection step is `rbnodia.core.search.find_candidates`; the scoring
step is the one every rbnodia task shares
(`rbnodia.tasks.scoring.score_detections`), so the output has the schema
and conventions of ``rbnodia_reliability`` (`RELIABILITY_COLUMNS`).
"""

from __future__ import annotations

__all__ = [
    "CANDIDATE_ID_OFFSET",
    "SEARCH_MODEL",
    "NoDiaSearchConfig",
    "NoDiaSearchConnections",
    "NoDiaSearchTask",
    "candidate_id_base",
]

import dataclasses
import time
from typing import Any, override

import numpy as np
from astropy.table import Table

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from lsst.utils.timer import timeMethod

from ..adapters.images import to_pixel_image, variance_array
from ..core.layouts import Layout
from ..core.search import SEARCH_DEFAULTS, SEARCH_MASK_PLANES, find_candidates
from .connection_types import DETECTOR_DIMENSIONS, detector_table, model_dataset
from .scoring import score_detections
from .scoring_config import ImageConnections, ScoringConfig

CANDIDATE_ID_OFFSET = 500_000
"""Candidate ids are ``(visit * 1000 + detector) * 10**6 + CANDIDATE_ID_OFFSET
+ index``: unique in a repository and disjoint from the simulator's
detection ids of the same detector (``index`` below ``CANDIDATE_ID_OFFSET``)."""

SEARCH_MODEL = "search_nodia"
"""Packaged model of the search when ``modelName`` is not set: a noDIA
network trained on stamps centred on the search's own candidates
(``rbnodia make-training-set --candidates search``), so that it has seen the
static sources and noise peaks the search finds as well as the artifacts."""


def candidate_id_base(visit: int, detector: int) -> int:
    """Return the id of a detector-visit's first candidate.

    Parameters
    ----------
    visit, detector : `int`
        Data ID values (``detector`` below 1000).

    Returns
    -------
    base : `int`
        ``(visit * 1000 + detector) * 10**6 + CANDIDATE_ID_OFFSET``.
    """
    return (int(visit) * 1000 + int(detector)) * 1_000_000 + CANDIDATE_ID_OFFSET


class NoDiaSearchConnections(ImageConnections, dimensions=DETECTOR_DIMENSIONS):
    """Connections of `NoDiaSearchTask`: the science image and the warped
    template of one detector in (whole, with their variance and mask
    planes), the scored candidates out.  There is no difference image and
    no detection catalog.

    Parameters
    ----------
    config : `NoDiaSearchConfig`
        Task configuration; it also sets the storage classes.
    """

    model = model_dataset(
        cT.PrerequisiteInput,
        doc="Trained noDIA real/bogus model, chosen by input collection (used when "
        "config.modelSource='butler').",
    )
    candidates = detector_table(
        cT.Output,
        doc="Candidate transients found without a difference image, one row each, with the columns of "
        "rbnodia_reliability (id, position, score = P(real), is_real, model version, quality flags).",
        name="rbnodia_search",
    )

    def __init__(self, *, config: NoDiaSearchConfig):
        del self.difference
        if config.modelSource != "butler":
            del self.model
        for name in ("science", "template"):
            setattr(self, name, dataclasses.replace(getattr(self, name), deferLoad=False,
                                                    storageClass=config.imageStorageClass))


class NoDiaSearchConfig(ScoringConfig, pipelineConnections=NoDiaSearchConnections):
    """Configuration of `NoDiaSearchTask`: the candidate search
    (`rbnodia.core.search.find_candidates`) and the scoring settings of
    `rbnodia.tasks.scoring_config.ScoringConfig` (noDIA layout only).
    """

    design = pexConfig.ChoiceField(
        dtype=str,
        doc="How candidates are found (rbnodia.core.search).",
        default=SEARCH_DEFAULTS["design"],
        optional=False,
        allowed={
            "excess": "Peaks of the box-filtered flux excess of science over template (no PSF matching).",
            "science": "Peaks of the box-filtered science image with an aperture excess over the template.",
        },
    )
    detectionThreshold = pexConfig.RangeField(
        dtype=float, doc="Box-filtered significance of a peak, in standard deviations.",
        default=SEARCH_DEFAULTS["threshold"], min=0.0,
    )
    boxWidth = pexConfig.RangeField(
        dtype=int, doc="Odd width of the box filter in pixels (about the PSF FWHM).",
        default=SEARCH_DEFAULTS["box_width"], min=1, max=51,
    )
    apertureHalfWidth = pexConfig.RangeField(
        dtype=int, doc="Half-size in pixels of the square aperture of the excess test.",
        default=SEARCH_DEFAULTS["aperture_half"], min=1, max=25,
    )
    excessThreshold = pexConfig.Field(
        dtype=float, doc="Lowest aperture flux excess of science over template, in standard deviations.",
        default=SEARCH_DEFAULTS["excess_threshold"],
    )
    maxCandidates = pexConfig.RangeField(
        dtype=int, doc="Most candidates scored per detector; beyond it the weakest in excess are dropped "
        "with a warning (a flood means bad input).", default=SEARCH_DEFAULTS["max_candidates"], min=1,
        max=CANDIDATE_ID_OFFSET - 1,
    )
    columnDefectSigma = pexConfig.RangeField(
        dtype=float, doc="Significance (sign test, in binomial standard deviations) at which a column "
        "segment with a positive flux excess is an unmasked column defect, treated as masked "
        "(rbnodia.core.search.column_defects); 0 looks for none.",
        default=SEARCH_DEFAULTS["column_sigma"], min=0.0,
    )
    columnDefectBlock = pexConfig.RangeField(
        dtype=int, doc="Rows per column segment tested for a column defect.",
        default=SEARCH_DEFAULTS["column_block"], min=16, max=4096,
    )
    renormalizeNoise = pexConfig.Field(
        dtype=bool, doc="Divide the significance and the excess by the significance map's robust standard "
        "deviation, for noise the variance planes underestimate (rbnodia.core.search.noise_scale).",
        default=SEARCH_DEFAULTS["renormalize"],
    )
    searchMaskPlanes = pexConfig.ListField(
        dtype=str, doc="Mask planes of either image where no candidate is centred and no excess is counted.",
        default=list(SEARCH_MASK_PLANES),
    )

    @override
    def setDefaults(self):
        super().setDefaults()
        self.layout = Layout.NODIA.value

    @override
    def packaged_model_name(self) -> str:
        """Return the ``modelName`` to load with ``modelSource='package'``.

        Returns
        -------
        name : `str`
            ``modelName``, or `SEARCH_MODEL` when unset.
        """
        return self.modelName if self.modelName is not None else SEARCH_MODEL

    @override
    def validate(self):
        super().validate()
        if Layout(self.layout).needs_difference:
            raise pexConfig.FieldValidationError(
                ScoringConfig.layout, self, "must be noDIA: the search has no difference image"
            )
        if self.boxWidth % 2 == 0:
            raise pexConfig.FieldValidationError(
                NoDiaSearchConfig.boxWidth, self, f"must be odd, got {self.boxWidth}"
            )


class NoDiaSearchTask(pipeBase.PipelineTask):
    """Find transients in a science image by comparing it with its template,
    with no difference image at all.

    Candidates come from `rbnodia.core.search.find_candidates` (peaks of a
    box-filtered flux excess, or of the science image, that exceed the
    template's aperture flux); each is then scored from its science and
    template stamps by a noDIA network, exactly as
    `rbnodia.tasks.classify.ClassifyRealBogusTask` scores a detection.
    Masked pixels (``searchMaskPlanes``) of either image carry no excess and
    centre no candidate, so masked areas, saturated stars and template
    edges give flags on nearby candidates rather than floods; column
    defects that no mask plane marks are found from the images and treated
    the same way.  An image
    with no transient gives an empty catalog.
    """

    ConfigClass = NoDiaSearchConfig
    _DefaultName = "noDiaSearch"

    @override
    def runQuantum(self, butlerQC, inputRefs, outputRefs):
        """Run one quantum, with candidate ids from its data ID
        (`candidate_id_base`).

        Parameters
        ----------
        butlerQC : `lsst.pipe.base.QuantumContext`
            Butler access of the quantum.
        inputRefs, outputRefs : `lsst.pipe.base.InputQuantizedConnection`
            Its input and output references.
        """
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        outputs = self.run(**inputs, id_base=candidate_id_base(data_id["visit"], data_id["detector"]))
        butlerQC.put(outputs, outputRefs)

    @timeMethod
    def run(self, science: Any, template: Any, model: Any = None, id_base: int = CANDIDATE_ID_OFFSET):
        """Search one detector.

        Parameters
        ----------
        science, template : masked image
            Science image and the template warped to its grid (lsst.images
            or afw masked images, with variance planes).
        model : `rbnodia.nn.RealBogusModel`, optional
            The noDIA model to use; defaults to the configured one.
        id_base : `int`
            Id of the first candidate (`candidate_id_base`).

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``candidates``: `astropy.table.Table` with the columns of
            `rbnodia.tasks.scoring.RELIABILITY_COLUMNS`, strongest excess
            first.

        Raises
        ------
        ValueError
            If an image has no variance plane, or the images differ in
            shape or origin.
        """
        start = time.process_time()
        table = self.find(science, template, id_base)
        search_seconds = time.process_time() - start
        scored = score_detections(self.config, science, template, table, model=model, log=self.log)
        self.log.info("Found %d candidates in %.2f s of CPU.", len(table), search_seconds)
        return pipeBase.Struct(candidates=scored.catalog)

    def find(self, science: Any, template: Any, id_base: int = CANDIDATE_ID_OFFSET) -> Table:
        """Find the candidates of one detector (the search without scoring).

        Parameters
        ----------
        science, template : masked image
            As for `run`.
        id_base : `int`
            Id of the first candidate.

        Returns
        -------
        candidates : `astropy.table.Table`
            ``id``, ``x``, ``y`` (pixel coordinates including the image
            origin), ``significance`` and ``excess``.

        Raises
        ------
        ValueError
            If an image has no variance plane, or the images differ in
            shape or origin.
        """
        planes = list(self.config.searchMaskPlanes)
        sci, tmpl = to_pixel_image(science, planes), to_pixel_image(template, planes)
        sci_var, tmpl_var = variance_array(science), variance_array(template)
        if sci_var is None or tmpl_var is None:
            raise ValueError("The search needs the variance planes of the science image and the template; "
                             "give masked images (lsst.images MaskedImage/VisitImage or afw Exposure).")
        if sci.array.shape != tmpl.array.shape or sci.origin != tmpl.origin:
            raise ValueError(f"The template must be warped to the science grid: shapes {sci.array.shape} and "
                             f"{tmpl.array.shape}, origins {sci.origin} and {tmpl.origin}.")
        bad = np.zeros(sci.array.shape, dtype=bool)
        for mask in (sci.bad, tmpl.bad):
            if mask is not None:
                bad |= mask
        found = find_candidates(
            sci.array, sci_var, tmpl.array, tmpl_var, bad,
            design=self.config.design, threshold=self.config.detectionThreshold,
            box_width=self.config.boxWidth,
            aperture_half=self.config.apertureHalfWidth, excess_threshold=self.config.excessThreshold,
            max_candidates=self.config.maxCandidates, column_sigma=self.config.columnDefectSigma,
            column_block=self.config.columnDefectBlock, renormalize=self.config.renormalizeNoise,
        )
        if found.n_defect_pixels:
            self.log.warning("%d pixels of unmasked column defects treated as masked (no candidate centred, "
                             "no excess counted): check the defect list.", found.n_defect_pixels)
        if found.noise_scale > 3:
            self.log.warning("The box-filtered noise is %.1f times what the variance planes predict: check "
                             "the variance planes and the template.", found.noise_scale)
        if found.n_dropped:
            self.log.warning("%d candidates beyond maxCandidates=%d were dropped (the weakest in excess): "
                             "check the images for unmasked defects or a bad template.",
                             found.n_dropped, self.config.maxCandidates)
        self.log.info("Search (%s design): noise %.2f times the variance planes'; %d peaks above %.1f sigma, "
                      "%d candidates with an excess above %.1f sigma.", self.config.design, found.noise_scale,
                      found.n_peaks, self.config.detectionThreshold, len(found), self.config.excessThreshold)
        x0, y0 = sci.origin
        return Table({
            "id": np.int64(id_base) + np.arange(len(found), dtype=np.int64),
            "x": found.x.astype(np.float64) + x0,
            "y": found.y.astype(np.float64) + y0,
            "significance": found.significance,
            "excess": found.excess,
        })

