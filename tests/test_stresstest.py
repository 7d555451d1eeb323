"""The independent stress test: its generator's parts, the stress sets it
writes, and the report on the packaged models.
"""

import json
import math
import subprocess
import sys
import zlib

import numpy as np
import pytest

from rbnodia.core.stampset import BOGUS, REAL, LabelledStamps
from rbnodia.stresstest import FAMILIES, SETTINGS, build_scene, load_stress_set, make_stress_set, run_scene
from rbnodia.stresstest.detection import detect
from rbnodia.stresstest.generator import PATCH_SIZE, ensure_stress_set, family_plan
from rbnodia.stresstest.noise import constrained_increment
from rbnodia.stresstest.profiles import FourierGrid, moffat_ft
from rbnodia.stresstest.psf import PSF_FAMILIES, draw_psf
from rbnodia.stresstest.render import Galaxy, PointSource, render, transfer_function
from rbnodia.stresstest.subtraction import matching_kernel, subtract, warp_template

N_PER_SETTING = 26  # the smallest count that gives every family at least one stamp


@pytest.fixture(scope="module")
def grid():
    return FourierGrid(PATCH_SIZE)


@pytest.fixture(scope="module")
def stress_set(tmp_path_factory):
    """Return a small stress set over both settings, made in this process."""
    folder = tmp_path_factory.mktemp("stress") / "set"
    make_stress_set(2 * N_PER_SETTING, folder, seed=11, workers=1, progress=False)
    return folder


