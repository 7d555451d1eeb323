"""Tests of the S/N balancing of training losses (`rbnodia.training.data.snr_weights`)."""

import numpy as np
import pytest

from rbnodia.training.data import SNR_BIN_EDGES, snr_weights
from rbnodia.training.settings import TrainingConfig


def _histograms(labels, snr, weights):
    edges = np.concatenate([[-np.inf], SNR_BIN_EDGES, [np.inf]])
    return [np.histogram(snr[labels == c], edges, weights=weights[labels == c])[0] for c in (0, 1)]


def test_classes_share_one_snr_distribution_and_total_weight():
    """Real stamps drawn bright and bogus piled at the threshold end up with
    the same weighted S/N histogram and the same total weight.
    """
    rng = np.random.default_rng(3)
    real = 10 ** rng.uniform(np.log10(5), np.log10(300), 6000)
    bogus = 5 + rng.exponential(20.0, 4000)
    labels = np.r_[np.zeros(real.size, int), np.ones(bogus.size, int)]
    snr = np.r_[real, bogus]
    raw_real, raw_bogus = _histograms(labels, snr, np.ones(snr.size))
    assert not np.allclose(raw_real / raw_real.sum(), raw_bogus / raw_bogus.sum(), atol=0.05)
    weights = snr_weights(labels, snr, max_weight=1e9)
    assert weights.dtype == np.float32
    assert weights.mean() == pytest.approx(1.0, rel=1e-5)
    w_real, w_bogus = _histograms(labels, snr, weights.astype(np.float64))
    assert w_real.sum() == pytest.approx(w_bogus.sum(), rel=1e-5)
    np.testing.assert_allclose(w_real, w_bogus, rtol=1e-4, atol=1e-6 * snr.size)


def test_a_bin_one_class_lacks_gets_no_weight():
    """Real stamps brighter than every bogus one carry no weight."""
    labels = np.array([0] * 30 + [1] * 30)
    snr = np.r_[np.full(20, 8.0), np.full(10, 500.0), np.full(30, 8.0)]
    weights = snr_weights(labels, snr)
    assert np.all(weights[20:30] == 0)
    assert weights[:20].sum() == pytest.approx(weights[30:].sum(), rel=1e-5)


def test_unknown_snr_is_its_own_bin_and_weights_are_capped():
    """NaN S/N rows get finite weights, and the lone real stamp at the
    threshold, which would carry a quarter of all weight, is capped.
    """
    labels = np.array([0] * 50 + [1] * 50)
    snr = np.r_[np.full(48, 40.0), [6.0, np.nan], np.full(40, 6.0), np.full(9, 40.0), [np.nan]]
    uncapped = snr_weights(labels, snr, max_weight=1e9)
    assert uncapped[48] > 20
    weights = snr_weights(labels, snr, max_weight=5.0)
    assert np.all(np.isfinite(weights)) and np.all(weights > 0)
    assert weights.mean() == pytest.approx(1.0, rel=1e-5)
    assert weights[48] < 10


def test_snr_balance_is_a_training_setting():
    """The balance choice validates, so the CLI and the task offer it."""
    config = TrainingConfig()
    config.balance = "snr"
    config.validate()
    with pytest.raises(ValueError):
        config.balance = "by_snr"


def test_training_with_snr_balance_weights_fit_and_validation(monkeypatch):
    """A run with ``balance="snr"`` hands `snr_weights` of its fit split to
    the feed and weights its validation loss alike; without it, neither.
    """
    from easy_stamps import easy_stamps

    from rbnodia.training import run

    stamps = easy_stamps(200, seed=4)
    stamps.snr[:] = np.random.default_rng(4).uniform(5, 100, len(stamps))
    seen = {}
    real_fit = run.fit_network

    def spy(network, feed, validation_data, config, **kwargs):
        seen["batch"] = feed[0]
        seen["validation"] = validation_data
        return real_fit(network, feed, validation_data, config, **kwargs)

    monkeypatch.setattr(run, "fit_network", spy)
    for balance, weighted in (("snr", True), ("none", False)):
        config = TrainingConfig.from_recipe("paper_nodia", epochs=1, seed=3, balance=balance)
        result = run.train_model(stamps, config)
        assert result.epochs_run == 1
        assert (len(seen["batch"]) == 3) is weighted
        assert (len(seen["validation"]) == 3) is weighted
        if weighted:
            _, labels, weights = seen["validation"]
            assert weights.mean() == pytest.approx(1.0, rel=1e-5)
            assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum(), rel=1e-4)
