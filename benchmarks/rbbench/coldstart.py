"""Section 4, cold processes: what a fresh ``pipetask`` worker pays before
its first quantum, and the format-1 model file the section compares with.

`cold_import_figures` runs, in new Python processes, the import of the
classification task and `load_model` of a model file, then its first
prediction (ONNX Runtime session creation), against the import of
``lsst.pipe.base`` alone (which the task needs) in the same process.
"""

from __future__ import annotations

__all__ = ["cold_import_figures", "format1_copy"]

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from .common import Figure

_COLD = """
import json, sys, time
t0 = time.perf_counter()
import lsst.pipe.base
t1 = time.perf_counter()
import rbnodia.tasks.classify
from rbnodia.nn import load_model
t2 = time.perf_counter()
model = load_model(sys.argv[1])
t3 = time.perf_counter()
import numpy as np
model.predict(np.zeros((1,) + model.input_shape, np.float32))
t4 = time.perf_counter()
print(json.dumps({"pipe_base": t1 - t0, "task": t2 - t1, "load": t3 - t2, "predict": t4 - t3,
                  "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                  "onnx": "onnx" in sys.modules}))
"""


def _cold_run(model: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _COLD, model], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_import_figures(model: str, repeats: int, command: str) -> list[Figure]:
    """Measure import + load and the first prediction in a cold process.

    Parameters
    ----------
    model : `str`
        Packaged model name.
    repeats : `int`
        Number of cold processes; the one with the least import + load
        counts.
    command : `str`
        The command that reproduces the figures, for the report.

    Returns
    -------
    figures : `list` [`Figure`]
        Import + load (against importing lsst.pipe.base alone) and the
        first prediction.
    """
    runs = [_cold_run(model) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["pipe_base"] + r["task"] + r["load"])
    imported = [name for name in ("tensorflow", "keras", "onnx") if best[name]]
    note = (f"best of {repeats} cold processes: lsst.pipe.base {best['pipe_base']:.2f} s, rbnodia task "
            f"{best['task']:.2f} s, load_model {best['load']:.3f} s; imported: "
            f"{', '.join(imported) if imported else 'neither TensorFlow, Keras nor onnx'}")
    return [
        Figure.amount("4.cold.import_load", 4,
                      f"cold process: import the classification task + load_model({model})",
                      best["pipe_base"] + best["task"] + best["load"], "s", baseline=best["pipe_base"],
                      baseline_label="import lsst.pipe.base alone (same process)", reference=1.5,
                      reference_label="target <= 1.5 s", note=note, command=command),
        Figure.time("4.cold.first_predict", 4, "cold process: first predict (ONNX Runtime sessions), 1 stamp",
                    best["predict"], "s", command=command),
    ]


def format1_copy(model: str, path: Path) -> Path:
    """Write a format-1 copy of a packaged model file (metadata and Keras
    network, no graphs; the format-1 hash), as rbnodia wrote model files
    before they carried their ONNX graphs.

    Parameters
    ----------
    model : `str`
        Packaged model name.
    path : `pathlib.Path`
        Where to write the copy.

    Returns
    -------
    path : `pathlib.Path`
        ``path``.
    """
    from rbnodia.nn.model import RealBogusModel, packaged_model_path
    from rbnodia.nn.modelfile import legacy_content_hash

    source = packaged_model_path(model)
    loaded = RealBogusModel.from_bytes(source.read_bytes(), source=str(source))
    with zipfile.ZipFile(source) as archive:
        header = json.loads(archive.read("metadata.json"))
        keras = archive.read("model.keras")
    for key in ("graphs", "weights_sha256"):
        header.pop(key, None)
    header["format_version"] = 1
    header["content_hash"] = legacy_content_hash(loaded.metadata, loaded.network.get_weights())
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(header, indent=2))
        archive.writestr("model.keras", keras)
    return path
