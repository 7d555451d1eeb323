"""Build data repositories without obs_base: dimension records, dataset
types and the inputs of the real/bogus pipeline.

Rubin repositories get their dimension records from an obs package's
``Instrument`` class.  Simulated data has no obs package, so this module
writes the minimal records the pipelines need (instrument, physical_filter,
day_obs, detector, visit, visit_detector_region with a real sky polygon).
"""

from __future__ import annotations

__all__ = [
    "INPUT_DATASET_TYPES",
    "MODEL_DATASET_TYPE",
    "SEED_CONFIG",
    "create_repo",
    "pretrained_model_collection",
    "put_detector_inputs",
    "put_model",
    "register_input_dataset_types",
    "register_instrument",
    "register_visit",
    "sky_polygon",
    "to_masked_image",
]

import datetime
import importlib.resources
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SEED_CONFIG = "butler-seed.yaml"
"""File in ``rbnodia.config`` (the top-level ``config/`` folder) that
declares rbnodia's storage classes and formatters."""

INPUT_DATASET_TYPES: dict[str, str] = {
    "science": "preliminary_visit_image",
    "template": "template_detector",
    "difference": "difference_image",
    "detections": "dia_source_unstandardized",
    "truth": "rbnodia_truth",
}
"""Role -> dataset type name of the pipeline inputs (Rubin AP names)."""

MODEL_DATASET_TYPE = "rbnodia_model"
"""Dataset type of trained models (storage class ``RealBogusModel``, no
dimensions): the pipelines read it as a prerequisite input, so the model is
chosen by input collection, as Rubin does for its own models."""

MASK_PLANES = {
    "BAD": "Bad pixel (e.g. a bad column).",
    "SAT": "Saturated pixel.",
    "CR": "Cosmic ray.",
    "EDGE": "Near the edge of the detector.",
    "NO_DATA": "No data (e.g. outside the warped template).",
    "DETECTED": "Part of a detected footprint.",
}


def seed_config_path() -> Path:
    """Return the path of the packaged Butler seed configuration.

    Returns
    -------
    path : `pathlib.Path`
        The seed configuration YAML file.
    """
    return Path(str(importlib.resources.files("rbnodia").joinpath("config", SEED_CONFIG)))


def create_repo(root: str | Path, *, clobber: bool = False):
    """Create a data repository (SQLite registry, local file datastore) that
    knows rbnodia's storage classes.

    Parameters
    ----------
    root : `str` or `pathlib.Path`
        Repository folder.
    clobber : `bool`
        Remove an existing folder first.

    Returns
    -------
    butler : `lsst.daf.butler.Butler`
        Writeable butler on the new repository.
    """
    from lsst.daf.butler import Butler, Config

    root = Path(root)
    if root.exists():
        if not clobber:
            raise FileExistsError(f"{root} exists; pass clobber=True (--clobber) to replace it.")
        shutil.rmtree(root)
    Butler.makeRepo(str(root), config=Config(str(seed_config_path())))
    return Butler.from_config(str(root), writeable=True)


def register_instrument(
    butler,
    instrument: str,
    detectors: Mapping[int, str],
    physical_filters: Mapping[str, str],
    *,
    visit_max: int = 10**8,
) -> None:
    """Insert instrument, physical_filter and detector records (bands are
    implied by the physical filters).

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Writeable butler.
    instrument : `str`
        Instrument name (e.g. ``SimDECam``).
    detectors : `~collections.abc.Mapping` [`int`, `str`]
        Detector id -> name.
    physical_filters : `~collections.abc.Mapping` [`str`, `str`]
        Physical filter name -> band.
    visit_max : `int`
        Largest allowed visit id.
    """
    registry = butler.registry
    registry.syncDimensionData(
        "instrument",
        {
            "name": instrument,
            "visit_max": visit_max,
            "exposure_max": visit_max,
            "detector_max": max(detectors) + 1,
            # No obs_base Instrument class exists for simulated cameras.
            "class_name": None,
        },
    )
    for name, band in physical_filters.items():
        registry.syncDimensionData("physical_filter", {"instrument": instrument, "name": name, "band": band})
    for detector_id, name in detectors.items():
        registry.syncDimensionData(
            "detector",
            {"instrument": instrument, "id": detector_id, "full_name": name, "purpose": "SCIENCE"},
        )


