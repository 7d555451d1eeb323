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
