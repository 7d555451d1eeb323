"""Shared fixtures: small untrained models saved as real model files, and
untrained models with non-trivial biases and batch-norm statistics."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def nodia_model_file(tmp_path_factory):
    """An untrained paper_nodia model written as a real .rbmodel file."""
    import keras

    from rbnodia.nn import RealBogusModel

    # Seeded: with some random initialisations the untrained network's single
    # first filter is dead on the test scenes (every score exactly 0.5, all
    # saliency maps zero, NaN shares), which made tests depend on test order.
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("models") / "nodia_test.rbmodel"
    RealBogusModel.from_architecture("paper_nodia", name="nodia_test").save(path)
    return path


@pytest.fixture(scope="session")
def dia_model_file(tmp_path_factory):
    """An untrained paper_dia model written as a real .rbmodel file."""
    import keras

    from rbnodia.nn import RealBogusModel

    # Seeded: with some random initialisations the untrained network's single
    # first filter is dead on the test scenes (every score exactly 0.5, all
    # saliency maps zero, NaN shares), which made tests depend on test order.
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("models") / "dia_test.rbmodel"
    RealBogusModel.from_architecture("paper_dia", name="dia_test").save(path)
    return path


def _randomised_model(arch: str, seed: int = 1):
    import keras

    from rbnodia.nn import RealBogusModel

    keras.utils.set_random_seed(seed)  # the kernels too: the same model in every test worker
    model = RealBogusModel.from_architecture(arch)
    rng = np.random.default_rng(seed)
    for variable in model.network.weights:
        path = variable.path
        if any(key in path for key in ("bias", "beta", "moving_mean", "gamma", "moving_variance")):
            value = rng.normal(0.0, 0.1, variable.shape).astype(np.float32)
            if "gamma" in path or "variance" in path:
                value = np.abs(value) + 0.5
            variable.assign(value)
    model.refresh_hash()
    return model


@pytest.fixture
def randomised_model():
    """``randomised_model(arch, seed=1)``: an untrained model whose biases and
    batch-norm statistics are not trivial (zero biases and unit statistics
    would hide translation errors)."""
    return _randomised_model
