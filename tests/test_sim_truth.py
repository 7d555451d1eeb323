"""Injected fluxes, labels and family bookkeeping of simulated detectors."""

import numpy as np
import pytest
from rbnodia.sim import (
    BOGUS_FAMILIES,
    FAMILIES,
    REAL_FAMILIES,
    family_counts,
    labelled_stamps_from_detector,
    match_positions,
    simulate_detector,
)


@pytest.fixture(scope="module")
def busy_sim():
    return simulate_detector(
        "des",
        visit=5,
        detector=2,
        seed=21,
        image_size=(512, 512),
        n_transients=25,
        bright_stars=6,
        cosmic_ray_rate=0.2,
        hot_pixels=600,
    )


def test_injected_fluxes_recovered_by_aperture_photometry():
    """Aperture fluxes of isolated injected point sources on the science image
    agree with the injected fluxes within their errors."""
    sim = simulate_detector(
        "des",
        visit=8,
        detector=3,
        seed=5,
        image_size=(512, 512),
        artifacts=False,
        star_density=0.0,
        galaxy_density=0.0,
        n_transients=30,
        hostless_fraction=1.0,
        transient_mag_bright=5.0,
        transient_mag_faint=-2.0,
    )
    inj = sim.meta["injections"]
    psf = sim.meta["psf_science"]
    fwhm_px = sim.psf_fwhm_science / 0.263
    radius = 3.0 * fwhm_px
    size = 2 * int(np.ceil(radius)) + 1
    yy, xx = np.mgrid[0:512, 0:512]
    pulls = []
    for row in inj:
        x, y = row["x"], row["y"]
        others = np.hypot(inj["x"] - x, inj["y"] - y)
        if np.sort(others)[1] < 3 * radius or min(x, y) < radius + 2 or max(x, y) > 512 - radius - 3:
            continue
        big = psf.image(x, y, sim.meta["jacobian_science"], 4 * size + 1, (0.0, 0.0))
        c = big.shape[0] // 2
        by, bx = np.mgrid[-c : c + 1, -c : c + 1]
        enclosed = big[np.hypot(bx, by) <= radius].sum()  # aperture correction of the model PSF
        ap = np.hypot(xx - x, yy - y) <= radius
        flux = sim.science[ap].sum()
        err = np.sqrt(sim.science_variance[ap].sum())
        pulls.append((flux - row["flux"] * enclosed) / err)
    pulls = np.array(pulls)
    assert len(pulls) >= 10
    assert abs(np.mean(pulls)) < 3.0 / np.sqrt(len(pulls)) + 0.3
    assert 0.5 < np.std(pulls) < 1.6


def test_only_detected_injections_are_real(busy_sim):
    sim = busy_sim
    truth, det, inj = sim.truth, sim.detections, sim.meta["injections"]
    assert len(truth) == len(det) > 0
    assert np.array_equal(truth["id"], det["id"])
    label = np.asarray(truth["label"])
    assert set(np.unique(label)) <= {0, 1}
    # Independent matching: a detection is real iff it is the closest
    # detection of an injected transient within 2 pixels.
    match = match_positions(
        np.asarray(det["x"]), np.asarray(det["y"]), np.asarray(inj["x"]), np.asarray(inj["y"]), 2.0
    )
    assert np.array_equal(label == 0, match >= 0)
    assert (label == 0).sum() == int(inj["detected"].sum()) > 0
    real = label == 0
    assert set(truth["family"][real]) <= set(REAL_FAMILIES)
    assert set(truth["family"][~real]) <= set(BOGUS_FAMILIES)
    assert np.all(np.isfinite(truth["mag"][real])) and np.all(np.isnan(truth["mag"][~real]))
    # Bright injections are found.
    bright = inj["mag"] < sim.meta["m5_difference"] - 1.5
    assert inj["detected"][bright].mean() > 0.9
    # All families are known; several bogus families occur.
    assert set(truth["family"]) <= set(FAMILIES)
    assert len(set(truth["family"][~real])) >= 3


def test_family_counts_are_consistent(busy_sim):
    counts = family_counts(busy_sim.truth)
    total = counts.pop("total")
    assert sum(c["n"] for c in counts.values()) == total["n"] == len(busy_sim.truth)
    assert sum(c["real"] for c in counts.values()) == total["real"]
    for fam, c in counts.items():
        assert c["n"] == c["real"] + c["bogus"]
        assert c["n"] == int(np.sum(busy_sim.truth["family"] == fam))
        if fam in REAL_FAMILIES:
            assert c["bogus"] == 0
        else:
            assert c["real"] == 0
    stamps = labelled_stamps_from_detector(busy_sim)
    assert family_counts(stamps) == family_counts(busy_sim.truth)


def test_detections_table_and_stamps(busy_sim):
    sim = busy_sim
    det = sim.detections
    for name in ("id", "x", "y", "ra", "dec", "flux", "flux_err", "snr"):
        assert name in det.colnames
    assert det["id"].dtype == np.int64 and len(np.unique(det["id"])) == len(det)
    assert det["x"].dtype == np.float64
    # ra/dec follow the WCS.
    ra, dec = sim.wcs.pixel_to_world_values(det["x"], det["y"])
    assert np.allclose(ra, det["ra"]) and np.allclose(dec, det["dec"])
    assert np.nanmedian(det["snr"]) > 4.0
    stamps = labelled_stamps_from_detector(sim, stamp_size=51)
    assert stamps.diff.shape == (len(det), 51, 51)
    i = int(np.argmax(det["snr"]))
    cx, cy = int(np.floor(det["x"][i] + 0.5)), int(np.floor(det["y"][i] + 0.5))
    if 25 <= cx < 512 - 25 and 25 <= cy < 512 - 25:
        assert stamps.srch[i, 25, 25] == sim.science[cy, cx]
        assert stamps.diff[i, 25, 25] == sim.difference[cy, cx]


def test_deterministic():
    a = simulate_detector("lsst", visit=2, detector=1, seed=9, image_size=(192, 192))
    b = simulate_detector("lsst", visit=2, detector=1, seed=9, image_size=(192, 192))
    assert np.array_equal(a.difference, b.difference, equal_nan=True)
    assert np.array_equal(a.truth["label"], b.truth["label"])
