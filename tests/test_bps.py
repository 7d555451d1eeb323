"""The noDIA pipeline through BPS with the parsl local site, as a user
submits it on a laptop (config/bps/local.yaml).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BIN = Path(sys.executable).parent


def test_bps_submit_local(tmp_path, nodia_model_file):
    pytest.importorskip("lsst.ctrl.bps.parsl")
    from lsst.daf.butler import Butler
    from rbnodia.butler.environment import environment
    from rbnodia.sim import write_simulated_repo

    repo = tmp_path / "repo"
    sim = write_simulated_repo(repo, preset="lsst", n_visits=1, n_detectors=2, seed=21, image_size=(300, 300),
                               progress=False)
    # As in an activated environment: BPS jobs call pipetask and butler from PATH.
    env = {**os.environ, **environment(), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    submit = tmp_path / "submit.yaml"
    submit.write_text(
        "includeConfigs:\n"
        "  - ${RBNODIA_DIR}/config/bps/local.yaml\n"
        "payload:\n"
        f"  butlerConfig: {repo}\n"
        f"  inCollection: {sim['collection']}\n"
        "  output: u/test/bps\n"
        '  dataQuery: ""\n'
        f'extraQgraphOptions: "-c classifyRealBogus:modelName={nodia_model_file}"\n'
        f"submitPath: {tmp_path}/submit/{{outputRun}}\n"
    )
    done = subprocess.run([str(BIN / "bps"), "submit", str(submit)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    butler = Butler.from_config(str(repo))
    refs = butler.query_datasets("rbnodia_reliability", collections="u/test/bps", explain=False)
    assert len(refs) == len(sim["data_ids"])
    for ref in refs:
        assert len(butler.get(ref)) > 0
