"""rbnodia.core.metrics against scikit-learn and hand-worked cases.

Convention under test: labels 0 = real / 1 = bogus, scores = P(real), real is
the positive class, predicted real when score >= threshold.
"""

import json
import math

import numpy as np
import pytest

from rbnodia.core import group_metrics, metrics

sklearn_metrics = pytest.importorskip("sklearn.metrics")

# Fixed inputs with plenty of ties (rounded scores), both classes.
_RNG = np.random.default_rng(20240229)
LABELS = _RNG.integers(0, 2, 300)
SCORES = np.round(np.clip(np.where(LABELS == 0, 0.65, 0.35) + _RNG.normal(0, 0.25, 300), 0, 1), 1)
CASES = [
    (LABELS, SCORES),
    (np.array([0, 0, 1, 1, 0, 1]), np.array([0.9, 0.5, 0.5, 0.1, 0.5, 0.5])),  # ties across classes
    (np.array([1, 0, 1, 0]), np.array([0.2, 0.2, 0.2, 0.2])),  # all tied
    (np.array([0, 1, 0, 1, 1]), np.array([0.8, 0.7, 0.6, 0.3, 0.1])),
]


@pytest.mark.parametrize("labels,scores", CASES)
@pytest.mark.parametrize("drop", [True, False])
def test_roc_curve_matches_sklearn(labels, scores, drop):
    ours = metrics.roc_curve(labels, scores, drop_intermediate=drop)
    theirs = sklearn_metrics.roc_curve(labels == 0, scores, drop_intermediate=drop)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("labels,scores", CASES)
def test_roc_auc_matches_sklearn(labels, scores):
    assert metrics.roc_auc(labels, scores) == pytest.approx(
        sklearn_metrics.roc_auc_score(labels == 0, scores)
    )


def test_roc_auc_random_ties_match_sklearn():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        labels = rng.integers(0, 2, n)
        if len(set(labels)) < 2:
            continue
        scores = np.round(rng.random(n), int(rng.integers(0, 3)))
        assert metrics.roc_auc(labels, scores) == pytest.approx(
            sklearn_metrics.roc_auc_score(labels == 0, scores)
        )
        fpr, tpr, thr = metrics.roc_curve(labels, scores)
        sk = sklearn_metrics.roc_curve(labels == 0, scores)
        np.testing.assert_allclose(fpr, sk[0])
        np.testing.assert_allclose(tpr, sk[1])
        np.testing.assert_allclose(thr, sk[2])


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.55, 1.0])
def test_confusion_matrix_and_rates_match_sklearn(threshold):
    predicted = np.where(SCORES >= threshold, 0, 1)
    expected = sklearn_metrics.confusion_matrix(LABELS, predicted, labels=[0, 1])
    ours = metrics.confusion_matrix(LABELS, SCORES, threshold)
    np.testing.assert_array_equal(ours, expected)
    r = metrics.rates(LABELS, SCORES, threshold)
    assert r["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(LABELS, predicted))
    assert r["tp_rate"] == pytest.approx(sklearn_metrics.recall_score(LABELS, predicted, pos_label=0))
    assert r["tn_rate"] == pytest.approx(sklearn_metrics.recall_score(LABELS, predicted, pos_label=1))
    assert r["fpr"] == pytest.approx(1 - r["tn_rate"])
    assert r["fnr"] == pytest.approx(1 - r["tp_rate"])
    if (predicted == 0).any():
        assert r["precision"] == pytest.approx(
            sklearn_metrics.precision_score(LABELS, predicted, pos_label=0, zero_division=0)
        )


def test_confusion_matrix_layout_is_paper_layout():
    # 2 reals (one above threshold), 3 bogus (one above threshold).
    labels = [0, 0, 1, 1, 1]
    scores = [0.9, 0.2, 0.7, 0.1, 0.3]
    (tp, fn), (fp, tn) = metrics.confusion_matrix(labels, scores, 0.5)
    assert (tp, fn, fp, tn) == (1, 1, 1, 2)
    # score exactly at the threshold counts as real
    assert metrics.confusion_matrix([0], [0.5], 0.5)[0, 0] == 1


def test_fpr_at_fnr_and_mdr_at_fpr_hand_worked():
    # 100 reals scoring 0.01..1.00, 100 bogus scoring 0.005..0.995 (interleaved).
    real = np.arange(1, 101) / 100
    bogus = real - 0.005
    labels = np.r_[np.zeros(100, int), np.ones(100, int)]
    scores = np.r_[real, bogus]
    # FNR <= 1%: one real may be lost -> threshold 0.02; bogus >= 0.02 are 0.025..0.995: 98.
    assert metrics.fpr_at_fnr(labels, scores, 0.01) == pytest.approx(0.98)
    assert metrics.fpr_at_fnr(labels, scores, 0.05) == pytest.approx(0.94)
    # FPR <= 1%: one bogus (0.995) may pass -> lowest threshold 0.99 keeps reals 1.00 and 0.99 -> MDR 0.98.
    assert metrics.mdr_at_fpr(labels, scores, 0.01) == pytest.approx(0.98)
    # Perfect separation.
    scores = np.r_[real + 1, bogus]
    assert metrics.fpr_at_fnr(labels, scores, 0.01) == 0.0
    assert metrics.mdr_at_fpr(labels, scores, 0.01) == 0.0


def test_fpr_at_fnr_consistent_with_roc_curve():
    fpr, tpr, _ = metrics.roc_curve(LABELS, SCORES, drop_intermediate=False)
    for target in (0.01, 0.05, 0.2):
        expected = fpr[np.argmax(1 - tpr <= target + 1e-12)]
        assert metrics.fpr_at_fnr(LABELS, SCORES, target) == pytest.approx(expected)
        ok = fpr <= target + 1e-12
        assert metrics.mdr_at_fpr(LABELS, SCORES, target) == pytest.approx(1 - tpr[ok].max())


def test_choose_threshold_methods():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.95, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1])
    t, text = metrics.choose_threshold(labels, scores, "fixed")
    assert t == 0.5 and "fixed" in text
    assert metrics.choose_threshold(labels, scores, "fixed:0.3")[0] == 0.3
    # max accuracy: 0.6 -> TP 3, TN 3 (0.7 bogus passes) = 6/8; 0.8 -> TP 2, TN 4 = 6/8; largest wins.
    t, text = metrics.choose_threshold(labels, scores, "max_accuracy")
    assert t == pytest.approx(0.8)
    assert metrics.rates(labels, scores, t)["accuracy"] == pytest.approx(0.75)
    assert "accuracy 0.75" in text
    # Youden: J(0.8) = 0.5 - 0 = 0.5, J(0.6) = 0.75 - 0.25 = 0.5, J(0.3) = 1 - 0.5 = 0.5 -> largest, 0.8
    t, _ = metrics.choose_threshold(labels, scores, "youden")
    assert t == pytest.approx(0.8)
    # fnr:0.25 -> one real of 4 may be lost: threshold = 2nd lowest real score = 0.6
    t, text = metrics.choose_threshold(labels, scores, "fnr:0.25")
    assert t == pytest.approx(0.6)
    assert metrics.rates(labels, scores, t)["fnr"] <= 0.25
    assert metrics.rates(labels, scores, np.nextafter(t, 1))["fnr"] > 0.25  # largest such threshold
    t, _ = metrics.choose_threshold(labels, scores, "fnr:0")
    assert t == pytest.approx(0.3)


