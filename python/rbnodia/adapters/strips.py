"""Horizontal strips of an image, from memory or read from the Butler.

`image_strips` wraps an image given to a task as an `ImageStrips`: the
image's extent, its rows ``begin <= y < end`` as a
`rbnodia.core.PixelImage`, and its WCS.  In-memory images (everything
`rbnodia.adapters.images.to_pixel_image` takes) give views of their rows.
A `lsst.daf.butler.DeferredDatasetHandle` (a ``deferLoad`` connection) is
read strip by strip with the ``bbox`` read parameter, so that a task never
holds a whole detector:

- ``MaskedImageV2``: the ``image`` and ``mask`` components of the strip in
  one read of the ``components`` component (the variance plane is never
  read), and the ``bbox`` and ``sky_projection`` components, for the extent
  and the WCS, in another;
- ``VisitImage`` and ``DifferenceImage`` (possibly converted from afw
  Exposure datasets, whose formatter reads only whole objects): the whole
  strip;
- any other storage class (``ExposureF``...): an afw Exposure strip, with
  the box and WCS calls of `rbnodia.adapters.afw`.

The FITS files lsst.images writes are tile-compressed by rows, so a strip
read decompresses only the strip's rows.
"""

from __future__ import annotations

__all__ = ["ImageStrips", "image_strips", "is_deferred_handle"]

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.preprocess import PixelImage
from .afw import afw_box, afw_box_limits, afw_pixel_image, afw_pixel_to_sky
from .images import _lsst_images_bad, pixel_to_sky, to_pixel_image

_COMPONENT_STORAGE_CLASSES = frozenset({"MaskedImageV2"})
"""Read storage classes whose ``image`` and ``mask`` components are read
separately."""

_LSST_IMAGES_STORAGE_CLASSES = frozenset({"MaskedImageV2", "VisitImage", "DifferenceImage"})
"""Read storage classes that give lsst.images objects."""


def is_deferred_handle(obj: Any) -> bool:
    """Tell whether ``obj`` is a Butler deferred dataset handle.

    Parameters
    ----------
    obj : `object`
        Anything.

    Returns
    -------
    deferred : `bool`
        Whether ``obj`` is a `lsst.daf.butler.DeferredDatasetHandle`
        (recognised without importing daf_butler).
    """
    kind = type(obj)
    return kind.__module__.startswith("lsst.daf.butler") and kind.__name__ == "DeferredDatasetHandle"


