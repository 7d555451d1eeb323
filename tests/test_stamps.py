"""Stamp cutting: positions, edges, bad pixels, origins."""

import numpy as np
import pytest

from rbnodia.core import StampFlag, cut_stamps
from rbnodia.core.flags import flag_columns


def image(h=100, w=120):
    return np.arange(h * w, dtype=np.float32).reshape(h, w)


def test_interior_stamp_is_exact_slice():
    img = image()
    cut = cut_stamps(img, [60.2], [40.7], 11)
    np.testing.assert_array_equal(cut.pixels[0], img[41 - 5 : 41 + 6, 60 - 5 : 60 + 6])
    assert cut.flags[0] == 0 and cut.usable.all()


def test_half_pixel_rounds_up_like_afw():
    cut = cut_stamps(image(), [10.5], [10.5], 3)
    assert cut.pixels[0, 1, 1] == image()[11, 11]


def test_origin_offset():
    img = image()
    cut = cut_stamps(img, [1060.0], [2040.0], 5, origin=(1000, 2000))
    np.testing.assert_array_equal(cut.pixels[0], img[38:43, 58:63])


def test_edge_stamp_padded_and_flagged_not_dropped():
    cut = cut_stamps(image(), [2.0, 119.0], [50.0, 99.0], 11)
    assert len(cut) == 2
    assert all(f & StampFlag.EDGE for f in cut.flags)
    assert not any(f & StampFlag.NO_DATA for f in cut.flags)
    assert np.isnan(cut.pixels[0, :, :3]).all() and not cut.usable[0, :, :3].any()
    assert cut.usable[0, :, 3:].all()


def test_off_image_centre_is_no_data():
    cut = cut_stamps(image(), [-30.0, np.nan], [10.0, 10.0], 11)
    assert all(f & StampFlag.NO_DATA for f in cut.flags)
    assert not cut.usable.any()


def test_image_without_pixels_gives_no_data_rows():
    for shape in ((0, 0), (0, 40), (40, 0)):
        cut = cut_stamps(np.zeros(shape, np.float32), [5.0, 20.0], [5.0, 20.0], 11,
                         bad=np.zeros(shape, bool))
        assert len(cut.flags) == 2 and all(f & StampFlag.NO_DATA for f in cut.flags)
        assert not cut.usable.any()


def test_nan_and_masked_pixels_flagged():
    img = image()
    img[50, 50] = np.nan
    bad = np.zeros(img.shape, bool)
    bad[20, 20] = True
    cut = cut_stamps(img, [50, 20, 90], [50, 20, 80], 5, bad=bad)
    assert cut.flags.tolist() == [StampFlag.BAD_PIXELS, StampFlag.BAD_PIXELS, 0]
    assert not cut.usable[0, 2, 2] and not cut.usable[1, 2, 2]


def test_vectorised_matches_loop():
    rng = np.random.default_rng(3)
    img = rng.normal(size=(200, 300)).astype(np.float32)
    xs, ys = rng.uniform(-10, 310, 500), rng.uniform(-10, 210, 500)
    cut = cut_stamps(img, xs, ys, 21)
    padded = np.pad(img, 10, constant_values=np.nan)
    for i in range(0, 500, 37):
        cx, cy = int(np.floor(xs[i] + 0.5)), int(np.floor(ys[i] + 0.5))
        if not (0 <= cx < 300 and 0 <= cy < 200):
            assert cut.flags[i] & StampFlag.NO_DATA
            continue
        expected = padded[cy : cy + 21, cx : cx + 21]
        np.testing.assert_array_equal(cut.pixels[i], expected)


@pytest.mark.parametrize("size", [0, 4, -3, 2.0])
def test_bad_size_rejected(size):
    with pytest.raises(ValueError, match="odd"):
        cut_stamps(image(), [5], [5], size)


def test_inconsistent_inputs_rejected():
    with pytest.raises(ValueError):
        cut_stamps(image(), [1, 2], [1], 5)
    with pytest.raises(ValueError):
        cut_stamps(np.zeros(5), [1], [1], 3)
    with pytest.raises(ValueError):
        cut_stamps(image(), [1], [1], 3, bad=np.zeros((3, 3), bool))


def test_flag_columns():
    cols = flag_columns(np.array([0, StampFlag.EDGE | StampFlag.NO_DATA]))
    assert cols["flag_edge"].tolist() == [False, True]
    assert cols["flag_no_data"].tolist() == [False, True]
    assert cols["flag_bad_pixels"].tolist() == [False, False]


@pytest.mark.parametrize("column, values, message", [
    ("label", [0, 1, 257], "Labels must be 0"),  # int8 would wrap 257 to 1
    ("label", [0, 0.7, 1], "Labels must be 0"),  # and truncate 0.7 to 0
    ("label", [0, np.nan, 1], "Labels must be 0"),
    ("id", [1.5, 2.0, 3.0], "Ids must be integers"),
])
def test_labelled_stamps_refuse_what_a_cast_would_change(tmp_path, column, values, message):
    from rbnodia.core.stampset import LabelledStamps

    stamps = np.zeros((3, 5, 5), np.float32)
    good = dict(diff=stamps, srch=stamps, tmpl=stamps, label=np.array([0, 1, 0]), id=np.arange(3),
                family=["sn_hostless", "cosmic_ray", "sn_hosted"], mag=np.zeros(3), snr=np.full(3, 6.0))
    with pytest.raises(ValueError, match=message):
        LabelledStamps(**{**good, column: np.array(values)})
    path = tmp_path / "shard.npz"
    np.savez(path, **{**good, column: np.array(values)})
    with pytest.raises(ValueError, match=f"shard.npz: {message}"):
        LabelledStamps.load(path)
    assert len(LabelledStamps(**good)) == 3
