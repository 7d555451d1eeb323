"""The transient search with no difference image: candidate finding
(`rbnodia.core.search`), `NoDiaSearchTask` on simulated detectors, and
``pipelines/NoDiaSearch.yaml`` through the real ``pipetask`` in a process
that cannot import TensorFlow.
"""

import os

import numpy as np
import pytest

from rbnodia.core.search import (
    SEARCH_DESIGNS,
    aperture_sums,
    box_sum,
    column_defects,
    find_candidates,
    local_maxima,
)

SIGMA = 10.0


def _sky(shape=(200, 240), seed=0):
    rng = np.random.default_rng(seed)
    science = rng.normal(0, SIGMA, shape).astype(np.float32)
    template = rng.normal(0, SIGMA / 3, shape).astype(np.float32)
    variance = np.full(shape, SIGMA**2, dtype=np.float32)
    return science, variance, template, variance / 9


def _star(shape, x, y, flux, fwhm):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    sigma = fwhm / 2.355
    return (flux / (2 * np.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))).astype(
        np.float32)


def test_box_sum_matches_a_direct_sum():
    image = np.random.default_rng(1).normal(size=(23, 31))
    sums = box_sum(image, 5)
    padded = np.pad(image, 2)
    direct = np.array([[padded[y:y + 5, x:x + 5].sum() for x in range(31)] for y in range(23)])
    np.testing.assert_allclose(sums, direct, rtol=1e-5, atol=1e-4)
    for width in (0, 4, -3):
        with pytest.raises(ValueError, match="odd"):
            box_sum(image, width)


def test_local_maxima_keeps_one_pixel_per_peak():
    image = np.zeros((30, 40))
    image[10, 12] = 5.0
    image[20, 30] = 3.0
    image[20, 31] = 3.0  # a plateau of two pixels gives one peak
    image[5, 5] = 0.5  # below threshold
    image[0, 39] = np.nan
    x, y = local_maxima(image, 1.0)
    assert sorted(zip(x.tolist(), y.tolist())) == [(12, 10), (30, 20)]


def test_aperture_sums_repeat_edge_pixels():
    image = np.arange(25, dtype=float).reshape(5, 5)
    np.testing.assert_allclose(aperture_sums(image, np.array([2]), np.array([2]), 1), [image[1:4, 1:4].sum()])
    assert aperture_sums(image, np.array([0]), np.array([0]), 1)[0] == 4 * image[0, 0] + 2 * image[0, 1] + \
        2 * image[1, 0] + image[1, 1]


@pytest.mark.parametrize("design", SEARCH_DESIGNS)
def test_noise_alone_gives_no_candidate(design):
    found = find_candidates(*_sky(), design=design)
    assert len(found) == 0


@pytest.mark.parametrize("design", SEARCH_DESIGNS)
def test_a_new_source_is_found_and_a_static_star_is_not(design):
    science, variance, template, template_variance = _sky()
    shape = science.shape
    for x, y in ((60, 50), (180, 150)):  # static stars, a little broader in the science image
        science += _star(shape, x, y, 2e5, 4.0)
        template += _star(shape, x, y, 2e5, 3.2)
    science += _star(shape, 120.3, 80.6, 3000, 4.0)  # the transient: S/N ~ 40
    variance = variance + np.maximum(science, 0) / 10
    found = find_candidates(science, variance, template, template_variance, design=design)
    assert (120, 81) in list(zip(found.x.tolist(), found.y.tolist()))
    assert found.excess[0] > 20
    near_stars = [(x, y) for x, y in zip(found.x, found.y) if min(np.hypot(x - 60, y - 50),
                                                                   np.hypot(x - 180, y - 150)) < 15]
    # A seeing difference leaves candidates on static stars only where their excess passes the cut,
    # never a flood: the network that scores them rejects them.
    assert len(near_stars) <= 4
    # Bright stars, and their residuals, are no column defect.
    assert found.n_defect_pixels == 0


