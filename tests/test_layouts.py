"""Input layouts: the paper's horizontal stacking and the channel variant."""

import numpy as np
import pytest

from rbnodia.core import (
    Layout,
    PixelImage,
    Stacking,
    input_shape,
    make_model_inputs,
    split_segments,
    stack_segments,
)


def test_paper_shapes():
    assert input_shape(Layout.NODIA, 51) == (51, 102, 1)
    assert input_shape(Layout.DIA, 51) == (51, 153, 1)
    assert input_shape("noDIA", 51, "channels") == (51, 51, 2)


def test_stack_order_and_split_roundtrip():
    n = 3
    scaled = {name: np.full((n, 5, 5), i, np.float32) for i, name in enumerate(("diff", "srch", "tmpl"))}
    dia = stack_segments(scaled, Layout.DIA)
    assert dia.shape == (n, 5, 15, 1)
    assert (dia[:, :, :5] == 0).all() and (dia[:, :, 5:10] == 1).all() and (dia[:, :, 10:] == 2).all()
    nodia = stack_segments(scaled, Layout.NODIA)
    assert (nodia[:, :, :5] == 1).all() and (nodia[:, :, 5:] == 2).all()
    for stacking in Stacking:
        stacked = stack_segments(scaled, Layout.DIA, stacking)
        parts = split_segments(stacked, Layout.DIA, stacking)
        for name in scaled:
            np.testing.assert_array_equal(parts[name], scaled[name])


def test_missing_segment_is_clear_error():
    with pytest.raises(KeyError, match="diff"):
        stack_segments({"srch": np.zeros((1, 3, 3)), "tmpl": np.zeros((1, 3, 3))}, Layout.DIA)


def test_make_model_inputs_combines_flags():
    rng = np.random.default_rng(0)
    sci = rng.normal(size=(80, 80)).astype(np.float32)
    tmpl = sci.copy()
    tmpl[40, 40] = np.nan
    images = {"srch": PixelImage(sci), "tmpl": PixelImage(tmpl)}
    out = make_model_inputs(images, [40, 3], [40, 40], "noDIA", 11)
    assert out.inputs.shape == (2, 11, 22, 1)
    assert np.isfinite(out.inputs).all()
    assert out.flags[0] == 2 and out.flags[1] == 1  # BAD_PIXELS from the template; EDGE
