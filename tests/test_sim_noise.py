"""Noise properties of simulated science, template and difference images."""

import numpy as np
import pytest
from scipy import ndimage

from rbnodia.sim import get_preset, simulate_detector
from rbnodia.sim.template import correlated_noise

WHITE = {"variance_underestimate": 0.0, "template_noise_correlation": 0.0}
"""Options that make the variance planes describe the noise exactly."""


@pytest.mark.parametrize("preset", ["des", "lsst"])
def test_blank_noise_matches_sky_gain_read_noise(preset):
    """On a blank sky the science noise is sqrt(sky + read_noise^2) electrons,
    calibrated to nJy; the variance plane agrees.
    """
    sim = simulate_detector(preset, visit=3, detector=1, seed=7, image_size=(256, 256), blank=True, **WHITE)
    p = get_preset(preset)
    sky_e = sim.meta["sky_electrons"]
    cal = sim.meta["nJy_per_electron"]
    # Quantisation adds gain^2 / 12 (e^2); amplifier read noises scatter by 5 %.
    expected = np.sqrt(sky_e + p.read_noise**2 + p.gain**2 / 12.0) * cal
    measured = np.std(sim.science)
    assert measured == pytest.approx(expected, rel=0.02)
    assert np.sqrt(np.mean(sim.science_variance)) == pytest.approx(expected, rel=0.02)
    assert abs(np.mean(sim.science)) < 0.02 * expected
    # Template: a co-add of n epochs has sqrt(n) lower noise before warping;
    # the warp's interpolation lowers it further and the variance plane tracks it.
    tmpl_std = np.nanstd(sim.template)
    assert tmpl_std < expected / np.sqrt(p.template_n_coadd) * 1.05
    assert tmpl_std == pytest.approx(np.sqrt(np.nanmean(sim.template_variance)), rel=0.03)
    assert len(sim.detections) == 0
    assert sim.meta["noise_factor"] == pytest.approx(1.0, abs=0.05)


def test_variance_plane_errors_are_what_the_presets_say():
    """``variance_underestimate`` lowers the science variance plane, not the
    noise; correlated co-add noise keeps its per-pixel variance but the
    warped template's variance plane (which ignores covariance) falls
    short of its noise; the significance map's noise factor grows.
    """
    base = dict(visit=3, detector=1, seed=7, image_size=(256, 256), blank=True)
    white = simulate_detector("des", **base, **WHITE)
    low = simulate_detector("des", **base, variance_underestimate=0.2, template_noise_correlation=0.0)
    assert np.array_equal(low.science, white.science)
    assert np.mean(low.science_variance) == pytest.approx(0.8 * np.mean(white.science_variance), rel=1e-5)
    corr = simulate_detector("des", **base, variance_underestimate=0.0, template_noise_correlation=1.0)
    ratio = np.nanstd(corr.template) / np.sqrt(np.nanmean(corr.template_variance))
    assert ratio > 1.1
    assert white.meta["noise_factor"] < low.meta["noise_factor"]
    assert low.meta["noise_factor"] == pytest.approx(white.meta["noise_factor"] / np.sqrt(0.8), rel=0.05)


def test_correlated_noise_keeps_unit_variance():
    rng = np.random.default_rng(0)
    for sigma in (0.0, 0.5, 1.5):
        noise = correlated_noise(rng, (400, 400), sigma)
        assert np.std(noise) == pytest.approx(1.0, rel=0.03)
        neighbour = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
        assert (neighbour < 0.02) if sigma == 0 else (neighbour > 0.2)


def test_difference_is_noise_like_away_from_sources():
    """Away from sources the difference's std is within 10 % of the value the
    variance plane predicts, and its mean is ~0.
    """
    sim = simulate_detector(
        "des", visit=2, detector=4, seed=11, image_size=(512, 512), artifacts=False, **WHITE
    )
    diff, var = sim.difference, sim.difference_variance
    tsig = sim.template / np.sqrt(sim.template_variance)
    near_source = ndimage.binary_dilation(np.nan_to_num(tsig) > 3.0, iterations=8)
    near_source |= ndimage.binary_dilation(sim.difference_mask["DETECTED"], iterations=8)
    bad = sim.difference_mask["EDGE"] | sim.difference_mask["NO_DATA"] | sim.difference_mask["SAT"]
    region = ~near_source & ~bad & np.isfinite(diff)
    assert region.sum() > 50_000
    measured = np.std(diff[region])
    expected = np.sqrt(np.mean(var[region]))
    assert measured == pytest.approx(expected, rel=0.10)
    assert abs(np.mean(diff[region])) < 0.05 * expected
    # The kernel carries the (near unity) photometric scaling.
    assert sim.meta["kernel"]["kernel_sum"] == pytest.approx(
        1.0 / sim.meta["template_photometric_scale"], abs=0.05
    )


