"""ClassifyRealBogusTask.run on in-memory inputs (the Butler path is in
test_pipeline_e2e.py).
"""

import numpy as np
import pytest
from astropy.table import Table
from model_files import make_classify_task

from rbnodia.butler.repo import to_masked_image
from rbnodia.nn import ModelMismatchError, load_model
from rbnodia.tasks.classify import (
    RELIABILITY_COLUMNS,
    SALIENCY_COLUMNS,
    ClassifyRealBogusConfig,
)


def make_scene(n=40, shape=(300, 400), seed=0):
    rng = np.random.default_rng(seed)
    template = rng.normal(100, 5, shape).astype(np.float32)
    science = template + rng.normal(0, 5, shape).astype(np.float32)
    x = rng.uniform(30, shape[1] - 30, n)
    y = rng.uniform(30, shape[0] - 30, n)
    ids = rng.permutation(10_000)[:n].astype(np.int64)
    return science, template, science - template, Table({"id": ids, "x": x, "y": y})


def test_one_row_per_detection_in_order(nodia_model_file):
    science, template, _, detections = make_scene()
    # Edge detection, off-image detection, and a NaN pixel near one detection.
    detections.add_row({"id": 99_001, "x": 2.0, "y": 150.0})
    detections.add_row({"id": 99_002, "x": -50.0, "y": 150.0})
    detections.add_row({"id": 99_003, "x": 200.0, "y": 100.0})
    template[103, 205] = np.nan
    task = make_classify_task(nodia_model_file, batchSize=16)
    out = task.run(science=science, template=template, detections=detections).reliability
    assert list(out.colnames) == list(RELIABILITY_COLUMNS)  # saliency is off by default
    assert len(out) == len(detections)
    np.testing.assert_array_equal(out["id"], detections["id"])
    np.testing.assert_array_equal(out["x"], detections["x"])
    assert out["score"].dtype == np.float32 and out["id"].dtype == np.int64
    row = {int(i): k for k, i in enumerate(out["id"])}
    edge, off, nan = out[row[99_001]], out[row[99_002]], out[row[99_003]]
    assert edge["flag_edge"] and not edge["flag_no_data"] and 0 <= edge["score"] <= 1
    assert off["flag_no_data"] and np.isnan(off["score"]) and not off["is_real"]
    assert nan["flag_bad_pixels"] and np.isfinite(nan["score"])
    scored = out[~out["flag_no_data"]]
    assert ((scored["score"] >= 0) & (scored["score"] <= 1)).all()
    model = load_model(nodia_model_file)
    assert (out["version"] == model.version).all()
    np.testing.assert_array_equal(out["is_real"], np.nan_to_num(out["score"], nan=-1) >= model.threshold)
    assert out.meta["rbnodia_model"] == model.version


def test_batching_does_not_change_results(nodia_model_file):
    science, template, _, detections = make_scene(n=50)
    inputs = dict(science=science, template=template, detections=detections)
    a = make_classify_task(nodia_model_file, batchSize=7).run(**inputs)
    b = make_classify_task(nodia_model_file, batchSize=4096).run(**inputs)
    np.testing.assert_allclose(a.reliability["score"], b.reliability["score"], rtol=1e-5)


def test_lsst_images_inputs_and_sky_coordinates(nodia_model_file):
    from astropy.wcs import WCS

    science, template, _, detections = make_scene(n=5)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [10.0, -30.0]
    wcs.wcs.crpix = [200.0, 150.0]
    wcs.wcs.cd = np.eye(2) * 0.2 / 3600
    task = make_classify_task(nodia_model_file)
    out = task.run(
        science=to_masked_image(science, wcs=wcs), template=to_masked_image(template, wcs=wcs),
        detections=detections,
    ).reliability
    ra, dec = wcs.pixel_to_world_values(detections["x"], detections["y"])
    np.testing.assert_allclose(out["ra"], ra, atol=1e-9)
    np.testing.assert_allclose(out["dec"], dec, atol=1e-9)
    assert out["ra"].unit == "deg"


def test_empty_catalog_same_schema(nodia_model_file):
    science, template, _, detections = make_scene(n=5)
    task = make_classify_task(nodia_model_file)
    full = task.run(science=science, template=template, detections=detections).reliability
    empty = make_classify_task(nodia_model_file).run(
        science=science, template=template, detections=detections[:0]
    ).reliability
    assert len(empty) == 0
    assert empty.colnames == full.colnames
    assert [empty[c].dtype.kind for c in empty.colnames] == [full[c].dtype.kind for c in full.colnames]


def test_dia_model(dia_model_file):
    science, template, difference, detections = make_scene(n=6)
    task = make_classify_task(dia_model_file, layout="DIA")
    out = task.run(science=science, template=template, difference=difference, detections=detections)
    assert len(out.reliability) == 6
    with pytest.raises(ValueError, match="difference image"):
        task.run(science=science, template=template, detections=detections)


