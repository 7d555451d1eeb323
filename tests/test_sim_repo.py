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


def test_bogus_majority_and_injection_truth(tmp_path):
    """With the nominal DES preset most detections are bogus, as in real
    difference imaging; ``rbnodia_injected`` lists every injection, and the
    detected ones point at real detections.
    """
    from lsst.daf.butler import Butler
    from rbnodia.sim import INJECTED_DATASET_TYPE

    summary = write_simulated_repo(
        tmp_path / "repo",
        preset="des",
        n_visits=1,
        n_detectors=2,
        seed=2,
        image_size=(1024, 1024),
        progress=False,
    )
    assert summary["n_bogus"] > 2 * summary["n_real"] > 0
    butler = Butler.from_config(str(tmp_path / "repo"), collections=summary["collection"])
    n_injected = 0
    for data_id in summary["data_ids"]:
        injected = butler.get(INJECTED_DATASET_TYPE, data_id)
        truth = butler.get(INPUT_DATASET_TYPES["truth"], data_id)
        n_injected += len(injected)
        for name in ("id", "x", "y", "ra", "dec", "mag", "snr_expected", "hosted", "host_mag", "detected"):
            assert name in injected.colnames
        real_ids = set(np.asarray(truth["id"])[np.asarray(truth["label"]) == 0].tolist())
        detected = np.asarray(injected["detected"])
        assert set(np.asarray(injected["detection_id"])[detected].tolist()) == real_ids
        assert np.all(np.asarray(injected["detection_id"])[~detected] == -1)
        assert not set(np.asarray(injected["id"]).tolist()) & set(np.asarray(truth["id"]).tolist())
        hosted = np.asarray(injected["hosted"])
        assert np.all(np.isfinite(injected["host_mag"][hosted])) and np.all(
            np.isnan(injected["host_mag"][~hosted])
        )
    assert n_injected == summary["n_injected"] >= summary["n_injected_detected"] == summary["n_real"]


def test_demo_scores_against_truth():
    """Purity = real among called real; completeness = called real among real."""
    from astropy.table import Table

    from rbnodia.commands.demo import score_against_truth

    catalog = Table({"id": [1, 2, 3, 4, 5, 6], "is_real": [True, True, False, True, False, False]})
    truth = Table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "label": [0, 0, 0, 1, 1, 1],
            "family": ["sn_hosted", "sn_hosted", "sn_hostless", "noise", "noise", "dipole"],
        }
    )
    injected = Table({"detected": [True, True, True, False], "detection_id": [1, 2, 3, -1]})
    scores = score_against_truth(catalog, truth, injected)
    assert scores["purity"] == pytest.approx(2 / 3)
    assert scores["completeness"] == pytest.approx(2 / 3)
    assert scores["injected_completeness"] == pytest.approx(2 / 4)
    assert scores["families"]["noise"] == {"label": 1, "n": 2, "called_real": 1}
    assert scores["n_true_bogus"] == 3 and scores["n_called_real"] == 3
