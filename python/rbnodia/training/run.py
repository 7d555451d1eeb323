"""`train_model`: one training run from labelled stamps to a model with a
threshold and metrics.

The steps are the other modules': split and scale the data
(`~rbnodia.training.data`), build the network, fit it with checkpoints
(`~rbnodia.training.loop`), choose the threshold
(`~rbnodia.training.thresholds`) and score the splits
(`~rbnodia.training.evaluation`).  Labels are used as stored (DES
convention, 0 = real, 1 = bogus), so the network's softmax column 0 is
P(real), Rubin's reliability ``score``.
"""

from __future__ import annotations

__all__ = ["TrainingResult", "train_model"]

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.stampset import BOGUS, REAL, LabelledStamps
from .checkpoint import Checkpoint
from .data import (
    Splits,
    class_weights,
    data_fingerprint,
    make_feed,
    model_inputs,
    prepare_splits,
    snr_weights,
)
from .evaluation import stamp_metrics
from .loop import FitOutcome, fit_network
from .settings import TrainingConfig
from .thresholds import tune_threshold

_LOG = logging.getLogger("rbnodia.training")


@dataclasses.dataclass
class TrainingResult:
    """What `train_model` returns.

    Attributes
    ----------
    model : `~rbnodia.nn.RealBogusModel`
        The trained model (best weights when finished), threshold set from
        the validation split, content hash refreshed.
    history : `dict` [`str`, `list` [`float`]]
        Per epoch, over all sessions: ``loss``, ``accuracy``, ``val_loss``,
        ``val_accuracy`` (and ``learning_rate`` where recorded).
    train_seconds, cpu_seconds : `float`
        Wall-clock and process CPU seconds (all threads) spent in epochs,
        over all sessions.
    epochs_run : `int`
        Epochs completed.
    best_epoch : `int`
        1-based epoch whose weights were kept (lowest validation loss), or the
        last epoch without validation.
    config : `~rbnodia.training.settings.TrainingConfig`
        The settings used.
    finished : `bool`
        Whether training is over; `False` when it stopped for the session
        (then there is no threshold or metrics, and the checkpoint resumes).
    stopped_early : `bool`
        Whether early stopping ended it.
    sessions : `int`
        Sessions that trained it.
    resumed_from : `int`
        Epochs done before this session.
    threshold : `float`
        Decision threshold on P(real).
    threshold_method : `str`
        How it was chosen.
    train_summary, validation_summary : `dict`
        `LabelledStamps.summary` of the training and validation splits.
    train_metrics, validation_metrics : `dict`
        `~rbnodia.training.evaluation.stamp_metrics` on each split
        (``train_metrics`` is empty unless ``config.evaluateTrain``).
    validation_scores, validation_labels : `numpy.ndarray`
        P(real) and labels on the validation split (for plots).
    """

    model: Any
    history: dict[str, list[float]]
    train_seconds: float
    cpu_seconds: float
    epochs_run: int
    best_epoch: int
    config: TrainingConfig
    finished: bool = True
    stopped_early: bool = False
    sessions: int = 1
    resumed_from: int = 0
    threshold: float = 0.5
    threshold_method: str = "fixed at 0.5"
    train_summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation_summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    validation_scores: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    validation_labels: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int8))


def _set_threads(threads: int | None, log: logging.Logger) -> None:
    if threads is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        log.debug("TensorFlow already started; cannot change its thread count to %d.", threads)


def _check_sizes(config: TrainingConfig, **sets: LabelledStamps | None) -> None:
    for what, stamps in sets.items():
        if stamps is not None and len(stamps) and stamps.stamp_size != config.stampSize:
            raise ValueError(
                f"{what.capitalize()} stamps are {stamps.stamp_size} pixels, config.stampSize is "
                f"{config.stampSize}."
            )


def _build_model(config: TrainingConfig) -> Any:
    import keras

    from ..nn.model import RealBogusModel

    keras.utils.set_random_seed(config.seed)
    try:
        model = RealBogusModel.from_architecture(
            config.architecture, name=config.model_name, stamp_size=config.stampSize, scaling=config.scaling
        )
    except ValueError as err:
        raise ValueError(
            f"Cannot build {config.architecture!r} for {config.stampSize}-pixel stamps: {err}"
        ) from err
    if config.initialWeights:
        _load_initial_weights(model, config.initialWeights)
    return model


