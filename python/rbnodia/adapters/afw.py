"""Everything rbnodia does with afw objects, in one small module.

lsst.afw only exists in the LSST stack container, so nothing here imports it
at module level: inputs are recognised by their type's module
(``lsst.afw...``) and their methods, and `to_afw_catalog` imports
``lsst.afw.table`` when it is called.  The calls used are those of afw's
current Python API (reviewed against lsst/afw ``main``):

- images: ``Exposure.getMaskedImage()``, ``MaskedImage.image/.mask``,
  ``getXY0()``, ``Mask.getMaskPlaneDict()``, ``Mask.getPlaneBitMask(list)``,
  ``Image.array``;
- WCS: ``Exposure.getWcs()``, ``SkyWcs.pixelToSkyArray(x, y, degrees=True)``;
- strips of a deferred ``Exposure``: ``lsst.geom.Box2I(Point2I, Extent2I)``
  as the ``bbox`` read parameter (what afw's Exposure formatter takes; the
  lsst.images formatter converts it too), ``Box2I.getMinX/getMinY/
  getWidth/getHeight`` for the ``bbox`` component;
- catalogs: ``catalog[name]`` column access (aliases such as
  ``slot_Centroid_x`` resolve through the schema's alias map),
  ``isContiguous()``, ``copy(deep=True)``;
- output: ``Schema.addField(name, type=..., doc=..., size=...)`` with the
  type codes ``L`` (int64), ``F`` (float32), ``D`` (float64) and ``String``
  (fixed size), ``BaseCatalog(schema)``, ``resize``, column assignment, and
  ``BaseRecord.set(key, value)`` for strings (string columns have no
  array view).

``tests/test_afw_stack.py`` runs these against the real afw where it
imports, and is skipped elsewhere.
"""

from __future__ import annotations

__all__ = [
    "afw_box",
    "afw_box_limits",
    "afw_catalog_columns",
    "afw_pixel_image",
    "afw_pixel_to_sky",
    "is_afw",
    "to_afw_catalog",
]

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.preprocess import PixelImage

_AFW_TYPES = {np.dtype(np.int64): "L", np.dtype(np.float32): "F", np.dtype(np.float64): "D"}


def is_afw(obj: Any) -> bool:
    """Tell whether ``obj`` is an afw object, by its type's module (afw is
    not imported).

    Parameters
    ----------
    obj : `object`
        Any object.

    Returns
    -------
    is_afw : `bool`
        Whether ``type(obj)`` is defined in ``lsst.afw``.
    """
    return type(obj).__module__.startswith("lsst.afw")


def _bad_pixels(mask: Any, planes: Iterable[str]) -> np.ndarray | None:
    present = [p for p in planes if p in mask.getMaskPlaneDict()]
    if not present:
        return None
    return (mask.array & mask.getPlaneBitMask(present)) != 0


def afw_pixel_image(obj: Any, bad_mask_planes: Iterable[str]) -> PixelImage | None:
    """Return a `PixelImage` view of an afw Exposure, MaskedImage or Image.

    Parameters
    ----------
    obj : `object`
        An afw ``Exposure``, ``MaskedImage`` or ``Image``, or anything else.
    bad_mask_planes : `~collections.abc.Iterable` [`str`]
        Mask planes that make a pixel unusable; planes the mask lacks are
        ignored.

    Returns
    -------
    image : `PixelImage` or `None`
        A view of the pixels (no copy), the bad-pixel mask and the origin;
        `None` if ``obj`` is none of the afw image types.
    """
    if hasattr(obj, "getMaskedImage"):  # Exposure
        obj = obj.getMaskedImage()
    if hasattr(obj, "getImage") and hasattr(obj, "getMask"):  # MaskedImage
        xy0 = obj.getXY0()
        return PixelImage(obj.image.array, _bad_pixels(obj.mask, bad_mask_planes),
                          (int(xy0.getX()), int(xy0.getY())))
    if is_afw(obj) and hasattr(obj, "array") and hasattr(obj, "getXY0"):  # Image
        xy0 = obj.getXY0()
        return PixelImage(obj.array, None, (int(xy0.getX()), int(xy0.getY())))
    return None