def test_model_scaling_recipe_is_applied(tmp_path, nodia_model_file):
    """A model trained on shared-span inputs is fed shared-span stamps; the
    same weights with the paper's recipe score differently.
    """
    from model_files import save_untrained_model

    from rbnodia.core.preprocess import PixelImage, make_model_inputs
    from rbnodia.core.scaling import Scaling

    shared = save_untrained_model(tmp_path, "paper_nodia", "nodia_shared", seed=0,
                                  scaling=Scaling.SHARED_SPAN)
    model = load_model(shared)
    assert model.scaling is Scaling.SHARED_SPAN and load_model(nodia_model_file).scaling is Scaling.PAPER
    science, template, _, detections = make_scene(n=30, seed=4)
    science[150:160, 200:210] += 400.0  # a source in the science image only
    detections.add_row({"id": 99_004, "x": 205.0, "y": 155.0})
    inputs = dict(science=science, template=template, detections=detections)
    out = make_classify_task(shared).run(**inputs).reliability
    images = {"srch": PixelImage(science), "tmpl": PixelImage(template)}
    prepared = make_model_inputs(images, np.asarray(detections["x"]), np.asarray(detections["y"]), "noDIA",
                                 scaling=Scaling.SHARED_SPAN)
    np.testing.assert_allclose(out["score"], model.predict(prepared.inputs), rtol=0, atol=1e-6)
    paper = make_classify_task(nodia_model_file).run(**inputs).reliability
    assert np.abs(paper["score"] - out["score"]).max() > 1e-3


def test_unknown_scaling_recipe_is_refused(tmp_path):
    from model_files import save_untrained_model

    from rbnodia.nn.model import ModelMismatchError as Mismatch

    path = save_untrained_model(tmp_path, "paper_nodia", "other_scaling", seed=0)
    model = load_model(path)
    model.metadata.scaling_version = "other/v9"
    with pytest.raises(Mismatch, match="scaling 'other/v9'"):
        model.check_compatible("noDIA", 51)
    with pytest.raises(Mismatch, match="other/v9"):
        model.scaling  # noqa: B018


def test_layout_mismatch_is_clear_error(nodia_model_file):
    science, template, difference, detections = make_scene(n=3)
    task = make_classify_task(nodia_model_file, layout="DIA")
    with pytest.raises(ModelMismatchError, match="expects layout noDIA"):
        task.run(science=science, template=template, difference=difference, detections=detections)


def test_config_validation():
    config = ClassifyRealBogusConfig()
    config.stampSize = 50
    with pytest.raises(Exception, match="odd"):
        config.validate()
    config = ClassifyRealBogusConfig()
    config.threshold = 1.5
    with pytest.raises(Exception, match=r"\[0, 1\]"):
        config.validate()


def test_connections_follow_config():
    from rbnodia.tasks.classify import ClassifyRealBogusConnections

    config = ClassifyRealBogusConfig()
    conns = ClassifyRealBogusConnections(config=config)
    assert "difference" not in conns.inputs and "model" not in conns.prerequisiteInputs
    config.layout = "DIA"
    config.modelSource = "butler"
    config.imageStorageClass = "ExposureF"
    config.catalogStorageClass = "SourceCatalog"
    conns = ClassifyRealBogusConnections(config=config)
    assert "difference" in conns.inputs and "model" in conns.prerequisiteInputs
    assert conns.science.storageClass == "ExposureF" and conns.detections.storageClass == "SourceCatalog"


def test_saliency_columns_and_maps(nodia_model_file):
    science, template, _, detections = make_scene(n=12)
    detections.add_row({"id": 99_002, "x": -50.0, "y": 150.0})
    task = make_classify_task(nodia_model_file, doSaliency=True, doWriteSaliencyMaps=True, batchSize=5)
    result = task.run(science=science, template=template, detections=detections)
    out = result.reliability
    scored = ~np.asarray(out["flag_no_data"])
    total = np.asarray(out["saliency_srch"] + out["saliency_tmpl"])[scored]
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)
    assert np.isnan(out["saliency_diff"]).all()  # noDIA
    assert set(out["saliency_dominant"][scored]) <= {"srch", "tmpl"}
    assert out["saliency_dominant"][~scored][0] == "none"
    maps = result.saliency
    np.testing.assert_array_equal(maps["id"], out["id"])
    assert maps["saliency"].shape == (len(out), 51, 102, 1)
    assert maps["stamp_srch"].shape == (len(out), 51, 51)
    assert (maps["saliency"][~scored] == 0).all()
    # Saliency does not change the scores.
    plain = make_classify_task(nodia_model_file, doSaliency=False).run(science=science, template=template,
                                                              detections=detections).reliability
    np.testing.assert_allclose(plain["score"], out["score"], rtol=1e-5)
    assert "saliency_srch" not in plain.colnames
    assert list(out.colnames) == list(RELIABILITY_COLUMNS) + list(SALIENCY_COLUMNS)
    # Without maps to write, the fractions come from the maps' row sums: the same columns.
    columns = make_classify_task(nodia_model_file, doSaliency=True, batchSize=5).run(
        science=science, template=template, detections=detections).reliability
    for name in ("saliency_srch", "saliency_tmpl"):
        np.testing.assert_allclose(columns[name], out[name], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(columns["saliency_dominant"], out["saliency_dominant"])


def test_saliency_maps_need_saliency():
    config = ClassifyRealBogusConfig()
    config.doSaliency = False
    config.doWriteSaliencyMaps = True
    with pytest.raises(Exception, match="needs doSaliency"):
        config.validate()
