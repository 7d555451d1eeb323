"""Choosing a trained model's decision threshold on P(real).

The threshold is tuned on the validation split, never on the test set; a run
without a validation split tunes on the training set and says so.  The
methods themselves are `rbnodia.core.metrics.choose_threshold`'s.
"""

from __future__ import annotations

__all__ = ["tune_threshold"]

import logging
from typing import Any

from ..core.metrics import choose_threshold


def tune_threshold(
    method: str, labels: Any, scores: Any, *, on_validation: bool, log: logging.Logger
) -> tuple[float, str]:
    """Return the threshold for ``method`` on the tuning data, and how it was chosen.

    Parameters
    ----------
    method : `str`
        A `rbnodia.core.metrics.THRESHOLD_METHODS` method.
    labels, scores : array-like
        Tuning labels (0 real, 1 bogus) and P(real).
    on_validation : `bool`
        Whether they are the validation split (else the training set).
    log : `logging.Logger`
        Warned when a data-driven method tunes on the training set.

    Returns
    -------
    threshold : `float`
        Predict real when ``score >= threshold``.
    description : `str`
        The method, the rates reached, and which split it was tuned on.

    Raises
    ------
    ValueError
        If the data cannot support the method.
    """
    threshold, description = choose_threshold(labels, scores, method)
    if method.strip().startswith("fixed"):
        return float(threshold), description
    if not on_validation:
        log.warning("No validation split: tuning the threshold on the training set.")
    where = "the validation split" if on_validation else "the training set (no validation split)"
    return float(threshold), f"{description}, on {where}"
