"""Image adapters: any supported image type -> `rbnodia.core.PixelImage`,
plus pixel -> sky conversion from the image's WCS.

The supported inputs are:

- `numpy.ndarray` (2-d, origin 0, no mask, no WCS);
- `lsst.images.Image`, `lsst.images.MaskedImage` and its subclasses
  (`~lsst.images.VisitImage`, `~lsst.images.DifferenceImage`);
- afw ``Exposure``, ``MaskedImage`` and ``Image`` (recognised by their
  methods, so afw is never imported here).
"""

from __future__ import annotations

__all__ = ["UnsupportedInputError", "pixel_to_sky", "to_pixel_image", "variance_array"]

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.preprocess import PixelImage
from .afw import afw_pixel_image, afw_pixel_to_sky


class UnsupportedInputError(TypeError):
    """An input object of a type no adapter understands."""


def _is_lsst_images(obj: Any) -> bool:
    return type(obj).__module__.startswith("lsst.images")


def _lsst_images_bad(mask: Any, planes: Iterable[str]) -> np.ndarray | None:
    present = [p for p in planes if p in mask.schema]
    if not present:
        return None
    bad = np.zeros(mask.array.shape[:2], dtype=bool)
    for plane in present:
        bad |= mask.get(plane)
    return bad


def to_pixel_image(obj: Any, bad_mask_planes: Iterable[str] = ("NO_DATA",)) -> PixelImage:
    """Convert an image of any supported type to a `PixelImage`.

    Parameters
    ----------
    obj
        The image (see the module docstring for the supported types).
    bad_mask_planes : iterable of `str`
        Mask planes whose pixels must not be used; planes the image does not
        define are ignored.

    Returns
    -------
    image : `rbnodia.core.PixelImage`
        A view of the pixels (not a copy), the unusable-pixel mask and the
        origin.

    Raises
    ------
    UnsupportedInputError
        If the type is not supported, or an array is not a 2-d array of
        real numbers.
    """
    planes = tuple(bad_mask_planes)
    if isinstance(obj, PixelImage):
        return obj
    if isinstance(obj, np.ndarray):
        if obj.ndim != 2:
            raise UnsupportedInputError(f"Image arrays must be 2-d, got shape {obj.shape}.")
        if obj.dtype.kind not in "biuf":
            raise UnsupportedInputError(f"Image arrays must hold real numbers, got dtype {obj.dtype}.")
        return PixelImage(obj)
    if _is_lsst_images(obj):
        bbox = obj.bbox
        origin = (int(bbox.x.start), int(bbox.y.start))
        if hasattr(obj, "mask") and hasattr(obj, "image"):
            return PixelImage(obj.image.array, _lsst_images_bad(obj.mask, planes), origin)
        if hasattr(obj, "array"):
            return PixelImage(obj.array, None, origin)
    afw_image = afw_pixel_image(obj, planes)
    if afw_image is not None:
        return afw_image
    raise UnsupportedInputError(
        f"Unsupported image type {type(obj).__module__}.{type(obj).__qualname__}; expected a numpy array, "
        "an lsst.images Image/MaskedImage/VisitImage, or an afw Exposure/MaskedImage/Image."
    )


def variance_array(obj: Any) -> np.ndarray | None:
    """Return the variance plane of a masked image, or `None` if it has none.

    Parameters
    ----------
    obj
        The image (see the module docstring for the supported types).

    Returns
    -------
    variance : `numpy.ndarray` or `None`
        A view of the variance pixels, shaped like the image; `None` for
        plain images and arrays.
    """
    if hasattr(obj, "getMaskedImage"):  # afw Exposure
        obj = obj.getMaskedImage()
    if hasattr(obj, "getVariance"):  # afw MaskedImage
        return obj.variance.array
    if _is_lsst_images(obj) and hasattr(obj, "variance"):
        return obj.variance.array
    return None


def pixel_to_sky(obj: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sky coordinates (ICRS, degrees) of pixel positions from an image's WCS.

    Parameters
    ----------
    obj
        Image carrying a WCS (lsst.images ``sky_projection`` or afw
        ``getWcs()``), or the lsst.images ``SkyProjection`` or afw
        ``SkyWcs`` itself.
    x, y : `numpy.ndarray`
        Pixel positions.

    Returns
    -------
    ra, dec : `numpy.ndarray`
        Degrees; NaN everywhere if the image has no WCS.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    nan = np.full(x.shape, np.nan)
    if len(x) == 0:
        return nan, nan.copy()
    projection = None
    if _is_lsst_images(obj):
        projection = obj if hasattr(obj, "pixel_to_sky") else getattr(obj, "sky_projection", None)
    if projection is not None:
        sky = projection.pixel_to_sky(x=x, y=y)
        return np.asarray(sky.ra.deg, dtype=np.float64), np.asarray(sky.dec.deg, dtype=np.float64)
    sky = afw_pixel_to_sky(obj, x, y)
    return sky if sky is not None else (nan, nan.copy())