def test_convolving_the_science_correlates_the_difference_noise():
    """With a template broader than the science and ``convolve_science``,
    the kernel convolves the science: the difference has the template's
    PSF, correlated noise (noise factor well above 1) and a flood of
    ``correlated_noise`` detections.
    """
    sim = simulate_detector(
        "des",
        visit=1,
        detector=0,
        seed=3,
        image_size=(256, 256),
        template_seeing_factor=1.4,
        convolve_science=True,
        artifacts=False,
        n_transients=0,
        **WHITE,
    )
    assert sim.meta["kernel"]["convolved"] == "science"
    assert sim.psf_fwhm_science < sim.psf_fwhm_template
    assert sim.meta["noise_factor"] > 1.5
    families = [f for f in sim.truth["family"] if f != "edge"]
    assert families.count("correlated_noise") > 0.8 * len(families) > 10


def test_depths_are_realistic():
    """Single-epoch 5-sigma depths near published values (DES ~23.5-24.3,
    LSST r ~24.5) and deeper templates.
    """
    sim = simulate_detector("lsst", visit=1, detector=0, seed=3, image_size=(128, 128), band="r", blank=True)
    assert 23.7 < sim.meta["m5_science"] < 25.2
    assert sim.meta["m5_template"] > sim.meta["m5_science"] + 1.0
    sim = simulate_detector("des", visit=1, detector=0, seed=3, image_size=(128, 128), band="r", blank=True)
    assert 23.0 < sim.meta["m5_science"] < 24.6
    assert sim.psf_fwhm_template < sim.psf_fwhm_science


@pytest.mark.parametrize("filter_factor", [1.0, 1.6])
def test_planted_noise_peaks_are_detected_as_noise(filter_factor):
    """Planted noise excursions (`rbnodia.sim.noise_peaks`) pass the threshold
    for the true noise, are labelled ``noise`` (bogus), and show in the
    science image as in the difference image; a blank sky without them has
    no detection.
    """
    base = dict(
        visit=3, detector=1, seed=7, image_size=(256, 256), blank=True, detection_filter_factor=filter_factor
    )
    quiet = simulate_detector("des", **base, **WHITE)
    assert len(quiet.detections) == 0 and quiet.meta["noise_peaks_planted"] == 0
    sim = simulate_detector("des", **base, **WHITE, noise_peaks=8.0)
    planted = sim.meta["noise_peaks_planted"]
    assert planted >= 3
    truth = sim.truth
    # Peaks just above the threshold may have fewer than 3 pixels above it.
    assert 2 <= len(truth) <= planted
    # A peak at the threshold may fall a hair below it once the map's
    # measured noise factor is divided out (then ``correlated_noise``).
    assert set(truth["family"]) <= {"noise", "correlated_noise"} and set(truth["label"]) == {1}
    assert np.mean(truth["family"] == "noise") >= 0.5
    assert np.all(sim.detections["snr"] > 3.0)
    # The difference minus the template is the science: the bumps are in both.
    x = np.round(sim.detections["x"]).astype(int)
    y = np.round(sim.detections["y"]).astype(int)
    smooth = ndimage.gaussian_filter(sim.science - quiet.science, 2.0)
    assert np.all(smooth[y, x] > 0)


def test_no_noise_peaks_where_the_filter_does_not_fit():
    """An image narrower than the filter and the margin gets no peak (and no error)."""
    from rbnodia.sim.noise_peaks import plant_noise_peaks

    image = np.zeros((10, 10), np.float32)
    peaks = plant_noise_peaks(
        image, image.copy(), np.ones_like(image), np.zeros(image.shape, bool),
        filter_fwhm_px=4.0, mean_number=50.0, threshold=5.0, margin=2, rng=np.random.default_rng(0),
    )
    assert len(peaks.x) == 0