def afw_pixel_to_sky(obj: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Convert pixel positions to ICRS degrees with an afw object's WCS.

    Parameters
    ----------
    obj : `object`
        An afw object with ``getWcs()`` (e.g. an ``Exposure``), or the
        ``SkyWcs`` itself.
    x, y : `numpy.ndarray`
        Pixel positions (afw's parent coordinates).

    Returns
    -------
    radec : `tuple` [`numpy.ndarray`, `numpy.ndarray`] or `None`
        Right ascension and declination in degrees; `None` if ``obj`` has
        no WCS.
    """
    if hasattr(obj, "getWcs"):
        wcs = obj.getWcs()
    else:
        wcs = obj if is_afw(obj) and hasattr(obj, "pixelToSkyArray") else None
    if wcs is None:
        return None
    ra, dec = wcs.pixelToSkyArray(x, y, degrees=True)
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def afw_box(x0: int, y0: int, x1: int, y1: int) -> Any:
    """Return the ``lsst.geom.Box2I`` of the pixels ``x0 <= x < x1``,
    ``y0 <= y < y1``, or `None` without lsst.geom.

    Parameters
    ----------
    x0, y0 : `int`
        First column and row.
    x1, y1 : `int`
        One past the last column and row.

    Returns
    -------
    box : `lsst.geom.Box2I` or `None`
        The box (a ``bbox`` read parameter for afw and lsst.images
        formatters alike); `None` where lsst.geom does not import.
    """
    try:
        import lsst.geom as geom
    except ImportError:
        return None
    return geom.Box2I(geom.Point2I(int(x0), int(y0)), geom.Extent2I(int(x1 - x0), int(y1 - y0)))


def afw_box_limits(box: Any) -> tuple[int, int, int, int] | None:
    """Return ``(x0, y0, x1, y1)`` of an ``lsst.geom.Box2I``.

    Parameters
    ----------
    box : `object`
        An ``lsst.geom.Box2I``, or anything else.

    Returns
    -------
    limits : `tuple` [`int`, `int`, `int`, `int`] or `None`
        First column and row, and one past the last ones; `None` if ``box``
        is not a ``Box2I``.
    """
    if not hasattr(box, "getMinX"):
        return None
    x0, y0 = int(box.getMinX()), int(box.getMinY())
    return x0, y0, x0 + int(box.getWidth()), y0 + int(box.getHeight())


def afw_catalog_columns(catalog: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Copy the named columns of an afw catalog.

    Parameters
    ----------
    catalog : `lsst.afw.table.BaseCatalog`
        The catalog (made contiguous by a deep copy if it is not).
    names : `~collections.abc.Sequence` [`str`]
        Field names or aliases.

    Returns
    -------
    columns : `dict` [`str`, `numpy.ndarray`]
        A copy of each named column.

    Raises
    ------
    KeyError
        If a column is missing (aliases count); the message lists the
        catalog's fields.
    """
    if not catalog.isContiguous():
        catalog = catalog.copy(deep=True)
    missing = []
    for name in names:
        try:
            catalog.schema.find(name)
        except LookupError:
            missing.append(name)
    if missing:
        raise KeyError(
            f"Detection catalog lacks column(s) {missing}; it has {list(catalog.schema.getNames())}."
        )
    return {name: np.array(catalog[name]) for name in names}


def to_afw_catalog(columns: Mapping[str, np.ndarray], docs: Mapping[str, str],
                   string_sizes: Mapping[str, int]) -> Any:
    """Build an afw ``BaseCatalog`` holding ``columns``.

    Parameters
    ----------
    columns : `~collections.abc.Mapping` [`str`, `numpy.ndarray`]
        Column name -> values (int64, float32, float64 or str), in order.
    docs : `~collections.abc.Mapping` [`str`, `str`]
        Column name -> field documentation.
    string_sizes : `~collections.abc.Mapping` [`str`, `int`]
        Fixed size of each string column.

    Returns
    -------
    catalog : `lsst.afw.table.BaseCatalog`

    Raises
    ------
    ImportError
        Without lsst.afw (outside the LSST stack).
    ValueError
        If a string is longer than its field or a dtype has no afw type.
    """
    try:
        import lsst.afw.table as afw_table
    except ImportError as err:
        raise ImportError("Writing an afw Catalog needs lsst.afw (the LSST stack); outside it use "
                          "outputStorageClass='ArrowAstropy'.") from err
    schema = afw_table.Schema()
    keys = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind == "U":
            size = string_sizes[name]
            longest = max((len(v) for v in values.tolist()), default=0)
            if longest > size:
                raise ValueError(f"Column {name!r} holds strings of up to {longest} characters; its field "
                                 f"has {size}.")
            keys[name] = schema.addField(name, type="String", size=size, doc=docs[name])
        elif values.dtype in _AFW_TYPES:
            keys[name] = schema.addField(name, type=_AFW_TYPES[values.dtype], doc=docs[name])
        else:
            raise ValueError(f"Column {name!r} has dtype {values.dtype}, which has no afw field type here.")
    catalog = afw_table.BaseCatalog(schema)
    n = len(next(iter(columns.values()))) if columns else 0
    catalog.resize(n)
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind == "U":
            for record, value in zip(catalog, values.tolist()):
                record.set(keys[name], value)
        else:
            catalog[name] = values
    return catalog
