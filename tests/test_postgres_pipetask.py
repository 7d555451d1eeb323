"""The classification pipeline against a shared repository with a real
PostgreSQL registry: an admin registers the dataset types once, then two
``pipetask run`` processes classify different visits into the same RUN
collection at the same time (as Prompt Processing workers do).
"""

import datetime
import subprocess
from collections import Counter

import numpy as np
import pytest
from sharedrepo import BIN, admin_env, run

from rbnodia.butler.execution import pipeline_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUTPUT_RUN = "u/test/concurrent"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, make_postgres_repo):
    return make_postgres_repo(tmp_path_factory.mktemp("pg-pipetask") / "repo")


def _pipetask(repo, source, model, *extra):
    return [BIN / "pipetask", "--long-log", "run", "-b", repo, "-i", source["collection"],
            "--output-run", OUTPUT_RUN, "-p", pipeline_path("RealBogusNoDia"),
            "-c", f"classifyRealBogus:modelName={model}", *extra]


def _execution_window(output):
    """Read the times (from ``--long-log``) of the graph's start and of the last quantum."""
    stamps = [line.split()[1] for line in output.splitlines()
              if line.startswith("INFO ") and ("QuantumGraph contains" in line or "Executed " in line)]
    assert len(stamps) >= 2, output[-3000:]
    return datetime.datetime.fromisoformat(stamps[0]), datetime.datetime.fromisoformat(stamps[-1])


def test_concurrent_pipetask_runs(repo, simulated_inputs, nodia_model_file):
    from lsst.daf.butler import Butler

    env = admin_env()
    # The admin, once: dataset types and the RUN's init-outputs.
    run(_pipetask(repo, simulated_inputs, nodia_model_file, "--register-dataset-types", "--init-only"), env)
    visits = sorted({d["visit"] for d in simulated_inputs["data_ids"]})
    assert len(visits) == 2
    workers = []
    try:
        for visit in visits:
            command = _pipetask(repo, simulated_inputs, nodia_model_file, "--extend-run",
                                "-d", f"visit = {visit}")
            workers.append(subprocess.Popen([str(c) for c in command], env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True))
        outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-4000:]
    # Each ran its quanta while the other ran its own.
    (start_a, end_a), (start_b, end_b) = (_execution_window(output) for output in outputs)
    assert start_a < end_b and start_b < end_a, (start_a, end_a, start_b, end_b)

    butler = Butler.from_config(str(repo))
    assert "registry='PostgreSQL@" in str(butler)
    expected = Counter((d["visit"], d["detector"]) for d in simulated_inputs["data_ids"])
    for dataset_type in ("rbnodia_reliability", "classifyRealBogus_metadata", "classifyRealBogus_log"):
        refs = butler.query_datasets(dataset_type, collections=OUTPUT_RUN, explain=False)
        found = Counter((ref.dataId["visit"], ref.dataId["detector"]) for ref in refs)
        assert found == expected, dataset_type
    for ref in butler.query_datasets("rbnodia_reliability", collections=OUTPUT_RUN):
        catalog = butler.get(ref)
        detections = butler.get("dia_source_unstandardized", ref.dataId,
                                collections=simulated_inputs["collection"])
        np.testing.assert_array_equal(catalog["id"], detections["id"])
        scores = np.asarray(catalog["score"])[~np.asarray(catalog["flag_no_data"])]
        assert ((scores >= 0) & (scores <= 1)).all()
