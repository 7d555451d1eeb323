"""Paper networks and the model file format."""

import numpy as np
import pytest

from rbnodia.nn import ModelMismatchError, RealBogusModel, architecture_names, build_network, load_model


@pytest.mark.parametrize("name,params", [("paper_nodia", 45_908), ("paper_dia", 126_050)])
def test_paper_parameter_counts(name, params):
    assert build_network(name).count_params() == params


def test_registry_lists_paper_networks():
    assert {"paper_nodia", "paper_dia"} <= set(architecture_names())
    with pytest.raises(KeyError, match="known"):
        build_network("no_such_net")


def test_model_file_roundtrip(tmp_path, nodia_model_file):
    model = load_model(nodia_model_file)
    assert model.layout.value == "noDIA" and model.stamp_size == 51
    x = np.random.default_rng(0).random((7, 51, 102, 1), dtype=np.float32)
    scores = model.predict(x)
    assert scores.shape == (7,) and ((scores >= 0) & (scores <= 1)).all()
    probs = model.probabilities(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Reloading the same bytes gives the cached instance; a re-save keeps the hash.
    assert load_model(nodia_model_file) is model
    copy = tmp_path / "copy.rbmodel"
    model.save(copy)
    assert RealBogusModel.from_bytes(copy.read_bytes()).version == model.version


def test_version_changes_with_weights():
    model = RealBogusModel.from_architecture("paper_nodia")
    before = model.version
    weights = model.network.get_weights()
    weights[0] = weights[0] + 1.0
    model.network.set_weights(weights)
    model.refresh_hash()
    assert model.version != before


def test_mismatch_is_clear_error(nodia_model_file):
    model = load_model(nodia_model_file)
    with pytest.raises(ModelMismatchError, match="layout noDIA"):
        model.check_compatible("DIA", 51)
    with pytest.raises(ModelMismatchError, match="stamp size"):
        model.check_compatible("noDIA", 31)
    with pytest.raises(ModelMismatchError, match="do not fit"):
        model.predict(np.zeros((2, 51, 153, 1), np.float32))


def test_corrupt_file_rejected(tmp_path):
    bad = tmp_path / "bad.rbmodel"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="Not an rbnodia model"):
        load_model(bad)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.rbmodel")
