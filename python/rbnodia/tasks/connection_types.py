"""The kinds of connection the real/bogus PipelineTasks declare: one
detector's tables and images, the model dataset and plots.

Each factory fixes what every connection of its kind shares (storage class,
dimensions) and takes what differs (connection type, dataset name, doc), so
that the tasks' Connections classes list only that.
"""

from __future__ import annotations

__all__ = ["DETECTOR_DIMENSIONS", "detector_image", "detector_table", "model_dataset", "plot_output"]

from typing import Any

import lsst.pipe.base.connectionTypes as cT

DETECTOR_DIMENSIONS = ("instrument", "visit", "detector")
"""Dimensions of the per-detector datasets (images, catalogs, stamps)."""


def detector_table(
    connection_type: type = cT.Input, *, doc: str, name: str, **kwargs: Any
) -> cT.BaseConnection:
    """Return a connection to a table of one detector, stored as an
    astropy table (``ArrowAstropy``).

    Parameters
    ----------
    connection_type : `type`, optional
        `lsst.pipe.base.connectionTypes.Input` or ``Output``.
    doc : `str`
        What the table holds.
    name : `str`
        Dataset type name.
    **kwargs
        Other connection fields (e.g. ``multiple=True``).

    Returns
    -------
    connection : `lsst.pipe.base.connectionTypes.BaseConnection`
        The connection.
    """
    return connection_type(doc=doc, name=name, storageClass="ArrowAstropy", dimensions=DETECTOR_DIMENSIONS,
                           **kwargs)


def detector_image(*, doc: str, name: str, **kwargs: Any) -> cT.Input:
    """Return an input connection to an image of one detector, read as an
    ``lsst.images`` masked image (``MaskedImageV2``; tasks may change the
    storage class from their configuration).

    Parameters
    ----------
    doc : `str`
        What the image is.
    name : `str`
        Dataset type name.
    **kwargs
        Other connection fields (e.g. ``deferLoad=True``).

    Returns
    -------
    connection : `lsst.pipe.base.connectionTypes.Input`
        The connection.
    """
    return cT.Input(doc=doc, name=name, storageClass="MaskedImageV2", dimensions=DETECTOR_DIMENSIONS,
                    **kwargs)


def model_dataset(connection_type: type, *, doc: str) -> cT.BaseConnection:
    """Return a connection to the ``rbnodia_model`` dataset (no dimensions:
    the collection chooses the model).

    Parameters
    ----------
    connection_type : `type`
        `lsst.pipe.base.connectionTypes.PrerequisiteInput` to read the
        model, ``Output`` to write it.
    doc : `str`
        What the model is used for.

    Returns
    -------
    connection : `lsst.pipe.base.connectionTypes.BaseConnection`
        The connection.
    """
    return connection_type(doc=doc, name="rbnodia_model", storageClass="RealBogusModel", dimensions=())


def plot_output(*, doc: str, name: str) -> cT.Output:
    """Return an output connection to a figure (storage class ``Plot``, no
    dimensions: one figure for all the inputs).

    Parameters
    ----------
    doc : `str`
        What the figure shows.
    name : `str`
        Dataset type name.

    Returns
    -------
    connection : `lsst.pipe.base.connectionTypes.Output`
        The connection.
    """
    return cT.Output(doc=doc, name=name, storageClass="Plot", dimensions=())