def test_choose_threshold_methods_on_random_data_are_optimal():
    for method in ("max_accuracy", "youden"):
        t, _ = metrics.choose_threshold(LABELS, SCORES, method)
        candidates = np.unique(np.r_[SCORES, 1.1])

        def objective(x, method=method):
            r = metrics.rates(LABELS, SCORES, x)
            return r["accuracy"] if method == "max_accuracy" else r["tp_rate"] - r["fpr"]

        best = max(objective(c) for c in candidates)
        assert objective(t) == pytest.approx(best)


@pytest.mark.parametrize("method", ["nonsense", "fnr:abc", "fnr:1.5", "fixed:2", "youden:3"])
def test_choose_threshold_bad_methods(method):
    with pytest.raises(ValueError):
        metrics.choose_threshold([0, 1], [0.7, 0.2], method)


def test_degenerate_inputs():
    # one class only: rates with zero denominators and AUC are NaN, never errors
    assert math.isnan(metrics.roc_auc([0, 0, 0], [0.1, 0.5, 0.9]))
    assert math.isnan(metrics.fpr_at_fnr([1, 1], [0.1, 0.5], 0.01))
    assert math.isnan(metrics.mdr_at_fpr([0, 0], [0.1, 0.5], 0.01))
    r = metrics.rates([0, 0], [0.9, 0.1], 0.5)
    assert r["tp_rate"] == 0.5 and math.isnan(r["tn_rate"]) and math.isnan(r["fpr"])
    fpr, tpr, _ = metrics.roc_curve([0, 0], [0.2, 0.4])
    assert np.isnan(fpr).all() and not np.isnan(tpr).any()
    with pytest.raises(ValueError, match="both"):
        metrics.choose_threshold([0, 0], [0.2, 0.4], "youden")
    with pytest.raises(ValueError, match="real"):
        metrics.choose_threshold([1, 1], [0.2, 0.4], "fnr:0.01")
    # empty
    result = metrics.evaluate([], [], 0.5)
    assert result["n"] == 0 and math.isnan(result["accuracy"]) and math.isnan(result["roc_auc"])
    assert result["confusion_matrix"] == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="data"):
        metrics.choose_threshold([], [], "max_accuracy")
    # NaN scores and bad labels are errors with a clear message
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc([0, 1], [0.5, np.nan])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        metrics.confusion_matrix([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="length"):
        metrics.rates([0, 1, 1], [0.5, 0.5])


def test_evaluate_contents_and_nan_policy():
    result = metrics.evaluate(LABELS, SCORES, 0.5)
    for key in (
        "accuracy",
        "roc_auc",
        "tp_rate",
        "tn_rate",
        "confusion_matrix",
        "fpr_at_fnr_1pct",
        "fpr_at_fnr_5pct",
        "mdr_at_fpr_1pct",
        "threshold",
        "n",
        "n_real",
        "n_bogus",
    ):
        assert key in result
    assert result["n"] == 300 and result["n_real"] + result["n_bogus"] == 300
    assert result["roc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(LABELS == 0, SCORES))
    json.dumps(result, allow_nan=False)  # plain Python types, no NaN for a healthy set
    with_nan = np.r_[SCORES, np.nan]
    with pytest.raises(ValueError, match="NaN"):
        metrics.evaluate(np.r_[LABELS, 0], with_nan)
    omitted = metrics.evaluate(np.r_[LABELS, 0], with_nan, nan_policy="omit")
    assert omitted["n_nan"] == 1 and omitted["accuracy"] == result["accuracy"]


def test_metrics_by_group_hand_worked():
    labels = [0, 0, 1, 1, 1, 0]
    scores = np.array([0.9, 0.2, 0.1, 0.7, 0.4, 0.5])  # correct: yes, no, yes, no, yes, yes (0.5 >= 0.5)
    groups = ["sn", "sn", "dipole", "dipole", "cosmic", "sn"]
    result = group_metrics.metrics_by_group(labels, scores >= 0.5, groups)
    assert list(result) == ["cosmic", "dipole", "sn"]
    assert result["sn"] == {"n": 3, "n_real": 3, "n_bogus": 0, "label": 0, "accuracy": pytest.approx(2 / 3),
                            "fraction_called_real": pytest.approx(2 / 3)}
    assert result["dipole"] == {"n": 2, "n_real": 0, "n_bogus": 2, "label": 1, "accuracy": 0.5,
                                "fraction_called_real": 0.5}
    assert result["cosmic"]["accuracy"] == 1.0 and result["cosmic"]["fraction_called_real"] == 0.0
    lower = group_metrics.metrics_by_group(labels, scores >= 0.3, groups)  # 0.4 now called real
    assert lower["cosmic"]["accuracy"] == 0.0 and lower["cosmic"]["fraction_called_real"] == 1.0
    mixed = group_metrics.metrics_by_group([0, 1, 1], [True, True, False], ["m", "m", "m"])["m"]
    assert (mixed["label"], mixed["accuracy"], mixed["fraction_called_real"]) == (1, pytest.approx(2 / 3),
                                                                                  pytest.approx(2 / 3))
    with pytest.raises(ValueError, match="length"):
        group_metrics.metrics_by_group(labels, scores >= 0.5, groups[:-1])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        group_metrics.metrics_by_group([2], [True], ["a"])


def test_metrics_by_group_families_partition_the_accuracy():
    groups = np.array(["a", "b", "c"])[_RNG.integers(0, 3, LABELS.size)]
    result = group_metrics.metrics_by_group(LABELS, SCORES >= 0.5, groups)
    assert sum(r["n"] for r in result.values()) == LABELS.size
    weighted = sum(r["n"] * r["accuracy"] for r in result.values()) / LABELS.size
    assert weighted == pytest.approx(metrics.rates(LABELS, SCORES, 0.5)["accuracy"])


def test_auc_by_bin_matches_sklearn_per_bin():
    snr = np.linspace(-3, 200, LABELS.size)
    snr[::17] = np.nan
    result = group_metrics.auc_by_bin(LABELS, SCORES, snr)
    assert [b["label"] for b in result["bins"]] == ["< 5", "5-10", "10-20", "20-50", "50-100", ">= 100"]
    assert result["n_unbinned"] == int(np.isnan(snr).sum())
    assert sum(b["n"] for b in result["bins"]) + result["n_unbinned"] == LABELS.size
    for b in result["bins"]:
        members = (snr >= b["low"]) & (snr < b["high"])
        assert b["n"] == members.sum() and b["n_real"] == (LABELS[members] == 0).sum()
        if b["both_classes"]:
            expected = sklearn_metrics.roc_auc_score(LABELS[members] == 0, SCORES[members])
            assert b["roc_auc"] == pytest.approx(expected)
    assert result["bins_with_auc"] == [b["label"] for b in result["bins"] if b["both_classes"]]


def test_auc_by_bin_one_class_and_bad_input():
    labels = np.array([0, 0, 1, 1, 0])
    scores = np.array([0.9, 0.8, 0.1, 0.6, 0.3])
    snr = np.array([3.0, 4.0, 30.0, 40.0, 35.0])
    result = group_metrics.auc_by_bin(labels, scores, snr, edges=[0, 10, 100, 1000])
    low, mid, high = result["bins"]
    assert not low["both_classes"] and math.isnan(low["roc_auc"]) and low["n"] == 2
    assert mid["both_classes"] and mid["roc_auc"] == pytest.approx(0.5)  # the real (0.3) between the bogus
    assert high["n"] == 0 and not high["both_classes"]
    assert result["bins_with_auc"] == ["10-100"]
    with pytest.raises(ValueError, match="increase"):
        group_metrics.auc_by_bin(labels, scores, snr, edges=[0, 10, 10])
    with pytest.raises(ValueError, match="length"):
        group_metrics.auc_by_bin(labels, scores, snr[:-1])
