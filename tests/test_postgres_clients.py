"""Training into a shared repository with a PostgreSQL registry, and users
who did not create it reading rbnodia's datasets (storage classes
``RealBogusModel`` and ``LabelledStamps``) from a clean environment.

Two repositories on one server: ``seeded`` was created with rbnodia's seed
configuration (its ``butler.yaml`` declares the storage classes), ``plain``
without (only ``DAF_BUTLER_CONFIG_PATH``, which ``rbnodia env`` sets, tells
a client about them).
"""

import json

import pytest
from sharedrepo import BIN, admin_env, client_env, run

from rbnodia.butler.execution import pipeline_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRAIN_RUN = "u/admin/train"

CLIENT = f"""
import json, sys
from lsst.daf.butler import Butler
butler = Butler.from_config(sys.argv[1], collections="{TRAIN_RUN}")
model = butler.get("rbnodia_model")
stamps = [butler.get(ref) for ref in butler.query_datasets("rbnodia_labelled_stamps")]
print(json.dumps({{"model": type(model).__name__, "version": model.version,
                  "stamps": sorted({{type(s).__name__ for s in stamps}}),
                  "n_stamps": sum(len(s) for s in stamps)}}))
"""


@pytest.fixture(scope="module")
def repos(tmp_path_factory, make_postgres_repo, simulated_inputs):
    """Do the admin's work: train into ``seeded`` with pipetask, then copy the
    model and the stamps into ``plain`` with ``butler transfer-datasets``.
    """
    root = tmp_path_factory.mktemp("pg-clients")
    seeded = make_postgres_repo(root / "seeded", seed=True)
    plain = make_postgres_repo(root / "plain", seed=False)
    env = admin_env()
    run([BIN / "pipetask", "--long-log", "run", "-b", seeded, "-i", simulated_inputs["collection"],
         "--output-run", TRAIN_RUN, "-p", pipeline_path("TrainRealBogus"), "--register-dataset-types",
         "-c", "trainRealBogus:training.epochs=1", "-c", "trainRealBogus:training.batchSize=16",
         "-c", "trainRealBogus:training.optimizer=adam", "-c", "trainRealBogus:testFraction=0.25"], env)
    run([BIN / "butler", "transfer-datasets", seeded, plain, "--collections", TRAIN_RUN,
         "-d", "rbnodia_model", "-d", "rbnodia_labelled_stamps", "--register-dataset-types",
         "--transfer", "copy"], env)
    return {"seeded": seeded, "plain": plain, "root": root}


def _check_training_outputs(repo, simulated_inputs):
    """Return the training pipeline's outputs, read back through the PostgreSQL
    registry (this process needs no environment: the repo is seeded).
    """
    from lsst.daf.butler import Butler
    from rbnodia.core.stampset import LabelledStamps
    from rbnodia.nn import RealBogusModel

    butler = Butler.from_config(str(repo), collections=TRAIN_RUN)
    assert "registry='PostgreSQL@" in str(butler)
    model = butler.get("rbnodia_model")
    assert isinstance(model, RealBogusModel) and model.layout.value == "noDIA"
    metrics = butler.get("rbnodia_training_metrics")
    assert metrics["model"] == model.version and metrics["epochs_run"] == 1
    refs = butler.query_datasets("rbnodia_labelled_stamps")
    assert sorted((r.dataId["visit"], r.dataId["detector"]) for r in refs) == sorted(
        (d["visit"], d["detector"]) for d in simulated_inputs["data_ids"])
    stamps = [butler.get(ref) for ref in refs]
    assert all(isinstance(s, LabelledStamps) for s in stamps)
    assert sum(len(s) for s in stamps) == simulated_inputs["n_detections"]
    assert metrics["data"]["train"]["n"] + metrics["data"]["test"]["n"] == simulated_inputs["n_detections"]
    return model.version


def _client(repo, home, *, setup: bool):
    """Run a user's python process in a clean environment, after ``eval
    "$(rbnodia env)"`` if ``setup``.
    """
    home.mkdir(exist_ok=True)
    script = home / "client.py"
    script.write_text(CLIENT)
    setup_line = 'eval "$(rbnodia env)" && ' if setup else ""
    return run(f"{setup_line}python {script} {repo}", client_env(home), cwd=home, check=False)


def test_training_and_clean_clients(repos, simulated_inputs, tmp_path):
    """One test, not four, so that parallel test workers never train twice."""
    version = _check_training_outputs(repos["seeded"], simulated_inputs)
    # After the documented setup, a user reads both repositories.
    for kind in ("seeded", "plain"):
        done = _client(repos[kind], tmp_path / kind, setup=True)
        assert done.returncode == 0, (kind, done.stdout[-3000:] + done.stderr[-3000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result == {"model": "RealBogusModel", "version": version, "stamps": ["LabelledStamps"],
                          "n_stamps": simulated_inputs["n_detections"]}, kind
    # Without it: the seeded repository still works; the plain one cannot
    # find the storage classes, so the setup is what makes it work there.
    seeded = _client(repos["seeded"], tmp_path / "seeded-bare", setup=False)
    assert seeded.returncode == 0, seeded.stdout[-3000:] + seeded.stderr[-3000:]
    assert json.loads(seeded.stdout.strip().splitlines()[-1])["version"] == version
    plain = _client(repos["plain"], tmp_path / "plain-bare", setup=False)
    assert plain.returncode != 0
    assert "KeyError: 'RealBogusModel'" in plain.stderr, plain.stderr[-3000:]
