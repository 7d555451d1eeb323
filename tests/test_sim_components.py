"""Building blocks of the simulator: warping, kernel fitting, presets, plots, CLI."""

import numpy as np
import pytest

from rbnodia.sim.presets import PRESETS, get_preset
from rbnodia.sim.subtract import fit_kernel, gaussian_basis, subtract_images
from rbnodia.sim.warp import lanczos_weights, warp_image


def _gaussian(shape, x0, y0, sigma, flux=1.0):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return flux * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / sigma**2) / (2 * np.pi * sigma**2)


def test_lanczos_weights_at_fractions_that_round_to_one():
    # A float64 fraction just below 1 becomes 1.0 in float32: the tap at +1
    # must get the limit weight 1, not 0/0.
    frac = np.array([np.nextafter(1.0, 0.0), 1.0 - 1e-9, 0.0, 0.5])
    with np.errstate(all="raise"):
        w = lanczos_weights(frac)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-5)
    taps = list(range(-2, 4))  # order 3
    np.testing.assert_allclose(w[taps.index(1), :2], 1.0, atol=1e-5)
    np.testing.assert_allclose(w[taps.index(0), 2], 1.0, atol=1e-5)


def test_lanczos_weights_normalised():
    w = lanczos_weights(np.random.default_rng(0).uniform(size=100))
    assert np.allclose(w.sum(axis=0), 1.0)
    assert np.allclose(lanczos_weights(np.array([0.0]))[:, 0], [0, 0, 1, 0, 0, 0])


def test_warp_shifts_and_propagates_variance():
    src = _gaussian((64, 64), 30.0, 31.0, 2.0, 1000.0)
    var = np.ones_like(src)
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    out, out_var, no_data = warp_image(src, var, np.zeros(src.shape, bool), xx + 0.3, yy - 0.6)
    # Destination pixel (x, y) samples the source at (x + 0.3, y - 0.6).
    expected = _gaussian((64, 64), 29.7, 31.6, 2.0, 1000.0)
    inner = (slice(4, -4), slice(4, -4))
    assert np.allclose(
        out[inner], expected[inner], atol=1e-2 * expected.max()
    )  # Lanczos-3 error ~0.4 % at sigma = 2 px
    assert np.nansum(out) == pytest.approx(1000.0, rel=1e-3)
    assert np.all(out_var[inner] < 1.0) and np.all(out_var[inner] > 0.3)
    assert no_data[0, 0] and not no_data[32, 32]


def test_kernel_fit_recovers_known_convolution():
    rng = np.random.default_rng(1)
    shape = (160, 160)
    stars = [(40.2, 40.7), (120.5, 41.1), (40.9, 119.3), (119.6, 120.2), (80.3, 80.4)]
    tmpl = sum(_gaussian(shape, x, y, 1.5, 5e4) for x, y in stars)
    sci = 1.02 * sum(_gaussian(shape, x, y, np.hypot(1.5, 1.2), 5e4) for x, y in stars)
    sci = sci + 3.0 + rng.normal(0, 1.0, shape)
    tmpl = tmpl + rng.normal(0, 0.3, shape)
    var = np.ones(shape)
    basis = gaussian_basis(np.hypot(1.5, 1.2) * 2.3548, 1.5 * 2.3548)
    for candidates in (np.array(stars), None):
        sol = fit_kernel(sci, var, tmpl, basis, candidates=candidates, spatial_order=0, background_order=0)
        assert sol.kernel_sum() == pytest.approx(1.02, abs=0.01)
        assert sol.background[0] == pytest.approx(3.0, abs=0.1)
        diff, dvar, edge = subtract_images(sci, var, tmpl, np.full(shape, 0.09), sol)
        inner = ~edge & np.isfinite(diff)
        assert np.std(diff[inner]) == pytest.approx(np.sqrt(np.mean(dvar[inner])), rel=0.1)