def _warm_column(seed, level):
    """Return a 400-row sky with a transient and an unmasked warm column (rows 60 on) of ``level`` sigma."""
    science, variance, template, template_variance = _sky(shape=(400, 240), seed=seed)
    rng = np.random.default_rng(seed + 100)
    science[60:, 170] += level * SIGMA * rng.poisson(20, 340) / 20
    science += _star(science.shape, 60.2, 300.4, 3000, 4.0)  # the transient: S/N ~ 40
    return science, variance, template, template_variance


@pytest.mark.parametrize("design", SEARCH_DESIGNS)
def test_an_unmasked_warm_column_gives_no_flood(design):
    images = _warm_column(seed=7, level=5.0)
    ignored = find_candidates(*images, design=design, column_sigma=0)
    on_column = sum(abs(x - 170) <= 2 for x in ignored.x)
    assert on_column >= 5 and ignored.n_defect_pixels == 0  # the flood the defect test prevents
    found = find_candidates(*images, design=design)
    assert not any(abs(x - 170) <= 2 for x in found.x)
    assert min(np.hypot(found.x - 60.2, found.y - 300.4)) <= 1.5  # the transient is still found
    assert found.n_defect_pixels >= 300


def test_column_defects_are_columns_of_positive_excess_only():
    science, _, template, _ = _sky(shape=(512, 300), seed=11)
    difference = science - template
    usable = np.ones(difference.shape, dtype=bool)
    assert not column_defects(difference, usable, 128, 5.5).any()  # noise alone
    difference[:, 40] += SIGMA  # a warm column of about 1 sigma
    difference[:, 90] -= 3 * SIGMA  # a cold column: no excess, no candidate, no defect
    difference[200:220, 150] += 50 * SIGMA  # a bright source crossing a segment: few rows of 128
    defects = column_defects(difference, usable, 128, 5.5)
    assert defects[:, 40].all()
    assert not np.delete(defects, 40, axis=1).any()
    assert not column_defects(difference, usable, 128, 0).any()  # 0 looks for none
    usable[:, 40] = False  # masked already: nothing to find
    assert not column_defects(difference, usable, 128, 5.5).any()


@pytest.mark.parametrize("design", SEARCH_DESIGNS)
def test_masked_areas_and_template_edges_give_no_flood(design):
    science, variance, template, template_variance = _sky(seed=3)
    shape = science.shape
    bad = np.zeros(shape, dtype=bool)
    science[:, 100] = 5e4  # a bad column
    bad[:, 100] = True
    science += _star(shape, 50, 150, 5e6, 4.0)  # a saturated star, its core masked
    template += _star(shape, 50, 150, 5e6, 4.0)
    core = _star(shape, 50, 150, 5e6, 4.0) > 2e4
    science[core] = 6e4
    bad |= core
    template[:, 200:] = np.nan  # the template ends
    science[:, 200:] += _star(shape, 220, 100, 5e4, 4.0)[:, 200:]  # a source beyond the template's edge
    found = find_candidates(science, variance, template, template_variance, bad, design=design)
    assert len(found) <= 2
    assert not any(bad[y, x] for x, y in zip(found.x, found.y))
    assert not any(x >= 199 for x in found.x)


def test_bad_input_is_refused():
    science, variance, template, template_variance = _sky()
    with pytest.raises(ValueError, match="one shape"):
        find_candidates(science, variance, template[:-1], template_variance)
    with pytest.raises(ValueError, match="design"):
        find_candidates(science, variance, template, template_variance, design="psf")


def test_the_flood_guard_keeps_the_strongest():
    science, variance, template, template_variance = _sky()
    for k in range(12):
        science += _star(science.shape, 20 + 17 * k, 100, 1000 + 500 * k, 4.0)
    found = find_candidates(science, variance, template, template_variance, max_candidates=5)
    assert len(found) == 5 and found.n_dropped == 7
    assert list(found.excess) == sorted(found.excess, reverse=True)


