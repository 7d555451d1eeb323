"""Hostile inputs through the real pipeline: every bad input is built in a
real Butler repository and run with the real ``pipetask``.

Row-level faults must keep every detection (one output row each, in input
order) and never give a NaN score without ``flag_no_data``; quantum-level
faults must fail with an error that names the culprit and leave no output
behind.  Model-file faults are in ``tests/test_model_file_faults.py``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import MaskedColumn

from rbnodia.butler.execution import PipetaskError, pipeline_path, pipetask_command, run_pipetask

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
FAULTS = "faults/inputs"
# Hostile rows added to detector 0, by id.
NAN_X, INF_Y, MASKED_X, HUGE_X, EDGE, OFF_IMAGE, NAN_BOX, NAN_CENTRE = range(9_000_000_001, 9_000_000_009)
# Detector 1: sentinel pixels in low-noise stamps.  Detector 3: either side of the template's edge.
SENTINEL_SCI, SENTINEL_TMPL = 9_000_000_101, 9_000_000_102
NO_TEMPLATE, WITH_TEMPLATE = 9_000_000_301, 9_000_000_302


@pytest.fixture(scope="module")
def fault_repo(tmp_path_factory):
    """Four detectors: 0 hostile rows, 1 sentinel pixels, 2 an empty catalog,
    3 a template that covers half the detector.
    """
    from lsst.daf.butler import Butler
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("faults") / "repo"
    sim = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=4, seed=5, image_size=(300, 300),
                               progress=False)
    butler = Butler.from_config(str(root), writeable=True)
    butler.registry.registerRun(FAULTS)
    ids = {d["detector"]: d for d in sim["data_ids"]}

    def get(name, detector):
        return butler.get(name, ids[detector], collections=sim["collection"])

    def put(obj, name, detector):
        butler.put(obj, name, ids[detector], run=FAULTS)

    # Detector 0: positions that are NaN, inf, masked or absurd; edge and
    # off-image centres; a NaN box around one detection; a NaN centre pixel.
    detections, template, science = get("dia_source_unstandardized", 0), get("template_detector", 0), \
        get("preliminary_visit_image", 0)
    rows = {NAN_X: (np.nan, 150.0), INF_Y: (150.0, np.inf), MASKED_X: (150.0, 150.0), HUGE_X: (1e300, 150.0),
            EDGE: (1.0, 150.0), OFF_IMAGE: (-400.0, 150.0), NAN_BOX: (220.0, 80.0), NAN_CENTRE: (80.0, 220.0)}
    template_row = {name: detections[0][name] for name in detections.colnames} if len(detections) else None
    for row_id, (x, y) in rows.items():
        row = dict(template_row or {}, id=row_id, x=x, y=y)
        detections.add_row({name: row.get(name, 0) for name in detections.colnames})
    detections["x"] = MaskedColumn(np.asarray(detections["x"]), mask=np.asarray(detections["id"]) == MASKED_X)
    template.image.array[70:91, 210:231] = np.nan
    science.image.array[220, 80] = np.nan
    put(detections, "dia_source_unstandardized", 0)
    put(template, "template_detector", 0)
    put(science, "preliminary_visit_image", 0)

    # Detector 1: a low-noise stamp with a +3.4e38 science pixel, another with
    # a -3.4e38 template pixel.
    detections, science, template = get("dia_source_unstandardized", 1), get("preliminary_visit_image", 1), \
        get("template_detector", 1)
    rng = np.random.default_rng(0)
    for row_id, image, (x, y), value in ((SENTINEL_SCI, science, (100, 100), 3.4e38),
                                         (SENTINEL_TMPL, template, (200, 200), -3.4e38)):
        image.image.array[y - 30:y + 31, x - 30:x + 31] = 50.0 + rng.normal(0, 1e-3, (61, 61))
        image.image.array[y + 3, x - 2] = value
        _add_row(detections, row_id, x, y)
    put(detections, "dia_source_unstandardized", 1)
    put(science, "preliminary_visit_image", 1)
    put(template, "template_detector", 1)

    # Detector 2: an empty catalog.  Detector 3: half a template.
    put(get("dia_source_unstandardized", 2)[:0], "dia_source_unstandardized", 2)
    template, detections = get("template_detector", 3), get("dia_source_unstandardized", 3)
    template.image.array[:, 150:] = np.nan
    template.mask.set("NO_DATA", np.arange(300)[None, :].repeat(300, 0) >= 150)
    _add_row(detections, NO_TEMPLATE, 250.0, 150.0)
    _add_row(detections, WITH_TEMPLATE, 60.0, 150.0)
    put(template, "template_detector", 3)
    put(detections, "dia_source_unstandardized", 3)
    return {"root": root, "sim": sim, "ids": ids, "inputs": [FAULTS, sim["collection"]]}


def _add_row(detections, row_id, x, y):
    detections.add_row({name: (row_id if name == "id" else x if name == "x" else y if name == "y" else 0)
                        for name in detections.colnames})


def _butler(root):
    from lsst.daf.butler import Butler

    return Butler.from_config(str(root))


def _outputs(repo, collection, dataset_type="rbnodia_reliability"):
    butler = _butler(repo["root"])
    refs = butler.query_datasets(dataset_type, collections=collection, explain=False)
    return {ref.dataId["detector"]: butler.get(ref) for ref in refs}


def _inputs(repo, detector):
    return _butler(repo["root"]).get("dia_source_unstandardized", repo["ids"][detector],
                                     collections=repo["inputs"])


def _check_invariants(repo, catalogs):
    """Every detection kept, in order; NaN scores exactly on flag_no_data rows."""
    assert sorted(catalogs) == sorted(repo["ids"])
    for detector, catalog in catalogs.items():
        np.testing.assert_array_equal(np.asarray(catalog["id"]), np.asarray(_inputs(repo, detector)["id"]))
        score, no_data = np.asarray(catalog["score"]), np.asarray(catalog["flag_no_data"])
        np.testing.assert_array_equal(np.isnan(score), no_data)
        assert ((score[~no_data] >= 0) & (score[~no_data] <= 1)).all()
        assert not np.asarray(catalog["is_real"])[no_data].any()


def _row(catalog, row_id):
    k = int(np.flatnonzero(np.asarray(catalog["id"]) == row_id)[0])
    return {name: catalog[name][k] for name in catalog.colnames}


@pytest.fixture(scope="module")
def serial_run(fault_repo):
    run_pipetask(fault_repo["root"], pipeline_path("RealBogusNoDia"), fault_repo["inputs"], "faults/serial",
                 stream=False)
    return _outputs(fault_repo, "faults/serial")


def test_row_faults_keep_every_detection(fault_repo, serial_run):
    _check_invariants(fault_repo, serial_run)
    rows = serial_run[0]
    for row_id in (NAN_X, INF_Y, MASKED_X, HUGE_X, OFF_IMAGE):
        row = _row(rows, row_id)
        assert row["flag_no_data"] and np.isnan(row["score"]), row_id
    for row_id in (NAN_X, INF_Y, MASKED_X, HUGE_X):
        assert np.isnan(_row(rows, row_id)["ra"]) and np.isnan(_row(rows, row_id)["dec"])
    assert _row(rows, EDGE)["flag_edge"] and np.isfinite(_row(rows, EDGE)["score"])
    for row_id in (NAN_BOX, NAN_CENTRE):  # filled, flagged and scored
        assert _row(rows, row_id)["flag_bad_pixels"] and np.isfinite(_row(rows, row_id)["score"])
    good = ~np.isin(np.asarray(rows["id"]), [NAN_X, INF_Y, MASKED_X, HUGE_X, OFF_IMAGE])
    assert np.isfinite(np.asarray(rows["ra"])[good]).all()


def test_sentinel_pixels_are_flagged_and_scored(serial_run):
    for row_id in (SENTINEL_SCI, SENTINEL_TMPL):
        row = _row(serial_run[1], row_id)
        assert row["flag_bad_pixels"] and np.isfinite(row["score"]) and not row["flag_no_data"]


def test_empty_catalog_and_half_template(fault_repo, serial_run):
    assert len(serial_run[2]) == 0
    half = serial_run[3]
    assert _row(half, NO_TEMPLATE)["flag_no_data"]  # no template pixel at all in its stamp
    assert np.isfinite(_row(half, WITH_TEMPLATE)["score"]) and not _row(half, WITH_TEMPLATE)["flag_no_data"]


def test_table_metadata_readable_as_documented(fault_repo, serial_run):
    butler = _butler(fault_repo["root"])
    catalog = butler.get("rbnodia_reliability", fault_repo["ids"][0], collections="faults/serial",
                         parameters={"strip_astropy_meta_yaml": False})
    for key in ("rbnodia_model", "rbnodia_threshold", "rbnodia_layout", "rbnodia_score_convention"):
        assert key in catalog.meta
    assert catalog.meta["rbnodia_model"] == catalog["version"][0]


def test_scores_are_bitwise_deterministic(fault_repo, serial_run):
    """-j 2 and any batch size give the serial run's scores bit for bit."""
    from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask

    run_pipetask(fault_repo["root"], pipeline_path("RealBogusNoDia"), fault_repo["inputs"], "faults/parallel",
                 jobs=2, stream=False)
    parallel = _outputs(fault_repo, "faults/parallel")
    for detector, catalog in serial_run.items():
        np.testing.assert_array_equal(np.asarray(catalog["score"]), np.asarray(parallel[detector]["score"]))
    butler = _butler(fault_repo["root"])
    data_id = fault_repo["ids"][0]
    inputs = {name: butler.get(dataset, data_id, collections=fault_repo["inputs"]) for name, dataset in
              (("science", "preliminary_visit_image"), ("template", "template_detector"),
               ("detections", "dia_source_unstandardized"))}
    for batch_size in (1, 7, 4096):
        config = ClassifyRealBogusConfig()
        config.batchSize = batch_size
        out = ClassifyRealBogusTask(config=config).run(**inputs).reliability
        np.testing.assert_array_equal(np.asarray(out["score"]), np.asarray(serial_run[0]["score"]))


