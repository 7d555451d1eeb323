"""Training data: the validation split, class balancing, network inputs,
augmentation, and the batch feed Keras trains from.

Every random choice here is a pure function of the seed (and of the epoch
and batch number for shuffling and augmentation), so a run resumed from a
checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

__all__ = [
    "SNR_BIN_EDGES",
    "Splits",
    "augment_inputs",
    "class_weights",
    "data_fingerprint",
    "label_families_real",
    "make_feed",
    "model_inputs",
    "prepare_splits",
    "snr_weights",
    "split_validation",
    "undersample",
]

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Iterable

import numpy as np

from ..core.layouts import Layout, Stacking
from ..core.scaling import SCALING_VERSION, Scaling
from ..core.stampset import BOGUS, REAL, LabelledStamps


def augment_inputs(
    inputs: np.ndarray, layout: Layout | str, stacking: Stacking | str, rng: np.random.Generator
) -> np.ndarray:
    """Apply one random symmetry of the square per sample, to all its segments.

    Each sample gets one of the 8 transforms (rotation by 0/90/180/270
    degrees, optionally after a left-right flip), applied identically to every
    segment, so ``srch`` and ``tmpl`` (and ``diff``) stay aligned.  With
    horizontal stacking each segment block is transformed in place; segments
    never move or mix.  The per-stamp scaling commutes with these transforms,
    so augmenting scaled inputs equals scaling augmented stamps.

    Parameters
    ----------
    inputs : `numpy.ndarray`
        Network inputs ``(n,) + input_shape(layout, size, stacking)``.
    layout : `~rbnodia.core.Layout` or `str`
        Which segments the inputs hold.
    stacking : `~rbnodia.core.Stacking` or `str`
        How they are arranged.
    rng : `numpy.random.Generator`
        Source of the random choices.

    Returns
    -------
    augmented : `numpy.ndarray`
        New array of the same shape and dtype.

    Raises
    ------
    ValueError
        If the inputs are not square stamps stacked as ``stacking`` says.
    """
    inputs = np.asarray(inputs)
    k = len(Layout(layout).segments)
    n = inputs.shape[0]
    horizontal = Stacking(stacking) is Stacking.HORIZONTAL
    if horizontal:
        size = inputs.shape[1]
        if inputs.shape[2] != k * size or inputs.shape[3] != 1:
            raise ValueError(
                f"Inputs of shape {inputs.shape[1:]} are not {k} horizontally stacked square stamps."
            )
        blocks = inputs[..., 0].reshape(n, size, k, size).transpose(0, 2, 1, 3)  # (n, k, y, x)
    else:
        if inputs.shape[1] != inputs.shape[2] or inputs.shape[3] != k:
            raise ValueError(f"Inputs of shape {inputs.shape[1:]} are not {k} channel-stacked square stamps.")
        blocks = inputs.transpose(0, 3, 1, 2)
    rotation = rng.integers(0, 4, n)
    flip = rng.integers(0, 2, n).astype(bool)
    out = np.empty_like(blocks)
    for r in range(4):
        for f in (False, True):
            chosen = (rotation == r) & (flip == f)
            if not chosen.any():
                continue
            block = blocks[chosen]
            if f:
                block = block[..., ::-1]
            out[chosen] = np.rot90(block, r, axes=(-2, -1))
    if horizontal:
        return np.ascontiguousarray(out.transpose(0, 2, 1, 3).reshape(inputs.shape[:3])[..., None])
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


def split_validation(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random split into training and validation indices.

    Each class contributes ``round(fraction * n_class)`` validation rows (at
    least one when ``fraction > 0`` and the class has two or more rows).

    Parameters
    ----------
    labels : `numpy.ndarray`
        Label per row.
    fraction : `float`
        Fraction of each class held out.
    rng : `numpy.random.Generator`
        Random generator.

    Returns
    -------
    fit_index, validation_index : `numpy.ndarray`
        Sorted row indices.
    """
    labels = np.asarray(labels)
    fit, val = [], []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        count = int(round(fraction * rows.size))
        if fraction > 0 and rows.size >= 2:
            count = min(max(count, 1), rows.size - 1)
        val.append(rows[:count])
        fit.append(rows[count:])
    empty = np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(fit or [empty])), np.sort(np.concatenate(val or [empty]))


