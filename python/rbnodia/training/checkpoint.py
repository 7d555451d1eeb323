"""Training state and its checkpoint file, so that a run can go on across
sessions.

`TrainingState` is everything a run has learnt besides the live weights:
completed epochs, history, early-stopping state, best weights so far, time
spent.  `Checkpoint` writes it, with every network variable (weights,
batch-normalisation statistics, dropout seed-generator states), every
optimizer variable (step count, moments) and the global Python and NumPy
random states, into one ``checkpoint.npz`` per folder.  The file is written
beside its final name and renamed over it, so a checkpoint is whole or
absent, never half-written.

A checkpoint is resumed only by a run with the same training data (checked
by `~rbnodia.training.data.data_fingerprint`) and the same settings, except
those in `~rbnodia.training.settings.RESUMABLE_CHANGES`.
"""

from __future__ import annotations

__all__ = ["CHECKPOINT_FILE", "CHECKPOINT_FORMAT", "Checkpoint", "CheckpointMismatchError", "TrainingState"]

import dataclasses
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from .settings import RESUMABLE_CHANGES

CHECKPOINT_FILE = "checkpoint.npz"
"""Name of the checkpoint file inside a checkpoint folder."""
CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout."""


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for other data or other settings."""


@dataclasses.dataclass
class TrainingState:
    """Progress of one training run, checkpointed after every epoch.

    Attributes
    ----------
    epoch : `int`
        Epochs completed.
    history : `dict` [`str`, `list` [`float`]]
        Per-epoch Keras logs: ``loss``, ``accuracy``, ``val_loss``,
        ``val_accuracy`` (and ``learning_rate`` where recorded).
    best_value : `float` or `None`
        Lowest finite validation loss so far.
    best_epoch : `int`
        1-based epoch of ``best_value`` (0: none yet).
    wait : `int`
        Epochs since the last improvement (early stopping).
    stopped_early : `bool`
        Whether early stopping ended the run.
    best_weights : `list` [`numpy.ndarray`] or `None`
        Network weights of ``best_epoch``.
    train_seconds, cpu_seconds : `float`
        Wall-clock and process CPU seconds spent in epochs, over all sessions.
    sessions : `int`
        Sessions that trained (1 for an uninterrupted run).
    """

    epoch: int = 0
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    best_value: float | None = None
    best_epoch: int = 0
    wait: int = 0
    stopped_early: bool = False
    best_weights: list[np.ndarray] | None = None
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0
    sessions: int = 0

    def end_epoch(self, epoch: int, logs: dict[str, Any], get_weights: Any, patience: int) -> bool:
        """Record a finished epoch; return whether early stopping ends the run.

        Parameters
        ----------
        epoch : `int`
            0-based epoch just finished.
        logs : `dict`
            Its Keras logs.
        get_weights : callable
            Returns the network's current weights (called on improvement).
        patience : `int`
            Epochs without a lower validation loss before stopping; 0 never
            stops.

        Returns
        -------
        stop : `bool`
            Whether early stopping ends the run.

        Notes
        -----
        Follows `keras.callbacks.EarlyStopping` (monitor ``val_loss``,
        ``min_delta`` 0, best weights restored), whose state lives in
        attributes reset at the start of every ``fit`` and has no way to be
        saved and restored; hence this class.  A non-finite validation loss
        never counts as an improvement.
        """
        self.epoch = epoch + 1
        for key, value in logs.items():
            if isinstance(value, (int, float, np.floating, np.integer)):
                self.history.setdefault(key, []).append(float(value))
        value = logs.get("val_loss")
        if value is None:
            return False
        value = float(value)
        self.wait += 1
        if math.isfinite(value) and (self.best_value is None or value < self.best_value):
            self.best_value, self.best_epoch, self.wait = value, epoch + 1, 0
            self.best_weights = [np.array(w, copy=True) for w in get_weights()]
            return False
        if patience > 0 and self.wait >= patience:
            self.stopped_early = True
        return self.stopped_early

    def finished(self, epochs: int) -> bool:
        """Tell whether the run is over for a maximum of ``epochs``.

        Parameters
        ----------
        epochs : `int`
            The maximum number of epochs.

        Returns
        -------
        finished : `bool`
            True if stopped early or ``epochs`` are done.
        """
        return self.stopped_early or self.epoch >= epochs

    def to_json(self) -> dict[str, Any]:
        """Return everything but the weights, JSON-ready.

        Returns
        -------
        data : `dict` [`str`, `object`]
            The state's fields.
        """
        data = dataclasses.asdict(self)
        data.pop("best_weights")
        return data