def sky_polygon(corners_radec_deg: Sequence[tuple[float, float]]):
    """Return a `lsst.sphgeom.ConvexPolygon` through sky corners given in degrees.

    Parameters
    ----------
    corners_radec_deg : `~collections.abc.Sequence` [`tuple` [`float`, `float`]]
        Corners as (RA, Dec) in degrees, in order around the polygon.

    Returns
    -------
    polygon : `lsst.sphgeom.ConvexPolygon`
        The polygon.
    """
    from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(ra, dec)) for ra, dec in corners_radec_deg])


def register_visit(
    butler,
    instrument: str,
    visit: int,
    physical_filter: str,
    *,
    obs_time: datetime.datetime,
    exposure_time: float,
    detector_regions: Mapping[int, Any],
) -> None:
    """Insert day_obs, visit and visit_detector_region records.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Writeable butler.
    instrument : `str`
        Instrument name, already registered with `register_instrument`.
    visit : `int`
        Visit id.
    physical_filter : `str`
        Filter name, already registered with `register_instrument`.
    obs_time : `datetime.datetime`
        UTC start of the exposure.
    exposure_time : `float`
        Seconds.
    detector_regions : `~collections.abc.Mapping`
        Detector id -> `lsst.sphgeom.ConvexPolygon` covered on the sky.
    """
    import astropy.time
    import astropy.units as u

    from lsst.daf.butler import Timespan
    from lsst.sphgeom import ConvexPolygon

    registry = butler.registry
    begin = astropy.time.Time(obs_time, scale="tai")
    end = begin + exposure_time * u.s
    day_obs = int((obs_time - datetime.timedelta(hours=12)).strftime("%Y%m%d"))
    registry.syncDimensionData(
        "day_obs",
        {"instrument": instrument, "id": day_obs,
         "timespan": Timespan(begin - 12 * u.hour, begin + 12 * u.hour)},
    )
    vertices = [v for region in detector_regions.values() for v in region.getVertices()]
    registry.syncDimensionData(
        "visit",
        {
            "instrument": instrument,
            "id": visit,
            "name": f"{instrument}_{visit}",
            "physical_filter": physical_filter,
            "day_obs": day_obs,
            "exposure_time": exposure_time,
            "seq_num": visit % 100000,
            "science_program": "rbnodia-sim",
            "observation_reason": "science",
            "timespan": Timespan(begin, end),
            "region": ConvexPolygon.convexHull(vertices),
        },
    )
    for detector_id, region in detector_regions.items():
        registry.syncDimensionData(
            "visit_detector_region",
            {"instrument": instrument, "visit": visit, "detector": detector_id, "region": region},
        )


def register_input_dataset_types(
    butler,
    *,
    image_storage_class: str = "MaskedImageV2",
    catalog_storage_class: str = "ArrowAstropy",
    names: Mapping[str, str] = INPUT_DATASET_TYPES,
) -> None:
    """Register the pipeline's input dataset types (idempotent).

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Writeable butler.
    image_storage_class : `str`, optional
        Storage class of the science, template and difference images.
    catalog_storage_class : `str`, optional
        Storage class of the detection catalog.
    names : `~collections.abc.Mapping` [`str`, `str`], optional
        Role (``science``, ``template``, ``difference``, ``detections``) ->
        dataset type name.
    """
    from lsst.daf.butler import DatasetType

    dimensions = butler.dimensions.conform(["instrument", "visit", "detector"])
    for role, name in names.items():
        is_image = role in ("science", "template", "difference")
        storage_class = image_storage_class if is_image else catalog_storage_class
        butler.registry.registerDatasetType(DatasetType(name, dimensions, storage_class))