def _fails_cleanly(repo, collection, match, *, pipeline="RealBogusNoDia", inputs=None, config=None):
    import re

    with pytest.raises(PipetaskError) as caught:
        run_pipetask(repo["root"], pipeline_path(pipeline), inputs or repo["inputs"], collection,
                     data_query="detector = 0", config=config, stream=False)
    assert re.search(match, caught.value.output), caught.value.output[-3000:]
    assert _outputs(repo, collection) == {}


def test_unsigned_ids_beyond_int64_are_refused(fault_repo):
    from lsst.daf.butler import Butler

    writer = Butler.from_config(str(fault_repo["root"]), writeable=True)
    detections = writer.get("dia_source_unstandardized", fault_repo["ids"][0],
                            collections=fault_repo["inputs"])
    detections["id"] = np.arange(len(detections), dtype=np.uint64) + np.uint64(2**63)
    writer.registry.registerRun("faults/uint64")
    writer.put(detections, "dia_source_unstandardized", fault_repo["ids"][0], run="faults/uint64")
    _fails_cleanly(fault_repo, "faults/uint64-out", r"'id' holds unsigned ids >= 2\*\*63",
                   inputs=["faults/uint64"] + fault_repo["inputs"])


def test_missing_columns_are_named(fault_repo):
    _fails_cleanly(fault_repo, "faults/columns", r"lacks column\(s\) \['centroid_x'\]",
                   config={"classifyRealBogus:xColumn": "centroid_x"})