@pytest.fixture(scope="module")
def simulated():
    from rbnodia.sim.detector import simulate_detector

    return {blank: simulate_detector("lsst", visit=3, detector=1, seed=21, image_size=(360, 360), blank=blank,
                                     n_transients=6) for blank in (False, True)}


def _images(sim):
    from rbnodia.butler.repo import to_masked_image

    frame = {"instrument": sim.instrument, "visit": sim.visit, "detector": sim.detector}
    return [to_masked_image(image, variance=variance, mask=mask, wcs=sim.wcs, detector_frame=frame)
            for image, variance, mask in ((sim.science, sim.science_variance, sim.science_mask),
                                          (sim.template, sim.template_variance, sim.template_mask))]


def test_task_finds_bright_transients_with_the_reliability_schema(simulated):
    from rbnodia.tasks.scoring import RELIABILITY_COLUMNS
    from rbnodia.tasks.search import NoDiaSearchConfig, NoDiaSearchTask, candidate_id_base

    sim = simulated[False]
    science, template = _images(sim)
    base = candidate_id_base(sim.visit, sim.detector)
    catalog = NoDiaSearchTask(config=NoDiaSearchConfig()).run(science, template, id_base=base).candidates
    assert catalog.colnames == list(RELIABILITY_COLUMNS)
    assert len(catalog) > 0
    np.testing.assert_array_equal(catalog["id"], base + np.arange(len(catalog)))
    scored = ~np.asarray(catalog["flag_no_data"])
    assert scored.all()
    assert ((catalog["score"] >= 0) & (catalog["score"] <= 1)).all()
    assert np.isfinite(catalog["ra"]).all()
    injections = sim.meta["injections"]
    bright = injections[injections["snr_expected"] >= 20]
    assert len(bright) >= 1
    for row in bright:
        distance = np.hypot(catalog["x"] - row["x"], catalog["y"] - row["y"])
        assert distance.min() <= 2.5, f"injection at ({row['x']:.1f}, {row['y']:.1f}) not a candidate"
        assert catalog["is_real"][np.argmin(distance)]


def test_task_on_an_image_with_no_transient_gives_an_empty_catalog(simulated):
    from rbnodia.tasks.scoring import RELIABILITY_COLUMNS
    from rbnodia.tasks.search import NoDiaSearchConfig, NoDiaSearchTask

    science, template = _images(simulated[True])
    catalog = NoDiaSearchTask(config=NoDiaSearchConfig()).run(science, template).candidates
    assert len(catalog) == 0
    assert catalog.colnames == list(RELIABILITY_COLUMNS)


def test_task_needs_variance_planes_and_aligned_images(simulated):
    from rbnodia.tasks.search import NoDiaSearchConfig, NoDiaSearchTask

    sim = simulated[False]
    science, template = _images(sim)
    task = NoDiaSearchTask(config=NoDiaSearchConfig())
    with pytest.raises(ValueError, match="variance"):
        task.run(sim.science, sim.template)
    from rbnodia.butler.repo import to_masked_image

    cropped = to_masked_image(sim.template[:200, :200], variance=sim.template_variance[:200, :200])
    with pytest.raises(ValueError, match="warped to the science grid"):
        task.run(science, cropped)


def test_config_is_validated():
    import lsst.pex.config as pexConfig
    from rbnodia.tasks.search import NoDiaSearchConfig

    config = NoDiaSearchConfig()
    config.validate()
    assert config.layout == "noDIA"
    config.layout = "DIA"
    with pytest.raises(pexConfig.FieldValidationError, match="noDIA"):
        config.validate()
    config = NoDiaSearchConfig()
    config.boxWidth = 6
    with pytest.raises(pexConfig.FieldValidationError, match="odd"):
        config.validate()
    assert set(NoDiaSearchConfig.design.allowed) == set(SEARCH_DESIGNS)


