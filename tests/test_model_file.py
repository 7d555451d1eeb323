"""The hardened model file (format 2): inference graphs inside, everything
that changes the output covered by the content hash, invalid or unsafe
contents refused with one clear error that names the file, size limits
checked before anything is inflated, and format-1 files still read.
"""

import hashlib
import io
import json
import math
import time
import zipfile

import numpy as np
import pytest
from model_files import save_untrained_model

from rbnodia.nn import ModelFileError, ModelMetadata, RealBogusModel, load_model
from rbnodia.nn.modelfile import FORMAT_VERSION, content_hash, graph_member, legacy_content_hash
from rbnodia.nn.onnx.runtime import GraphVariants


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _graphs(members, header):
    return {role: GraphVariants(members[graph_member(role)],
                                members[graph_member(role, entry["fold"])] if entry["fold"] else None,
                                entry["fold"])
            for role, entry in header["graphs"].items()}


def _rehash(members):
    """Recompute the content hash the way the writer does (an attacker or a
    careless editor can): only the hash check itself is then bypassed.
    """
    header = json.loads(members["metadata.json"])
    metadata = ModelMetadata.from_dict(header)
    header["content_hash"] = content_hash(metadata, header["weights_sha256"], _graphs(members, header))
    members["metadata.json"] = json.dumps(header).encode()
    return members


def _edited(tmp_path, source, filename="edited.rbmodel", rehash=False, **changes):
    members = _members(source)
    header = json.loads(members["metadata.json"])
    header.update(changes)
    members["metadata.json"] = json.dumps(header).encode()
    if rehash:
        _rehash(members)
    return _write(tmp_path / filename, members)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """Return a paper_nodia model file: its forward and saliency graphs come with a folded variant."""
    return save_untrained_model(tmp_path_factory.mktemp("modelfile"), "paper_nodia", "paper", seed=2)


def _inputs(n=20, seed=0):
    return np.random.default_rng(seed).normal(0.5, 0.3, (n, 51, 102, 1)).astype(np.float32)


def test_file_carries_hashed_graphs_and_loads_without_the_network(model_file):
    members = _members(model_file)
    header = json.loads(members["metadata.json"])
    assert header["format_version"] == FORMAT_VERSION == 2
    assert header["graphs"] == {role: {"fold": 16} for role in ("forward", "saliency", "saliency_rows")}
    assert {"graphs/forward.onnx", "graphs/forward.fold16.onnx", "graphs/saliency.onnx",
            "graphs/saliency.fold16.onnx", "graphs/saliency_rows.onnx", "graphs/saliency_rows.fold16.onnx",
            "model.keras", "metadata.json"} == set(members)
    model = RealBogusModel.from_bytes(model_file.read_bytes(), source=str(model_file))
    assert model._network is None and model.input_shape == (51, 102, 1)
    assert set(model.graphs) == {"forward", "saliency", "saliency_rows"}
    x = _inputs()
    scores = model.predict(x)
    assert model._network is None  # ONNX Runtime only
    np.testing.assert_allclose(scores, model.predict(x, backend="tensorflow"), rtol=0, atol=1e-6)
    assert model._network is not None  # loaded on demand, its weights checked against the hash


def test_saving_again_keeps_the_version(model_file, tmp_path):
    model = RealBogusModel.from_bytes(model_file.read_bytes())
    again = RealBogusModel.from_bytes(model.to_bytes())  # without a network: the file's own parts
    assert again.version == model.version
    again.network  # noqa: B018 - with a network: translated again, the same graphs
    assert RealBogusModel.from_bytes(again.to_bytes()).version == model.version


@pytest.mark.parametrize("field,value", [("threshold", 0.3), ("layout", "DIA"), ("stacking", "channels"),
                                         ("stamp_size", 49), ("scaling_version", "other/v9"),
                                         ("architecture", "paper_dia"), ("weights_sha256", "0" * 64)])