def test_wrong_layout_model_is_refused(fault_repo):
    _fails_cleanly(fault_repo, "faults/layout", "expects layout DIA",
                   config={"classifyRealBogus:modelName": "dia_default"})


def test_rerun_into_the_same_output_gives_the_same_scores(fault_repo, serial_run):
    run_pipetask(fault_repo["root"], pipeline_path("RealBogusNoDia"), fault_repo["inputs"], "faults/serial",
                 stream=False)
    again = _outputs(fault_repo, "faults/serial")  # the chain's newest run comes first
    for detector, catalog in serial_run.items():
        np.testing.assert_array_equal(np.asarray(catalog["score"]), np.asarray(again[detector]["score"]))


def test_sigterm_then_extend_run(fault_repo):
    """SIGTERM between quanta, then --extend-run --skip-existing-in: every
    detector ends with exactly one complete catalog.
    """
    command = pipetask_command(fault_repo["root"], pipeline_path("RealBogusNoDia"), fault_repo["inputs"],
                               "faults/killed")
    from rbnodia.butler.environment import environment

    env = dict(os.environ, **environment())
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    for line in process.stdout:
        if "took" in line and "Execution of task" in line:  # the first quantum is done
            os.killpg(process.pid, signal.SIGTERM)
            break
        assert time.monotonic() < deadline
    process.wait(timeout=60)
    assert process.returncode != 0
    done = _outputs(fault_repo, "faults/killed")
    assert 1 <= len(done) < len(fault_repo["ids"])
    for detector, catalog in done.items():  # what was written before the signal is whole
        inputs = _inputs(fault_repo, detector)
        np.testing.assert_array_equal(np.asarray(catalog["id"]), np.asarray(inputs["id"]))
    command = pipetask_command(fault_repo["root"], pipeline_path("RealBogusNoDia"), fault_repo["inputs"],
                               "faults/killed", register_dataset_types=False)
    command += ["--extend-run", "--skip-existing-in", "faults/killed"]
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    catalogs = _outputs(fault_repo, "faults/killed")
    _check_invariants(fault_repo, catalogs)
    refs = _butler(fault_repo["root"]).query_datasets("rbnodia_reliability", collections="faults/killed",
                                                     find_first=False, explain=False)
    assert len(refs) == len(fault_repo["ids"])  # nothing written twice


