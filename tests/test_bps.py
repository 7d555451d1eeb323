"""The noDIA pipeline through BPS with the parsl local site, as a user
submits it on a laptop (config/bps/local.yaml).
"""

import subprocess

import pytest
from bps_submit import write_local_submit
from sharedrepo import BIN, admin_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_bps_submit_local(tmp_path, nodia_model_file):
    pytest.importorskip("lsst.ctrl.bps.parsl")
    from lsst.daf.butler import Butler
    from rbnodia.sim import write_simulated_repo

    repo = tmp_path / "repo"
    sim = write_simulated_repo(repo, preset="lsst", n_visits=1, n_detectors=2, seed=21, image_size=(300, 300),
                               progress=False)
    # As in an activated environment: BPS jobs call pipetask and butler from PATH.
    env = admin_env()
    submit = write_local_submit(tmp_path, repo=repo, in_collection=sim["collection"], output="u/test/bps",
                                data_query="",
                                qgraph_config=f"classifyRealBogus:modelName={nodia_model_file}")
    done = subprocess.run([str(BIN / "bps"), "submit", str(submit)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    butler = Butler.from_config(str(repo))
    refs = butler.query_datasets("rbnodia_reliability", collections="u/test/bps", explain=False)
    assert len(refs) == len(sim["data_ids"])
    for ref in refs:
        assert len(butler.get(ref)) > 0