def test_editing_what_changes_the_output_fails_the_hash(model_file, tmp_path, field, value):
    edited = _edited(tmp_path, model_file, **{field: value})
    with pytest.raises(ModelFileError, match="content hash mismatch") as caught:
        load_model(edited)
    assert str(edited) in str(caught.value)


@pytest.mark.parametrize("member", ["graphs/forward.onnx", "graphs/saliency.fold16.onnx"])
def test_editing_a_graph_fails_the_hash(model_file, tmp_path, member):
    members = _members(model_file)
    data = bytearray(members[member])
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    members[member] = bytes(data)
    edited = _write(tmp_path / "graph.rbmodel", members)
    with pytest.raises(ModelFileError, match=f"{edited}: content hash mismatch"):
        load_model(edited)


def test_other_weights_in_model_keras_are_caught_when_loaded(model_file, tmp_path):
    other = RealBogusModel.from_architecture("paper_nodia", name="other")
    members = _members(model_file)
    members["model.keras"] = _members(io.BytesIO(other.to_bytes()))["model.keras"]
    edited = _write(tmp_path / "swapped.rbmodel", members)
    model = load_model(edited)  # the graphs are the file's own: classifying is unaffected
    with pytest.raises(ModelFileError, match="content hash mismatch: the weights in model.keras"):
        model.network  # noqa: B018


@pytest.mark.parametrize("field,value,problem", [
    ("threshold", math.nan, "finite number in [0, 1]"),
    ("threshold", 1.5, "finite number in [0, 1]"),
    ("threshold", -0.1, "finite number in [0, 1]"),
    ("threshold", "0.5", "must be a number"),
    ("layout", "triplet", "must be one of"),
    ("stacking", "diagonal", "must be one of"),
    ("stamp_size", 50, "odd number of pixels"),
    ("stamp_size", -51, "odd number of pixels"),
    ("stamp_size", 51.0, "must be an integer"),
    ("stamp_size", True, "must be an integer"),
    ("name", "", "non-empty string"),
    ("name", 7, "non-empty string"),
    ("training", [], "JSON object"),
    ("content_hash", "abc", "hexadecimal"),
])
def test_invalid_values_are_refused_naming_file_and_field(model_file, tmp_path, field, value, problem):
    # rehashed, so that only the value check can refuse it
    edited = _edited(tmp_path, model_file, rehash=field != "content_hash", **{field: value})
    with pytest.raises(ModelFileError) as caught:
        load_model(edited)
    message = str(caught.value)
    assert str(edited) in message and f"field {field!r}" in message and problem in message, message


@pytest.mark.parametrize("header,expected", [
    ({"format_version": "2"}, "field 'format_version' must be a positive integer, got '2' (str)"),
    ([1, 2, 3], "metadata.json must hold a JSON object, not a list"),
    ({"name": None}, "field 'name' is missing"),
    ({"format_version": 99}, "has format 99, newer than this rbnodia understands"),
])
def test_malformed_metadata_is_one_clear_error(model_file, tmp_path, header, expected):
    members = _members(model_file)
    original = json.loads(members["metadata.json"])
    if isinstance(header, dict):
        original.update(header)
        if header.get("name", "") is None:
            del original["name"]
        header = original
    members["metadata.json"] = json.dumps(header).encode()
    edited = _write(tmp_path / "malformed.rbmodel", members)
    with pytest.raises(ModelFileError) as caught:
        load_model(edited)
    assert str(edited) in str(caught.value) and expected in str(caught.value), str(caught.value)


def test_garbage_network_inside_a_valid_zip(model_file, tmp_path):
    members = _members(model_file)
    members["model.keras"] = b"\x00garbage" * 100
    edited = _write(tmp_path / "garbage_keras.rbmodel", members)
    with pytest.raises(ModelFileError, match=f"Not a valid network in {edited}: model.keras is not a Keras"):
        load_model(edited)
    # a zip that only looks like a Keras archive: refused when the network is read
    members["model.keras"] = _zip({"config.json": b"{not json", "model.weights.h5": b"nothing",
                                   "metadata.json": b"{}"})
    edited = _write(tmp_path / "fake_keras.rbmodel", members)
    model = load_model(edited)
    with pytest.raises(ModelFileError, match=f"Not a valid network in {edited}: model.keras cannot be"):
        model.network  # noqa: B018


