"""Classification without TensorFlow: model files are loaded, and scores
and saliency computed, in processes where ``import tensorflow``, ``import
keras`` and ``import onnx`` fail, through the real ``pipetask`` for both
pipelines; the results are those of a normal process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rbnodia.butler.execution import pipeline_path, run_pipetask
from rbnodia.nn import load_model

POISONED = ("tensorflow", "keras", "onnx")


@pytest.fixture(scope="module")
def poisoned_path(tmp_path_factory):
    """Return a PYTHONPATH whose first entry holds ``tensorflow``, ``keras`` and
    ``onnx`` packages that raise ImportError when imported.
    """
    folder = tmp_path_factory.mktemp("poisoned")
    for name in POISONED:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('{name} is poisoned: this process must not import it')\n")
    parts = [str(folder)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(parts)


def _run_poisoned(poisoned_path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": poisoned_path}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_poison_works(poisoned_path):
    for name in POISONED:
        result = _run_poisoned(poisoned_path, f"import {name}")
        assert result.returncode != 0 and f"{name} is poisoned" in result.stderr


_CHILD = """
import json, sys
import numpy as np
from rbnodia.nn import load_model
from rbnodia.nn.saliency import saliency_maps

inputs = np.load(sys.argv[1])
out, errors = {}, []
for name in inputs.files:
    model = load_model(name)
    x = inputs[name]
    out[name + "|scores"] = model.predict(x, threads=1)
    result = saliency_maps(model, x, threads=1)
    out[name + "|maps"], out[name + "|saliency_scores"] = result.maps, result.score
    out[name + "|rows"] = saliency_maps(model, x, threads=1, sum_rows=True).maps
    try:
        model.network
    except ImportError as err:
        errors.append(str(err))
try:
    load_model(sys.argv[3])
except ImportError as err:
    errors.append(str(err))
np.savez(sys.argv[2], **out)
modules = [m for m in ("tensorflow", "keras", "onnx") if m in sys.modules]
print(json.dumps({"modules": modules, "errors": errors}))
"""


def test_load_predict_and_saliency_without_tensorflow(poisoned_path, nodia_model_file, tmp_path):
    """Packaged models and a folded paper_nodia file, in a subprocess that
    cannot import TensorFlow, Keras or onnx: the same scores and maps as
    here; what needs TensorFlow says which extra brings it.
    """
    from test_model_file import _format1_file

    from rbnodia.nn import RealBogusModel
    from rbnodia.nn.saliency import saliency_maps

    rng = np.random.default_rng(3)
    names = ["nodia_default", "dia_default", str(nodia_model_file)]
    inputs = {name: rng.normal(0.5, 0.3, (40,) + load_model(name).input_shape).astype(np.float32)
              for name in names}
    np.savez(tmp_path / "inputs.npz", **inputs)
    old = _format1_file(tmp_path / "old.rbmodel", RealBogusModel.from_architecture("paper_nodia"))
    arguments = [str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz"), str(old)]
    result = subprocess.run([sys.executable, "-c", _CHILD, *arguments], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": poisoned_path}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"] == []
    assert len(report["errors"]) == len(names) + 1
    assert all("[train] extra" in error for error in report["errors"]), report["errors"]
    assert "convert-model" in report["errors"][-1]
    child = np.load(tmp_path / "out.npz")
    for name in names:
        model, x = load_model(name), inputs[name]
        np.testing.assert_array_equal(child[name + "|scores"], model.predict(x, threads=1))
        here = saliency_maps(model, x, threads=1)
        np.testing.assert_array_equal(child[name + "|maps"], here.maps)
        np.testing.assert_array_equal(child[name + "|saliency_scores"], here.score)
        rows = saliency_maps(model, x, threads=1, sum_rows=True).maps
        np.testing.assert_array_equal(child[name + "|rows"], rows)
        assert child[name + "|maps"].max() > 0


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("notf") / "repo"
    sim = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=1, seed=5, image_size=(400, 400),
                               progress=False)
    return {"root": root, "sim": sim}


@pytest.mark.e2e
@pytest.mark.parametrize("pipeline", ["RealBogusNoDia", "RealBogusDia"])
def test_pipelines_run_without_tensorflow(repo, poisoned_path, pipeline):
    """The shipped pipeline through the real pipetask, TensorFlow, Keras and
    onnx unimportable: every detection scored as in this (normal) process.
    """
    from lsst.daf.butler import Butler
    from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask

    inputs = [repo["sim"]["collection"]]
    output = f"notf/{pipeline}"
    log = run_pipetask(repo["root"], pipeline_path(pipeline), inputs, output, stream=False,
                       env={"PYTHONPATH": poisoned_path})
    assert "poisoned" not in log
    butler = Butler.from_config(str(repo["root"]))
    data_id = repo["sim"]["data_ids"][0]
    catalog = butler.get("rbnodia_reliability", data_id, collections=output)
    get = {name: butler.get(name, data_id, collections=inputs) for name in
           ("preliminary_visit_image", "template_detector", "difference_image", "dia_source_unstandardized")}
    config = ClassifyRealBogusConfig()
    config.layout = "DIA" if pipeline == "RealBogusDia" else "noDIA"
    config.modelName = "dia_default" if pipeline == "RealBogusDia" else "nodia_default"
    here = ClassifyRealBogusTask(config=config).run(
        science=get["preliminary_visit_image"], template=get["template_detector"],
        detections=get["dia_source_unstandardized"], difference=get["difference_image"]).reliability
    assert len(catalog) == len(here) == len(get["dia_source_unstandardized"]) > 0
    np.testing.assert_array_equal(catalog["id"], here["id"])
    np.testing.assert_array_equal(catalog["version"], here["version"])
    np.testing.assert_allclose(catalog["score"], here["score"], rtol=0, atol=1e-6, equal_nan=True)
    assert np.isfinite(np.asarray(catalog["score"])).any()