@pytest.mark.e2e
def test_search_pipeline_through_pipetask_without_tensorflow(tmp_path):
    """``pipetask run -p pipelines/NoDiaSearch.yaml`` reads only the science
    image and the template, in a process where TensorFlow cannot be
    imported, and writes what the task writes in this process.
    """
    from lsst.daf.butler import Butler
    from rbnodia.butler.execution import pipeline_path, run_pipetask
    from rbnodia.sim import write_simulated_repo
    from rbnodia.tasks.search import NoDiaSearchConfig, NoDiaSearchTask, candidate_id_base

    poisoned = tmp_path / "poisoned"
    for name in ("tensorflow", "keras"):
        (poisoned / name).mkdir(parents=True)
        (poisoned / name / "__init__.py").write_text(f"raise ImportError('{name} is poisoned')\n")
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    path = os.pathsep.join([str(poisoned), *inherited])
    root = tmp_path / "repo"
    sim = write_simulated_repo(root, preset="des", n_visits=1, n_detectors=2, seed=8, image_size=(300, 300),
                               progress=False)
    log = run_pipetask(root, pipeline_path("NoDiaSearch"), [sim["collection"]], "search/run", stream=False,
                       env={"PYTHONPATH": path})
    assert "poisoned" not in log
    butler = Butler.from_config(str(root))
    refs = butler.query_datasets("rbnodia_search", collections="search/run", explain=False)
    assert len(refs) == len(sim["data_ids"]) == 2
    for ref in refs:
        catalog = butler.get(ref)
        get = {name: butler.get(name, ref.dataId, collections=sim["collection"])
               for name in ("preliminary_visit_image", "template_detector")}
        base = candidate_id_base(ref.dataId["visit"], ref.dataId["detector"])
        here = NoDiaSearchTask(config=NoDiaSearchConfig()).run(
            get["preliminary_visit_image"], get["template_detector"], id_base=base).candidates
        assert len(catalog) == len(here)
        np.testing.assert_array_equal(catalog["id"], here["id"])
        np.testing.assert_allclose(catalog["score"], here["score"], rtol=0, atol=1e-6)


def test_training_stamps_at_the_candidates_are_labelled_from_the_truth(simulated):
    from rbnodia.sim.search_stamps import SEARCH_PEAK_FAMILY, search_stamps_from_detector
    from rbnodia.sim.truth import FAMILIES, REAL_FAMILIES

    sim = simulated[False]
    stamps, x, y = search_stamps_from_detector(sim, 51)
    assert len(stamps) == len(x) == len(y) > 0
    assert set(stamps.family) <= set(FAMILIES)
    injections = sim.meta["injections"]
    distance = np.hypot(x[:, None] - np.asarray(injections["x"])[None, :],
                        y[:, None] - np.asarray(injections["y"])[None, :]).min(axis=1)
    real = stamps.label == 0
    assert (distance[real] <= 2.5).all() and real.any()
    transient = np.isin(stamps.family, REAL_FAMILIES)
    assert transient.any() and (stamps.label[transient] == 0).all()
    assert (stamps.label[stamps.family == SEARCH_PEAK_FAMILY] == 1).all()
    # the rows are those the task scores: same positions as the search on the same images
    from rbnodia.core.search import find_candidates
    from rbnodia.sim.search_stamps import _search_bad

    found = find_candidates(sim.science, sim.science_variance, sim.template, sim.template_variance,
                            _search_bad(sim))
    candidates = set(zip(found.x.tolist(), found.y.tolist()))
    assert set(zip(x.astype(int).tolist(), y.astype(int).tolist())) <= candidates
    assert np.isfinite(stamps.srch[:, 25, 25]).all()