def _rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


class Checkpoint:
    """The checkpoint of one run in ``folder``.

    Parameters
    ----------
    folder : path-like
        Checkpoint folder (created on the first save).
    settings : `dict`
        `~rbnodia.training.settings.TrainingConfig.toDict` of the run.
    fingerprint : `str`
        `~rbnodia.training.data.data_fingerprint` of its training and
        validation splits.
    """

    def __init__(self, folder: str | os.PathLike, settings: dict[str, Any], fingerprint: str) -> None:
        self.folder = Path(folder)
        self.settings = dict(settings)
        self.fingerprint = fingerprint

    @property
    def path(self) -> Path:
        """The checkpoint file."""
        return self.folder / CHECKPOINT_FILE

    def exists(self) -> bool:
        """Tell whether the folder holds a checkpoint.

        Returns
        -------
        exists : `bool`
            True if the checkpoint file exists.
        """
        return self.path.is_file()

    def save(self, state: TrainingState, network: Any) -> Path:
        """Write the state, the network's and its optimizer's variables and
        the random states, atomically.

        Parameters
        ----------
        state : `TrainingState`
            The training state after the epoch.
        network : `keras.Model`
            The compiled network.

        Returns
        -------
        path : `pathlib.Path`
            The checkpoint file.
        """
        arrays: dict[str, np.ndarray] = {}
        groups = {
            "network": [np.asarray(v) for v in network.variables],
            "optimizer": [np.asarray(v) for v in network.optimizer.variables],
            "best": state.best_weights or [],
        }
        for group, values in groups.items():
            arrays.update({f"{group}_{i}": value for i, value in enumerate(values)})
        header = {
            "format": CHECKPOINT_FORMAT,
            "settings": self.settings,
            "fingerprint": self.fingerprint,
            "state": state.to_json(),
            "counts": {group: len(values) for group, values in groups.items()},
            "rng": _rng_state(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / (CHECKPOINT_FILE + ".partial")
        with open(tmp, "wb") as stream:
            np.savez(stream, header=np.array(json.dumps(header)), **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, self.path)
        return self.path

    def restore(self, network: Any) -> TrainingState:
        """Load the checkpoint into a compiled ``network`` and the global
        random states, and return the training state.

        Parameters
        ----------
        network : `keras.Model`
            A compiled network of the checkpoint's architecture.

        Returns
        -------
        state : `TrainingState`
            The state the checkpoint was written with.

        Raises
        ------
        CheckpointMismatchError
            If the checkpoint was written for other data, other settings, or
            another network.
        """
        with np.load(self.path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            groups = {
                group: [data[f"{group}_{i}"] for i in range(count)]
                for group, count in header["counts"].items()
            }
        self._check(header)
        optimizer = network.optimizer
        if not optimizer.built:
            optimizer.build(network.trainable_variables)
        for what, variables, values in (
            ("network", network.variables, groups["network"]),
            ("optimizer", optimizer.variables, groups["optimizer"]),
        ):
            if len(variables) != len(values) or any(v.shape != a.shape for v, a in zip(variables, values)):
                raise CheckpointMismatchError(f"{self.path}: its {what} variables do not fit this network.")
            for variable, value in zip(variables, values):
                variable.assign(value)
        _set_rng_state(header["rng"])
        state = TrainingState(**header["state"])
        state.best_weights = groups["best"] or None
        return state

    def _check(self, header: dict[str, Any]) -> None:
        if header.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointMismatchError(
                f"{self.path}: checkpoint format {header.get('format')} is not {CHECKPOINT_FORMAT}."
            )
        if header["fingerprint"] != self.fingerprint:
            raise CheckpointMismatchError(
                f"{self.path} was written for other training data; use another checkpoint folder."
            )
        stored = header["settings"]
        changed = sorted(
            key
            for key in set(stored) | set(self.settings)
            if key not in RESUMABLE_CHANGES and stored.get(key) != self.settings.get(key)
        )
        if changed:
            detail = ", ".join(f"{k}: {stored.get(k)!r} -> {self.settings.get(k)!r}" for k in changed)
            raise CheckpointMismatchError(
                f"{self.path} was written with other settings ({detail}); use another checkpoint folder."
            )

    def stored_settings(self) -> dict[str, Any]:
        """Return the settings the checkpoint was written with.

        Returns
        -------
        settings : `dict` [`str`, `object`]
            The settings stored in the checkpoint's header.
        """
        with np.load(self.path, allow_pickle=False) as data:
            return json.loads(str(data["header"]))["settings"]