def test_import_does_not_load_the_training_simulator():
    """The generator must stay independent of rbnodia.sim (and cheap: no TensorFlow)."""
    code = (
        "import sys, numpy as np\n"
        "import rbnodia.stresstest as st\n"
        "from rbnodia.stresstest.profiles import FourierGrid\n"
        "rng = np.random.default_rng(0)\n"
        "for family in st.FAMILIES:\n"
        "    st.run_scene(st.build_scene(family, rng, st.SETTINGS['des'], 99), rng, FourierGrid(99))\n"
        "roots = {'galsim', 'sep', 'tensorflow'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in roots or m.startswith('rbnodia.sim'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("family", PSF_FAMILIES)
@pytest.mark.parametrize("fwhm", [3.0, 6.0])
def test_psf_has_unit_flux_and_its_width(grid, family, fwhm):
    psf = draw_psf(np.random.default_rng(3), fwhm, family)
    image = render(grid, transfer_function(grid, psf), [PointSource(49.3, 48.8, 100.0)])
    assert image.sum() == pytest.approx(100.0, rel=1e-9)
    yy, xx = np.mgrid[0 : grid.size, 0 : grid.size]
    # Centroid: double Gaussian halos are offset on purpose, by at most 0.5 px times the halo fraction.
    assert (image * xx).sum() / image.sum() == pytest.approx(49.3, abs=0.2)
    assert (image * yy).sum() / image.sum() == pytest.approx(48.8, abs=0.2)
    # Half-maximum area of the pixelised PSF, as an equivalent-circle diameter.
    area = np.count_nonzero(image > image.max() / 2)
    assert 0.8 * fwhm < 2 * math.sqrt(area / math.pi) < 1.35 * fwhm


def test_moffat_transform_matches_a_direct_hankel_transform():
    from scipy import integrate, special

    alpha, beta = 2.0, 2.5
    for k in (0.0, 0.05, 0.2):

        def integrand(r):
            profile = (beta - 1) / (math.pi * alpha**2) * (1 + r**2 / alpha**2) ** -beta
            return 2 * math.pi * r * profile * special.j0(2 * math.pi * k * r)

        direct = integrate.quad(integrand, 0, 400, limit=400)[0]
        assert moffat_ft(np.array([k]), alpha, beta)[0] == pytest.approx(direct, abs=2e-4)


def test_galaxy_flux_is_conserved(grid):
    psf = draw_psf(np.random.default_rng(1), 4.0, "moffat")
    galaxy = Galaxy(
        40.0, 55.0, 5000.0, 3.0, q=0.4, theta=0.7, bulge_fraction=0.4, bulge_alpha=1.0, bulge_beta=2.0
    )
    assert render(grid, transfer_function(grid, psf), galaxies=[galaxy]).sum() == pytest.approx(
        5000.0, rel=1e-9
    )


def test_subtraction_removes_a_static_star_when_nothing_is_wrong(grid):
    rng = np.random.default_rng(2)
    science_psf = draw_psf(rng, 4.5, "moffat")
    template_psf = draw_psf(rng, 3.5, "double_gaussian")
    star = [PointSource(49.0, 49.0, 1e5)]
    science = render(grid, transfer_function(grid, science_psf), star)
    offset = 0.3
    template = render(grid, transfer_function(grid, template_psf), star, dx=-offset, flux_factor=1 / 0.8)
    kernel = matching_kernel(grid, science_psf, template_psf, 0.8)
    difference = subtract(grid, science, warp_template(template, offset, 0.0), kernel)
    assert np.abs(difference).max() < 0.02 * science.max()
    # A 10 % flux-scale error leaves a positive copy of the star holding ~10 % of its flux.
    wrong = subtract(
        grid,
        science,
        warp_template(template, offset, 0.0),
        matching_kernel(grid, science_psf, template_psf, 0.72),
    )
    assert wrong.sum() == pytest.approx(1e4, rel=0.02)


def test_constrained_increment_reaches_the_target(grid):
    rng = np.random.default_rng(4)
    filters = [grid.to_transform(rng.normal(size=(grid.size, grid.size))) for _ in range(2)]
    fields = [rng.normal(size=(grid.size, grid.size)) for _ in range(2)]

    def statistic(values):
        return sum(grid.to_image(grid.to_transform(v) * h)[10, 20] for v, h in zip(values, filters))

    before = statistic(fields)
    increments = constrained_increment(grid, 20, 10, 7.5 - before, [(filters[0], 2.0), (filters[1], 0.5)])
    assert statistic([f + d for f, d in zip(fields, increments)]) == pytest.approx(7.5, abs=1e-9)


def test_detection_finds_a_source_and_little_in_noise(grid):
    rng = np.random.default_rng(5)
    psf = draw_psf(rng, 4.0, "moffat")
    noise = rng.normal(0.0, 10.0, (grid.size, grid.size))
    source = render(grid, transfer_function(grid, psf), [PointSource(30.0, 60.0, 3000.0)])
    found = detect(grid, noise + source, psf.fwhm)
    index = found.nearest(30.0, 60.0, 1.5, grid.size)
    assert index is not None and found.snr[index] > 10
    assert len(detect(grid, noise, psf.fwhm).x) <= 1


def test_family_plan_follows_the_weights():
    plan = family_plan(1000, seed=1, setting_index=0)
    names, counts = np.unique(plan, return_counts=True)
    assert counts.sum() == 1000
    for name, count in zip(names, counts):
        assert abs(count - 1000 * FAMILIES[name].weight) <= 1
    assert not np.array_equal(plan, family_plan(1000, seed=2, setting_index=0))


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_scene_hits_its_target(grid, setting, family):
    rng = np.random.default_rng(zlib.crc32(f"{setting}:{family}".encode()))
    results = []
    for _ in range(30):
        scene = build_scene(family, rng, SETTINGS[setting], grid.size)
        result = run_scene(scene, rng, grid)
        if result is not None:
            results.append((scene, result))
        if len(results) == 2:
            break
    assert len(results) == 2, f"{family} was detected in fewer than 2 of 30 scenes"
    for scene, result in results:
        assert scene.label == FAMILIES[family].label
        assert result.offset <= scene.accept_radius
        assert result.snr > 5.0
        for stamp in (result.diff, result.srch, result.tmpl):
            assert stamp.shape == (51, 51) and np.isfinite(stamp).all()


def test_stress_set_has_every_family_with_its_label(stress_set):
    stamps, truth, summary = load_stress_set(stress_set)
    assert len(stamps) == 2 * N_PER_SETTING == summary["n"]
    assert stamps.diff.shape == (len(stamps), 51, 51)
    for name in ("diff", "srch", "tmpl"):
        assert np.isfinite(getattr(stamps, name)).all()
    for setting in SETTINGS:
        rows = np.asarray(truth["setting"]) == setting
        assert set(stamps.family[rows]) == set(FAMILIES)
    for name, spec in FAMILIES.items():
        assert (stamps.label[stamps.family == name] == spec.label).all()
    assert FAMILIES["variable_star"].label == REAL  # Rubin's convention, unlike the training simulator
    assert FAMILIES["noise_white"].label == BOGUS
    real = stamps.label == REAL
    assert np.isfinite(stamps.mag[real]).all() and np.isnan(stamps.mag[~real]).all()
    assert (stamps.snr > 4.0).all()
    assert np.array_equal(np.asarray(truth["id"]), stamps.id) and len(set(stamps.id)) == len(stamps)
    # The set is an ordinary LabelledStamps folder.
    assert len(LabelledStamps.load(stress_set)) == len(stamps)


@pytest.mark.slow
def test_stress_set_is_deterministic_and_independent_of_workers(stress_set, tmp_path):
    make_stress_set(2 * N_PER_SETTING, tmp_path / "again", seed=11, workers=2, progress=False)
    first, _, _ = load_stress_set(stress_set)
    again, _, _ = load_stress_set(tmp_path / "again")
    for name in ("diff", "srch", "tmpl", "label", "id", "family", "snr"):
        assert np.array_equal(getattr(first, name), getattr(again, name), equal_nan=name == "snr"), name
    make_stress_set(N_PER_SETTING, tmp_path / "other", seed=12, settings=["des"], progress=False)
    other, _, _ = load_stress_set(tmp_path / "other")
    assert not np.array_equal(other.diff, first.diff[: len(other)])


def test_existing_set_is_reused_or_refused(stress_set):
    stamps, _, _ = ensure_stress_set(stress_set, 2 * N_PER_SETTING, seed=11)
    assert len(stamps) == 2 * N_PER_SETTING
    with pytest.raises(FileExistsError, match="different stress set"):
        ensure_stress_set(stress_set, 2 * N_PER_SETTING, seed=12)
    with pytest.raises(FileExistsError):
        make_stress_set(10, stress_set, seed=11)


@pytest.mark.slow
def test_report_on_packaged_models_through_the_cli(stress_set, tmp_path, capsys):
    """``rbnodia stress-test`` reuses a stored set, scores both packaged models
    and our own test split (a real make-training-set output), and writes
    every file.
    """
    import shutil

    from rbnodia.cli import main
    from rbnodia.sim import make_training_set

    own = tmp_path / "own"
    make_training_set(40, own, preset="des", seed=3, workers=1, progress=False, shard_size=40)
    out = tmp_path / "report"
    shutil.copytree(stress_set, out / "stress_set")
    code = main(
        [
            "stress-test",
            "--model",
            "nodia_default",
            "--model",
            "dia_default",
            "--n",
            str(2 * N_PER_SETTING),
            "--seed",
            "11",
            "--out",
            str(out),
            "--own-test",
            str(own),
            "--doc-table",
            str(out / "doc" / "stress.rst"),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| nodia_default |" in printed and "| dia_default |" in printed
    for name in ("report.json", "report.md", "roc.png", "families.png", "snr_auc.png", "examples.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["stress_set"]["n"] == 2 * N_PER_SETTING
    for name in ("nodia_default", "dia_default"):
        entry = report["models"][name]
        assert entry["stress"]["n"] == 2 * N_PER_SETTING
        assert 0.0 <= entry["stress"]["roc_auc"] <= 1.0
        assert entry["own_test"]["n"] == 40 and str(own) in entry["own_test"]["source"]
        assert entry["auc_gap"] == pytest.approx(entry["own_test"]["roc_auc"] - entry["stress"]["roc_auc"])
        assert set(entry["per_family"]) == set(FAMILIES)
        assert sum(f["n"] for f in entry["per_family"].values()) == 2 * N_PER_SETTING
        assert sum(b["n"] for b in entry["snr_bins"]) == 2 * N_PER_SETTING
        n_real = sum(f["n"] for name, f in entry["per_family"].items() if FAMILIES[name].label == 0)
        assert sum(b["n_real"] for b in entry["host_contrast_bins"]) <= n_real  # NaN contrasts fall in no bin
        own_bins = entry["own_test"]["host_contrast_bins"]
        assert [b["label"] for b in own_bins] == [b["label"] for b in entry["host_contrast_bins"]]
        assert 0 < sum(b["n_real"] for b in own_bins) <= 40
    markdown = (out / "report.md").read_text()
    assert all(f"| {family} |" in markdown for family in FAMILIES)
    rst = (out / "doc" / "stress.rst").read_text()
    assert "Regenerate with ``rbnodia stress-test --model nodia_default" in rst
    assert rst.count(".. csv-table::") == 5 and all(f'"{family}", ' in rst for family in FAMILIES)
    assert ".. csv-table:: Reals called real against host contrast" in rst
    assert '"n real (own test)", "nodia_default own test", "dia_default own test"' in rst
    for plot in ("roc", "families"):  # copied beside the include, shown by it
        assert (out / "doc" / f"stress_{plot}.png").read_bytes() == (out / f"{plot}.png").read_bytes()
        assert f".. figure:: doc/stress_{plot}.png" in rst


@pytest.mark.parametrize("name", ["nodia_default", "dia_default"])
def test_own_test_is_labelled_under_each_models_convention(name):
    """The own test split is scored with the labels the model was trained
    under: a model trained with ``realFamilies=[variable_star]`` counts
    variable stars real even where the file labels them bogus (DES).
    """
    from easy_stamps import easy_stamps

    from rbnodia.nn import load_model
    from rbnodia.stresstest.report import _own_test

    stamps = easy_stamps(40, seed=3)
    stamps.family = stamps.family.astype("U16")
    stamps.family[:10] = "variable_star"
    stamps.label[:10] = BOGUS
    model = load_model(name)
    expected = model.metadata.training["config"].get("realFamilies") or []
    from rbnodia.core.contrast import host_contrast

    result = _own_test(model, stamps, host_contrast(stamps.tmpl, stamps.diff), name, progress=False)
    assert result["real_families"] == expected == ["variable_star"]
    assert np.all(result["labels"][:10] == REAL)
    assert np.array_equal(result["labels"][10:], stamps.label[10:])
    assert np.all(stamps.label[:10] == BOGUS)  # the caller's stamps are left alone
