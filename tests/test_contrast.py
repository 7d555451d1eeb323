"""Host contrast of stamps (rbnodia.core.contrast) and the completeness
against it (rbnodia.core.group_metrics.completeness_by_bin).
"""

import math

import numpy as np
import pytest

from rbnodia.core import contrast, group_metrics

SIZE = 31


def _gauss(flux, sigma, dx=0.0, dy=0.0):
    y, x = np.mgrid[:SIZE, :SIZE] - SIZE // 2
    g = np.exp(-0.5 * ((x - dx) ** 2 + (y - dy) ** 2) / sigma**2)
    return flux * g / g.sum()


def test_isolated_transient_has_no_contrast_and_a_bright_core_has_a_large_one():
    rng = np.random.default_rng(3)
    transient = _gauss(1000.0, 1.5)
    host = _gauss(30000.0, 3.0)
    sky = 200.0
    # template: sky + host (noise-free); difference: the transient only (plus a pedestal the border removes)
    tmpl = np.stack([np.full((SIZE, SIZE), sky), sky + host, sky + host])
    diff = np.stack([transient + 5.0, transient, transient * 0.1])
    got = contrast.host_contrast(tmpl + rng.normal(0, 0.01, tmpl.shape), diff)
    box = (slice(SIZE // 2 - 2, SIZE // 2 + 3),) * 2
    expected = host[box].sum() / transient[box].sum()
    assert abs(got[0]) < 1e-3
    assert got[1] == pytest.approx(expected, rel=1e-3)
    assert got[2] == pytest.approx(10 * expected, rel=1e-3)  # a 10x fainter transient on the same core


def test_no_positive_difference_flux_or_no_data_gives_nan():
    tmpl = np.stack([_gauss(100.0, 2.0), np.full((SIZE, SIZE), np.nan)])
    diff = np.stack([-_gauss(100.0, 1.5), _gauss(100.0, 1.5)])
    got = contrast.host_contrast(tmpl, diff)
    assert np.isnan(got).all()


@pytest.mark.parametrize(
    "shapes", [((2, SIZE, SIZE), (3, SIZE, SIZE)), ((SIZE, SIZE), (SIZE, SIZE)), ((1, 7, 7), (1, 7, 7))]
)
def test_bad_shapes_are_refused(shapes):
    with pytest.raises(ValueError):
        contrast.host_contrast(np.zeros(shapes[0]), np.zeros(shapes[1]))


def test_completeness_by_bin_hand_worked():
    labels = [0, 0, 0, 1, 0, 0]
    called = [True, False, True, True, True, False]
    values = [0.1, 0.2, 5.0, 5.0, np.nan, 50.0]
    bins = group_metrics.completeness_by_bin(labels, called, values, contrast.CONTRAST_BIN_EDGES)
    by_label = {b["label"]: b for b in bins}
    assert list(by_label) == ["< 0.3", "0.3-1", "1-3", "3-10", ">= 10"]
    assert by_label["< 0.3"]["n_real"] == 2 and by_label["< 0.3"]["fraction_called_real"] == 0.5
    # the bogus row at 5.0 is ignored
    assert by_label["3-10"]["n_real"] == 1 and by_label["3-10"]["fraction_called_real"] == 1.0
    assert by_label[">= 10"]["fraction_called_real"] == 0.0
    assert math.isnan(by_label["0.3-1"]["fraction_called_real"]) and by_label["0.3-1"]["n_real"] == 0
    with pytest.raises(ValueError, match="length"):
        group_metrics.completeness_by_bin(labels, called[:-1], values, contrast.CONTRAST_BIN_EDGES)
    with pytest.raises(ValueError, match="increase"):
        group_metrics.completeness_by_bin(labels, called, values, (1.0, 0.0))
