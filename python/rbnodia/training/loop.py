"""The fit loop: compile, resume from a checkpoint, fit epoch by epoch with
early stopping, checkpoint after every epoch, report progress, and restore
the best weights.

Keras runs the epochs (`keras.Model.fit` with ``initial_epoch`` when
resuming); two callbacks do the rest.  ``_EpochKeeper`` tells the feed which
epoch it serves, updates the `~rbnodia.training.checkpoint.TrainingState`
(history, early stopping, best weights, time) and writes the checkpoint and
the learning-curve PNG (`LEARNING_CURVES_FILE`).  ``_ProgressReporter`` logs a line per epoch and, in
long epochs (training or validation batches), at least every
``log_interval`` seconds, and drives a tqdm bar over batches or a callable.
"""

from __future__ import annotations

__all__ = ["CURVES_INTERVAL", "LEARNING_CURVES_FILE", "FitOutcome", "fit_network"]

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

from .checkpoint import Checkpoint, TrainingState
from .recipes import get_optimizer_recipe
from .settings import TrainingConfig

LEARNING_CURVES_FILE = "learning_curves.png"
"""Learning-curve PNG in the checkpoint folder, rewritten after an epoch when
`CURVES_INTERVAL` seconds have passed since the last, and when a session ends."""
CURVES_INTERVAL = 30.0
"""Shortest time in seconds between two rewrites of `LEARNING_CURVES_FILE`
within a session (drawing it costs a fraction of a second, much more than
a short epoch)."""

_BAR_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclasses.dataclass
class FitOutcome:
    """What `fit_network` did.

    Attributes
    ----------
    state : `~rbnodia.training.checkpoint.TrainingState`
        The run's state after this session.
    resumed_from : `int`
        Epochs completed before this session (0 for a fresh run).
    finished : `bool`
        Whether the run is over (all epochs, or early stopping); if not, the
        network holds the last epoch's weights and the checkpoint can resume.
    """

    state: TrainingState
    resumed_from: int
    finished: bool

    @property
    def best_epoch(self) -> int:
        """1-based epoch whose weights the network holds when finished."""
        return self.state.best_epoch or self.state.epoch


def _fmt(logs: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))


def _epoch_keeper(feed, state: TrainingState, config: TrainingConfig, checkpoint: Checkpoint | None, log):
    """Return the callback that keeps the feed's epoch, the state and the checkpoint."""
    import keras

    class _EpochKeeper(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.drawn = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            feed.epoch = epoch
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            stop = state.end_epoch(epoch, dict(logs or {}), self.model.get_weights, config.patience)
            state.train_seconds += time.perf_counter() - self.wall
            state.cpu_seconds += time.process_time() - self.cpu
            if stop:
                log.info(
                    "Early stopping after epoch %d: no lower val_loss for %d epochs (best epoch %d).",
                    epoch + 1,
                    config.patience,
                    state.best_epoch,
                )
                self.model.stop_training = True
            if checkpoint is not None:
                checkpoint.save(state, self.model)
                if time.monotonic() - self.drawn >= CURVES_INTERVAL:
                    self.on_train_end()

        def on_train_end(self, logs=None):
            if checkpoint is not None and state.history:
                _write_learning_curves(state, checkpoint.folder / LEARNING_CURVES_FILE, config.model_name)
                self.drawn = time.monotonic()

    return _EpochKeeper()


def _progress_reporter(epochs: int, steps: int, val_steps: int, start: int, log, log_interval, progress):
    """Return the callback that logs (per epoch, and inside long epochs) and drives
    a tqdm bar over batches or a ``progress(epoch, epochs, logs)`` callable.
    """
    import keras

    class _ProgressReporter(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.last, self.bar = time.monotonic(), None
            if progress is True:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=epochs * steps,
                    initial=start * steps,
                    unit="batch",
                    desc="training",
                    leave=True,
                    mininterval=1.0,
                )

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.epoch_start = epoch, time.monotonic()
            if self.bar is not None:
                self.bar.set_description(f"epoch {epoch + 1}/{epochs}", refresh=False)

        def _tick(self, what, batch, total, logs):
            if time.monotonic() - self.last >= log_interval:
                self.last = time.monotonic()
                log.info(
                    "epoch %d/%d, %s batch %d/%d: %s",
                    self.epoch + 1,
                    epochs,
                    what,
                    batch + 1,
                    total,
                    _fmt(logs),
                )

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None:
                self.bar.update(1)
            self._tick("training", batch, steps, logs)

        def on_test_batch_end(self, batch, logs=None):
            self._tick("validation", batch, val_steps, logs)

        def on_epoch_end(self, epoch, logs=None):
            self.last = time.monotonic()
            # With a progress bar the per-epoch line would only clutter it.
            level = logging.DEBUG if self.bar is not None else logging.INFO
            log.log(
                level, "epoch %d/%d (%.1f s): %s", epoch + 1, epochs, self.last - self.epoch_start, _fmt(logs)
            )
            if self.bar is not None:
                self.bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in (logs or {}).items() if k in _BAR_KEYS}, refresh=False
                )
            elif callable(progress):
                progress(epoch + 1, epochs, dict(logs or {}))

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()

    return _ProgressReporter()


