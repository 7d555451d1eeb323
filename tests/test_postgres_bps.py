"""BPS (ctrl_bps_parsl, local site) against a shared repository with a
PostgreSQL registry, with the model read from the Butler.

The repository is created without rbnodia's seed configuration, so every
process that reads the model (a ``RealBogusModel`` dataset) must have
``rbnodia env``'s variables: the BPS jobs inherit them from the submitting
shell.  Each job runs its quantum from a quantum-backed butler (``pipetask
run-qbb``): the server's connection log shows no connection while the jobs
run, and one from the final job, which writes the outputs into the
PostgreSQL registry (``butler aggregate-graph``, formerly
``transfer-from-graph``).
"""

import datetime
import re

import pytest
from bps_submit import write_local_submit
from sharedrepo import BIN, admin_env, run

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

OUTPUT = "u/test/bps-postgres"
MODELS = "models/published"


def _log_window(path):
    """First and last ``--long-log`` time in a job's log."""
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", path.read_text())
    assert stamps, path
    return datetime.datetime.fromisoformat(stamps[0]), datetime.datetime.fromisoformat(stamps[-1])


def test_bps_submit_postgres(tmp_path, postgres_server, make_postgres_repo, simulated_inputs,
                             nodia_model_file):
    pytest.importorskip("lsst.ctrl.bps.parsl")
    from lsst.daf.butler import Butler
    from rbnodia.nn import load_model

    repo = make_postgres_repo(tmp_path / "repo", seed=False)
    env = admin_env()
    # The admin publishes a model file into the repository.
    run([BIN / "butler", "register-dataset-type", repo, "rbnodia_model", "RealBogusModel"], env)
    table = tmp_path / "models.csv"
    table.write_text(f"file\n{nodia_model_file}\n")
    run([BIN / "butler", "ingest-files", "-t", "copy", repo, "rbnodia_model", MODELS, table], env)

    submit = write_local_submit(tmp_path, repo=repo,
                                in_collection=f"{simulated_inputs['collection']},{MODELS}",
                                output=OUTPUT, data_query="detector = 0",
                                qgraph_config="classifyRealBogus:modelSource=butler")
    run([BIN / "bps", "submit", submit], env, cwd=tmp_path, timeout=900)

    butler = Butler.from_config(str(repo))
    assert "registry='PostgreSQL@" in str(butler)
    refs = butler.query_datasets("rbnodia_reliability", collections=OUTPUT, explain=False)
    assert sorted((r.dataId["visit"], r.dataId["detector"]) for r in refs) == sorted(
        (d["visit"], d["detector"]) for d in simulated_inputs["data_ids"] if d["detector"] == 0)
    version = load_model(nodia_model_file).version
    for ref in refs:
        catalog = butler.get(ref)
        detections = butler.get("dia_source_unstandardized", ref.dataId,
                                collections=simulated_inputs["collection"])
        assert len(catalog) == len(detections) and (catalog["version"] == version).all()
    # How the jobs ran: each quantum job from the quantum graph alone
    # (run-qbb); no process opened a database connection from the start of
    # pipetaskInit to the end of the last quantum job; the final job did.
    (run_dir,) = (tmp_path / "submit" / OUTPUT).iterdir()
    logs = run_dir / "logs"
    job_logs = sorted((logs / "classifyRealBogus").rglob("*.stderr"))
    assert len(job_logs) == len(refs)
    for log in job_logs:
        assert " run-qbb " in log.read_text(), log
    final = (logs / "finalJob" / "finalJob.stderr").read_text()
    assert f" {repo}" in final, final[-2000:]
    assert "aggregate-graph" in final or "transfer-from-graph" in final, final[-2000:]
    jobs_start = _log_window(logs / "pipetaskInit" / "pipetaskInit.stderr")[0]
    jobs_end = max(_log_window(log)[1] for log in job_logs)
    final_end = _log_window(logs / "finalJob" / "finalJob.stderr")[1]
    connections = postgres_server.connection_times()
    during_jobs = [t for t in connections if jobs_start <= t <= jobs_end]
    assert not during_jobs, (jobs_start, jobs_end, during_jobs)
    assert [t for t in connections if jobs_end < t <= final_end], (jobs_end, final_end, connections)