def undersample(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return sorted row indices keeping every minority-class row and as many
    randomly chosen majority-class rows.

    Parameters
    ----------
    labels : `numpy.ndarray`
        Label per row.
    rng : `numpy.random.Generator`
        Random generator.

    Returns
    -------
    index : `numpy.ndarray`
        Sorted row indices of the balanced set.
    """
    rows = {value: np.flatnonzero(labels == value) for value in (REAL, BOGUS)}
    keep = min(len(r) for r in rows.values())
    return np.sort(np.concatenate([rng.choice(r, keep, replace=False) for r in rows.values()]))


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Compute per-class loss weights ``n / (2 n_class)``, indexed by label.

    Parameters
    ----------
    labels : `numpy.ndarray`
        Label per row (0 or 1).

    Returns
    -------
    weights : `numpy.ndarray`
        Weight per class (0 for an absent class).
    """
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    return np.where(counts > 0, labels.size / (2.0 * np.maximum(counts, 1)), 0.0)


SNR_BIN_EDGES = (7.0, 10.0, 14.0, 20.0, 30.0, 50.0, 100.0)
"""Inner edges of the detection S/N bins of `snr_weights` (roughly even in
log S/N); stamps without an S/N form a bin of their own."""


def snr_weights(labels: np.ndarray, snr: np.ndarray, max_weight: float = 10.0) -> np.ndarray:
    """Compute per-stamp loss weights that give both classes the same
    detection S/N distribution and the same total weight.

    A simulator draws real and bogus detections with different S/N
    distributions (injections spread evenly in magnitude, bogus piled up at
    the threshold).  Trained on them as drawn, a network learns S/N itself
    as evidence of the class, calling every faint detection bogus and every
    bright one real, which fails on any survey whose mix differs.  The
    weights equalise the classes within each S/N bin (`SNR_BIN_EDGES`) to
    the pooled distribution of both classes, so only the stamps' appearance
    separates them.  A bin that only one class populates gets no weight.

    Parameters
    ----------
    labels : `numpy.ndarray`
        Label per stamp (0 real, 1 bogus).
    snr : `numpy.ndarray`
        Detection S/N per stamp (NaN when unknown).
    max_weight : `float`, optional
        Cap on a weight relative to the mean (bins one class hardly
        populates are not blown up).

    Returns
    -------
    weights : `numpy.ndarray`
        Weight per stamp (float32), mean 1.
    """
    labels = np.asarray(labels)
    snr = np.asarray(snr, dtype=np.float64)
    n_bins = len(SNR_BIN_EDGES) + 2
    bins = np.where(np.isfinite(snr), np.searchsorted(SNR_BIN_EDGES, snr, side="right"), n_bins - 1)
    counts = np.zeros((2, n_bins))
    np.add.at(counts, (labels, bins), 1.0)
    per_class = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, per_class, out=np.zeros_like(counts), where=per_class > 0)
    # Bins one class lacks would only teach S/N; they get no weight.
    pooled = np.where(np.all(counts > 0, axis=0), share.mean(axis=0), 0.0)
    # Each class gets weight pooled[bin] per bin in total, spread over its stamps there.
    table = np.divide(pooled, counts, out=np.zeros_like(counts), where=counts > 0)
    weights = table[labels, bins]
    weights *= labels.size / max(weights.sum(), 1e-300)
    np.minimum(weights, max_weight, out=weights)
    weights *= labels.size / max(weights.sum(), 1e-300)
    return weights.astype(np.float32)


