"""Score real/bogus models on the stress set and write the report.

For each model: ROC AUC and the rates at the model's own threshold on the
whole stress set, per setting, per family (count, accuracy, fraction called
real, mean score), per science-PSF family, in bins of detection
significance, and the fraction of reals called real in bins of host
contrast (`rbnodia.core.contrast.host_contrast`); and the model's AUC and
its reals called real per host-contrast bin on *our own* test split, from
labelled stamps made by ``rbnodia make-training-set`` and labelled under
the model's own convention (its training ``realFamilies``, as ``rbnodia
train`` labels its test set), or,
failing that, the test AUC stored in the model file, marked as such, with
the gap ``own - stress``.  Files written next to the stress set:
``report.json``, ``report.md``, ``roc.png``, ``families.png``,
``snr_auc.png`` and ``examples.png``.

Scores are P(real) (`rbnodia.nn.RealBogusModel.predict`); labels 0 = real,
1 = bogus; a detection is called real when ``score >= threshold``.
"""

from __future__ import annotations

__all__ = [
    "SNR_BINS",
    "format_markdown",
    "format_rst",
    "report_tables",
    "run_stress_report",
    "score_stamps",
    "summarise_scores",
]

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.contrast import CONTRAST_BIN_EDGES, host_contrast
from ..core.group_metrics import completeness_by_bin
from ..core.metrics import evaluate, roc_auc
from ..core.stampset import REAL, LabelledStamps
from ..core.tables import format_markdown_table, format_rst_csv_table
from .families import FAMILIES
from .generator import ensure_stress_set
from .progress import Progress
from .settings import SETTINGS

_LOG = logging.getLogger(__name__)

SNR_BINS = (5.0, 7.0, 10.0, 20.0, 50.0, math.inf)
"""Edges of the detection-significance bins of the AUC-against-S/N table."""

BATCH = 2048
"""Stamps scaled and scored at a time (bounds memory)."""

_HEADLINE = (
    "roc_auc",
    "accuracy",
    "tp_rate",
    "tn_rate",
    "fpr",
    "fnr",
    "fpr_at_fnr_1pct",
    "fpr_at_fnr_5pct",
    "mdr_at_fpr_1pct",
    "confusion_matrix",
    "threshold",
    "n",
    "n_real",
    "n_bogus",
)


def score_stamps(model: Any, stamps: LabelledStamps, description: str, progress: bool = True) -> tuple:
    """Score every stamp, scaled and stacked by `rbnodia.core` exactly as
    the classification task does.

    Parameters
    ----------
    model : `rbnodia.nn.RealBogusModel`
        The model.
    stamps : `rbnodia.core.LabelledStamps`
        Raw stamps.
    description : `str`
        Label of the progress bar.
    progress : `bool`, optional
        Show a progress bar.

    Returns
    -------
    scores : `numpy.ndarray`
        P(real) per stamp (float32).
    flags : `numpy.ndarray`
        `~rbnodia.core.StampFlag` bits from scaling (int32).
    """
    model.check_compatible(model.layout, stamps.stamp_size, model.stacking)
    scores = np.empty(len(stamps), dtype=np.float32)
    flags = np.empty(len(stamps), dtype=np.int32)
    bar = Progress(len(stamps), description, _LOG, progress)
    for start in range(0, len(stamps), BATCH):
        part = stamps.subset(slice(start, start + BATCH))
        inputs, part_flags = part.model_inputs(model.layout, model.stacking, model.scaling)
        scores[start : start + len(part)] = model.predict(inputs)
        flags[start : start + len(part)] = part_flags
        bar.update(len(part))
    bar.close()
    return scores, flags