def test_presets():
    for name, preset in PRESETS.items():
        assert get_preset(name) is preset
        assert set(preset.bands) <= set(preset.zero_point) and set(preset.bands) <= set(preset.sky_brightness)
    assert PRESETS["des"].pixel_scale == 0.263 and PRESETS["des"].shape == (4096, 2048)
    assert PRESETS["lsst"].pixel_scale == 0.2 and PRESETS["lsst"].shape == (4096, 4096)
    small = get_preset("lsst", image_size=(100, 200))
    assert small.shape == (100, 200) and small.native_shape == (4096, 4096)
    with pytest.raises(TypeError):
        get_preset("lsst", not_an_option=1)
    with pytest.raises(ValueError):
        get_preset("hsc")


def test_plot_examples(tmp_path):
    from rbnodia.sim import labelled_stamps_from_detector, plot_examples, simulate_detector

    sim = simulate_detector(
        "des", visit=1, detector=1, seed=2, image_size=(256, 256), n_transients=6, cosmic_ray_rate=0.5
    )
    stamps = labelled_stamps_from_detector(sim)
    out = plot_examples(stamps, tmp_path / "ex.png", per_family=2)
    assert out.exists() and out.read_bytes()[:4] == b"\x89PNG"


def test_cli_commands(tmp_path):
    from rbnodia.cli import build_parser, main

    parser = build_parser()
    args = parser.parse_args(
        ["simulate", "--repo", str(tmp_path / "r"), "--preset", "des", "--size", "64", "64"]
    )
    assert args.size == [64, 64] and args.visits == 2
    args = parser.parse_args(["make-training-set", "--out", str(tmp_path / "t"), "--n", "10"])
    assert args.n == 10 and args.workers == 2
    assert args.domain_randomization and args.composition == "default" and not args.overwrite
    args = parser.parse_args(
        [
            "make-training-splits",
            "--out",
            str(tmp_path / "s"),
            "--n-train",
            "200000",
            "--no-domain-randomization",
        ]
    )
    assert args.n_train == 200_000 and args.presets == ["des", "lsst"] and not args.domain_randomization
    assert (
        main(
            [
                "make-training-set",
                "--out",
                str(tmp_path / "t"),
                "--n",
                "8",
                "--workers",
                "1",
                "--no-progress",
                "--patch-size",
                "192",
                "--plot",
                str(tmp_path / "t.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "t.png").exists()
    assert main(["plot-examples", "--stamps", str(tmp_path / "t"), "--out", str(tmp_path / "p.png")]) == 0


def _draw(preset, seed=3):
    from rbnodia.sim.scene import draw_galaxies, draw_transients

    rng = np.random.default_rng(seed)
    galaxies = draw_galaxies(rng, preset, 300.0, 300.0, 24.0)
    band = preset.bands[0]
    transients = draw_transients(
        rng, preset, galaxies, 400, 23.5, lambda u, v: np.ones(len(u), bool), band, 24.0, (300.0, 300.0)
    )
    return galaxies.mag(band, preset), transients


def test_host_relative_injections_follow_their_hosts():
    """With host_relative_fraction 1, every hosted injection lies
    HOST_RELATIVE_MAG below a host bright enough (floored at the faint
    limit); at 0 magnitudes ignore the host.
    """
    from rbnodia.sim.scene import HOST_RELATIVE_MAG

    preset = get_preset("des", hostless_fraction=0.0)
    faint_limit = 23.5 + preset.transient_mag_faint
    gal_mag, tr = _draw(preset.with_options(host_relative_fraction=1.0))
    hosted = tr.host >= 0
    assert hosted.all()
    host_mag = gal_mag[tr.host]
    assert (host_mag < faint_limit - 0.5 * sum(HOST_RELATIVE_MAG)).all()
    delta = tr.mag - host_mag
    floored = np.isclose(tr.mag, faint_limit)
    assert floored.sum() < len(tr.mag)
    assert ((delta[~floored] >= HOST_RELATIVE_MAG[0]) & (delta[~floored] <= HOST_RELATIVE_MAG[1])).all()
    assert (delta[floored] <= HOST_RELATIVE_MAG[1]).all()

    # At 0 (the presets' value) magnitudes are uniform in the depth-relative
    # range, whatever the host: some injections outshine their hosts.
    gal_mag, base = _draw(preset)
    assert (base.mag < gal_mag[base.host] - 0.5).any()
    assert base.mag.min() < 23.5 - 3.0
