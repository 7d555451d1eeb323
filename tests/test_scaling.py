"""Scaling: the paper's formulas, and robustness beyond the paper."""

import numpy as np
import pytest

from rbnodia.core.scaling import interval_scale, standardize

# A 5x5 stamp: 0..23 and one outlier.  Hand computation:
#   mean = (276 + 1000) / 25 = 51.04
#   var  = (4324 + 1e6) / 25 - 51.04**2 = 37567.8784 ; std = 193.82435...
#   3-sigma interval (-530.43, 632.51) excludes 1000, so lo = 0, hi = 23.
STAMP = np.append(np.arange(24.0), 1000.0).reshape(1, 5, 5)
MEAN, STD = 51.04, np.sqrt(37567.8784)


def paper_interval_scale(x):
    """Return the paper's code, written out plainly (one stamp, no NaN handling)."""
    m, s = x.mean(), x.std()
    inside = x[(x > m - 3 * s) & (x < m + 3 * s)]
    return (x - inside.min()) / (inside.max() - inside.min())


def test_interval_scale_hand_computed():
    scaled, failed = interval_scale(STAMP)
    assert not failed[0]
    assert scaled[0, 0, 0] == pytest.approx(0.0)
    assert scaled[0, 4, 3] == pytest.approx(1.0)  # pixel value 23
    assert scaled[0, 4, 4] == pytest.approx(1000.0 / 23.0, rel=1e-6)  # outside: kept, not clipped
    np.testing.assert_allclose(scaled[0], np.append(np.arange(24.0), 1000.0).reshape(5, 5) / 23.0, rtol=1e-6)


def test_standardize_hand_computed():
    scaled, failed = standardize(STAMP)
    assert not failed[0]
    assert scaled[0, 0, 0] == pytest.approx(-MEAN / STD, rel=1e-6)
    assert scaled[0, 4, 4] == pytest.approx((1000.0 - MEAN) / STD, rel=1e-6)
    assert scaled.mean() == pytest.approx(0.0, abs=1e-6)
    assert scaled.std() == pytest.approx(1.0, rel=1e-6)


def test_matches_paper_code_on_realistic_stamps():
    rng = np.random.default_rng(42)
    stamps = rng.normal(1000.0, 30.0, size=(20, 51, 51))
    stamps[:, 20:30, 20:30] += rng.uniform(0, 5000, size=(20, 1, 1))  # a source
    stamps[3, 5, 5] = 1e6  # a cosmic ray
    scaled, failed = interval_scale(stamps)
    assert not failed.any()
    for i in range(len(stamps)):
        np.testing.assert_allclose(scaled[i], paper_interval_scale(stamps[i]), rtol=1e-5, atol=1e-6)
    diff_scaled, failed = standardize(stamps)
    for i in range(len(stamps)):
        np.testing.assert_allclose(
            diff_scaled[i], (stamps[i] - stamps[i].mean()) / stamps[i].std(), rtol=1e-5, atol=1e-5
        )


def test_nan_pixels_ignored_and_filled():
    rng = np.random.default_rng(1)
    clean = rng.normal(0, 1, size=(1, 51, 51))
    dirty = clean.copy()
    dirty[0, 10, 10] = np.nan
    usable = np.isfinite(dirty)
    scaled, failed = interval_scale(dirty, usable)
    assert not failed[0] and np.isfinite(scaled).all()
    # The statistics are those of the remaining pixels.
    reference = clean[0][usable[0]]
    m, s = reference.mean(), reference.std()
    inside = reference[(reference > m - 3 * s) & (reference < m + 3 * s)]
    lo, hi = inside.min(), inside.max()
    assert scaled[0, 0, 0] == pytest.approx((clean[0, 0, 0] - lo) / (hi - lo), rel=1e-5)
    assert scaled[0, 10, 10] == pytest.approx((m - lo) / (hi - lo), rel=1e-5)  # filled with the mean's value
    diff, failed = standardize(dirty, usable)
    assert not failed[0] and diff[0, 10, 10] == 0.0 and np.isfinite(diff).all()


@pytest.mark.parametrize("scaler", [standardize, interval_scale])
def test_degenerate_stamps_flagged_not_raised(scaler):
    noise = np.random.default_rng(0).normal(size=(7, 7))
    stamps = np.stack([np.full((7, 7), 5.0), np.full((7, 7), np.nan), noise])
    stamps[1, 3, 3] = 1.0  # a single usable pixel
    scaled, failed = scaler(stamps)
    assert failed.tolist() == [True, True, False]
    assert (scaled[:2] == 0).all() and np.isfinite(scaled).all()


def _source_on_core(rng, n=6, size=31, transient=0.0):
    """Science/template pairs of a bright galaxy core, the science with its own sky and noise,
    and optionally a faint point source on the core.
    """
    yy, xx = np.mgrid[:size, :size] - size // 2
    core = 5000.0 * np.exp(-(xx**2 + yy**2) / (2 * 3.0**2))
    blob = transient * np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    tmpl = 300.0 + core + rng.normal(0, 2.0, (n, size, size))
    srch = 100.0 + core + blob + rng.normal(0, 5.0, (n, size, size))
    return srch, tmpl


