"""rbnodia as ApPipe's ``computeReliability``: the task on its own, and an AP
stand-in pipeline (simulated upstream, our task, a re-implementation of
ap_association's reliability filter, ApPipe-style contracts) through the
real ``pipetask``, serially and with -j 2.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from rbnodia.butler.execution import pipeline_path, run_pipetask

BIN = Path(sys.executable).parent
STANDIN = Path(__file__).parent / "ap_standin"
EDGE_ID, NAN_ID, OFF_ID = 9_000_000_001, 9_000_000_002, 9_000_000_003
AP_OUTPUTS = ("dia_source_reliability", "dia_source_high_reliability", "dia_source_low_reliability")


def _task(**overrides):
    from rbnodia.tasks.compute_reliability import ComputeReliabilityConfig, ComputeReliabilityTask

    config = ComputeReliabilityConfig()
    config.modelSource = "package"
    for key, value in overrides.items():
        setattr(config, key, value)
    config.validate()
    return ComputeReliabilityTask(config=config)


def _scene(rng, n=6, size=120):
    science = rng.normal(100.0, 5.0, (size, size)).astype(np.float32)
    template = rng.normal(100.0, 3.0, (size, size)).astype(np.float32)
    table = Table({"id": np.arange(10, 10 + n, dtype=np.int64),
                   "x": rng.uniform(30, size - 30, n), "y": rng.uniform(30, size - 30, n)})
    return science, template, table


def test_config_refuses_a_model_name_with_butler_models():
    import lsst.pex.config as pexConfig
    from rbnodia.tasks.compute_reliability import ComputeReliabilityConfig

    config = ComputeReliabilityConfig()
    assert config.modelSource == "butler"  # as AP: the collection chooses the model
    config.validate()
    config.modelName = "nodia_default"
    with pytest.raises(pexConfig.FieldValidationError, match="chosen by the input collections"):
        config.validate()


def test_unscorable_rows_get_the_policy_score_and_no_nan(nodia_model_file):
    science, template, table = _scene(np.random.default_rng(3))
    table["x"][1] = np.nan
    table["y"][2] = np.inf
    table["x"][3] = -500.0  # centre off the image
    task = _task(modelName=str(nodia_model_file), unscorableScore=0.0)
    out = task.run(science, template, table)
    ap, full = out.classifications, out.reliability
    assert ap.colnames == ["id", "score", "version"]
    np.testing.assert_array_equal(ap["id"], table["id"])
    assert ap["id"].dtype == np.int64 and ap["score"].dtype == np.float32
    assert np.isfinite(ap["score"]).all() and ((ap["score"] >= 0) & (ap["score"] <= 1)).all()
    unscored = np.asarray(full["flag_no_data"])
    assert unscored.tolist() == [False, True, True, True, False, False]
    assert (ap["score"][unscored] == 0.0).all()
    np.testing.assert_array_equal(ap["score"][~unscored], full["score"][~unscored])
    assert np.isnan(full["ra"][1]) and np.isnan(full["ra"][2])
    from rbnodia.nn import load_model

    version = load_model(nodia_model_file).metadata.content_hash[:7]
    assert set(ap["version"]) == {version}


def test_empty_catalog_gives_empty_outputs(nodia_model_file):
    science, template, table = _scene(np.random.default_rng(4), n=0)
    out = _task(modelName=str(nodia_model_file)).run(science, template, table)
    assert len(out.classifications) == 0 and len(out.reliability) == 0
    assert out.classifications.colnames == ["id", "score", "version"]


def test_images_without_pixels_give_the_policy_score(nodia_model_file):
    science, template, table = _scene(np.random.default_rng(6), n=3)
    out = _task(modelName=str(nodia_model_file), unscorableScore=0.0).run(science[:0, :0], template[:0, :0],
                                                                          table)
    assert out.classifications["id"].tolist() == table["id"].tolist()
    assert (out.classifications["score"] == 0.0).all()
    assert np.asarray(out.reliability["flag_no_data"]).all()


def test_unsigned_ids_that_do_not_fit_are_refused(nodia_model_file):
    science, template, table = _scene(np.random.default_rng(5), n=3)
    table["id"] = np.array([1, 2, 2**63 + 5], dtype=np.uint64)
    with pytest.raises(ValueError, match="do not fit in int64"):
        _task(modelName=str(nodia_model_file)).run(science, template, table)
    table["id"] = np.array([1, 2, 2**63 - 1], dtype=np.uint64)  # these fit: kept exactly
    out = _task(modelName=str(nodia_model_file)).run(science, template, table)
    assert out.classifications["id"].tolist() == [1, 2, 2**63 - 1]


def test_afw_catalog_output_needs_afw(nodia_model_file):
    try:
        import lsst.afw.table  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("lsst.afw is installed: tests/test_afw_stack.py covers the Catalog output")
    science, template, table = _scene(np.random.default_rng(6), n=2)
    with pytest.raises(ImportError, match="needs lsst.afw"):
        _task(modelName=str(nodia_model_file), outputStorageClass="Catalog").run(science, template, table)


def _standin_pipeline(tmp_path, compute_pipeline="ComputeReliability.yaml", **config) -> Path:
    """Return the stand-in with another computeReliability pipeline and/or config overrides."""
    import yaml

    data = yaml.safe_load((STANDIN / "ApStandIn.yaml").read_text())
    data["imports"] = [{"location": f"$RBNODIA_DIR/pipelines/{compute_pipeline}"}]
    if config:
        data["tasks"]["computeReliability"] = {
            "class": "rbnodia.tasks.compute_reliability.ComputeReliabilityTask", "config": config}
    path = tmp_path / f"ApStandIn-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_contracts_fail_when_the_connections_disagree(tmp_path, monkeypatch):
    """The stand-in's contracts are evaluated, and fail on a renamed connection."""
    from lsst.pipe.base import Pipeline
    from lsst.pipe.base.pipelineIR import ContractError
    from rbnodia.butler.environment import environment

    monkeypatch.syspath_prepend(str(STANDIN))
    for key, value in environment().items():
        monkeypatch.setenv(key, value)
    Pipeline.from_uri(str(STANDIN / "ApStandIn.yaml")).to_graph()
    broken = _standin_pipeline(tmp_path, **{"connections.classifications": "some_other_reliability"})
    with pytest.raises(ContractError, match="computeReliability.classifications"):
        Pipeline.from_uri(str(broken)).to_graph()


