"""Modules a ``pipetask run -j N --start-method forkserver`` worker needs,
imported once in the fork server instead of once per quantum.

``pipetask run -j N`` runs every quantum in a new process.  With the
default ``spawn`` start method each such process starts Python, imports the
LSST middleware, the image and table readers, ONNX Runtime and rbnodia,
then unpickles its Butler and runs a quantum whose own work, for the
classification tasks, is much shorter than that.  With ``--start-method
forkserver`` the processes are forked from one server process, which
imports the modules of `multiprocessing.set_forkserver_preload` once.
`register_forkserver_preload` names the modules a classification quantum
needs; ``rbnodia.tasks`` calls it on import, which ``pipetask`` does while
it builds the quantum graph, before the fork server starts.

The preload list is a process-wide setting of `multiprocessing`; it changes
nothing unless the ``forkserver`` start method is used, and a module that
cannot be imported is skipped by the fork server.
"""

from __future__ import annotations

__all__ = ["FORKSERVER_PRELOAD", "register_forkserver_preload"]

import multiprocessing

FORKSERVER_PRELOAD: tuple[str, ...] = (
    "__main__",
    "lsst.daf.butler",
    "lsst.pipe.base",
    "lsst.ctrl.mpexec",
    "lsst.images",
    "lsst.images.formatters",
    "lsst.images.fits",
    "astropy.io.fits",
    "astropy.table",
    "pandas",
    "pyarrow.dataset",
    "pyarrow.parquet",
    "lsst.daf.butler.formatters.parquet",
    "onnxruntime",
    "rbnodia.nn.model",
    "rbnodia.nn.onnx.runtime",
    "rbnodia.tasks.classify",
    "rbnodia.tasks.compute_reliability",
)
"""Modules the fork server imports: ``__main__`` (the default of
`multiprocessing`), the middleware, the readers and writers of the images
and tables a quantum reads and writes, ONNX Runtime and the tasks."""


def register_forkserver_preload() -> None:
    """Make the fork server of `multiprocessing` import `FORKSERVER_PRELOAD`.

    Calling it after the fork server has started has no effect on that
    server.
    """
    multiprocessing.set_forkserver_preload(list(FORKSERVER_PRELOAD))