def _load_initial_weights(model: Any, source: str) -> None:
    """Copy the network weights of a model file into an untrained model.

    Raises
    ------
    ValueError
        If the file's architecture, stamp size or scaling recipe differs
        from the model's.
    """
    from ..nn.files import load_model

    initial = load_model(source)
    meta, wanted = initial.metadata, model.metadata
    if (meta.architecture, meta.stamp_size) != (wanted.architecture, wanted.stamp_size):
        raise ValueError(
            f"initialWeights {source!r} is a {meta.architecture} network for {meta.stamp_size}-pixel "
            f"stamps; this run trains {wanted.architecture} for {wanted.stamp_size}-pixel stamps."
        )
    if meta.scaling_version != wanted.scaling_version:
        raise ValueError(
            f"initialWeights {source!r} was trained on stamps scaled by {meta.scaling_version}; this run "
            f"scales by {wanted.scaling_version} (set scaling to match)."
        )
    model.network.set_weights(initial.network.get_weights())


def _loss_weights(balance: str, stamps: LabelledStamps) -> np.ndarray | None:
    """Per-stamp loss weights of a balancing method, or `None` for none."""
    labels = stamps.label.astype(np.int32)
    if balance == "weights":
        return class_weights(labels)[labels].astype(np.float32)
    if balance == "snr":
        return snr_weights(labels, stamps.snr)
    return None


def _prepare_inputs(config: TrainingConfig, model, splits: Splits, log, log_interval: float):
    """Network inputs of both splits and the training feed."""
    progress = {"scaling": model.scaling, "log": log, "log_interval": log_interval}
    x_fit, _ = model_inputs(splits.fit, model.layout, model.stacking, **progress)
    x_val = None
    if splits.validation is not None:
        x_val, _ = model_inputs(splits.validation, model.layout, model.stacking, **progress)
    y_fit = splits.fit.label.astype(np.int32)
    feed = make_feed(
        x_fit,
        y_fit,
        _loss_weights(config.balance, splits.fit),
        batch_size=config.batchSize,
        seed=config.seed,
        augment=config.augment,
        layout=model.layout,
        stacking=model.stacking,
    )
    return x_fit, x_val, feed


def _log_start(log, config, model, splits: Splits) -> None:
    labels = splits.fit.label
    log.info(
        "Training %s (%s, %d parameters) on %d stamps (%d real, %d bogus), validating on %d; %d epochs max, "
        "batch %d, optimizer %s, augment %s, balance %s, seed %d%s.",
        config.architecture,
        model.layout.value,
        model.network.count_params(),
        len(labels),
        int((labels == REAL).sum()),
        int((labels == BOGUS).sum()),
        0 if splits.validation is None else len(splits.validation),
        config.epochs,
        config.batchSize,
        config.optimizer,
        config.augment,
        config.balance,
        config.seed,
        f", checkpoints in {config.checkpointDir}" if config.checkpointDir else "",
    )


def _score_splits(model, config, splits: Splits, x_fit, x_val, outcome: FitOutcome, log) -> dict[str, Any]:
    """Threshold and metrics of a finished run."""
    val = splits.validation
    fit_scores = model.predict(x_fit) if (val is None or config.evaluateTrain) else None
    if val is not None:
        labels, scores = val.label, model.predict(x_val)
    else:
        labels, scores = splits.fit.label, fit_scores
    threshold, description = tune_threshold(
        config.thresholdMethod, labels, scores, on_validation=val is not None, log=log
    )
    model.metadata.threshold, model.metadata.threshold_method = threshold, description
    validation_metrics = stamp_metrics(val, scores, threshold) if val is not None else {}
    train_metrics = stamp_metrics(splits.fit, fit_scores, threshold) if config.evaluateTrain else {}
    log.info(
        "Trained %d epochs in %.1f s (%.1f CPU s); best epoch %d; threshold %.4f (%s).%s",
        outcome.state.epoch,
        outcome.state.train_seconds,
        outcome.state.cpu_seconds,
        outcome.best_epoch,
        threshold,
        description,
        f" Validation accuracy {validation_metrics['accuracy']:.4f}, AUC {validation_metrics['roc_auc']:.4f}."
        if validation_metrics
        else "",
    )
    return dict(
        threshold=threshold,
        threshold_method=description,
        train_metrics=train_metrics,
        validation_metrics=validation_metrics,
        validation_scores=np.asarray(scores if val is not None else np.zeros(0), dtype=np.float32),
        validation_labels=np.asarray(val.label if val is not None else np.zeros(0), dtype=np.int8),
    )