def test_lsstcam_override_configures_our_task_with_afw_types(tmp_path, monkeypatch):
    """pipelines/LSSTCam/ApPipe*.yaml without their ApPipe import: every config
    line applies to our task, AP's connection names and the afw storage
    classes come out, and the DIA file only changes the layout.
    """
    import yaml

    from lsst.pipe.base import Pipeline
    from rbnodia.butler.environment import environment

    for key, value in environment().items():
        monkeypatch.setenv(key, value)
    nodia = yaml.safe_load(pipeline_path("LSSTCam/ApPipe.yaml").read_text())
    assert [i["location"] for i in nodia["imports"]] == ["$AP_PIPE_DIR/pipelines/LSSTCam/ApPipe.yaml"]
    assert set(nodia) == {"description", "imports", "tasks"}  # no subsets or contracts of its own
    del nodia["imports"]
    local = tmp_path / "ApPipe-local.yaml"
    local.write_text(yaml.safe_dump(nodia))
    dia = pipeline_path("LSSTCam/ApPipeDia.yaml").read_text()
    dia = dia.replace("$RBNODIA_DIR/pipelines/LSSTCam/ApPipe.yaml", str(local))
    (tmp_path / "ApPipeDia-local.yaml").write_text(dia)
    for name, layout in (("ApPipe-local.yaml", "noDIA"), ("ApPipeDia-local.yaml", "DIA")):
        node = Pipeline.from_uri(str(tmp_path / name)).to_graph().tasks["computeReliability"]
        assert node.task_class_name == "rbnodia.tasks.compute_reliability.ComputeReliabilityTask"
        assert node.config.layout == layout and node.config.modelSource == "butler"
        names = {edge.connection_name: (edge.parent_dataset_type_name, edge.storage_class_name)
                 for edge in list(node.inputs.values()) + list(node.outputs.values())}
        assert names["science"] == ("preliminary_visit_image", "ExposureF")
        assert names["template"] == ("template_detector", "ExposureF")
        assert names["difference"] == ("difference_image", "ExposureF")
        assert names["diaSources"] == ("dia_source_unstandardized", "SourceCatalog")
        assert names["classifications"] == ("dia_source_reliability", "Catalog")
        assert list(node.prerequisite_inputs) == ["pretrainedModel"]


