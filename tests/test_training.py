"""Training library, training plots and the ``rbnodia train`` /
``rbnodia reproduce-paper`` commands, on a small easy synthetic set.
"""

import json
import math

import numpy as np
import pytest
from easy_stamps import easy_stamps
from quick_training import quick_config, run_cli

from lsst.pex.config import FieldValidationError
from rbnodia.core.layouts import Layout, Stacking, stack_segments
from rbnodia.training import (
    TRAINING_RECIPES,
    TrainingConfig,
    augment_inputs,
    evaluate_model,
    finalize_model,
    jsonable,
    make_feed,
    network_cost,
    optimizer_names,
    split_validation,
    train_model,
)


@pytest.fixture(scope="module")
def train_set():
    return easy_stamps(400, seed=1)


@pytest.fixture(scope="module")
def test_set():
    return easy_stamps(200, seed=2)


# --- augmentation ----------------------------------------------------------------------------------


def _dihedral(block):
    """All 8 symmetries of the square applied to the last two axes."""
    out = []
    for flip in (False, True):
        b = block[..., ::-1] if flip else block
        out.extend(np.rot90(b, r, axes=(-2, -1)) for r in range(4))
    return out


@pytest.mark.parametrize("layout", [Layout.NODIA, Layout.DIA])
@pytest.mark.parametrize("stacking", [Stacking.HORIZONTAL, Stacking.CHANNELS])
def test_augmentation_keeps_segments_aligned(layout, stacking):
    rng = np.random.default_rng(0)
    n, size = 32, 7
    segments = {name: rng.random((n, size, size)).astype(np.float32) for name in ("diff", "srch", "tmpl")}
    inputs = stack_segments(segments, layout, stacking)
    out = augment_inputs(inputs, layout, stacking, np.random.default_rng(1))
    assert out.shape == inputs.shape and out.dtype == inputs.dtype
    # Unstack and find, per sample, the symmetry that maps each segment: it must be one and the same.
    if stacking is Stacking.HORIZONTAL:
        parts = [out[:, :, i * size : (i + 1) * size, 0] for i in range(len(layout.segments))]
    else:
        parts = [out[..., i] for i in range(len(layout.segments))]
    used = set()
    for i in range(n):
        found = None
        for k, transforms in enumerate(zip(*(_dihedral(segments[name][i]) for name in layout.segments))):
            if all(np.array_equal(t, p[i]) for t, p in zip(transforms, parts)):
                found = k
                break
        assert found is not None, f"sample {i}: segments transformed differently or mixed"
        used.add(found)
    assert len(used) > 4  # random choices cover most of the 8 symmetries


def test_augmentation_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="horizontally"):
        augment_inputs(np.zeros((2, 5, 12, 1), np.float32), "noDIA", "horizontal", np.random.default_rng(0))
    with pytest.raises(ValueError, match="channel"):
        augment_inputs(np.zeros((2, 5, 5, 3), np.float32), "noDIA", "channels", np.random.default_rng(0))


def test_feed_preserves_labels_under_augmentation():
    n, size = 50, 5
    # Each sample is constant-valued, so its value survives any flip/rotation and names the sample.
    values = np.arange(n, dtype=np.float32)
    inputs = np.repeat(values[:, None, None, None], size * size * 2, axis=1).reshape(n, size, 2 * size, 1)
    labels = (np.arange(n) % 3 == 0).astype(np.int32)
    feed = make_feed(inputs, labels, np.ones(n, np.float32), batch_size=16, seed=3, augment=True,
                     layout="noDIA", stacking="horizontal")
    orders = []
    for epoch in range(2):
        feed.epoch = epoch
        seen = []
        for b in range(len(feed)):
            x, y, w = feed[b]
            ids = x[:, 0, 0, 0].astype(int)
            np.testing.assert_array_equal(y, labels[ids])
            seen.extend(ids)
        assert sorted(seen) == list(range(n))
        orders.append(seen)
    assert orders[0] != orders[1]  # reshuffled every epoch
    feed.epoch = 0  # a function of (seed, epoch, batch): the same batches again, as a resumed run needs
    again = np.concatenate([feed[b][0] for b in range(len(feed))])[:, 0, 0, 0]
    np.testing.assert_array_equal(again, orders[0])


# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("epochs", 0, "epochs"),
        ("batchSize", -1, "batchSize"),
        ("learningRate", -0.1, "learningRate"),
        ("patience", -1, "patience"),
        ("validationFraction", 1.0, "validationFraction"),
        ("balance", "oversample", "balance"),
        ("stampSize", 1, "stampSize"),
        ("epochs", 2.5, "epochs"),
        ("seed", -3, "seed"),
    ],
)
def test_config_rejects_bad_values_on_assignment(field, value, match):
    with pytest.raises(FieldValidationError, match=match):
        TrainingConfig(**{field: value})


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("architecture", "no_such_net", "Unknown architecture"),
        ("optimizer", "rmsprop2000", "Unknown optimizer"),
        ("thresholdMethod", "magic", "thresholdMethod"),
        ("thresholdMethod", "fnr:2", "thresholdMethod"),
        ("stampSize", 50, "odd"),
    ],
)
def test_config_validation(field, value, match):
    config = TrainingConfig(**{field: value})
    with pytest.raises(ValueError, match=match):
        config.validate()


def test_recipes_and_optimizers():
    assert {"paper_sgd", "adam", "sgd_momentum", "adam_cosine"} <= set(optimizer_names())
    for name in TRAINING_RECIPES:
        TrainingConfig.from_recipe(name).validate()
    paper = TrainingConfig.from_recipe("paper_nodia")
    assert (paper.optimizer, paper.batchSize, paper.patience, paper.augment) == ("paper_sgd", 200, 100, False)
    assert TrainingConfig().optimizer == "paper_sgd" and TrainingConfig().batchSize == 200
    assert TrainingConfig.from_recipe("improved_nodia", epochs=3, seed=None).epochs == 3
    with pytest.raises(ValueError, match="Unknown training recipe"):
        TrainingConfig.from_recipe("nope")
    with pytest.raises(ValueError, match="fields"):
        TrainingConfig.from_recipe("paper_dia", colour="red")


def test_split_validation_is_stratified_and_seeded():
    labels = np.r_[np.zeros(70, int), np.ones(30, int)]
    fit, val = split_validation(labels, 0.2, np.random.default_rng(5))
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 100
    assert (labels[val] == 0).sum() == 14 and (labels[val] == 1).sum() == 6
    fit2, val2 = split_validation(labels, 0.2, np.random.default_rng(5))
    np.testing.assert_array_equal(val, val2)


def test_new_architectures_are_cheap_and_channel_stacked():
    from rbnodia.nn import build_network, get_architecture

    costs = {
        name: network_cost(build_network(name))
        for name in ("paper_nodia", "improved_nodia", "improved_nodia_fast", "improved_dia", "patch_nodia",
                     "patch_dia")
    }
    assert costs["paper_nodia"]["params"] == 45_908
    for name in ("improved_nodia", "improved_nodia_fast", "improved_dia"):
        assert get_architecture(name).stacking is Stacking.CHANNELS
        assert costs[name]["params"] < 50_000
    assert costs["improved_nodia_fast"]["macs"] < costs["paper_nodia"]["macs"]
    for name in ("patch_nodia", "patch_dia"):
        assert get_architecture(name).stacking is Stacking.CHANNELS
        assert costs[name]["params"] < 100_000
        assert costs[name]["macs"] < 1.5 * costs["paper_nodia"]["macs"]
    assert build_network("improved_nodia").output_shape == (None, 2)
    assert build_network("patch_nodia").layers[1].output.shape == (None, 13, 13, 16)  # the 4x4/4 patch grid


# --- training --------------------------------------------------------------------------------------


def test_training_learns_easy_set(train_set, test_set):
    config = quick_config(epochs=4, augment=True, patience=0, thresholdMethod="max_accuracy", seed=7)
    logged = []
    result = train_model(train_set, config, progress=lambda epoch, total, logs: logged.append((epoch, total)))
    assert result.epochs_run == 4 and logged[-1] == (4, 4)
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in result.history.values())
    assert 1 <= result.best_epoch <= 4
    assert result.train_seconds > 0 and result.cpu_seconds > 0
    assert result.train_summary["n"] == 320 and result.validation_summary["n"] == 80
    assert (
        result.model.threshold == result.threshold
        and "max_accuracy" in result.model.metadata.threshold_method
    )
    metrics = evaluate_model(result.model, test_set)
    assert metrics["accuracy"] > 0.8, metrics
    assert metrics["roc_auc"] > 0.9, metrics
    assert metrics["ms_per_stamp"] > 0 and metrics["n"] == 200
    assert result.train_metrics["accuracy"] > 0.8


