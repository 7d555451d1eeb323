"""SaliencyDiagnosticsTask: in memory, and through pipetask on a simulated repo."""

import numpy as np
import pytest
from astropy.table import Table, vstack

from rbnodia.butler.execution import pipeline_path, run_pipetask
from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask
from rbnodia.tasks.diagnostics import SaliencyDiagnosticsConfig, SaliencyDiagnosticsTask


def classified(model_file, n=30, seed=0):
    rng = np.random.default_rng(seed)
    template = rng.normal(100, 5, (200, 260)).astype(np.float32)
    science = template + rng.normal(0, 5, template.shape).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) + 1000 * seed
    detections = Table({"id": ids, "x": rng.uniform(0, 260, n), "y": rng.uniform(0, 200, n)})
    config = ClassifyRealBogusConfig()
    config.modelName = str(model_file)
    config.doSaliency = True
    config.doWriteSaliencyMaps = True
    config.threshold = 0.45  # an untrained model: make both predicted classes appear
    task = ClassifyRealBogusTask(config=config)
    result = task.run(science=science, template=template, detections=detections)
    label = rng.integers(0, 2, n).astype(np.int8)
    family = np.where(label == 0, "sn", np.where(rng.random(n) < 0.5, "dipole", "cosmic_ray"))
    truth = Table({"id": ids, "label": label, "family": family, "snr": rng.uniform(0, 60, n)})
    return result.reliability, result.saliency, truth


@pytest.mark.parametrize("use_truth", [True, False])
def test_in_memory(nodia_model_file, use_truth):
    parts = [classified(nodia_model_file, seed=s) for s in (1, 2)]
    config = SaliencyDiagnosticsConfig()
    config.useTruth = use_truth
    task = SaliencyDiagnosticsTask(config=config)
    result = task.run(
        reliability=[p[0] for p in parts],
        truth=[p[2] for p in parts] if use_truth else None,
        saliencyMaps=[p[1] for p in parts],
    )
    summary = result.summary
    assert summary["by"] == ("quadrant" if use_truth else "prediction")
    expected_groups = {"TP", "FN", "FP", "TN"} if use_truth else {"predicted real", "predicted bogus"}
    assert set(summary["groups"]) == expected_groups
    n_scored = sum(int((~p[0]["flag_no_data"]).sum()) for p in parts)
    assert summary["all"]["n"] == n_scored
    fractions = summary["all"]["dominant_fraction"]
    assert sum(v for v in fractions.values() if v is not None) == pytest.approx(1.0)
    for fig in (result.dominantPlot, result.distributionPlot, result.examplesPlot):
        assert fig.axes
    if not use_truth:
        assert "by_family" not in summary and not hasattr(result, "familyPlot")
        return
    # Per family: counts and fraction called real, checked against the catalogs and truth directly.
    reliability = vstack([p[0] for p in parts])
    truth = vstack([p[2] for p in parts])
    scored = ~np.asarray(reliability["flag_no_data"])
    family_of = dict(zip(truth["id"], truth["family"]))
    families = np.array([family_of[i] for i in reliability["id"][scored]])
    called = np.asarray(reliability["is_real"][scored])
    assert set(summary["by_family"]) == set(families)
    for name, row in summary["by_family"].items():
        assert row["n"] == (families == name).sum()
        assert row["fraction_called_real"] == pytest.approx(called[families == name].mean())
    bins = summary["auc_by_snr"]["bins"]
    assert sum(b["n"] for b in bins) == n_scored and summary["auc_by_snr"]["n_unbinned"] == 0
    assert [b["label"] for b in bins] == ["< 5", "5-10", "10-20", "20-50", "50-100", ">= 100"]
    assert result.familyPlot.axes and result.snrPlot.axes


def test_missing_truth_falls_back_to_prediction(nodia_model_file):
    reliability, maps, truth = classified(nodia_model_file)
    result = SaliencyDiagnosticsTask(config=SaliencyDiagnosticsConfig()).run(
        reliability=[reliability], truth=[truth[:5]], saliencyMaps=[maps]
    )
    assert result.summary["by"] == "prediction"


def test_needs_saliency_columns(nodia_model_file):
    reliability, maps, truth = classified(nodia_model_file)
    reliability.remove_columns([c for c in reliability.colnames if c.startswith("saliency_")])
    with pytest.raises(ValueError, match="doSaliency"):
        SaliencyDiagnosticsTask(config=SaliencyDiagnosticsConfig()).run(
            reliability=[reliability], truth=[truth], saliencyMaps=[maps]
        )


@pytest.mark.e2e
def test_pipeline_writes_pngs(tmp_path, nodia_model_file):
    from lsst.daf.butler import Butler
    from rbnodia.sim import write_simulated_repo

    sim = write_simulated_repo(tmp_path / "repo", preset="des", n_visits=1, n_detectors=2, seed=9,
                               image_size=(500, 500), progress=False)
    run_pipetask(tmp_path / "repo", pipeline_path("SaliencyDiagnostics"), [sim["collection"]], "diag/run",
                 config={"classifyRealBogus:modelName": str(nodia_model_file)}, stream=False)
    butler = Butler.from_config(str(tmp_path / "repo"))
    plots = [f"rbnodia_saliency_{name}_plot" for name in ("dominant", "distribution", "examples")]
    for dataset in plots + ["rbnodia_diagnostics_family_plot", "rbnodia_diagnostics_snr_plot"]:
        uri = butler.getURI(dataset, collections="diag/run")
        assert uri.getExtension() == ".png" and uri.size() > 1000
    summary = butler.get("rbnodia_saliency_summary", collections="diag/run")
    assert summary["by"] == "quadrant"
    # Family names come from the simulated truth.
    refs = butler.query_datasets("rbnodia_truth", collections=sim["collection"])
    truth = vstack([butler.get(ref) for ref in refs])
    assert set(summary["by_family"]) <= set(truth["family"]) and summary["by_family"]


def test_channel_stacked_model_without_table_metadata(tmp_path):
    """The Butler strips table metadata: layout and stacking come from the data."""
    from rbnodia.nn import RealBogusModel

    model_file = tmp_path / "improved.rbmodel"
    RealBogusModel.from_architecture("improved_nodia").save(model_file)
    reliability, maps, truth = classified(model_file)
    assert maps["saliency"].shape[1:] == (51, 51, 2)
    for table in (reliability, maps, truth):
        table.meta.clear()
    result = SaliencyDiagnosticsTask(config=SaliencyDiagnosticsConfig()).run(
        reliability=[reliability], truth=[truth], saliencyMaps=[maps]
    )
    assert result.summary["layout"] == "noDIA" and result.examplesPlot.axes
