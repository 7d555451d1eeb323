"""Section 5: training time per epoch on 80,000 stamps.

The paper trains with SGD (learning rate 0.01), sparse categorical
cross-entropy and batches of 200.  Here each network is compiled the same
way and fitted on random stamps for a few batches after a warm-up fit; the
time per batch times 400 batches (80,000 stamps) is the epoch estimate: an
EXTRAPOLATION from a fraction of an epoch, stated in every figure's note.
(The paper also holds out 20% for validation, so its epochs fit 64,000
stamps and evaluate 16,000; at 80,000 fitted stamps this estimate is the
larger one.)  The baseline is inference over the same 80,000 stamps with
`RealBogusModel.predict` (the default backend), measured in the same run.
"""

from __future__ import annotations

__all__ = ["run_section"]

import numpy as np

from .common import Figure, best_time, paper_models, section_command

EPOCH_STAMPS = 80_000
BATCH = 200
PAPER_TRAIN_CPU_HOURS = {"paper_nodia": 56.0, "paper_dia": 35.0}


def run_section(smoke: bool) -> list[Figure]:
    """Measure section 5, training time per epoch; see the module docstring.

    Parameters
    ----------
    smoke : `bool`
        Fit 2 batches instead of 15: checks that everything runs.

    Returns
    -------
    figures : `list` [`Figure`]
        Per network: the extrapolated epoch's wall and CPU time, against
        predicting the same 80,000 stamps.
    """
    import keras

    command = section_command(5, smoke)
    batches = 2 if smoke else 15
    figures: list[Figure] = []
    rng = np.random.default_rng(0)
    for arch, label, model in paper_models():
        network = model.network
        network.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        shape = tuple(network.input_shape[1:])
        x = rng.random((batches * BATCH,) + shape, dtype=np.float32)
        y = rng.integers(0, 2, batches * BATCH)
        network.fit(x[: 2 * BATCH], y[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)  # trace, warm up
        def fit_once(network=network, x=x, y=y):
            network.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)

        fit = best_time(fit_once, repeats=1, warmup=0)
        scale = EPOCH_STAMPS / len(x)
        epoch_wall, epoch_cpu = fit.wall * scale, fit.cpu * scale
        model.refresh_hash()
        predict = best_time(lambda model=model, x=x: model.predict(x), repeats=1 if smoke else 2)
        predict_epoch = predict.wall * scale
        note = f"extrapolated from {batches} batches of {BATCH} ({len(x):,} stamps) to 80,000"
        paper_epochs = PAPER_TRAIN_CPU_HOURS[arch] * 3600 / epoch_cpu
        figures.append(Figure.amount(
            f"5.{label}.epoch", 5, f"{label}: training epoch, wall time (SGD 0.01, batch 200)",
            epoch_wall, "s",
            baseline=predict_epoch, baseline_label=f"predict 80,000 stamps ({model.inference_backend()})",
            note=note, command=command,
        ))
        figures.append(Figure.amount(
            f"5.{label}.epoch_cpu", 5, f"{label}: training epoch, CPU time", epoch_cpu, "CPU s",
            baseline=predict.cpu * scale, baseline_label="predict 80,000 stamps, CPU time",
            reference=PAPER_TRAIN_CPU_HOURS[arch] * 3600,
            reference_label=f"paper: whole training ~{PAPER_TRAIN_CPU_HOURS[arch]:.0f} CPU h "
                            f"(= {paper_epochs:,.0f} of these epochs)",
            note=note, command=command,
        ))
    return figures