def test_paper_recipe_runs_and_model_file_roundtrip(tmp_path, train_set, test_set):
    from rbnodia.nn import load_model

    config = TrainingConfig.from_recipe(
        "paper_nodia", epochs=1, seed=3, balance="weights", thresholdMethod="youden"
    )
    result = train_model(train_set.subset(slice(0, 200)), config)
    test_metrics = evaluate_model(result.model, test_set)
    model = finalize_model(result, test_metrics, test_summary=test_set.summary(), extra={"note": "unit test"})
    assert model.metadata.training["data"]["n"] == 160
    assert model.metadata.training["optimizer"]["name"] == "paper_sgd"
    assert model.metadata.training["note"] == "unit test"
    assert model.metadata.metrics["test"]["n"] == 200
    # Per-family metrics everywhere, with family names from the data.
    for split, n in (("train", 160), ("validation", 40), ("test", 200)):
        families = model.metadata.metrics[split]["by_family"]
        assert set(families) == {"easy_real", "easy_static"}
        assert sum(f["n"] for f in families.values()) == n
        real, static = families["easy_real"], families["easy_static"]
        assert real["accuracy"] == pytest.approx(real["fraction_called_real"])
        assert static["accuracy"] == pytest.approx(1 - static["fraction_called_real"])
        # Both families partition the split: their weighted accuracy is the split's.
        weighted = (real["n"] * real["accuracy"] + static["n"] * static["accuracy"]) / n
        assert weighted == pytest.approx(model.metadata.metrics[split]["accuracy"])
    assert model.metadata.metrics["test"]["auc_by_snr"]["n_unbinned"] == 200  # the easy set has no S/N
    path = model.save(tmp_path / "trained.rbmodel")
    loaded = load_model(path)
    assert loaded.version == model.version
    assert loaded.threshold == pytest.approx(result.threshold)
    assert loaded.metadata.training["config"]["architecture"] == "paper_nodia"
    json.dumps(loaded.metadata.to_dict(), allow_nan=False)


def test_training_is_deterministic(train_set):
    config = quick_config(epochs=1, augment=True, evaluateTrain=False, seed=11)
    small = train_set.subset(slice(0, 120))
    a = train_model(small, config).model
    b = train_model(small, config).model
    assert a.version == b.version


def test_scaling_recipe_is_trained_recorded_and_evaluated(train_set, test_set):
    from rbnodia.core.scaling import Scaling

    config = quick_config(epochs=1, evaluateTrain=False, seed=2, scaling=Scaling.SHARED_SPAN.value)
    model = train_model(train_set.subset(slice(0, 120)), config).model
    assert model.scaling is Scaling.SHARED_SPAN
    assert model.metadata.scaling_version == "shared-span/v1"
    _, scores = evaluate_model(model, test_set, return_scores=True)
    shared, _ = test_set.model_inputs(model.layout, model.stacking, Scaling.SHARED_SPAN)
    paper, _ = test_set.model_inputs(model.layout, model.stacking)
    np.testing.assert_allclose(scores, model.predict(shared), rtol=0, atol=1e-6)
    assert np.abs(scores - model.predict(paper)).max() > 1e-3
    with pytest.raises(FieldValidationError, match="scaling"):
        quick_config(scaling="other/v9").validate()