def train_model(
    train: LabelledStamps,
    config: TrainingConfig | None = None,
    *,
    validation: LabelledStamps | None = None,
    log: logging.Logger | None = None,
    progress: bool | Callable[[int, int, dict], None] = False,
    log_interval: float = 30.0,
    session_epochs: int | None = None,
) -> TrainingResult:
    """Train a network on labelled stamps, resuming a checkpoint if there is one.

    Parameters
    ----------
    train : `~rbnodia.core.LabelledStamps`
        Training stamps (raw; scaled here with the architecture's layout).
    config : `~rbnodia.training.settings.TrainingConfig`, optional
        Settings; the defaults if `None`.  With ``checkpointDir`` set, the
        run checkpoints after every epoch and resumes a checkpoint found
        there.
    validation : `~rbnodia.core.LabelledStamps`, optional
        Validation stamps for early stopping and threshold tuning; if `None`,
        ``config.validationFraction`` of ``train`` is held out.
    log : `logging.Logger`, optional
        Where progress goes (a line per epoch and at least every
        ``log_interval`` seconds); the ``rbnodia.training`` logger by default.
    progress : `bool` or callable
        `True` shows a tqdm bar over batches; a callable is called as
        ``progress(epoch, epochs, logs)`` after each epoch.
    log_interval : `float`
        Longest silence, in seconds, inside an epoch.
    session_epochs : `int`, optional
        Train at most this many epochs now and return an unfinished result
        if epochs remain (needs ``checkpointDir`` to go on later).

    Returns
    -------
    result : `TrainingResult`

    Raises
    ------
    ValueError
        For invalid settings, stamps of another size, a training split
        without both classes, or a checkpoint written for other data or
        settings.
    """
    config = config.copy() if config is not None else TrainingConfig()
    config.validate()
    log = log or _LOG
    if session_epochs is not None and (session_epochs < 1 or not config.checkpointDir):
        raise ValueError("session_epochs needs checkpointDir and must be >= 1.")
    _check_sizes(config, training=train, validation=validation)
    _set_threads(config.threads, log)
    model = _build_model(config)
    splits = prepare_splits(
        train,
        validation,
        fraction=config.validationFraction,
        balance=config.balance,
        seed=config.seed,
        log=log,
    )
    x_fit, x_val, feed = _prepare_inputs(config, model, splits, log, log_interval)
    validation_data = None
    if x_val is not None:
        y_val = splits.validation.label.astype(np.int32)
        # With S/N balancing, early stopping watches the same weighted loss.
        validation_data = (
            (x_val, y_val, _loss_weights("snr", splits.validation))
            if config.balance == "snr"
            else (x_val, y_val)
        )
    checkpoint = None
    if config.checkpointDir:
        fingerprint = data_fingerprint(splits.fit, splits.validation)
        checkpoint = Checkpoint(config.checkpointDir, config.toDict(), fingerprint)
    _log_start(log, config, model, splits)
    outcome = fit_network(
        model.network,
        feed,
        validation_data,
        config,
        checkpoint=checkpoint,
        log=log,
        progress=progress,
        log_interval=log_interval,
        session_epochs=session_epochs,
    )
    model.refresh_hash()
    state = outcome.state
    result = TrainingResult(
        model=model,
        history=state.history,
        train_seconds=state.train_seconds,
        cpu_seconds=state.cpu_seconds,
        epochs_run=state.epoch,
        best_epoch=outcome.best_epoch,
        config=config,
        finished=outcome.finished,
        stopped_early=state.stopped_early,
        sessions=state.sessions,
        resumed_from=outcome.resumed_from,
        train_summary=splits.fit.summary(),
        validation_summary=splits.validation.summary() if splits.validation is not None else {},
    )
    if not outcome.finished:
        log.info(
            "Stopped after epoch %d of %d for this session; the checkpoint in %s resumes it.",
            state.epoch,
            config.epochs,
            config.checkpointDir,
        )
        return result
    return dataclasses.replace(result, **_score_splits(model, config, splits, x_fit, x_val, outcome, log))