def test_garbage_graph_inside_a_valid_zip(model_file, tmp_path):
    members = _members(model_file)
    members["graphs/forward.onnx"] = b"\x08\x07garbage that is no ONNX model" * 10
    members["graphs/forward.fold16.onnx"] = members["graphs/forward.onnx"]
    edited = _write(tmp_path / "garbage_onnx.rbmodel", _rehash(members))
    model = load_model(edited)
    with pytest.raises(ModelFileError, match=rf"Not a valid network in {edited} \(graphs/forward.onnx\)"):
        model.predict(_inputs(3))


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_metadata_that_inflates_to_400_mb_is_refused_before_inflating(model_file, tmp_path):
    members = _members(model_file)
    bomb = tmp_path / "bomb.rbmodel"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("metadata.json", "w") as stream:
            stream.write(members["metadata.json"][:-1] + b",\n  \"padding\": \"")
            block = b" " * 2**20
            for _ in range(400):
                stream.write(block)
            stream.write(b"\"}")
        for name, data in members.items():
            if name != "metadata.json":
                archive.writestr(name, data)
    assert bomb.stat().st_size < 4 * 2**20
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=rf"{bomb}: metadata.json in the file inflates to 4194\d+ bytes, "
                                             r"more than the 4194304 allowed"):
        load_model(bomb)
    assert time.perf_counter() - start < 5  # refused from the zip directory, not after inflating


def test_a_member_of_model_keras_over_the_limit_is_refused(model_file, tmp_path, monkeypatch):
    from rbnodia.nn import modelfile

    monkeypatch.setitem(modelfile.MEMBER_LIMITS, "", 100_000)  # each member of model.keras
    with pytest.raises(ModelFileError, match=r"model.weights.h5 in model.keras inflates to \d+ bytes"):
        RealBogusModel.from_bytes(model_file.read_bytes(), source="limited")


def test_not_a_zip_and_missing_members(tmp_path, model_file):
    bad = tmp_path / "bad.rbmodel"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match=f"Not an rbnodia model file: {bad} is not a zip archive"):
        load_model(bad)
    members = _members(model_file)
    del members["graphs/saliency.onnx"]
    partial = _write(tmp_path / "partial.rbmodel", members)
    with pytest.raises(ModelFileError, match=f"{partial} has no graphs/saliency.onnx"):
        load_model(partial)