def test_initial_weights_start_from_a_model_file(tmp_path, train_set, test_set):
    """Fine-tuning: a run given ``initialWeights`` starts from that file's
    weights (an epoch at a zero learning rate leaves them as they were),
    records its version, and refuses another architecture or scaling recipe.
    """
    small = train_set.subset(slice(0, 160))
    base = quick_config(epochs=2, seed=5)
    first = finalize_model(train_model(small, base))
    path = first.save(tmp_path / "first.rbmodel")
    tuned_config = quick_config(epochs=1, learningRate=1e-12, seed=6, initialWeights=str(path))
    tuned = finalize_model(train_model(small, tuned_config))

    def trainable(network):  # batch-norm statistics move whatever the learning rate
        return [np.asarray(w) for w in network.trainable_weights]

    start = trainable(first.network)
    for a, b in zip(trainable(tuned.network), start, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert tuned.metadata.training["initial_weights"]["version"] == first.version
    scratch_config = tuned_config.copy()
    scratch_config.initialWeights = None
    scratch = trainable(train_model(small, scratch_config).model.network)
    assert max(float(np.abs(a - b).max()) for a, b in zip(scratch, start, strict=True)) > 1e-3
    other = TrainingConfig(architecture="paper_nodia", epochs=1, initialWeights=str(path))
    with pytest.raises(ValueError, match="initialWeights"):
        train_model(small, other)
    rescaled = quick_config(epochs=1, initialWeights=str(path), scaling="shared-span/v1")
    with pytest.raises(ValueError, match="scaled by acero-cuellar-2023/v1"):
        train_model(small, rescaled)


def test_training_input_errors(train_set):
    reals_only = train_set.subset(train_set.label == 0)
    with pytest.raises(ValueError, match="both real and bogus"):
        train_model(reals_only, TrainingConfig(epochs=1))
    with pytest.raises(ValueError, match="stampSize"):
        train_model(train_set, TrainingConfig(epochs=1, stampSize=31))


def test_undersampling_balances_and_timer_logging(train_set, caplog):
    import logging

    unbalanced = train_set.subset(
        np.r_[np.flatnonzero(train_set.label == 0)[:40], np.flatnonzero(train_set.label == 1)[:100]]
    )
    config = quick_config(epochs=1, balance="undersample", evaluateTrain=False)
    with caplog.at_level(logging.INFO, logger="rbnodia.training"):
        result = train_model(unbalanced, config, log_interval=0.0)
    assert result.train_summary["n_real"] == result.train_summary["n_bogus"] == 32
    # 64 stamps, batch 200: one batch; with a zero interval the in-epoch timer line fires too.
    messages = [r.getMessage() for r in caplog.records]
    assert any("batch 1/1" in m for m in messages)
    assert any(m.startswith("epoch 1/1 (") for m in messages)


def test_jsonable():
    data = {"a": np.float32(1.5), "b": [np.nan, np.inf, 2], "c": np.arange(3), "d": {"e": np.int64(4)}}
    assert jsonable(data) == {"a": 1.5, "b": [None, None, 2], "c": [0, 1, 2], "d": {"e": 4}}


# --- plots -----------------------------------------------------------------------------------------


def test_plots_write_pngs(tmp_path):
    from matplotlib.figure import Figure

    from rbnodia.core.group_metrics import auc_by_bin, metrics_by_group
    from rbnodia.plots.families import plot_auc_vs_snr, plot_family_fractions
    from rbnodia.plots.training import (
        plot_confusion_matrix,
        plot_history,
        plot_roc,
        plot_score_histograms,
    )

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(np.where(labels == 0, 0.7, 0.3) + rng.normal(0, 0.2, 200), 0, 1)
    families = np.where(labels == 0, "sn", np.where(rng.random(200) < 0.5, "dipole", "cosmic_ray"))
    snr = rng.uniform(1, 40, 200)
    snr[labels == 1] *= 0.1  # the faint bins hold bogus only
    history = {
        "loss": [0.7, 0.5, 0.4],
        "val_loss": [0.7, 0.6, 0.65],
        "accuracy": [0.5, 0.7, 0.8],
        "val_accuracy": [0.5, 0.6, 0.6],
    }
    figures = {
        "history.png": plot_history(history, best_epoch=2, title="t", path=tmp_path / "history.png"),
        "roc.png": plot_roc(
            {"a": (labels, scores), "b": (labels, 1 - scores)},
            operating_points={"a": 0.5},
            path=tmp_path / "roc.png",
        ),
        "roc_log.png": plot_roc({"a": (labels, scores)}, log_fpr=True, path=tmp_path / "roc_log.png"),
        "cm.png": plot_confusion_matrix([[90, 10], [5, 95]], title="cm", path=tmp_path / "cm.png"),
        "cm_empty.png": plot_confusion_matrix([[0, 0], [5, 95]], path=tmp_path / "cm_empty.png"),
        "scores.png": plot_score_histograms(labels, scores, threshold=0.4, path=tmp_path / "scores.png"),
        "families.png": plot_family_fractions(
            {
                "a": metrics_by_group(labels, scores >= 0.5, families),
                "b": metrics_by_group(labels, scores >= 0.3, families),
            },
            path=tmp_path / "families.png",
        ),
        "auc_snr.png": plot_auc_vs_snr({"a": auc_by_bin(labels, scores, snr)}, path=tmp_path / "auc_snr.png"),
        "empty.png": plot_auc_vs_snr({"a": {}}, path=tmp_path / "empty.png"),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    legend = [t.get_text() for t in figures["roc.png"].axes[0].get_legend().get_texts()]
    assert any("AUC" in text for text in legend)
    ticks = [t.get_text() for t in figures["families.png"].axes[0].get_yticklabels()]
    assert ticks == [f"sn (n={(labels == 0).sum()})", *sorted(t for t in ticks if not t.startswith("sn"))]
    texts = [t.get_text() for t in figures["auc_snr.png"].axes[0].texts]
    assert "one class" in texts  # the S/N bins without reals are marked
    with pytest.raises(ValueError, match="2x2"):
        plot_confusion_matrix(np.zeros((3, 3)))


# --- command line ----------------------------------------------------------------------------------


def test_cli_train_end_to_end(tmp_path, train_set, test_set, capsys):
    from rbnodia.cli import main
    from rbnodia.nn import load_model

    data = tmp_path / "train"
    data.mkdir()
    train_set.subset(slice(0, 150)).save(data / "a.npz")
    train_set.subset(slice(150, 300)).save(data / "b.npz")
    test_file = test_set.subset(slice(0, 100)).save(tmp_path / "test.npz")
    out = tmp_path / "models" / "cli.rbmodel"
    plots = tmp_path / "plots"
    argv = [
        "train",
        "--data",
        str(data),
        "--test",
        str(test_file),
        "--arch",
        "improved_nodia_fast",
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--optimizer",
        "adam",
        "--augment",
        "--seed",
        "1",
        "--threshold-method",
        "youden",
        "--plots",
        str(plots),
        "--name",
        "cli_test",
        "--no-progress",
    ]
    printed = run_cli(capsys, argv)
    assert "ROC AUC" in printed and "cli_test@" in printed
    model = load_model(out)
    assert model.metadata.name == "cli_test" and model.metadata.architecture == "improved_nodia_fast"
    assert model.metadata.metrics["test"]["n"] == 100
    assert model.metadata.training["config"]["augment"] is True
    report = json.loads((tmp_path / "models" / "cli.metrics.json").read_text())
    assert report["version"] == model.version and "test" in report["metrics"]
    assert set(report["metrics"]["test"]["by_family"]) == {"easy_real", "easy_static"}
    for name in ("history", "roc", "confusion", "scores", "families", "auc_snr"):
        assert (plots / f"cli_test_{name}.png").stat().st_size > 1000
    assert (plots / "cli_test_metrics.json").exists()
    # Refuses to overwrite without --overwrite; bad options are clear errors.
    assert main(argv) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "x.rbmodel"), "--epochs", "0"]) == 1
    assert "epochs" in capsys.readouterr().err


