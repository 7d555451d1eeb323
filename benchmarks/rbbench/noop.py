"""A PipelineTask that does nothing, for the floor of ``pipetask run``'s
start-up in section 4.

It has the classification task's dimensions and reads the same detection
catalog (deferred, never loaded), so that ``pipetask run`` builds the same
kind of quantum graph and pays the same middleware costs (imports, registry
queries, init-outputs, package provenance) without rbnodia's work.
"""

from __future__ import annotations

__all__ = ["NOOP_PIPELINE", "NoopConfig", "NoopConnections", "NoopTask"]

from astropy.table import Table

import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT

NOOP_PIPELINE = """\
description: A task that does nothing (rbbench.noop), for the start-up floor of pipetask run.
tasks:
  noop:
    class: rbbench.noop.NoopTask
"""
"""Pipeline YAML of the task; ``benchmarks/`` must be on the ``PYTHONPATH``."""

_DIMENSIONS = ("instrument", "visit", "detector")


class NoopConnections(pipeBase.PipelineTaskConnections, dimensions=_DIMENSIONS):
    """The detection catalog in, a one-row table out."""

    diaSources = cT.Input(doc="Detection catalog (never loaded).", name="dia_source_unstandardized",
                          storageClass="ArrowAstropy", dimensions=_DIMENSIONS, deferLoad=True)
    done = cT.Output(doc="One-row table.", name="rbbench_noop", storageClass="ArrowAstropy",
                     dimensions=_DIMENSIONS)


class NoopConfig(pipeBase.PipelineTaskConfig, pipelineConnections=NoopConnections):
    """No settings."""


class NoopTask(pipeBase.PipelineTask):
    """Write a one-row table and nothing else."""

    ConfigClass = NoopConfig
    _DefaultName = "noop"

    def run(self, diaSources: object) -> pipeBase.Struct:
        """Return a one-row table.

        Parameters
        ----------
        diaSources : `lsst.daf.butler.DeferredDatasetHandle`
            The catalog's handle; not read.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``done``: an `astropy.table.Table` with one row.
        """
        return pipeBase.Struct(done=Table({"done": [1]}))
