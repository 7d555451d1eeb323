"""Shared fixtures: small untrained models saved as real model files."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def nodia_model_file(tmp_path_factory):
    """An untrained paper_nodia model written as a real .rbmodel file."""
    from rbnodia.nn import RealBogusModel

    path = tmp_path_factory.mktemp("models") / "nodia_test.rbmodel"
    RealBogusModel.from_architecture("paper_nodia", name="nodia_test").save(path)
    return path


@pytest.fixture(scope="session")
def dia_model_file(tmp_path_factory):
    """An untrained paper_dia model written as a real .rbmodel file."""
    from rbnodia.nn import RealBogusModel

    path = tmp_path_factory.mktemp("models") / "dia_test.rbmodel"
    RealBogusModel.from_architecture("paper_dia", name="dia_test").save(path)
    return path