def _lambda_model():
    import keras

    network = keras.Sequential([keras.Input((11, 22, 1)), keras.layers.Lambda(lambda t: t * 2.0),
                                keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    return RealBogusModel(network, ModelMetadata(name="code", architecture="custom", layout="noDIA",
                                                 stamp_size=11))


def test_code_in_a_model_file_is_never_run(tmp_path, model_file):
    """Keras' safe mode refuses a Lambda layer; the ONNX graphs hold no code."""
    path = _lambda_model().save(tmp_path / "code.rbmodel")  # no ONNX graphs: the network is read on load
    assert json.loads(_members(path)["metadata.json"])["graphs"] == {}
    with pytest.raises(ModelFileError, match=f"Refusing the network in {path}: model.keras holds Python"):
        load_model(path)
    # graphs of a harmless network, the Keras archive of one with code
    members = _members(model_file)
    members["model.keras"] = _members(io.BytesIO(_lambda_model().to_bytes()))["model.keras"]
    mixed = _write(tmp_path / "mixed.rbmodel", members)
    model = load_model(mixed)
    with pytest.raises(ModelFileError, match="holds Python code"):
        model.network  # noqa: B018


def test_invalid_metadata_is_not_written():
    model = RealBogusModel.from_architecture("paper_nodia")
    model.metadata.threshold = float("nan")
    with pytest.raises(ValueError, match="field 'threshold'"):
        model.to_bytes()
    with pytest.raises(ValueError, match="field 'stamp_size'"):
        RealBogusModel.from_architecture("paper_nodia", stamp_size=50)


def _format1_file(path, model):
    """Return a model file as rbnodia wrote it before the graphs (format 1)."""
    members = _members(io.BytesIO(model.to_bytes()))
    header = json.loads(members["metadata.json"])
    for key in ("graphs", "weights_sha256"):
        del header[key]
    header["format_version"] = 1
    header["content_hash"] = legacy_content_hash(model.metadata, model.network.get_weights())
    return _write(path, {"metadata.json": json.dumps(header).encode(), "model.keras": members["model.keras"]})


def test_format1_file_is_read_and_converted(tmp_path):
    from rbnodia.cli import main

    original = RealBogusModel.from_architecture("paper_nodia", name="old", threshold=0.4)
    old = _format1_file(tmp_path / "old.rbmodel", original)
    model = load_model(old)  # translated on load (TensorFlow is here)
    assert model.version == original.version and model.threshold == 0.4
    x = _inputs(5)
    np.testing.assert_allclose(model.predict(x), original.predict(x), rtol=0, atol=1e-7)
    new = tmp_path / "new.rbmodel"
    assert main(["convert-model", str(old), str(new)]) == 0
    converted = load_model(new)
    assert converted.version == original.version and converted._network is None
    assert main(["convert-model", str(old), str(new)]) == 1  # exists, no --clobber
    # an edited format-1 file fails its own (weights-only) hash
    members = _members(old)
    header = json.loads(members["metadata.json"])
    header["architecture"] = "paper_dia"
    members["metadata.json"] = json.dumps(header).encode()
    with pytest.raises(ModelFileError, match="content hash mismatch"):
        load_model(_write(tmp_path / "old_edited.rbmodel", members))


def test_content_hash_covers_each_part(model_file):
    members = _members(model_file)
    header = json.loads(members["metadata.json"])
    metadata, graphs = ModelMetadata.from_dict(header), _graphs(members, header)
    base = content_hash(metadata, header["weights_sha256"], graphs)
    assert base == header["content_hash"]
    changed = {
        "threshold": content_hash(ModelMetadata.from_dict({**header, "threshold": 0.25}),
                                  header["weights_sha256"], graphs),
        "weights": content_hash(metadata, hashlib.sha256(b"x").hexdigest(), graphs),
        "graph dropped": content_hash(metadata, header["weights_sha256"],
                                      {k: v for k, v in graphs.items() if k != "saliency_rows"}),
        "fold": content_hash(metadata, header["weights_sha256"],
                             {**graphs, "forward": GraphVariants(graphs["forward"].plain)}),
    }
    assert all(value != base for value in changed.values()), changed
    # name, metrics, training record and creation time do not change the output: not hashed
    untouched = ModelMetadata.from_dict({**header, "name": "renamed", "metrics": {}, "created": "now"})
    assert content_hash(untouched, header["weights_sha256"], graphs) == base


def test_without_the_onnx_package_a_network_predicts_on_tensorflow_and_is_not_written(monkeypatch):
    """Where Keras is installed without onnx, a model built from a network
    cannot be translated: it predicts with TensorFlow, and writing it says
    which extra is missing instead of writing a file without graphs.
    """
    import sys

    monkeypatch.setitem(sys.modules, "rbnodia.nn.onnx.translate", None)  # "import" raises ImportError
    model = RealBogusModel.from_architecture("paper_nodia")
    assert dict(model.graphs) == {} and model.inference_backend() == "tensorflow"
    assert model.predict(_inputs(3)).shape == (3,)
    with pytest.raises(RuntimeError, match="onnx package is missing"):
        model.predict(_inputs(3), backend="onnx")
    with pytest.raises(ImportError, match=r"needs the onnx package, the \[train\] extra"):
        model.to_bytes()
