"""The base install (``pip install rbnodia``, no extras) is what a pipeline
needs: in a fresh virtual environment with only the base dependencies, the
real ``rbnodia put-model`` and ``pipetask`` classify a simulated repository
through the AP drop-in and the noDIA and DIA pipelines, with the same scores
as the full development environment, and TensorFlow, Keras, ONNX and the
simulator's libraries are not even installed there.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rbnodia.butler.execution import pipeline_path, run_pipetask

REPO = Path(__file__).resolve().parents[1]
ABSENT = ("tensorflow", "keras", "onnx", "galsim", "sep")  # scipy comes with lsst-images
PIPELINES = {"RealBogusNoDia": "rbnodia_reliability", "RealBogusDia": "rbnodia_reliability",
             "ComputeReliability": "dia_source_reliability"}


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("base") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(REPO / "requirements" / "constraints.txt"), "-e", str(REPO)],
        capture_output=True, text=True,
    )
    if done.returncode != 0 and "No matching distribution" in done.stderr + done.stdout:
        pytest.skip(f"no package index reachable for a fresh install: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("base-repo") / "repo"
    sim = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=2, seed=21, image_size=(300, 300),
                               progress=False)
    return {"root": root, "inputs": [sim["collection"]], "data_ids": sim["data_ids"]}


def _env(bin_dir):
    """Return the environment a user of that venv would have: its bin first."""
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    return env


def _scores(root, dataset_type, collection, data_ids):
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(root))
    return np.concatenate([np.asarray(butler.get(dataset_type, data_id, collections=collection)["score"])
                           for data_id in data_ids])


@pytest.mark.slow
def test_base_install_has_no_training_or_simulation_libraries(base_venv):
    for module in ABSENT:
        done = subprocess.run([str(base_venv / "python"), "-c", f"import {module}"], capture_output=True,
                              text=True, env=_env(base_venv))
        assert done.returncode != 0, f"{module} is importable in the base install"


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_base_install_runs_the_pipelines(base_venv, repo, pipeline):
    root, inputs = repo["root"], list(repo["inputs"])
    if pipeline == "ComputeReliability":
        model = "nodia_default"
        subprocess.run([str(base_venv / "rbnodia"), "put-model", str(root), model], check=True,
                       capture_output=True, env=_env(base_venv))
        inputs.append(f"pretrained_models/rbnodia_{model}")
    base_out, full_out = f"base/{pipeline}", f"full/{pipeline}"
    command = [str(base_venv / "pipetask"), "--log-level", "warning", "run", "-b", str(root),
               "-i", ",".join(inputs), "-o", base_out, "-p", str(pipeline_path(pipeline)),
               "--register-dataset-types"]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(base_venv))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    run_pipetask(root, pipeline_path(pipeline), inputs, full_out, stream=False)
    dataset_type = PIPELINES[pipeline]
    base = _scores(root, dataset_type, base_out, repo["data_ids"])
    full = _scores(root, dataset_type, full_out, repo["data_ids"])
    assert len(base) > 0
    np.testing.assert_array_equal(base, full)