def model_inputs(
    stamps: LabelledStamps,
    layout: Layout | str,
    stacking: Stacking | str,
    *,
    scaling: Scaling | str = SCALING_VERSION,
    chunk: int = 8192,
    log: logging.Logger | None = None,
    log_interval: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute scaled, stacked network inputs and scaling flags.

    Computed in chunks (bounding the memory of scaling intermediates), with a
    log line at least every ``log_interval`` seconds on large sets.

    Parameters
    ----------
    stamps : `rbnodia.core.LabelledStamps`
        Raw stamps.
    layout : `rbnodia.core.Layout` or `str`
        Which segments.
    stacking : `rbnodia.core.Stacking` or `str`
        Side by side or as channels.
    scaling : `rbnodia.core.scaling.Scaling` or `str`, optional
        The scaling recipe (the model's); the paper's by default.
    chunk : `int`, optional
        Stamps per chunk.
    log : `logging.Logger`, optional
        Logger of the progress lines.
    log_interval : `float`, optional
        Seconds between progress lines.

    Returns
    -------
    inputs : `numpy.ndarray`
        ``(n,) + input_shape``, float32.
    flags : `numpy.ndarray`
        Per-stamp scaling flags (`rbnodia.core.flags`).
    """
    if len(stamps) <= chunk:
        return stamps.model_inputs(layout, stacking, scaling)
    parts, last = [], time.monotonic()
    for start in range(0, len(stamps), chunk):
        parts.append(stamps.subset(slice(start, start + chunk)).model_inputs(layout, stacking, scaling))
        if log is not None and time.monotonic() - last >= log_interval:
            last = time.monotonic()
            log.info("Scaled %d of %d stamps.", min(start + chunk, len(stamps)), len(stamps))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclasses.dataclass
class Splits:
    """The stamps a run fits on and validates with.

    Attributes
    ----------
    fit : `~rbnodia.core.LabelledStamps`
        Training split (after balancing by undersampling, if asked).
    validation : `~rbnodia.core.LabelledStamps` or `None`
        Validation split; `None` without one.
    """

    fit: LabelledStamps
    validation: LabelledStamps | None


def prepare_splits(
    train: LabelledStamps,
    validation: LabelledStamps | None,
    *,
    fraction: float,
    balance: str,
    seed: int,
    log: logging.Logger,
) -> Splits:
    """Hold out the validation split (unless given) and balance by
    undersampling (if asked), seeded.

    Parameters
    ----------
    train : `rbnodia.core.LabelledStamps`
        Training stamps.
    validation : `rbnodia.core.LabelledStamps` or `None`
        Validation stamps, or `None` to hold out a fraction of ``train``.
    fraction : `float`
        Fraction held out when ``validation`` is `None`.
    balance : `str`
        ``none`` or ``undersample``.
    seed : `int`
        Seed of the split and the undersampling.
    log : `logging.Logger`
        Logger.

    Returns
    -------
    splits : `Splits`
        The fit and validation sets.

    Raises
    ------
    ValueError
        If the training split lacks a class.
    """
    rng = np.random.default_rng(seed)
    if validation is None and fraction > 0:
        fit_index, val_index = split_validation(train.label, fraction, rng)
        fit, validation = train.subset(fit_index), train.subset(val_index)
    else:
        fit = train
    if balance == "undersample":
        fit = fit.subset(undersample(fit.label, rng))
    if not (np.any(fit.label == REAL) and np.any(fit.label == BOGUS)):
        raise ValueError(f"The training split needs both real and bogus stamps ({fit.summary()}).")
    if validation is not None and len(validation) == 0:
        validation = None
    if validation is not None and len(np.unique(validation.label)) < 2:
        log.warning("The validation split holds one class only (%s).", validation.summary())
    return Splits(fit, validation)


def make_feed(
    inputs: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None,
    *,
    batch_size: int,
    seed: int,
    augment: bool,
    layout: Layout | str,
    stacking: Stacking | str,
):
    """Return a Keras `~keras.utils.PyDataset` that shuffles each epoch and augments
    per batch.

    The batch order and the augmentation are functions of ``(seed, epoch,
    batch)``; the feed's ``epoch`` attribute says which epoch it serves (the
    training loop sets it at the start of every epoch), so they do not depend
    on how Keras iterates or where a run resumed.

    Parameters
    ----------
    inputs : `numpy.ndarray`
        Network inputs.
    labels : `numpy.ndarray`
        Label per input.
    weights : `numpy.ndarray` or `None`
        Loss weight per input, or `None`.
    batch_size : `int`
        Inputs per batch.
    seed : `int`
        Seed of the batch order and the augmentation.
    augment : `bool`
        Apply random flips and 90-degree rotations.
    layout : `rbnodia.core.Layout` or `str`
        Which segments (augmentation acts on each segment alike).
    stacking : `rbnodia.core.Stacking` or `str`
        How the segments are stacked.

    Returns
    -------
    feed : `keras.utils.PyDataset`
        The feed.
    """
    import keras

    class _Feed(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self._cached = (-1, None)

        def __len__(self):
            return max(1, math.ceil(len(labels) / batch_size))

        def order(self):
            epoch, order = self._cached
            if epoch != self.epoch:
                epoch, order = self.epoch, np.random.default_rng([seed, self.epoch]).permutation(len(labels))
                self._cached = (epoch, order)
            return order

        def __getitem__(self, index):
            rows = np.sort(self.order()[index * batch_size : (index + 1) * batch_size])
            x = inputs[rows]
            if augment:
                x = augment_inputs(x, layout, stacking, np.random.default_rng([seed, self.epoch, index, 1]))
            if weights is None:
                return x, labels[rows]
            return x, labels[rows], weights[rows]

    return _Feed()


def data_fingerprint(*sets: LabelledStamps | None) -> str:
    """Hash the ids, labels, shapes and pixel sums of stamp sets (SHA-256): a
    checkpoint is resumed only with the data it was written for.

    Parameters
    ----------
    *sets : `rbnodia.core.LabelledStamps` or `None`
        The sets (`None` entries count as absent).

    Returns
    -------
    fingerprint : `str`
        The hex digest.
    """
    digest = hashlib.sha256()
    for stamps in sets:
        if stamps is None:
            digest.update(b"none")
            continue
        digest.update(np.ascontiguousarray(stamps.id).tobytes())
        digest.update(np.ascontiguousarray(stamps.label).tobytes())
        digest.update(str(stamps.diff.shape).encode())
        for name in ("diff", "srch", "tmpl"):
            digest.update(np.float64(np.nansum(getattr(stamps, name), dtype=np.float64)).tobytes())
    return digest.hexdigest()


def label_families_real(stamps: LabelledStamps, families: Iterable[str]) -> int:
    """Label the stamps of ``families`` real (in place).

    Parameters
    ----------
    stamps : `rbnodia.core.LabelledStamps`
        Stamps whose labels change.
    families : iterable of `str`
        Families to label real (`TrainingConfig.realFamilies`).

    Returns
    -------
    changed : `int`
        How many labels changed from bogus to real.
    """
    chosen = np.isin(stamps.family, list(families)) & (stamps.label != REAL)
    stamps.label[chosen] = REAL
    return int(chosen.sum())