def _write_learning_curves(state: TrainingState, path, title: str) -> None:
    """Rewrite the learning-curve PNG atomically."""
    from ..plots.training import plot_history

    tmp = path.with_name(path.name + ".partial")
    plot_history(state.history, best_epoch=state.best_epoch or None, title=title).savefig(
        tmp, format="png", dpi=100
    )
    os.replace(tmp, path)


def fit_network(
    network: Any,
    feed: Any,
    validation_data: tuple[Any, ...] | None,
    config: TrainingConfig,
    *,
    checkpoint: Checkpoint | None = None,
    log: logging.Logger,
    progress: bool | Callable[[int, int, dict], None] = False,
    log_interval: float = 30.0,
    session_epochs: int | None = None,
) -> FitOutcome:
    """Compile and fit ``network``, resuming from and writing ``checkpoint``.

    Parameters
    ----------
    network : `keras.Model`
        The network, freshly built and seeded.
    feed : `keras.utils.PyDataset`
        From `~rbnodia.training.data.make_feed`.
    validation_data : `tuple` or `None`
        ``(inputs, labels)`` or ``(inputs, labels, weights)`` for early
        stopping.
    config : `~rbnodia.training.settings.TrainingConfig`
        The run's settings.
    checkpoint : `~rbnodia.training.checkpoint.Checkpoint`, optional
        Resumed from if it exists; written after every epoch.
    log : `logging.Logger`
        Where progress goes.
    progress : `bool` or callable
        `True`: a tqdm bar over batches; a callable is called as
        ``progress(epoch, epochs, logs)`` after each epoch.
    log_interval : `float`
        Longest silence, in seconds, inside an epoch.
    session_epochs : `int`, optional
        Run at most this many epochs now (the checkpoint resumes the rest).

    Returns
    -------
    outcome : `FitOutcome`
        The network holds the best weights if the run finished.
    """
    steps = len(feed)
    recipe = get_optimizer_recipe(config.optimizer)
    network.compile(
        optimizer=recipe.build(config.learningRate, config.epochs * steps),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    state = _resume(network, checkpoint, config, log) if checkpoint is not None else TrainingState()
    start = state.epoch
    target = config.epochs if session_epochs is None else min(config.epochs, start + session_epochs)
    if not state.finished(config.epochs) and target > start:
        state.sessions += 1
        val_batch = max(config.batchSize, 1024)
        val_steps = 0 if validation_data is None else math.ceil(len(validation_data[1]) / val_batch)
        callbacks = [
            _epoch_keeper(feed, state, config, checkpoint, log),
            _progress_reporter(config.epochs, steps, val_steps, start, log, log_interval, progress),
        ]
        network.fit(
            feed,
            validation_data=validation_data,
            validation_batch_size=val_batch,
            initial_epoch=start,
            epochs=target,
            shuffle=False,  # the feed shuffles, seeded by epoch
            callbacks=callbacks,
            verbose=0,
        )
        log.info(
            "Trained epochs %d-%d of %d (%.1f s so far over %d sessions).",
            start + 1,
            state.epoch,
            config.epochs,
            state.train_seconds,
            state.sessions,
        )
    finished = state.finished(config.epochs)
    if finished and state.best_weights is not None:
        network.set_weights(state.best_weights)
    return FitOutcome(state=state, resumed_from=start, finished=finished)


def _resume(network: Any, checkpoint: Checkpoint, config: TrainingConfig, log) -> TrainingState:
    """Return the checkpoint's state, loaded into the compiled network; a fresh
    state without a checkpoint.
    """
    if not checkpoint.exists():
        return TrainingState()
    stored_epochs = checkpoint.stored_settings().get("epochs")
    state = checkpoint.restore(network)
    log.info(
        "Resuming from %s: %d epochs done, best epoch %d%s.",
        checkpoint.path,
        state.epoch,
        state.best_epoch,
        ", stopped early" if state.stopped_early else "",
    )
    recipe = get_optimizer_recipe(config.optimizer)
    if recipe.scheduled and stored_epochs != config.epochs:
        log.warning(
            "Optimizer %s schedules its learning rate over all epochs: changing epochs from %s to %d on "
            "resuming changes the schedule from here on.",
            recipe.name,
            stored_epochs,
            config.epochs,
        )
    return state