def test_cli_reproduce_paper_end_to_end(tmp_path, train_set, test_set, capsys):
    train_file = train_set.save(tmp_path / "train.npz")
    test_file = test_set.save(tmp_path / "test.npz")
    out = tmp_path / "repro"
    argv = [
        "reproduce-paper",
        "--train",
        str(train_file),
        "--test",
        str(test_file),
        "--out",
        str(out),
        "--recipes",
        "paper_nodia",
        "improved_nodia_fast",
        "--epochs",
        "1",
        "--max-train",
        "150",
        "--max-test",
        "60",
        "--scaling",
        "shared-span/v1",
        "--no-progress",
    ]
    printed = run_cli(capsys, argv)
    assert "noDIA (paper)" in printed and "improved_nodia_fast" in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["rows"]) == {"paper_nodia", "improved_nodia_fast"}
    assert results["data"]["train"]["n"] + results["data"]["validation"]["n"] == 150
    assert results["data"]["test"]["n"] == 60
    row = results["rows"]["paper_nodia"]
    assert (
        0 <= row["test_accuracy"] <= 1 and row["ms_per_stamp"] > 0 and not math.isnan(row["train_cpu_hours"])
    )
    for recipe in ("paper_nodia", "improved_nodia_fast"):
        assert set(results["metrics"][recipe]["by_family"]) == {"easy_real", "easy_static"}
        assert results["metrics"][recipe]["auc_by_snr"]["n_unbinned"] == 60
    markdown = (out / "results.md").read_text()
    assert "Fraction called real per family" in markdown and "ROC AUC per detection S/N bin" in markdown
    for name in (
        "roc.png",
        "families.png",
        "auc_snr.png",
        "paper_nodia_confusion.png",
        "improved_nodia_fast_history.png",
        "results.md",
        "paper_nodia.rbmodel",
    ):
        assert (out / name).exists(), name
    assert "| DIA (paper) | 0.962 |" in (out / "results.md").read_text()
    from rbnodia.nn import load_model

    assert load_model(out / "paper_nodia.rbmodel").scaling.value == "shared-span/v1"
    assert results["settings"]["scaling"] == "shared-span/v1"


