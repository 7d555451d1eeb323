"""Resumable training: checkpoints every epoch, resuming equals not stopping,
early stopping state, and ``rbnodia train --checkpoint-dir``.

Why resuming is bit-identical here: the batches and their augmentation are
functions of (seed, epoch, batch) (`rbnodia.training.data.make_feed`); the
checkpoint restores every network variable (weights, batch-norm statistics,
the dropout layers' seed-generator states), every optimizer variable (step
count, Adam moments), the history and the early-stopping state; and
TensorFlow on the CPU computes the same floats for the same inputs and
thread count (``test_training_is_deterministic``).  So the weights are
compared exactly.
"""

import json

import numpy as np
import pytest
from easy_stamps import easy_stamps
from quick_training import quick_config, run_cli

from rbnodia.training import (
    CHECKPOINT_FILE,
    LEARNING_CURVES_FILE,
    CheckpointMismatchError,
    TrainingState,
    train_model,
)


@pytest.fixture(scope="module")
def stamps():
    return easy_stamps(96, seed=4)


def config(**overrides):
    # quick_config's improved_nodia_fast has batch normalisation and dropout: both are state
    # a checkpoint must carry.
    values = dict(epochs=4, augment=True, patience=0, batchSize=32, seed=3, evaluateTrain=False)
    values.update(overrides)
    return quick_config(**values)


def assert_same_run(a, b):
    assert a.history == b.history
    for x, y in zip(a.model.network.get_weights(), b.model.network.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.model.version == b.model.version
    assert a.best_epoch == b.best_epoch and a.epochs_run == b.epochs_run


@pytest.fixture(scope="module")
def straight(stamps):
    return train_model(stamps, config())


def test_stop_and_resume_equals_straight_run(tmp_path, stamps, straight):
    folder = tmp_path / "ckpt"
    first = train_model(stamps, config(checkpointDir=str(folder)), session_epochs=2)
    assert not first.finished and first.epochs_run == 2 and not first.validation_metrics
    assert (folder / CHECKPOINT_FILE).is_file() and (folder / LEARNING_CURVES_FILE).stat().st_size > 1000
    assert not list(folder.glob("*.partial"))  # written beside and renamed: never half-written
    resumed = train_model(stamps, config(checkpointDir=str(folder)))
    assert resumed.finished and resumed.resumed_from == 2 and resumed.sessions == 2
    assert_same_run(resumed, straight)
    # The best weights (lowest val_loss) are restored at the end, and are the checkpoint's.
    with np.load(folder / CHECKPOINT_FILE) as data:
        header = json.loads(str(data["header"]))
        best = [data[f"best_{i}"] for i in range(header["counts"]["best"])]
    assert header["state"]["best_epoch"] == resumed.best_epoch
    for x, y in zip(resumed.model.network.get_weights(), best, strict=True):
        np.testing.assert_array_equal(x, y)


def test_continuation_to_more_epochs_equals_straight_run(tmp_path, stamps, straight):
    folder = str(tmp_path / "ckpt")
    short = train_model(stamps, config(epochs=2, checkpointDir=folder))
    assert short.finished and short.epochs_run == 2
    longer = train_model(stamps, config(epochs=4, checkpointDir=folder))
    assert longer.resumed_from == 2
    assert_same_run(longer, straight)
    # A finished checkpoint is not trained again: the same model comes back.
    again = train_model(stamps, config(epochs=4, checkpointDir=folder))
    assert again.sessions == 2 and again.model.version == longer.model.version


def test_checkpoint_refuses_other_settings_or_data(tmp_path, stamps):
    folder = str(tmp_path / "ckpt")
    train_model(stamps, config(epochs=1, checkpointDir=folder))
    with pytest.raises(CheckpointMismatchError, match="batchSize: 32 -> 16"):
        train_model(stamps, config(epochs=2, batchSize=16, checkpointDir=folder))
    with pytest.raises(CheckpointMismatchError, match="other training data"):
        train_model(easy_stamps(96, seed=5), config(epochs=2, checkpointDir=folder))
    with pytest.raises(ValueError, match="session_epochs needs checkpointDir"):
        train_model(stamps, config(), session_epochs=1)


def test_early_stopping_state():
    weights = iter(range(100))
    state = TrainingState()
    stops = [
        state.end_epoch(e, {"loss": 1.0, "val_loss": v}, lambda: [np.array(next(weights))], patience=2)
        for e, v in enumerate([1.0, 0.8, 0.9, float("nan")])
    ]
    # Improvement at epochs 1 and 2; epochs 3 and 4 (NaN never improves) exhaust the patience of 2.
    assert stops == [False, False, False, True]
    assert state.stopped_early and state.best_epoch == 2 and state.best_value == 0.8
    assert [int(w) for w in state.best_weights] == [1]
    assert state.history["val_loss"][:3] == [1.0, 0.8, 0.9] and state.finished(epochs=100)
    free = TrainingState()
    for e, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        assert not free.end_epoch(e, {"val_loss": v}, lambda: [np.zeros(1)], patience=0)
    assert free.best_epoch == 1 and not free.finished(epochs=5) and free.finished(epochs=4)


def test_early_stopping_resumes_its_patience(tmp_path, stamps):
    """A run that early-stops gives the same result whether or not it was
    interrupted before stopping (the patience counter is checkpointed).
    """
    # A learning rate this high makes the validation loss climb within a few epochs.
    settings = dict(epochs=8, patience=2, optimizer="sgd_momentum", learningRate=0.5)
    straight = train_model(stamps, config(**settings))
    assert straight.stopped_early and straight.epochs_run < 8
    folder = str(tmp_path / "ckpt")
    train_model(stamps, config(checkpointDir=folder, **settings), session_epochs=straight.best_epoch + 1)
    resumed = train_model(stamps, config(checkpointDir=folder, **settings))
    assert resumed.stopped_early
    assert_same_run(resumed, straight)


def test_cli_resumes_from_checkpoint_dir(tmp_path, stamps, capsys):
    from rbnodia.nn import load_model

    data = stamps.save(tmp_path / "train.npz")
    out = tmp_path / "model.rbmodel"
    argv = [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--arch",
        "improved_nodia_fast",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--no-progress",
    ]
    stopped = run_cli(capsys, [*argv, "--session-epochs", "1"])
    assert "stopped after epoch 1 of 2" in stopped and not out.exists()
    assert "resumed after epoch 1" in run_cli(capsys, argv)
    training = load_model(out).metadata.training
    assert training["sessions"] == 2 and training["epochs_run"] == 2
    assert training["config"]["checkpointDir"] == str(tmp_path / "ckpt")
