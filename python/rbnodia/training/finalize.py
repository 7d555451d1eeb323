"""Recording a trained model's provenance and metrics in its metadata.

`finalize_model` fills the model file's ``training`` (settings, optimizer,
data summaries, epochs, time, history) and ``metrics`` (train, validation
and, when given, test metrics, each with its per-family and per-S/N-bin
breakdowns) and refreshes the content hash.
"""

from __future__ import annotations

__all__ = ["finalize_model", "jsonable"]

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .recipes import get_optimizer_recipe

if TYPE_CHECKING:
    from .run import TrainingResult


def jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays to Python and NaN/inf to `None`,
    recursively, so strict JSON writers accept the result.

    Parameters
    ----------
    value : `object`
        Any value: mappings and sequences are converted item by item.

    Returns
    -------
    converted : `object`
        The value with Python types only.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _training_record(result: TrainingResult) -> dict[str, Any]:
    config = result.config
    recipe = get_optimizer_recipe(config.optimizer)
    best = result.best_epoch
    return {
        "config": config.toDict(),
        "seed": config.seed,
        "optimizer": {
            "name": recipe.name,
            "description": recipe.description,
            "learning_rate": config.learningRate or recipe.learning_rate,
        },
        "loss": "sparse_categorical_crossentropy",
        "labels": "0 = real, 1 = bogus (DES autoscan); score = softmax column 0 = P(real)",
        "data": result.train_summary,
        "validation": result.validation_summary,
        "epochs_run": result.epochs_run,
        "best_epoch": best,
        "stopped_early": result.stopped_early,
        "sessions": result.sessions,
        "train_seconds": result.train_seconds,
        "cpu_seconds": result.cpu_seconds,
        "history_last": {key: values[-1] for key, values in result.history.items() if values},
        "history_best": {
            key: values[best - 1] for key, values in result.history.items() if len(values) >= best
        },
    }


def finalize_model(
    result: TrainingResult,
    test_metrics: dict[str, Any] | None = None,
    *,
    test_summary: dict[str, Any] | None = None,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Record training provenance and metrics in the model's metadata.

    Parameters
    ----------
    result : `~rbnodia.training.run.TrainingResult`
        From `~rbnodia.training.run.train_model`, finished.
    test_metrics : `dict`, optional
        From `~rbnodia.training.evaluation.evaluate_model` on a held-out
        test set.
    test_summary : `dict`, optional
        `LabelledStamps.summary` of that test set.
    name : `str`, optional
        New model name.
    extra : `dict`, optional
        More provenance for ``metadata.training`` (e.g. input files).

    Returns
    -------
    model : `~rbnodia.nn.RealBogusModel`
        ``result.model``, its metadata filled in (``training``, ``metrics``,
        ``threshold``, ``threshold_method``) and its hash refreshed.

    Raises
    ------
    ValueError
        If the run has not finished (it stopped for the session).
    """
    if not result.finished:
        raise ValueError(
            f"Training stopped after {result.epochs_run} of {result.config.epochs} epochs for this session; "
            "resume it before finalizing the model."
        )
    model = result.model
    training = _training_record(result)
    if result.config.initialWeights:
        from ..nn.files import load_model

        initial = load_model(result.config.initialWeights).metadata
        training["initial_weights"] = {"version": initial.version, "content_hash": initial.content_hash}
    if test_summary:
        training["test"] = test_summary
    if extra:
        training.update(extra)
    metrics = {"train": result.train_metrics, "validation": result.validation_metrics}
    if test_metrics:
        metrics["test"] = test_metrics
    model.metadata.training = jsonable(training)
    model.metadata.metrics = jsonable(metrics)
    model.metadata.threshold = float(result.threshold)
    model.metadata.threshold_method = result.threshold_method
    if name:
        model.metadata.name = name
    model.refresh_hash()
    return model