@pytest.mark.skipif("AP_PIPE_DIR" not in os.environ,
                    reason="AP_PIPE_DIR is not set: the real ApPipe (ap_pipe, afw, obs_lsst) needs the "
                    "LSST stack")
def test_real_appipe_with_our_computereliability():
    """The real LSSTCam ApPipe with our override: it loads, its contracts hold,
    and its subsets still contain computeReliability.
    """
    from lsst.pipe.base import Pipeline

    for name in ("LSSTCam/ApPipe.yaml", "LSSTCam/ApPipeDia.yaml"):
        pipeline = Pipeline.from_uri(str(pipeline_path(name)))
        graph = pipeline.to_graph()
        node = graph.tasks["computeReliability"]
        assert node.task_class_name.startswith("rbnodia.")
        for subset in ("prompt",):
            assert "computeReliability" in pipeline.subsets[subset]
        assert "filterDiaSourcePostReliability" in graph.tasks


@pytest.fixture(scope="module")
def ap_repo(tmp_path_factory):
    """Simulate AP inputs for one visit and three detectors, with hostile
    rows on detector 0 (edge, NaN and off-image positions), an empty
    catalog on detector 2, an unreadable difference image for detector 0 in
    its own run, and the packaged models in pretrained_models/ collections
    put there by the real ``rbnodia put-model``.
    """
    from lsst.daf.butler import Butler
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("ap") / "repo"
    sim = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=3, seed=7, image_size=(360, 360),
                               progress=False)
    butler = Butler.from_config(str(root), writeable=True)
    ids = sorted(sim["data_ids"], key=lambda d: d["detector"])
    hostile, empty = ids[0], ids[2]
    detections = butler.get("dia_source_unstandardized", hostile, collections=sim["collection"])
    row = {name: detections[0][name] for name in detections.colnames}
    for extra_id, x, y in ((EDGE_ID, 1.0, 180.0), (NAN_ID, np.nan, 100.0), (OFF_ID, -400.0, 100.0)):
        row.update(id=extra_id, x=x, y=y)
        detections.add_row(row)
    butler.registry.registerRun("ap/modified")
    butler.put(detections, "dia_source_unstandardized", hostile, run="ap/modified")
    none = butler.get("dia_source_unstandardized", empty, collections=sim["collection"])[:0]
    butler.put(none, "dia_source_unstandardized", empty, run="ap/modified")
    difference = butler.get("difference_image", hostile, collections=sim["collection"])
    butler.registry.registerRun("ap/unreadable-difference")
    ref = butler.put(difference, "difference_image", hostile, run="ap/unreadable-difference")
    Path(butler.getURI(ref).ospath).write_bytes(b"not a FITS file")
    with pytest.raises(Exception):
        butler.get(ref)
    for model in ("nodia_default", "dia_default"):
        subprocess.run([str(BIN / "rbnodia"), "put-model", str(root), model], check=True, capture_output=True)
    return {"root": root, "sim": sim, "data_ids": ids, "hostile": hostile, "empty": empty,
            "inputs": ["ap/modified", sim["collection"]]}