class ImageStrips:
    """Rows of one image as `rbnodia.core.PixelImage` strips.

    Attributes
    ----------
    x0, y0 : `int`
        Pixel coordinates of the image's first column and row.
    width, height : `int`
        Columns and rows of the image.
    """

    x0: int = 0
    y0: int = 0
    width: int = 0
    height: int = 0

    def read(self, begin: int, end: int) -> PixelImage:
        """Return the rows ``begin <= y < end`` (clipped to the image).

        Parameters
        ----------
        begin, end : `int`
            First row and one past the last, in pixel coordinates.

        Returns
        -------
        strip : `rbnodia.core.PixelImage`
            The strip's pixels, unusable-pixel mask and origin.
        """
        begin, end = self._clip(begin, end)
        if end <= begin:
            return PixelImage(np.empty((0, self.width), dtype=np.float32), None, (self.x0, begin))
        return self._read(begin, end)

    def pixel_to_sky(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sky coordinates (ICRS, degrees) from the image's WCS.

        Parameters
        ----------
        x, y : `numpy.ndarray`
            Pixel positions.

        Returns
        -------
        ra, dec : `numpy.ndarray`
            Degrees; NaN everywhere if the image has no WCS.
        """
        raise NotImplementedError

    def _clip(self, begin: int, end: int) -> tuple[int, int]:
        return max(int(begin), self.y0), min(int(end), self.y0 + self.height)

    def _read(self, begin: int, end: int) -> PixelImage:
        raise NotImplementedError


class _InMemoryStrips(ImageStrips):
    """Views of the rows of an image held in memory."""

    def __init__(self, obj: Any, planes: tuple[str, ...]) -> None:
        self._obj = obj
        self._image = to_pixel_image(obj, planes)
        self.x0, self.y0 = self._image.origin
        self.height, self.width = self._image.array.shape

    def _read(self, begin: int, end: int) -> PixelImage:
        rows = slice(begin - self.y0, end - self.y0)
        bad = None if self._image.bad is None else self._image.bad[rows]
        return PixelImage(self._image.array[rows], bad, (self.x0, begin))

    def pixel_to_sky(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pixel_to_sky(self._obj, x, y)


class _DeferredStrips(ImageStrips):
    """Strips read from the Butler with the ``bbox`` read parameter."""

    def __init__(self, handle: Any, planes: tuple[str, ...], storage_class: str) -> None:
        self._handle = handle
        self._planes = planes
        self._lsst_images = storage_class in _LSST_IMAGES_STORAGE_CLASSES
        self._components = storage_class in _COMPONENT_STORAGE_CLASSES
        self._sky: Any = None
        if self._components:  # one file open for the extent and the WCS
            parts = handle.get(component="components", parameters={"components": ["bbox", "sky_projection"]})
            box, self._sky = parts["bbox"], parts["sky_projection"]
        else:
            box = handle.get(component="bbox")
        limits = afw_box_limits(box)
        if limits is None:  # an lsst.images Box
            limits = (int(box.x.start), int(box.y.start), int(box.x.stop), int(box.y.stop))
        self.x0, self.y0 = limits[0], limits[1]
        self.width, self.height = limits[2] - limits[0], limits[3] - limits[1]

    def _box(self, begin: int, end: int) -> Any:
        if self._components:
            from lsst.images import Box

            return Box.factory[begin:end, self.x0:self.x0 + self.width]
        box = afw_box(self.x0, begin, self.x0 + self.width, end)
        if box is None:  # no lsst.geom: the dataset cannot be an afw one
            from lsst.images import Box

            box = Box.factory[begin:end, self.x0:self.x0 + self.width]
        return box

    def _read(self, begin: int, end: int) -> PixelImage:
        parameters = {"bbox": self._box(begin, end)}
        if self._components:  # image and mask in one read (one file open), never the variance
            parts = self._handle.get(component="components",
                                     parameters={**parameters, "components": ["image", "mask"]})
            image, mask = parts["image"], parts["mask"]
            return PixelImage(image.array, _lsst_images_bad(mask, self._planes), (self.x0, begin))
        strip = self._handle.get(parameters=parameters)
        if self._sky is None:
            self._sky = strip.sky_projection if self._lsst_images else strip.getWcs()
        if self._lsst_images:
            return to_pixel_image(strip, self._planes)
        return afw_pixel_image(strip, self._planes)

    def pixel_to_sky(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        if self._sky is None:
            if self._components:
                self._sky = self._handle.get(component="sky_projection")
            else:
                self.read(self.y0, self.y0 + 1)
        if self._sky is None:
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        if self._lsst_images:
            return pixel_to_sky(self._sky, x, y)
        radec = afw_pixel_to_sky(self._sky, x, np.asarray(y, dtype=np.float64))
        return radec if radec is not None else (np.full(x.shape, np.nan), np.full(x.shape, np.nan))


def image_strips(obj: Any, bad_mask_planes: Iterable[str] = ("NO_DATA",)) -> ImageStrips:
    """Wrap an image, in memory or behind a deferred handle, as strips.

    Parameters
    ----------
    obj : `object`
        An image of any type `rbnodia.adapters.images.to_pixel_image`
        takes, or a `lsst.daf.butler.DeferredDatasetHandle` of one.
    bad_mask_planes : `~collections.abc.Iterable` [`str`]
        Mask planes whose pixels must not be used.

    Returns
    -------
    strips : `ImageStrips`
        The image's extent, strips and WCS.

    Raises
    ------
    rbnodia.adapters.images.UnsupportedInputError
        If an in-memory image has an unsupported type.
    """
    planes = tuple(bad_mask_planes)
    if not is_deferred_handle(obj):
        return _InMemoryStrips(obj, planes)
    storage_class = obj.storageClass if obj.storageClass is not None else obj.ref.datasetType.storageClass
    name = storage_class if isinstance(storage_class, str) else storage_class.name
    return _DeferredStrips(obj, planes, name)