def _fraction(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else math.nan


def _snr_bins(
    labels: np.ndarray, scores: np.ndarray, snr: np.ndarray, threshold: float
) -> list[dict[str, Any]]:
    rows = []
    for low, high in zip(SNR_BINS[:-1], SNR_BINS[1:]):
        inside = (snr >= low) & (snr < high)
        if low == SNR_BINS[0]:
            inside |= snr < low  # detections measured just under the threshold after the centroid step
        name = f"{low:g}-{high:g}" if math.isfinite(high) else f">={low:g}"
        rows.append(
            {
                "bin": name,
                "low": low,
                "high": high,
                "n": int(inside.sum()),
                "n_real": int((labels[inside] == REAL).sum()),
                "n_bogus": int((labels[inside] != REAL).sum()),
                "roc_auc": roc_auc(labels[inside], scores[inside]),
                "accuracy": _fraction((scores[inside] >= threshold) == (labels[inside] == REAL)),
            }
        )
    return rows


def summarise_scores(
    labels: np.ndarray, scores: np.ndarray, truth: Any, threshold: float, contrast: np.ndarray | None = None
) -> dict[str, Any]:
    """Compute every stress-set figure of one model.

    Parameters
    ----------
    labels, scores : `numpy.ndarray`
        0/1 labels and P(real).
    truth : `astropy.table.Table`
        The stress set's truth table (rows aligned).
    threshold : `float`
        Decision threshold on P(real).
    contrast : `numpy.ndarray`, optional
        `~rbnodia.core.contrast.host_contrast` of each stamp: adds the
        fraction of reals called real in its bins (``host_contrast_bins``).

    Returns
    -------
    figures : `dict` [`str`, `object`]
        AUC, accuracy, rates and the breakdowns per family, setting and bin.
    """
    overall = evaluate(labels, scores, threshold)
    called_real = scores >= threshold
    correct = called_real == (labels == REAL)
    family = np.asarray(truth["family"], dtype=str)
    result: dict[str, Any] = {"stress": {key: overall[key] for key in _HEADLINE}}
    result["per_setting"] = {}
    for name in dict.fromkeys(np.asarray(truth["setting"], dtype=str).tolist()):
        rows = np.asarray(truth["setting"]) == name
        result["per_setting"][name] = {
            "n": int(rows.sum()),
            "roc_auc": roc_auc(labels[rows], scores[rows]),
            "accuracy": _fraction(correct[rows]),
        }
    result["per_family"] = {}
    for name, spec in FAMILIES.items():
        rows = family == name
        result["per_family"][name] = {
            "label": spec.label,
            "n": int(rows.sum()),
            "accuracy": _fraction(correct[rows]),
            "fraction_called_real": _fraction(called_real[rows]),
            "mean_score": float(scores[rows].mean()) if rows.any() else math.nan,
        }
    psf = np.asarray(truth["psf_science"], dtype=str)
    result["per_psf_family"] = {
        name: {"n": int((psf == name).sum()), "roc_auc": roc_auc(labels[psf == name], scores[psf == name])}
        for name in sorted(set(psf.tolist()))
    }
    result["snr_bins"] = _snr_bins(labels, scores, np.asarray(truth["snr"], dtype=float), threshold)
    if contrast is not None:
        result["host_contrast_bins"] = completeness_by_bin(labels, called_real, contrast, CONTRAST_BIN_EDGES)
    return result


def _own_test(
    model: Any, own: LabelledStamps | None, own_contrast: np.ndarray | None, name: str, progress: bool
) -> dict[str, Any]:
    if own is None:
        test = model.metadata.metrics.get("test", {})
        return {
            "source": "model file metadata (test split at training time)",
            "n": test.get("n"),
            "roc_auc": test.get("roc_auc", math.nan),
            "accuracy": test.get("accuracy", math.nan),
        }
    # Each model is scored under its own label convention (variable stars
    # real or bogus), as at training time.
    real_families = (model.metadata.training or {}).get("config", {}).get("realFamilies") or []
    labels = own.label.copy()
    labels[np.isin(own.family, list(real_families))] = REAL
    scores, _ = score_stamps(model, own, f"{name} own test", progress)
    metrics = evaluate(labels, scores, model.threshold)
    return {
        "source": own.meta.get("source", "own test stamps"),
        "n": metrics["n"],
        "roc_auc": metrics["roc_auc"],
        "accuracy": metrics["accuracy"],
        "real_families": list(real_families),
        "host_contrast_bins": completeness_by_bin(
            labels, scores >= model.threshold, own_contrast, CONTRAST_BIN_EDGES
        ),
        "labels": labels,
        "scores": scores,
    }


def _write_figures(report: dict[str, Any], curves: dict, stamps: LabelledStamps, out: Path) -> dict[str, str]:
    from .plots import plot_examples, plot_family_bars, plot_roc, plot_snr_auc

    models = report["models"]
    labels = {name: spec.label for name, spec in FAMILIES.items()}
    return {
        "roc": str(plot_roc(curves, out / "roc.png")),
        "families": str(
            plot_family_bars({m: r["per_family"] for m, r in models.items()}, labels, out / "families.png")
        ),
        "snr_auc": str(plot_snr_auc({m: r["snr_bins"] for m, r in models.items()}, out / "snr_auc.png")),
        "examples": str(plot_examples(stamps, out / "examples.png", order=list(FAMILIES))),
    }


def run_stress_report(
    models: Sequence[str],
    out: str | os.PathLike,
    *,
    n: int = 20_000,
    seed: int = 16,
    own_test: Sequence[str | os.PathLike] = (),
    settings: Sequence[str] | None = None,
    workers: int = 1,
    progress: bool = True,
    regenerate: bool = False,
) -> dict[str, Any]:
    """Make or reuse the stress set in ``out/stress_set``, score each model,
    and write the report files into ``out``.

    Parameters
    ----------
    models : sequence of `str`
        Model files or packaged model names.
    out : path-like
        Report folder (created).
    n, seed : `int`
        Stress-set recipe (see `rbnodia.stresstest.ensure_stress_set`).
    own_test : sequence of path-like
        Labelled-stamp files or folders of our own test split.
    settings : sequence of `str`, optional
        Observing settings; default every entry of `rbnodia.stresstest.SETTINGS`.
    workers : `int`
        Processes making the stress set.
    progress : `bool`
        Show progress bars.
    regenerate : `bool`
        Remake a stress set made with another recipe.

    Returns
    -------
    report : `dict`
        What ``report.json`` holds.
    """
    from ..nn.model import load_model

    if not models:
        raise ValueError("Give at least one model.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = list(SETTINGS) if settings is None else list(settings)
    stamps, truth, summary = ensure_stress_set(
        out / "stress_set",
        n,
        seed=seed,
        settings=settings,
        workers=workers,
        progress=progress,
        regenerate=regenerate,
    )
    own = LabelledStamps.load([Path(p) for p in own_test]) if own_test else None
    own_contrast = None
    if own is not None:
        own.meta["source"] = ", ".join(str(p) for p in own_test)
        own_contrast = host_contrast(own.tmpl, own.diff)
    report: dict[str, Any] = {
        "stress_set": {
            key: summary[key]
            for key in ("generator", "n", "seed", "settings", "seconds", "stamps_per_second", "workers")
        },
        "label_convention": "labels 0 = real, 1 = bogus; scores P(real); called real when score >= threshold",
        "models": {},
    }
    report["stress_set"]["folder"] = str(out / "stress_set")
    contrast = host_contrast(stamps.tmpl, stamps.diff)
    curves: dict[str, dict[str, tuple]] = {}
    for name in models:
        model = load_model(name)
        scores, flags = score_stamps(model, stamps, f"{name} stress", progress)
        entry = {
            "version": model.version,
            "layout": model.layout.value,
            "threshold": model.threshold,
            "n_flagged": int((flags != 0).sum()),
        }
        entry.update(summarise_scores(stamps.label, scores, truth, model.threshold, contrast))
        own_result = _own_test(model, own, own_contrast, name, progress)
        curves[name] = {"stress": (stamps.label, scores, entry["stress"]["roc_auc"])}
        if "scores" in own_result:
            curves[name]["own"] = (own_result.pop("labels"), own_result.pop("scores"), own_result["roc_auc"])
        entry["own_test"] = own_result
        entry["auc_gap"] = own_result["roc_auc"] - entry["stress"]["roc_auc"]
        report["models"][name] = entry
        _LOG.info(
            "%s: stress AUC %.4f, own-test AUC %.4f.", name, entry["stress"]["roc_auc"], own_result["roc_auc"]
        )
    report["files"] = _write_figures(report, curves, stamps, out)
    report["files"].update({"json": str(out / "report.json"), "markdown": str(out / "report.md")})
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    (out / "report.md").write_text(format_markdown(report))
    return report


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value)}")


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def report_tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Return the report's tables as data, for every output format.

    Parameters
    ----------
    report : `dict` [`str`, `object`]
        What `run_stress_report` returns.

    Returns
    -------
    tables : `list` [`tuple`]
        ``(title, header, rows)`` per table, cells as strings.
    """
    models = report["models"]
    names = list(models)
    settings = report["stress_set"]["settings"]
    summary = [
        [name, m["version"], _f(m["own_test"]["roc_auc"]), _f(m["stress"]["roc_auc"]), _f(m["auc_gap"]),
         _f(m["stress"]["accuracy"]), f"{m['threshold']:g}",
         *(_f(m["per_setting"].get(k, {}).get("roc_auc")) for k in settings),
         _f(m["stress"]["fpr_at_fnr_1pct"]), _f(m["stress"]["mdr_at_fpr_1pct"])]
        for name, m in models.items()
    ]
    families = []
    for family, spec in FAMILIES.items():
        rows = [models[n]["per_family"][family] for n in names]
        families.append([family, "real" if spec.label == REAL else "bogus", str(rows[0]["n"])]
                        + [c for r in rows for c in (_f(r["fraction_called_real"]), _f(r["accuracy"]))])
    snr = [[b["bin"], str(b["n_real"]), str(b["n_bogus"])]
           + [_f(models[n]["snr_bins"][i]["roc_auc"]) for n in names]
           for i, b in enumerate(models[names[0]]["snr_bins"])]
    own_bins = models[names[0]]["own_test"].get("host_contrast_bins")

    def own_cells(i: int) -> list[str]:
        if not own_bins:
            return []
        fractions = [models[n]["own_test"]["host_contrast_bins"][i]["fraction_called_real"] for n in names]
        return [str(own_bins[i]["n_real"]), *map(_f, fractions)]

    contrast = [[b["label"], str(b["n_real"])]
                + [_f(models[n]["host_contrast_bins"][i]["fraction_called_real"]) for n in names]
                + own_cells(i)
                for i, b in enumerate(models[names[0]].get("host_contrast_bins", []))]
    contrast_header = ["contrast", "n real", *(f"{n} called real" for n in names)]
    if own_bins:
        contrast_header += ["n real (own test)", *(f"{n} own test" for n in names)]
    psf = [[name, str(row["n"])] + [_f(models[n]["per_psf_family"][name]["roc_auc"]) for n in names]
           for name, row in models[names[0]]["per_psf_family"].items()]
    return [
        ("Summary", ["model", "version", "own-test AUC", "stress AUC", "gap (own - stress)",
                     "stress accuracy", "threshold", *(f"{k} AUC" for k in settings), "FPR at 1% FNR",
                     "MDR at 1% FPR"], summary),
        ("Per family", ["family", "label", "n",
                        *(h for n in names for h in (f"{n} called real", f"{n} accuracy"))], families),
        ("AUC against detection S/N", ["S/N", "n real", "n bogus", *(f"{n} AUC" for n in names)], snr),
        ("AUC per science PSF family", ["PSF", "n", *(f"{n} AUC" for n in names)], psf),
        *([("Reals called real against host contrast (template over difference flux, central 5x5 pixels)",
            contrast_header, contrast)] if contrast else []),
    ]


def _preamble(report: dict[str, Any]) -> str:
    s = report["stress_set"]
    return (f"Stress set: {s['n']} stamps, seed {s['seed']}, settings {', '.join(s['settings'])} "
            f"({s['generator']}). Labels 0 = real, 1 = bogus; scores P(real); "
            "called real when score >= threshold.")


def format_markdown(report: dict[str, Any]) -> str:
    """Return the report's tables as markdown.

    Parameters
    ----------
    report : `dict` [`str`, `object`]
        What `run_stress_report` returns.

    Returns
    -------
    text : `str`
        Markdown.
    """
    lines = ["# Stress test of real/bogus models", "", _preamble(report)]
    for title, header, rows in report_tables(report):
        lines += ["", f"## {title}", "", format_markdown_table(header, rows)]
        if title == "Summary":
            lines += ["", "Own-test source: " + "; ".join(
                f"{n}: {m['own_test']['source']}" for n, m in report["models"].items())]
    return "\n".join(lines) + "\n"


def format_rst(report: dict[str, Any], command: str, figures: dict[str, str] | None = None) -> str:
    """Return the report's tables as reStructuredText, for the docs.

    Parameters
    ----------
    report : `dict` [`str`, `object`]
        What `run_stress_report` returns.
    command : `str`
        The command that wrote it (stated above the tables).
    figures : `dict` [`str`, `str`], optional
        Image file names (relative to the include) and their captions,
        shown after the summary table.

    Returns
    -------
    text : `str`
        The tables, one ``csv-table`` directive each, and the figures.
    """
    lines = [f".. Generated by ``{command}``; do not edit.", "", _preamble(report), "",
             f"Regenerate with ``{command}``."]
    for k, (title, header, rows) in enumerate(report_tables(report)):
        lines += ["", format_rst_csv_table(title, header, rows)]
        if k == 0:
            for name, caption in (figures or {}).items():
                lines += ["", f".. figure:: {name}", "   :width: 100%", "", f"   {caption}"]
    return "\n".join(lines) + "\n"