def test_cli_reproduce_paper_table_merges_runs(tmp_path, train_set, test_set, capsys):
    from rbnodia.cli import main
    from rbnodia.nn import load_model
    from rbnodia.training import evaluate_model

    train_file = train_set.save(tmp_path / "train.npz")
    test_file = test_set.save(tmp_path / "test.npz")
    for recipe in ("paper_nodia", "improved_nodia_fast"):  # one run per recipe, as for doc/reproduction.rst
        assert main(["reproduce-paper", "--train", str(train_file), "--test", str(test_file),
                     "--out", str(tmp_path / recipe), "--recipes", recipe, "--epochs", "1",
                     "--max-train", "120", "--no-progress"]) == 0
    merged = tmp_path / "table"
    doc_table = tmp_path / "doc" / "_generated" / "reproduction_table.rst"
    assert main(["reproduce-paper-table", "--runs", str(tmp_path / "paper_nodia"),
                 str(tmp_path / "improved_nodia_fast"), "--test", str(test_file), "--out", str(merged),
                 "--doc-table", str(doc_table)]) == 0
    printed = capsys.readouterr().out
    assert "paper_nodia" in printed and "improved_nodia_fast" in printed
    results = json.loads((merged / "results.json").read_text())
    assert set(results["rows"]) == set(results["family_accuracy"]) == {"paper_nodia", "improved_nodia_fast"}
    for recipe, families in results["family_accuracy"].items():
        assert set(families) == {"easy_real", "easy_static"}
        assert families["easy_real"]["label"] == 0 and families["easy_static"]["label"] == 1
        # The families partition the test set: their weighted accuracy is the accuracy.
        total = sum(f["n"] for f in families.values())
        weighted = sum(f["n"] * f["accuracy"] for f in families.values()) / total
        expected = evaluate_model(load_model(tmp_path / recipe / f"{recipe}.rbmodel"), test_set)["accuracy"]
        assert total == len(test_set) and weighted == pytest.approx(expected)
    markdown = (merged / "results.md").read_text()
    assert "Test accuracy per family" in markdown and "| easy_real | 0 | 100 |" in markdown
    assert (merged / "roc.png").exists()
    # The docs include: the same tables as csv-table directives, the command, and the figures beside it.
    rst = doc_table.read_text()
    assert rst.startswith(".. Generated by ``rbnodia reproduce-paper-table --runs ")
    assert rst.count(".. csv-table::") == 4 and '"easy_real", "0", "100", ' in rst
    assert '"DIA (paper)", "0.962", ' in rst and '"paper_nodia", ' in rst
    for name in ("roc", "families", "auc_snr", "paper_nodia_history", "improved_nodia_fast_history"):
        assert f".. figure:: _generated/reproduction_table_{name}.png" in rst, name
        assert (doc_table.parent / f"reproduction_table_{name}.png").stat().st_size > 0, name