def _env():
    return {"PYTHONPATH": os.pathsep.join([str(STANDIN)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}


def _get(root, dataset_type, data_id, collection, **parameters):
    from lsst.daf.butler import Butler

    return Butler.from_config(str(root)).get(dataset_type, data_id, collections=collection,
                                             parameters=parameters or None)


def _check_ap_outputs(repo, collection, model_name, *, with_filter=True):
    """Check the AP contract on every detector of the run; return the scores."""
    from rbnodia.nn import load_model

    version = load_model(model_name).metadata.content_hash[:7]
    scores = {}
    for data_id in repo["data_ids"]:
        sources = _get(repo["root"], "dia_source_unstandardized", data_id, repo["inputs"])
        ap = _get(repo["root"], "dia_source_reliability", data_id, collection)
        np.testing.assert_array_equal(np.asarray(ap["id"]), np.asarray(sources["id"]))
        score = np.asarray(ap["score"])
        assert score.dtype == np.float32 and np.isfinite(score).all()
        assert ((score >= 0) & (score <= 1)).all()
        assert all(v == version for v in ap["version"]) and len(version) == 7
        if with_filter:
            high = _get(repo["root"], "dia_source_high_reliability", data_id, collection)
            low = _get(repo["root"], "dia_source_low_reliability", data_id, collection)
            assert len(high) + len(low) == len(sources)
            assert sorted(np.concatenate([high["id"], low["id"]]).tolist()) == sorted(sources["id"].tolist())
            assert (high["reliability"] >= 0.5).all() and (low["reliability"] < 0.5).all()
            assert all(v == version for v in np.concatenate([high["reliabilityVersion"],
                                                             low["reliabilityVersion"]]))
        scores[data_id["detector"]] = score
    assert len(scores[repo["empty"]["detector"]]) == 0
    return scores


def _check_hostile_rows(repo, collection):
    # The Butler strips table metadata on read unless asked not to (README).
    full = _get(repo["root"], "rbnodia_reliability", repo["hostile"], collection,
                strip_astropy_meta_yaml=False)
    ap = _get(repo["root"], "dia_source_reliability", repo["hostile"], collection)
    row = {int(i): k for k, i in enumerate(full["id"])}
    assert full["flag_edge"][row[EDGE_ID]] and np.isfinite(full["score"][row[EDGE_ID]])
    for unscorable in (NAN_ID, OFF_ID):
        assert full["flag_no_data"][row[unscorable]] and np.isnan(full["score"][row[unscorable]])
        assert ap["score"][row[unscorable]] == 0.0  # the documented unscorableScore: AP's cut rejects it
    assert full.meta["rbnodia_ap_version"] == ap["version"][0]


def test_standin_serial_and_parallel(ap_repo, tmp_path):
    """noDIA: the stand-in passes its contracts and cut serially and with -j 2,
    with bitwise-equal scores, without reading the (unreadable) difference
    image.
    """
    inputs = ["ap/unreadable-difference"] + ap_repo["inputs"] + ["pretrained_models/rbnodia_nodia_default"]
    pipeline = STANDIN / "ApStandIn.yaml"
    run_pipetask(ap_repo["root"], pipeline, inputs, "ap/serial", stream=False, env=_env())
    run_pipetask(ap_repo["root"], pipeline, inputs, "ap/parallel", jobs=2, stream=False, env=_env())
    serial = _check_ap_outputs(ap_repo, "ap/serial", "nodia_default")
    parallel = _check_ap_outputs(ap_repo, "ap/parallel", "nodia_default")
    for detector, scores in serial.items():
        np.testing.assert_array_equal(scores, parallel[detector])
    _check_hostile_rows(ap_repo, "ap/serial")


def test_standin_with_the_dia_model(ap_repo, tmp_path):
    """DIA: ComputeReliabilityDia.yaml in the stand-in, with the packaged DIA model."""
    inputs = ap_repo["inputs"] + ["pretrained_models/rbnodia_dia_default"]
    pipeline = _standin_pipeline(tmp_path, "ComputeReliabilityDia.yaml")
    run_pipetask(ap_repo["root"], pipeline, inputs, "ap/dia", stream=False, env=_env())
    _check_ap_outputs(ap_repo, "ap/dia", "dia_default")
    _check_hostile_rows(ap_repo, "ap/dia")


def test_compute_reliability_pipeline_alone(ap_repo):
    """pipelines/ComputeReliability.yaml as shipped, without the optional full
    catalog; the butler CLI lists one dia_source_reliability per detector.
    """
    inputs = ap_repo["inputs"] + ["pretrained_models/rbnodia_nodia_default"]
    run_pipetask(ap_repo["root"], pipeline_path("ComputeReliability"), inputs, "ap/alone", stream=False,
                 config={"computeReliability:doWriteFullCatalog": "False"})
    _check_ap_outputs(ap_repo, "ap/alone", "nodia_default", with_filter=False)
    listing = subprocess.run(
        [str(BIN / "butler"), "query-datasets", str(ap_repo["root"]), "dia_source_reliability",
         "rbnodia_reliability", "--collections", "ap/alone"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert listing.count("dia_source_reliability") == len(ap_repo["data_ids"])
    assert "rbnodia_reliability" not in listing


def test_put_model_refuses_a_second_model_in_a_collection(ap_repo):
    done = subprocess.run([str(BIN / "rbnodia"), "put-model", str(ap_repo["root"]), "dia_default",
                           "--collection", "pretrained_models/rbnodia_nodia_default"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "already holds rbnodia_model" in done.stderr
