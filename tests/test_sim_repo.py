"""Round trip of simulated inputs through a real Butler repository."""

import numpy as np
import pytest
from rbnodia.butler.repo import INPUT_DATASET_TYPES
from rbnodia.sim import simulate_detector, write_simulated_repo


def test_write_and_read_back(tmp_path):
    from lsst.daf.butler import Butler

    root = tmp_path / "repo"
    summary = write_simulated_repo(
        root, preset="des", n_visits=2, n_detectors=1, seed=4, image_size=(192, 192), progress=False
    )
    for key in (
        "root",
        "collection",
        "instrument",
        "data_ids",
        "n_detections",
        "n_real",
        "n_bogus",
        "families",
    ):
        assert key in summary
    assert summary["instrument"] == "SimDECam"
    assert len(summary["data_ids"]) == 2
    assert summary["n_real"] + summary["n_bogus"] == summary["n_detections"]
    assert sum(summary["families"].values()) == summary["n_detections"]

    butler = Butler.from_config(str(root), collections=summary["collection"])
    data_id = summary["data_ids"][0]
    sim = simulate_detector(
        "des", visit=data_id["visit"], detector=data_id["detector"], seed=4, image_size=(192, 192)
    )
    diff = butler.get(INPUT_DATASET_TYPES["difference"], data_id)
    assert np.array_equal(diff.image.array, sim.difference, equal_nan=True)
    assert np.allclose(diff.variance.array, sim.difference_variance, equal_nan=True)
    science = butler.get(INPUT_DATASET_TYPES["science"], data_id)
    assert np.array_equal(science.image.array, sim.science)
    template = butler.get(INPUT_DATASET_TYPES["template"], data_id)
    assert np.array_equal(template.image.array, sim.template, equal_nan=True)
    truth = butler.get(INPUT_DATASET_TYPES["truth"], data_id)
    detections = butler.get(INPUT_DATASET_TYPES["detections"], data_id)
    assert list(truth["id"]) == list(sim.truth["id"]) == list(detections["id"])
    assert list(truth["label"]) == list(sim.truth["label"])
    # Dimension records: the visit has the simulated band and a sky region.
    (visit,) = butler.query_dimension_records(
        "visit", data_id={"instrument": "SimDECam", "visit": data_id["visit"]}
    )
    assert visit.physical_filter == sim.physical_filter
    assert visit.region is not None


def test_clobber_required(tmp_path):
    root = tmp_path / "repo"
    write_simulated_repo(
        root, preset="lsst", n_visits=1, n_detectors=1, seed=1, image_size=(128, 128), progress=False
    )
    with pytest.raises(FileExistsError):
        write_simulated_repo(
            root, preset="lsst", n_visits=1, n_detectors=1, seed=1, image_size=(128, 128), progress=False
        )
