"""Injected fluxes, labels and family bookkeeping of simulated detectors."""

import numpy as np
import pytest

from rbnodia.sim import (
    BOGUS_FAMILIES,
    CONVENTION_FAMILIES,
    FAMILIES,
    FAMILY_GROUPS,
    REAL_FAMILIES,
    family_counts,
    labelled_stamps_from_detector,
    match_positions,
    simulate_detector,
)
from rbnodia.sim.geometry import make_tan_wcs
from rbnodia.sim.residuals import ResidualProbe
from rbnodia.sim.subtract import fit_kernel, gaussian_basis

QUIET = dict(
    image_size=(320, 320),
    kernel_candidates="psf",
    artifacts=False,
    n_transients=0,
    variance_underestimate=0.0,
    template_noise_correlation=0.0,
    kernel_width_error=0.0,
    kernel_shape_error=0.0,
    psf_shape_variation=0.0,
    flux_scale_error=0.0,
    astrometric_error_arcsec=0.0,
    astrometric_gradient_arcsec=0.0,
    proper_motion_fraction=0.0,
    variable_star_fraction=0.0,
    brighter_fatter=0.0,
)
"""A training-like patch with every source of subtraction residuals off."""


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
    agree with the injected fluxes within their errors.
    """
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
    assert set(truth["family"][~real]) <= set(BOGUS_FAMILIES) | set(CONVENTION_FAMILIES)
    variable = np.asarray(truth["family"]) == "variable_star"
    assert np.all(np.isfinite(truth["mag"][real | variable]))
    assert np.all(np.isnan(truth["mag"][~real & ~variable]))
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
        elif fam in BOGUS_FAMILIES:
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


def test_family_names_are_defined_once():
    assert len(set(FAMILIES)) == len(FAMILIES)
    grouped = [f for members in FAMILY_GROUPS.values() for f in members]
    assert sorted(grouped) == sorted(FAMILIES)


@pytest.mark.parametrize(
    "preset,family,scene,cause",
    [
        ("des", "galaxy_residual", dict(bright_galaxies=15), dict(flux_scale_error=0.15)),
        ("lsst", "star_residual", dict(bright_stars=12), dict(flux_scale_error=0.15)),
        ("lsst", "psf_ring", dict(bright_stars=12), dict(kernel_width_error=0.08)),
        ("des", "dipole", dict(bright_stars=12, bright_galaxies=10), dict(astrometric_error_arcsec=0.3)),
        ("des", "correlated_noise", dict(image_size=(640, 640)), dict(variance_underestimate=0.4)),
    ],
)
def test_each_residual_family_comes_from_its_cause(preset, family, scene, cause):
    """Each subtraction-residual family appears when its cause is switched
    on, and far less in the same patches without it.
    """
    found = {}
    for case, options in (("on", {**QUIET, **scene, **cause}), ("off", {**QUIET, **scene})):
        families = []
        for visit in (1, 2):
            sim = simulate_detector(preset, visit=visit, detector=0, seed=31, **options)
            families += list(sim.truth["family"][sim.truth["label"] == 1])
        found[case] = families.count(family)
    assert found["on"] >= 3
    assert found["off"] <= found["on"] / 3


@pytest.mark.parametrize("preset,label", [("des", 1), ("lsst", 0)])
def test_variable_star_label_follows_the_survey_convention(preset, label):
    """Variable stars are bogus under the DES autoscan convention and real
    under Rubin's reliability.
    """
    sim = simulate_detector(
        preset, visit=1, detector=0, seed=31, **{**QUIET, "bright_stars": 12, "variable_star_fraction": 1.0}
    )
    variable = np.asarray(sim.truth["family"]) == "variable_star"
    assert variable.sum() >= 2
    assert set(np.asarray(sim.truth["label"])[variable]) == {label}
    assert np.all(np.isfinite(np.asarray(sim.truth["mag"])[variable]))
    assert sim.truth.meta["variable_star_label"] == label


def _star(shape, x, y, flux, sigma=1.5):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return flux * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2) / (2 * np.pi * sigma**2)


def _probe(static, template):
    """Build a residual probe for two images on one grid, with the kernel
    fitted on three bright reference stars that match exactly.
    """
    shape = static.shape
    wcs = make_tan_wcs((10.0, -5.0), (0.0, 0.0), 0.2)
    basis = gaussian_basis(1.5 * 2.3548 * 1.01, 1.5 * 2.3548)
    ref = _star(shape, 30.3, 30.6, 1e5) + _star(shape, 90.1, 91.4, 1e5) + _star(shape, 30.7, 90.2, 1e5)
    solution = fit_kernel(
        ref,
        np.ones(shape),
        ref,
        basis,
        candidates=np.array([[30.3, 30.6], [90.1, 91.4], [30.7, 90.2]]),
        spatial_order=0,
        background_order=0,
    )
    return ResidualProbe(static, template, wcs, wcs, solution, "template", np.ones(shape), 1.5 * 2.3548)


def test_residual_probe_tells_scale_dipole_and_ring_apart():
    shape = (120, 120)
    star = _star(shape, 60.2, 59.7, 2000.0)
    # The same star: nothing left.
    res = _probe(star, star).measure(60.2, 59.7, 60.2, 59.7)
    assert abs(res.significance) < 0.5
    # Template 10 % fainter: a symmetric one-signed residual.
    res = _probe(star, 0.9 * star).measure(60.2, 59.7, 60.2, 59.7)
    assert res.significance > 5 and res.even > 3 * res.odd and not res.ring
    # Template shifted by half a pixel: antisymmetric.
    shifted = _star(shape, 60.7, 59.7, 2000.0)
    res = _probe(star, shifted).measure(59.2, 59.7, 60.2, 59.7)
    assert res.odd > 3 * res.even
    # Template narrower than the science: positive ring, negative core.
    narrow = _star(shape, 60.2, 59.7, 2000.0, sigma=1.2)
    res = _probe(star, narrow).measure(62.2, 59.7, 60.2, 59.7)
    assert res.ring and res.even > res.odd


def test_transients_on_residuals_are_blended_and_left_out_of_training():
    """A faint transient on a galaxy core with subtraction residuals (flux
    scale, registration, PSF width) is found as sn_blended (real), far less
    without them, and training shards never take it.
    """
    from rbnodia.core.stampset import LabelledStamps
    from rbnodia.sim.composition import ShardAssembler

    scene = dict(bright_galaxies=15, hostless_fraction=0.0, host_relative_fraction=1.0, n_transients=40)
    cause = dict(flux_scale_error=0.15, astrometric_error_arcsec=0.3, kernel_width_error=0.08)
    found = {}
    for case, options in (("on", {**QUIET, **scene, **cause}), ("off", {**QUIET, **scene})):
        found[case] = 0
        for seed in (32, 33, 34):
            sim = simulate_detector("des", visit=1, detector=0, seed=seed, **options)
            family = np.asarray(sim.truth["family"])
            found[case] += int(np.sum(family == "sn_blended"))
            assert set(np.asarray(sim.truth["label"])[family == "sn_blended"]) <= {0}
    assert found["on"] >= 5
    assert found["off"] <= found["on"] / 3

    n = 6
    stamps = LabelledStamps(
        srch=np.zeros((n, 5, 5), np.float32),
        tmpl=np.zeros((n, 5, 5), np.float32),
        diff=np.zeros((n, 5, 5), np.float32),
        label=np.array([0, 0, 0, 1, 1, 1], np.int8),
        id=np.arange(n),
        family=np.array(["sn_blended", "sn_hosted", "sn_blended", "noise", "noise", "noise"]),
        mag=np.full(n, 22.0, np.float32),
        snr=np.full(n, 10.0, np.float32),
    )
    assembler = ShardAssembler(3, {"noise": 3})
    assembler.add(stamps)
    assert assembler.missing() == {"real": 2}
    assert assembler.excluded == 2