def to_masked_image(
    array: np.ndarray,
    *,
    variance: np.ndarray | None = None,
    mask: Mapping[str, np.ndarray] | None = None,
    wcs=None,
    origin: tuple[int, int] = (0, 0),
    unit: str | None = "nJy",
    detector_frame: Mapping[str, Any] | None = None,
):
    """Wrap numpy planes as an `lsst.images.MaskedImage`.

    Parameters
    ----------
    array : `numpy.ndarray`
        2-d image indexed ``[y, x]``.
    variance : `numpy.ndarray`, optional
        Variance plane (defaults to 1).
    mask : `~collections.abc.Mapping` [`str`, `numpy.ndarray`], optional
        Mask plane name (one of ``MASK_PLANES``) -> boolean array.
    wcs : `astropy.wcs.WCS`, optional
        FITS WCS of the pixel grid (0-based pixel coordinates of ``array``).
    origin : `tuple` [`int`, `int`]
        ``(x0, y0)`` of ``array[0, 0]``.
    unit : `str`, optional
        Pixel unit.
    detector_frame : `~collections.abc.Mapping`, optional
        ``instrument``, ``visit`` and ``detector`` of the pixel grid; the
        sky projection then maps a detector frame, as for visit images.

    Returns
    -------
    image : `lsst.images.MaskedImage`
    """
    import astropy.units as u

    from lsst.images import Box, Image, MaskedImage, MaskPlane, MaskSchema, SkyProjection
    from lsst.images import _transforms as transforms

    height, width = array.shape
    bbox = Box.from_shape((height, width), start=(origin[1], origin[0]))
    projection = None
    if wcs is not None:
        if detector_frame is not None:
            frame = transforms.DetectorFrame(
                instrument=detector_frame["instrument"],
                visit=detector_frame.get("visit"),
                detector=detector_frame["detector"],
                bbox=bbox,
            )
        else:
            frame = transforms.GeneralFrame(unit=u.pix)
        projection = SkyProjection.from_fits_wcs(wcs, frame, x0=origin[0], y0=origin[1])
    pixel_unit = u.Unit(unit) if unit else None
    image = Image(np.asarray(array, dtype=np.float32), bbox=bbox, unit=pixel_unit, sky_projection=projection)
    var = None
    if variance is not None:
        var = Image(
            np.asarray(variance, dtype=np.float32),
            bbox=bbox,
            unit=pixel_unit**2 if pixel_unit else None,
            sky_projection=projection,
        )
    schema = MaskSchema([MaskPlane(name, doc) for name, doc in MASK_PLANES.items()])
    result = MaskedImage(image, variance=var, mask_schema=schema)
    for name, plane in (mask or {}).items():
        if name not in MASK_PLANES:
            raise ValueError(f"Unknown mask plane {name!r}; known: {sorted(MASK_PLANES)}.")
        result.mask.set(name, np.asarray(plane, dtype=bool))
    return result


def put_detector_inputs(butler, run: str, data_id: Mapping[str, Any], datasets: Mapping[str, Any]) -> None:
    """Write one detector's inputs into ``run``.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Writeable butler.
    run : `str`
        RUN collection (created if needed).
    data_id : `~collections.abc.Mapping`
        ``instrument``, ``visit``, ``detector``.
    datasets : `~collections.abc.Mapping` [`str`, `object`]
        Role (key of `INPUT_DATASET_TYPES`) -> in-memory dataset.
    """
    butler.registry.registerRun(run)
    for role, obj in datasets.items():
        butler.put(obj, INPUT_DATASET_TYPES[role], data_id, run=run)


def pretrained_model_collection(name: str) -> str:
    """Return the conventional RUN collection of a model: ``pretrained_models/rbnodia_<name>``.

    Parameters
    ----------
    name : `str`
        Model name.

    Returns
    -------
    collection : `str`
        The collection name.
    """
    return f"pretrained_models/rbnodia_{name}"


def put_model(butler, model: Any, collection: str):
    """Write a model as the ``rbnodia_model`` dataset of a new RUN collection.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        Writeable butler whose configuration knows the ``RealBogusModel``
        storage class (a repository made with rbnodia's seed config, or
        ``DAF_BUTLER_CONFIG_PATH`` from ``rbnodia env``).
    model : `rbnodia.nn.RealBogusModel`
        The model.
    collection : `str`
        RUN collection to write; it must not hold a model already (a
        collection names one model for good, as ``pretrained_models/...``
        collections do in Rubin repositories).

    Returns
    -------
    ref : `lsst.daf.butler.DatasetRef`
        The written dataset.

    Raises
    ------
    FileExistsError
        If the collection already holds an ``rbnodia_model``.
    """
    from lsst.daf.butler import DatasetType, MissingCollectionError

    butler.registry.registerDatasetType(
        DatasetType(MODEL_DATASET_TYPE, butler.dimensions.empty, "RealBogusModel")
    )
    try:
        existing = butler.query_datasets(MODEL_DATASET_TYPE, collections=collection, explain=False)
    except MissingCollectionError:
        existing = []
    if existing:
        raise FileExistsError(
            f"Collection {collection!r} already holds {MODEL_DATASET_TYPE} {existing[0].id}; put the "
            "model into a new collection (a collection names one model, so results stay reproducible)."
        )
    butler.registry.registerRun(collection)
    return butler.put(model, MODEL_DATASET_TYPE, {}, run=collection)
