"""End to end through the real middleware: a temporary Butler repo of
simulated data, the real ``pipetask run`` CLI (serially and with -j 2), the
real ``butler query-datasets`` CLI, and ``Butler.get``.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rbnodia.butler.execution import pipeline_path, run_pipetask

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
EDGE_ID = 9_000_000_001
NAN_ID = 9_000_000_002


@pytest.fixture(scope="module")
def repo(tmp_path_factory, nodia_model_file_module):
    """Return a simulated repo, plus a run that adds an edge detection and NaN
    template pixels around another detection to one detector's inputs.
    """
    from lsst.daf.butler import Butler, DatasetType
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("e2e") / "repo"
    sim = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=2, seed=11, image_size=(400, 400),
                               progress=False)
    butler = Butler.from_config(str(root), writeable=True)
    data_id = sim["data_ids"][0]
    detections = butler.get("dia_source_unstandardized", data_id, collections=sim["collection"])
    template = butler.get("template_detector", data_id, collections=sim["collection"])
    assert len(detections) >= 1, "the simulation should detect something"
    row = {name: detections[0][name] for name in detections.colnames}
    row.update(id=EDGE_ID, x=1.0, y=200.0)
    detections.add_row(row)
    row.update(id=NAN_ID, x=300.0, y=150.0)
    detections.add_row(row)
    template.image.array[148:151, 299:302] = np.nan
    butler.registry.registerRun("e2e/modified")
    butler.put(detections, "dia_source_unstandardized", data_id, run="e2e/modified")
    butler.put(template, "template_detector", data_id, run="e2e/modified")
    # The same model in the Butler, for the modelSource=butler run.
    from rbnodia.nn import load_model

    model_type = DatasetType("rbnodia_model", butler.dimensions.empty, "RealBogusModel")
    butler.registry.registerDatasetType(model_type)
    butler.registry.registerRun("e2e/models")
    butler.put(load_model(nodia_model_file_module), "rbnodia_model", {}, run="e2e/models")
    return {"root": root, "inputs": ["e2e/modified", sim["collection"]], "sim": sim, "data_id": data_id}


@pytest.fixture(scope="module")
def nodia_model_file_module(nodia_model_file):
    return nodia_model_file


def _catalogs(root, collection):
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(root))
    refs = butler.query_datasets("rbnodia_reliability", collections=collection, explain=False)
    return {tuple(sorted(ref.dataId.required.items())): butler.get(ref) for ref in refs}, butler


def _check_outputs(repo, collection):
    catalogs, butler = _catalogs(repo["root"], collection)
    assert len(catalogs) == len(repo["sim"]["data_ids"])
    for key, catalog in catalogs.items():
        data_id = dict(key)
        detections = butler.get("dia_source_unstandardized", data_id, collections=repo["inputs"])
        assert len(catalog) == len(detections)
        np.testing.assert_array_equal(catalog["id"], detections["id"])
        scored = ~np.asarray(catalog["flag_no_data"])
        scores = np.asarray(catalog["score"])[scored]
        assert ((scores >= 0) & (scores <= 1)).all()
    modified = catalogs[tuple(sorted(repo["data_id"].items()))]
    by_id = {int(i): k for k, i in enumerate(modified["id"])}
    assert modified["flag_edge"][by_id[EDGE_ID]]
    assert modified["flag_bad_pixels"][by_id[NAN_ID]]
    assert np.isfinite(modified["score"][by_id[NAN_ID]])
    return catalogs


def test_pipetask_serial_and_parallel_agree(repo, nodia_model_file):
    config = {"classifyRealBogus:modelName": str(nodia_model_file)}
    pipeline = pipeline_path("RealBogusNoDia")
    run_pipetask(repo["root"], pipeline, repo["inputs"], "e2e/serial", config=config, stream=False)
    run_pipetask(repo["root"], pipeline, repo["inputs"], "e2e/parallel", config=config, jobs=2, stream=False)
    serial = _check_outputs(repo, "e2e/serial")
    parallel = _check_outputs(repo, "e2e/parallel")
    for key in serial:
        np.testing.assert_allclose(serial[key]["score"], parallel[key]["score"], rtol=1e-5)

    listing = subprocess.run(
        [str(BIN / "butler"), "query-datasets", str(repo["root"]), "rbnodia_reliability",
         "--collections", "e2e/serial"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert listing.count("rbnodia_reliability") == len(repo["sim"]["data_ids"])


def test_model_from_butler(repo, nodia_model_file):
    from rbnodia.nn import load_model

    run_pipetask(
        repo["root"], pipeline_path("RealBogusNoDia"), repo["inputs"] + ["e2e/models"], "e2e/butler-model",
        config={"classifyRealBogus:modelSource": "butler"}, stream=False,
    )
    catalogs = _check_outputs(repo, "e2e/butler-model")
    version = load_model(nodia_model_file).version
    assert all((c["version"] == version).all() for c in catalogs.values())


def test_failed_quantum_writes_nothing(repo):
    from rbnodia.butler.execution import PipetaskError

    with pytest.raises(PipetaskError, match="expects layout noDIA"):
        run_pipetask(
            repo["root"], pipeline_path("RealBogusDia"), repo["inputs"] + ["e2e/models"], "e2e/mismatch",
            config={"classifyRealBogus:modelSource": "butler"}, stream=False,
        )
    catalogs, _ = _catalogs(repo["root"], "e2e/mismatch")
    assert catalogs == {}


def test_dia_pipeline_with_its_packaged_model(repo):
    """RealBogusDia.yaml as shipped: difference images in, the packaged DIA model."""
    from rbnodia.nn import load_model

    run_pipetask(repo["root"], pipeline_path("RealBogusDia"), repo["inputs"], "e2e/dia", stream=False)
    catalogs = _check_outputs(repo, "e2e/dia")
    version = load_model("dia_default").version
    for catalog in catalogs.values():
        assert (catalog["version"] == version).all()
