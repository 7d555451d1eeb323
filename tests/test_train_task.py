"""Training through the real middleware: makeLabelledStamps + trainRealBogus
with ``pipetask run``, then the classification pipeline picks the trained
model up from the training run's output collection.
"""

import numpy as np
import pytest

from rbnodia.butler.execution import pipeline_path, run_pipetask

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("train") / "repo"
    sim = write_simulated_repo(root, preset="des", n_visits=2, n_detectors=2, seed=5, image_size=(600, 600),
                               progress=False)
    run_pipetask(
        root, pipeline_path("TrainRealBogus"), [sim["collection"]], "train/run1",
        config={"trainRealBogus:training.epochs": "2", "trainRealBogus:training.batchSize": "32",
                "trainRealBogus:training.optimizer": "adam", "trainRealBogus:testFraction": "0.25"},
        stream=False,
    )
    return {"root": root, "sim": sim}


def test_training_outputs(trained):
    from lsst.daf.butler import Butler
    from rbnodia.nn import RealBogusModel

    butler = Butler.from_config(str(trained["root"]))
    model = butler.get("rbnodia_model", collections="train/run1")
    assert isinstance(model, RealBogusModel)
    assert model.metadata.architecture == "paper_nodia" and model.layout.value == "noDIA"
    metrics = butler.get("rbnodia_training_metrics", collections="train/run1")
    assert metrics["model"] == model.version
    assert len(metrics["history"]["loss"]) == metrics["epochs_run"] <= 2
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["data"]["train"]["n"] + metrics["data"]["test"]["n"] > 0
    stamps_refs = butler.query_datasets("rbnodia_labelled_stamps", collections="train/run1")
    assert len(stamps_refs) == len(trained["sim"]["data_ids"])
    for name in ("loss", "roc", "confusion", "score", "family", "snr"):
        uri = butler.getURI(f"rbnodia_training_{name}_plot", collections="train/run1")
        assert uri.getExtension() == ".png" and uri.size() > 1000
    # Settings from the pipeline YAML and -c reach the one training config.
    assert metrics["config"]["epochs"] == 2 and metrics["config"]["name"] == "nodia_trained"
    assert model.metadata.name == "nodia_trained"
    # Per-family metrics, family names from the data: the test split's families.
    test_families = metrics["data"]["test"]["families"]
    assert set(metrics["test"]["by_family"]) == set(test_families)
    for name, row in metrics["test"]["by_family"].items():
        assert row["n"] == test_families[name] and 0 <= row["fraction_called_real"] <= 1
    assert model.metadata.metrics["test"]["by_family"] == metrics["test"]["by_family"]


def test_classification_uses_trained_model(trained):
    from lsst.daf.butler import Butler

    root = trained["root"]
    run_pipetask(
        root, pipeline_path("RealBogusNoDia"), [trained["sim"]["collection"], "train/run1"],
        "classify/trained",
        config={"classifyRealBogus:modelSource": "butler"}, stream=False,
    )
    butler = Butler.from_config(str(root))
    version = butler.get("rbnodia_model", collections="train/run1").version
    refs = butler.query_datasets("rbnodia_reliability", collections="classify/trained")
    assert len(refs) == len(trained["sim"]["data_ids"])
    for ref in refs:
        catalog = butler.get(ref)
        assert (catalog["version"] == version).all()
        assert np.isfinite(catalog["score"][~catalog["flag_no_data"]]).all()