def test_train_refuses_a_file_that_is_not_labelled_stamps(tmp_path):
    fake = tmp_path / "stamps.npz"
    fake.write_text("id,label\n1,0\n")
    done = subprocess.run([str(BIN / "rbnodia"), "train", "--data", str(fake), "--arch", "paper_nodia",
                           "--out", str(tmp_path / "m.rbmodel")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "not a labelled-stamps file" in done.stderr
    assert not (tmp_path / "m.rbmodel").exists()


def _bad_model_files(tmp_path):
    """Hostile model files, each with the words its error must contain."""
    import json
    import zipfile

    from test_model_file import _edited, _lambda_model, _members, _write

    from rbnodia.nn import packaged_model_path

    good = Path(packaged_model_path("nodia_default"))
    members = _members(good)
    nan = float("nan")
    files = {
        "threshold edited": (_edited(tmp_path, good, "edited.rbmodel", threshold=0.3),
                             "content hash mismatch"),
        "threshold 2.0 rehashed": (_edited(tmp_path, good, "rehashed.rbmodel", rehash=True, threshold=2.0),
                                   "field 'threshold'"),
        "threshold NaN rehashed": (_edited(tmp_path, good, "nan.rbmodel", rehash=True, threshold=nan),
                                   "field 'threshold'"),
        "format_version string": (_edited(tmp_path, good, "format.rbmodel", format_version="2"),
                                  "field 'format_version'"),
        "metadata a JSON list": (_write(tmp_path / "list.rbmodel", {**members, "metadata.json": b"[1, 2]"}),
                                 "must hold a JSON object"),
        "garbage model.keras": (_write(tmp_path / "garbage.rbmodel", {**members, "model.keras": b"\0x" * 99}),
                                "Not a valid network in"),
        "truncated file": (tmp_path / "truncated.rbmodel", "not a zip archive"),
        "code in model.keras": (_lambda_model().save(tmp_path / "code.rbmodel"), "holds Python"),
    }
    files["truncated file"][0].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bomb = tmp_path / "bomb.rbmodel"
    header = members["metadata.json"]
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("metadata.json", "w") as stream:
            stream.write(header[:-1] + b',\n  "padding": "' + b" " * 400 * 2**20 + b'"}')
        for name, data in members.items():
            if name != "metadata.json":
                archive.writestr(name, data)
    files["metadata inflating to 400 MB"] = (bomb, "inflates to")
    assert json.loads(header)["name"]  # the untouched header is valid: only the edits break the files
    return files


BAD_MODELS = ["threshold edited", "threshold 2.0 rehashed", "threshold NaN rehashed", "format_version string",
              "metadata a JSON list", "garbage model.keras", "truncated file", "code in model.keras",
              "metadata inflating to 400 MB"]


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    return _bad_model_files(tmp_path_factory.mktemp("bad-models"))


@pytest.mark.parametrize("case", BAD_MODELS)
def test_hostile_model_files_fail_cleanly(fault_repo, bad_models, case):
    """Each hostile model file makes the quantum fail with one clear error
    naming the file, before anything is written.
    """
    path, words = bad_models[case]
    collection = "faults/model-" + case.replace(" ", "-").replace(".", "")
    with pytest.raises(PipetaskError) as caught:
        run_pipetask(fault_repo["root"], pipeline_path("RealBogusNoDia"), fault_repo["inputs"], collection,
                     data_query="detector = 0", config={"classifyRealBogus:modelName": str(path)},
                     stream=False)
    error = [line for line in caught.value.output.splitlines() if words in line]
    assert error and str(path) in error[0], caught.value.output[-3000:]
    assert _outputs(fault_repo, collection) == {}


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_simulate_refuses_visit_counts_that_are_not_positive(tmp_path, value):
    repo = tmp_path / "repo"
    done = subprocess.run([str(BIN / "rbnodia"), "simulate", "--repo", str(repo), "--visits", value],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "argument --visits" in done.stderr
    assert not repo.exists()
