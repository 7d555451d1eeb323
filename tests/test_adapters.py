"""Adapters from lsst.images, astropy, pandas and numpy inputs."""

import numpy as np
import pandas as pd
import pytest
from astropy.table import MaskedColumn, Table
from astropy.wcs import WCS

from rbnodia.adapters import UnsupportedInputError, pixel_to_sky, to_detections, to_pixel_image
from rbnodia.butler.repo import to_masked_image


def make_wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [50.0, 40.0]
    wcs.wcs.cd = np.array([[-0.2, 0.01], [0.01, 0.2]]) / 3600
    return wcs


def test_lsst_images_masked_image():
    array = np.random.default_rng(0).normal(size=(60, 80)).astype(np.float32)
    no_data = np.zeros_like(array, dtype=bool)
    no_data[:, :5] = True
    sat = np.zeros_like(no_data)
    sat[30, 30] = True
    wcs = make_wcs()
    image = to_masked_image(array, mask={"NO_DATA": no_data, "SAT": sat}, wcs=wcs,
                            detector_frame={"instrument": "X", "visit": 1, "detector": 2})
    pix = to_pixel_image(image, ["NO_DATA", "NOT_A_PLANE"])
    np.testing.assert_array_equal(pix.array, array)
    np.testing.assert_array_equal(pix.bad, no_data)
    assert pix.origin == (0, 0)
    assert to_pixel_image(image, ["SAT", "NO_DATA"]).bad.sum() == no_data.sum() + 1
    x, y = np.array([0.0, 10.5, 79.0]), np.array([0.0, 20.0, 59.0])
    ra, dec = pixel_to_sky(image, x, y)
    exp_ra, exp_dec = wcs.pixel_to_world_values(x, y)
    np.testing.assert_allclose(ra, exp_ra, atol=1e-9)
    np.testing.assert_allclose(dec, exp_dec, atol=1e-9)


def test_origin_from_bbox():
    image = to_masked_image(np.zeros((10, 12), np.float32), origin=(100, 200))
    assert to_pixel_image(image).origin == (100, 200)
    assert to_pixel_image(image.image).origin == (100, 200)


def test_numpy_and_unsupported():
    assert to_pixel_image(np.zeros((3, 4))).bad is None
    ra, dec = pixel_to_sky(np.zeros((3, 4)), np.array([1.0]), np.array([1.0]))
    assert np.isnan(ra).all() and np.isnan(dec).all()
    with pytest.raises(UnsupportedInputError, match="Unsupported image type"):
        to_pixel_image("not an image")
    with pytest.raises(UnsupportedInputError):
        to_pixel_image(np.zeros((2, 2, 2)))
    for dtype in (np.complex64, object, "U3"):
        with pytest.raises(UnsupportedInputError, match="real numbers"):
            to_pixel_image(np.zeros((3, 4), dtype=dtype))


@pytest.mark.parametrize("kind", ["astropy", "pandas", "structured", "dict"])
def test_catalog_types(kind):
    data = {"diaSourceId": np.array([5, 3, 9], dtype=np.int64), "cx": [1.0, 2.0, 3.0], "cy": [4.0, 5.0, 6.0]}
    table = {
        "astropy": lambda: Table(data),
        "pandas": lambda: pd.DataFrame(data),
        "structured": lambda: Table(data).as_array(),
        "dict": lambda: data,
    }[kind]()
    det = to_detections(table, "diaSourceId", "cx", "cy")
    assert det.id.tolist() == [5, 3, 9] and det.id.dtype == np.int64
    assert det.x.tolist() == [1.0, 2.0, 3.0] and det.y.tolist() == [4.0, 5.0, 6.0]


def test_catalog_errors_and_masked_positions():
    table = Table({"id": [1, 2], "x": MaskedColumn([1.0, 2.0], mask=[False, True]), "y": [1.0, 2.0]})
    det = to_detections(table)
    assert np.isnan(det.x[1]) and det.x[0] == 1.0
    with pytest.raises(KeyError, match="lacks column.*slot_Centroid_x.*it has"):
        to_detections(table, x_column="slot_Centroid_x")
    with pytest.raises(ValueError, match="integer ids"):
        to_detections(Table({"id": [1.5], "x": [1.0], "y": [1.0]}))


@pytest.mark.parametrize("columns, message", [
    ({"id": pd.array([1, None], dtype="Int64"), "x": [1.0, 2.0], "y": [1.0, 2.0]}, "missing"),
    ({"id": [1, 2], "x": ["1.0", "2.0"], "y": [1.0, 2.0]}, "'x' must hold numbers"),
    ({"id": [1, 2], "x": [1.0, 2.0], "y": [b"1", b"2"]}, "'y' must hold numbers"),
    ({"id": [1, 2], "x": np.array([1.0, "a"], dtype=object), "y": [1.0, 2.0]}, "'x' must hold numbers"),
    ({"id": [1, 2], "x": np.zeros((2, 2)), "y": [1.0, 2.0]}, "'x' must be 1-d"),
    ({"id": np.arange(3), "x": np.zeros(2), "y": np.zeros(3)}, "differ in length: 3, 2 and 3"),
])
def test_catalog_columns_that_cannot_be_read_are_named(columns, message):
    table = pd.DataFrame(columns) if isinstance(columns["id"], pd.arrays.IntegerArray) else columns
    with pytest.raises(ValueError, match=message):
        to_detections(table)


def test_missing_positions_as_none_become_nan():
    det = to_detections({"id": np.arange(3), "x": np.array([1.0, None, 3.0], dtype=object), "y": np.ones(3)})
    assert det.x[0] == 1.0 and np.isnan(det.x[1]) and det.x[2] == 3.0
