"""A stand-in for ApPipe's downstream of ``computeReliability``, for tests.

ap_association cannot be installed outside the LSST stack, so this module
re-implements what ``lsst.ap.association.FilterDiaSourceReliabilityTask``
does with ``dia_source_reliability`` (lsst/ap_association,
``filterDiaSourceCatalog.py``), on astropy tables instead of afw catalogs:

- it refuses a reliability catalog whose ``id`` column is not equal to the
  diaSource ids row by row;
- it copies ``score`` into ``reliability`` and ``version`` into
  ``reliabilityVersion``, a string field of 7 characters (the ip_diffim
  DiaSource schema; afw raises LengthError on a longer string, and so does
  this stand-in);
- it keeps the sources with ``reliability >= minReliability`` and rejects
  the rest with AP's expression ``reliability < minReliability``, under
  which a NaN score would be KEPT.
"""

from __future__ import annotations

__all__ = ["RELIABILITY_VERSION_SIZE", "FilterDiaSourceReliabilityConfig", "FilterDiaSourceReliabilityTask"]

import numpy as np
from astropy.table import Table

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT

RELIABILITY_VERSION_SIZE = 7
"""Size of the DiaSource ``reliabilityVersion`` string field."""


_DIMENSIONS = ("instrument", "visit", "detector")


def _catalog(connection_type, doc, name):
    """Return a connection to one detector's astropy catalog (every connection here is one)."""
    return connection_type(doc=doc, name=name, storageClass="ArrowAstropy", dimensions=_DIMENSIONS)


class FilterDiaSourceReliabilityConnections(pipeBase.PipelineTaskConnections, dimensions=_DIMENSIONS):
    diaSourceCat = _catalog(cT.Input, "diaSources from image differencing.", "dia_source_unstandardized")
    reliability = _catalog(cT.Input, "Reliability of each diaSource, row-aligned with diaSourceCat.",
                           "dia_source_reliability")
    filteredDiaSources = _catalog(cT.Output, "diaSources kept by the reliability cut.",
                                  "dia_source_high_reliability")
    rejectedDiaSources = _catalog(cT.Output, "diaSources rejected by the reliability cut.",
                                  "dia_source_low_reliability")


class FilterDiaSourceReliabilityConfig(
    pipeBase.PipelineTaskConfig, pipelineConnections=FilterDiaSourceReliabilityConnections
):
    minReliability = pexConfig.Field(
        dtype=float, doc="Minimum reliability score to keep a diaSource (AP's default 0; ApPipe sets 0.5).",
        default=0.0,
    )


class FilterDiaSourceReliabilityTask(pipeBase.PipelineTask):
    """Copy the reliability into the diaSources and cut on it, as AP does."""

    ConfigClass = FilterDiaSourceReliabilityConfig
    _DefaultName = "filterDiaSourceReliability"

    def run(self, diaSourceCat: Table, reliability: Table) -> pipeBase.Struct:
        """Cut ``diaSourceCat`` on the scores of ``reliability``.

        Parameters
        ----------
        diaSourceCat : `astropy.table.Table`
            diaSources.
        reliability : `astropy.table.Table`
            ``id``, ``score``, ``version``, row-aligned with ``diaSourceCat``.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``filteredDiaSources`` and ``rejectedDiaSources``.

        Raises
        ------
        ValueError
            If the ids do not match row by row, or a version does not fit
            the 7-character field.
        """
        ids = np.asarray(diaSourceCat["id"])
        if len(ids) != len(reliability) or not np.all(ids == np.asarray(reliability["id"])):
            raise ValueError("Reliability ids do not match DiaSource ids.")
        versions = [str(v) for v in reliability["version"]]
        too_long = [v for v in versions if len(v) > RELIABILITY_VERSION_SIZE]
        if too_long:
            raise ValueError(f"LengthError: reliabilityVersion {too_long[0]!r} is longer than "
                             f"{RELIABILITY_VERSION_SIZE} characters.")
        sources = diaSourceCat.copy()
        sources["reliability"] = np.asarray(reliability["score"], dtype=np.float64)
        sources["reliabilityVersion"] = np.array(versions, dtype=f"<U{RELIABILITY_VERSION_SIZE}")
        low = np.asarray(sources["reliability"] < self.config.minReliability)
        self.log.info("Filtered %d sources with low reliability.", int(low.sum()))
        return pipeBase.Struct(filteredDiaSources=sources[~low], rejectedDiaSources=sources[low])