def test_patch_stamps_can_be_cut_at_the_candidates():
    from rbnodia.sim.patches import simulate_patch_stamps

    stamps = simulate_patch_stamps(0, preset="des", seed=4, patch_size=200, candidates="search")
    assert len(stamps) > 0 and set(stamps.label) <= {0, 1}
    with pytest.raises(ValueError, match="candidates"):
        simulate_patch_stamps(0, preset="des", seed=4, patch_size=200, candidates="everything")


def test_config_defaults_are_the_search_defaults():
    from rbnodia.core.search import SEARCH_DEFAULTS, SEARCH_MASK_PLANES
    from rbnodia.tasks.search import NoDiaSearchConfig

    config = NoDiaSearchConfig()
    fields = {"design": "design", "threshold": "detectionThreshold", "box_width": "boxWidth",
              "aperture_half": "apertureHalfWidth", "excess_threshold": "excessThreshold",
              "max_candidates": "maxCandidates", "column_sigma": "columnDefectSigma",
              "column_block": "columnDefectBlock", "renormalize": "renormalizeNoise"}
    assert set(fields) == set(SEARCH_DEFAULTS)
    for option, field in fields.items():
        assert getattr(config, field) == SEARCH_DEFAULTS[option]
    assert list(config.searchMaskPlanes) == list(SEARCH_MASK_PLANES)


def test_sentinel_and_negative_variance_pixels_are_unusable():
    science, variance, template, template_variance = _sky(seed=5)
    science[50:53, 60:63] = 1e30
    template[50:53, 60:63] = 1e30  # equal sentinels cancel in the difference, and are still unusable
    science[120, 100] = 1e31
    template_variance = template_variance.copy()
    template_variance[150:160, 150:160] = -1.0
    science[150:160, 150:160] += 1e4
    found = find_candidates(science, variance, template, template_variance)
    assert len(found) == 0


def _correlated_sky(shape=(400, 400), seed=21):
    """Return science and template whose noise is correlated (as resampling leaves it), with variance
    planes that give each pixel's variance only.
    """
    rng = np.random.default_rng(seed)
    images = []
    for sigma in (SIGMA, SIGMA / 3):
        white = rng.normal(0, 1, (shape[0] + 2, shape[1] + 2))
        smooth = sum(white[dy:dy + shape[0], dx:dx + shape[1]] for dy in range(3) for dx in range(3)) / 3.0
        images.append((sigma * smooth).astype(np.float32))
    variance = np.full(shape, SIGMA**2, dtype=np.float32)
    return images[0], variance, images[1], variance / 9


def test_noise_scale_is_one_for_white_noise_and_more_for_correlated_noise():
    from rbnodia.core.search import noise_scale

    science, variance, template, template_variance = _sky(shape=(400, 400), seed=9)
    usable = np.ones(science.shape, dtype=bool)
    white = box_sum(science - template, 5) / (np.sqrt(variance + template_variance) * 5)
    assert abs(noise_scale(white, usable) - 1) < 0.05
    science, variance, template, template_variance = _correlated_sky()
    correlated = box_sum(science - template, 5) / (np.sqrt(variance + template_variance) * 5)
    assert noise_scale(correlated, usable) > 2  # a 3x3 correlation: box sums vary ~2.6x more
    assert noise_scale(correlated, np.zeros(science.shape, dtype=bool)) == 1.0  # nothing to measure


@pytest.mark.parametrize("design", SEARCH_DESIGNS)
def test_correlated_noise_gives_no_flood_once_renormalized(design):
    science, variance, template, template_variance = _correlated_sky()
    science += _star(science.shape, 200.3, 150.6, 3e4, 4.0)  # a transient of S/N ~ 60 per pixel noise
    unscaled = find_candidates(science, variance, template, template_variance, design=design,
                               renormalize=False)
    found = find_candidates(science, variance, template, template_variance, design=design)
    assert len(unscaled) >= 10  # noise peaks, from noise the planes underestimate
    assert found.noise_scale > 2
    assert len(found) <= 2
    assert min(np.hypot(found.x - 200.3, found.y - 150.6)) <= 1.5