def test_shared_span_hand_computed():
    from rbnodia.core.scaling import shared_span_scale

    srch = STAMP * 2.0  # interval span 46 (0..46), median 24
    tmpl = np.arange(25.0).reshape(1, 5, 5) + 7.0  # median 19
    out_s, out_t, failed_s, failed_t = shared_span_scale(srch, tmpl)
    assert not failed_s[0] and not failed_t[0]
    np.testing.assert_allclose(out_s[0], (srch[0] - 24.0) / 46.0, rtol=1e-6)
    np.testing.assert_allclose(out_t[0], (tmpl[0] - 19.0) / 46.0, rtol=1e-6)


def test_shared_span_keeps_science_and_template_on_one_scale():
    """A faint source on a bright core: on one scale the science stamp exceeds the template by the
    source alone (up to noise), whatever the two skies, and one gain for both changes nothing.
    """
    from rbnodia.core.scaling import shared_span_scale

    rng = np.random.default_rng(5)
    srch, tmpl = _source_on_core(rng, transient=400.0)
    out_s, out_t, failed_s, failed_t = shared_span_scale(srch, tmpl)
    assert not failed_s.any() and not failed_t.any()
    excess = (out_s - out_t)[:, 13:18, 13:18].mean(axis=(1, 2))
    _, span, _ = _interval_span(srch)
    expected = 400.0 * np.exp(-(np.mgrid[-2:3, -2:3] ** 2).sum(axis=0) / (2 * 1.5**2)).mean() / span
    np.testing.assert_allclose(excess, expected, rtol=0.05)
    # Each stamp's own sky and one gain for both leave the result as it was.
    again_s, again_t, _, _ = shared_span_scale(3.0 * (srch + 1000.0), 3.0 * (tmpl - 250.0))
    np.testing.assert_allclose(again_s, out_s, atol=1e-5)
    np.testing.assert_allclose(again_t, out_t, atol=1e-5)
    # Without the source the two agree on the core.
    srch0, tmpl0 = _source_on_core(np.random.default_rng(6))
    s0, t0, _, _ = shared_span_scale(srch0, tmpl0)
    assert np.abs((s0 - t0)[:, 13:18, 13:18].mean(axis=(1, 2))).max() < 0.1 * expected.min()


def _interval_span(stamps):
    m, s = stamps.mean(axis=(1, 2)), stamps.std(axis=(1, 2))
    inside = (stamps > (m - 3 * s)[:, None, None]) & (stamps < (m + 3 * s)[:, None, None])
    lo = np.array([x[k].min() for x, k in zip(stamps, inside)])
    hi = np.array([x[k].max() for x, k in zip(stamps, inside)])
    return lo, hi - lo, inside


def test_shared_span_unusable_and_degenerate_stamps():
    from rbnodia.core.scaling import shared_span_scale

    rng = np.random.default_rng(3)
    srch, tmpl = _source_on_core(rng, n=4)
    srch[0] = np.nan  # no science: both fail
    tmpl[1] = 7.0  # flat template: the template fails
    tmpl[2, :3] = np.nan  # some unusable template pixels: filled with 0
    usable_t = np.isfinite(tmpl)
    usable_t[3, 5, 5] = False  # masked, though finite
    out_s, out_t, failed_s, failed_t = shared_span_scale(srch, tmpl, np.isfinite(srch), usable_t)
    assert failed_s.tolist() == [True, False, False, False]
    assert failed_t.tolist() == [True, True, False, False]
    assert np.isfinite(out_s).all() and np.isfinite(out_t).all()
    assert not out_s[0].any() and not out_t[0].any() and not out_t[1].any()
    assert not out_t[2, :3].any() and out_t[3, 5, 5] == 0.0
    assert np.abs(out_t[2, 3:]).max() > 0.5  # the core is still there


def test_scale_cutouts_by_recipe():
    from rbnodia.core.flags import StampFlag
    from rbnodia.core.preprocess import scale_cutouts
    from rbnodia.core.scaling import Scaling, shared_span_scale
    from rbnodia.core.stamps import Cutouts

    rng = np.random.default_rng(8)
    srch, tmpl = _source_on_core(rng, n=3, transient=100.0)
    tmpl[2] = np.nan
    cut = {
        name: Cutouts(pixels=v.astype(np.float32), usable=np.isfinite(v), flags=np.zeros(3, np.int32))
        for name, v in (("diff", srch - tmpl), ("srch", srch), ("tmpl", tmpl))
    }
    scaled, flags = scale_cutouts(cut, scaling=Scaling.SHARED_SPAN)
    want_s, want_t, _, _ = shared_span_scale(cut["srch"].pixels, cut["tmpl"].pixels, cut["srch"].usable,
                                             cut["tmpl"].usable)
    np.testing.assert_array_equal(scaled["srch"], want_s)
    np.testing.assert_array_equal(scaled["tmpl"], want_t)
    np.testing.assert_array_equal(scaled["diff"], standardize(cut["diff"].pixels, cut["diff"].usable)[0])
    assert (flags & StampFlag.SCALING_FAILED).astype(bool).tolist() == [False, False, True]
    paper, _ = scale_cutouts(cut)
    assert not np.allclose(paper["srch"][:2], scaled["srch"][:2])
    with pytest.raises(KeyError):
        scale_cutouts({"srch": cut["srch"]}, scaling="shared-span/v1")
    with pytest.raises(ValueError):
        scale_cutouts(cut, scaling="other/v9")
