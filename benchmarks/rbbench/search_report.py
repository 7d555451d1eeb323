"""Section 6's report: completeness, false positives and step times of the
DIA path and of the search with no difference image (`rbbench.search`).

Writes ``search.json`` (the per-detector results), ``search_comparison.rst``
(the table that ``doc/search.rst`` includes) and
``search_completeness.png`` (completeness against magnitude and against
host magnitude, per preset), and returns the headline figures of the
benchmark table.
"""

from __future__ import annotations

__all__ = ["SNR_MIN", "path_label", "write_report"]

import json
from pathlib import Path

import numpy as np

from .common import Figure, section_command

SNR_MIN = 10.0
"""Expected S/N above which completeness is the issue's target figure."""

_DIA_LABELS = {"dia_nodia": "DIA detection + nodia_default", "dia_dia": "DIA detection + dia_default"}
_DIA_MODELS = {"dia_nodia": "nodia_default", "dia_dia": "dia_default"}


def path_label(key: str) -> str:
    """Return the table label of a path key (`rbbench.search.path_keys`).

    Parameters
    ----------
    key : `str`
        ``dia_nodia``, ``dia_dia`` or ``search_<design>:<model>``.

    Returns
    -------
    label : `str`
    """
    if key in _DIA_LABELS:
        return _DIA_LABELS[key]
    design, model = key.removeprefix("search_").split(":")
    return f"search ({design} design) + {model}"


def _model(key: str) -> str:
    return _DIA_MODELS.get(key) or key.split(":")[1]


def _steps(key: str) -> tuple[str, ...]:
    if key in _DIA_MODELS:
        return ("dia_subtract", "dia_detect", f"{key}_classify")
    return (f"{key.split(':')[0]}_find", f"{key}_classify")


_HOSTLESS_AT = 27.0
"""Where hostless transients are plotted on the host-magnitude axis."""


def _pool(results: list[dict], path: str) -> dict:
    """Concatenate one path's per-detector results."""
    injections = {key: np.concatenate([r["injections"][key] for r in results]) for key in
                  ("mag", "snr", "hosted", "host_mag")}
    return {
        **injections,
        "best": np.concatenate([r[path]["injection_scores"] for r in results]),
        "bogus": np.concatenate([r[path]["bogus_scores"] for r in results]) if results else np.zeros(0),
        "bogus_on_detection": np.concatenate([np.asarray(r[path]["bogus_on_detection"], dtype=bool)
                                              for r in results]) if results else np.zeros(0, dtype=bool),
        "n_detectors": len(results),
        "seconds": {step: float(np.mean([r["times"][step] for r in results])) for step in _steps(path)},
    }


def _completeness(pool: dict, threshold: float, select: np.ndarray) -> float:
    n = int(select.sum())
    return float((pool["best"][select] >= threshold).sum() / n) if n else float("nan")


def _false_positives(pool: dict, threshold: float) -> float:
    return float((pool["bogus"] >= threshold).sum() / pool["n_detectors"])


def _misses(pool: dict, threshold: float, select: np.ndarray) -> dict:
    """Count the selected injections a path misses: in all, with no row
    near them, and hosted (with their hosts' median magnitude).
    """
    missed = select & (pool["best"] < threshold)
    hosted = missed & pool["hosted"]
    return {"n": int(missed.sum()), "no_row": int((missed & (pool["best"] < 0)).sum()),
            "hosted": int(hosted.sum()),
            "host_mag_median": float(np.median(pool["host_mag"][hosted])) if hosted.any() else None}


def _matched_threshold(pool: dict, target: float, select: np.ndarray) -> float | None:
    """Highest threshold at which the completeness reaches ``target`` (None
    if no threshold does).
    """
    scores = np.sort(pool["best"][select])[::-1]
    needed = int(np.ceil(target * len(scores) - 1e-9))
    if needed == 0:
        return 1.0
    if needed > len(scores) or scores[needed - 1] < 0:
        return None
    return float(scores[needed - 1])


def _summaries(results: list[dict]) -> dict:
    summaries = {}
    for preset in sorted({r["preset"] for r in results}):
        chosen = [r for r in results if r["preset"] == preset]
        thresholds = chosen[0]["thresholds"]
        from .search import path_keys

        pools = {path: _pool(chosen, path) for path in path_keys(chosen[0]["search_models"])}
        bright = pools["dia_nodia"]["snr"] >= SNR_MIN
        reference = _completeness(pools["dia_nodia"], thresholds["nodia_default"], bright)
        rows = {}
        for path, pool in pools.items():
            threshold = thresholds[_model(path)]
            matched = _matched_threshold(pool, reference, bright)
            rows[path] = {
                "threshold": threshold,
                "completeness_snr10": _completeness(pool, threshold, bright),
                "completeness_all": _completeness(pool, threshold, np.ones(len(pool["best"]), dtype=bool)),
                "false_positives": _false_positives(pool, threshold),
                "false_positives_on_detection": float(
                    ((pool["bogus"] >= threshold) & pool["bogus_on_detection"]).sum() / pool["n_detectors"]),
                "misses_snr10": _misses(pool, threshold, bright),
                "matched_threshold": matched,
                "false_positives_matched": None if matched is None else _false_positives(pool, matched),
                "seconds": pool["seconds"],
                "total_seconds": float(sum(pool["seconds"].values())),
            }
        summaries[preset] = {"n_detectors": len(chosen), "shape": chosen[0]["shape"],
                             "n_injected": int(len(pools["dia_nodia"]["best"])), "n_snr10": int(bright.sum()),
                             "reference_completeness": reference, "paths": rows, "pools": pools,
                             "thresholds": thresholds}
    return summaries


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "--"
    return f"{value:.{digits}f}"


def _table(summaries: dict, smoke: bool, key: str) -> str:
    lines = [".. Written by ``make bench`` (section 6); do not edit.", ""]
    if smoke:
        lines += [".. warning::", "",
                  "   A smoke run: one small detector per preset; the figures mean nothing.", ""]
    header = ("Path", "Completeness S/N>=10", "Completeness all", "FP/detector", "FP/detector at matched "
              "completeness", "Seconds per detector", "Ratio to DIA path")
    for preset, summary in summaries.items():
        dia_total = summary["paths"]["dia_nodia"]["total_seconds"]
        lines += [f".. list-table:: {preset.upper()}: {summary['n_detectors']} detectors of "
                  f"{summary['shape'][0]}x{summary['shape'][1]} pixels, {summary['n_injected']} injected "
                  f"transients ({summary['n_snr10']} with S/N >= {SNR_MIN:g}); matched completeness "
                  f"{_fmt(summary['reference_completeness'])}",
                  "   :header-rows: 1", ""]
        lines.append("   * - " + "\n     - ".join(header))
        for path, row in summary["paths"].items():
            steps = " + ".join(f"{name.split('_')[-1]} {_fmt(seconds, 2)}"
                               for name, seconds in row["seconds"].items())
            cells = (path_label(path), _fmt(row["completeness_snr10"]), _fmt(row["completeness_all"]),
                     _fmt(row["false_positives"], 1), _fmt(row["false_positives_matched"], 1),
                     f"{_fmt(row['total_seconds'], 2)} ({steps})", _fmt(row["total_seconds"] / dia_total, 3))
            lines.append("   * - " + "\n     - ".join(cells))
        lines.append("")
    return "\n".join(lines) + "\n" + _targets_table(summaries, key)


def _target_cells(summary: dict, key: str) -> list[str]:
    """Return one preset's column of the targets table for the search path ``key``."""
    search, dia = summary["paths"][key], summary["paths"]["dia_nodia"]
    gap = 100 * (search["completeness_snr10"] - dia["completeness_snr10"])
    excess = search["false_positives"] - dia["false_positives"]
    ratio = search["total_seconds"] / dia["total_seconds"]
    missed, dia_missed = search["misses_snr10"], dia["misses_snr10"]
    return [
        f"{_fmt(search['completeness_snr10'])} vs {_fmt(dia['completeness_snr10'])}: {gap:+.1f} points, "
        f"{'met' if gap >= -2 else 'missed'}",
        f"{_fmt(search['false_positives'], 1)} vs {_fmt(dia['false_positives'], 1)}: {excess:+.1f}, "
        f"{'met' if excess <= 0 else 'missed'}",
        f"{_fmt(ratio)} of the DIA path's time, {'met' if ratio <= 0.1 else 'missed'}",
        f"{missed['n']} (DIA path: {dia_missed['n']}); {missed['no_row']} without a candidate; "
        f"{missed['hosted']} hosted, median host magnitude {_fmt(missed['host_mag_median'], 1)}",
        f"{_fmt(search['false_positives_on_detection'], 1)} of {_fmt(search['false_positives'], 1)}",
    ]


_TARGETS = (
    "Completeness at S/N >= 10 within 2 points of the DIA path",
    "False positives per detector no more than the DIA path's",
    "CPU time per detector at most 1/10 of the DIA path's",
    "Transients at S/N >= 10 missed",
    "False positives per detector on a difference-image detection (bogus that DIA detects too)",
)


def _targets_table(summaries: dict, key: str) -> str:
    """Return the table of the search path ``key`` against the targets, per preset."""
    columns = {preset: _target_cells(summary, key) for preset, summary in summaries.items()}
    lines = [f".. list-table:: Targets: {path_label(key)} against DIA detection + nodia_default",
             "   :header-rows: 1", "",
             "   * - Target\n     - " + "\n     - ".join(preset.upper() for preset in columns)]
    for k, target in enumerate(_TARGETS):
        row = [target] + [cells[k] for cells in columns.values()]
        lines.append("   * - " + "\n     - ".join(row))
    return "\n".join(lines) + "\n"


def _plot(summaries: dict, path: Path) -> None:
    from rbnodia.plots.figures import new_figure, save_figure

    fig = new_figure(11, 4.2 * len(summaries))
    axes = fig.subplots(len(summaries), 2, squeeze=False)
    for row, (preset, summary) in enumerate(summaries.items()):
        for path_key, pool in summary["pools"].items():
            label = path_label(path_key)
            threshold = summary["paths"][path_key]["threshold"]
            found = pool["best"] >= threshold
            host = np.where(pool["hosted"], pool["host_mag"], _HOSTLESS_AT)
            host_edges = np.array([14.0, 18, 19, 20, 21, 22, 23, 24, 26, _HOSTLESS_AT + 0.5])
            for column, (values, edges) in enumerate(((pool["mag"], np.arange(19.0, 25.51, 0.5)),
                                                      (host, host_edges))):
                index = np.digitize(values, edges) - 1
                centres, fractions = [], []
                for k in range(len(edges) - 1):
                    inside = index == k
                    if inside.sum() >= 3:
                        centres.append(0.5 * (edges[k] + edges[k + 1]))
                        fractions.append(found[inside].mean())
                axes[row, column].plot(centres, fractions, marker="o", label=label)
        axes[row, 0].set_xlabel("injected magnitude (AB)")
        axes[row, 1].set_xlabel(f"host magnitude (AB; at {_HOSTLESS_AT:g}: hostless)")
        for column in range(2):
            axes[row, column].set_ylabel("completeness")
            axes[row, column].set_ylim(-0.02, 1.02)
            axes[row, column].set_title(f"{preset.upper()}: {summary['n_injected']} injected transients")
            axes[row, column].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower left")
    save_figure(fig, path)


def write_report(results: list[dict], smoke: bool, out: Path, doc_dir: Path | None) -> list[Figure]:
    """Write the section's files and return its figures.

    Parameters
    ----------
    results : `list` [`dict`]
        `rbbench.search.measure_detector`'s results.
    smoke : `bool`
        Whether the detectors were smoke-sized.
    out : `pathlib.Path`
        Folder for ``search.json``, ``search_comparison.rst`` and
        ``search_completeness.png``.
    doc_dir : `pathlib.Path`, optional
        Also write the table and the plot there.

    Returns
    -------
    figures : `list` [`Figure`]
        Per preset: the search's time per detector, with the task's
        default design and model, against the DIA path's, and its
        completeness (S/N >= 10) against the DIA path's.
    """
    from rbnodia.core.search import SEARCH_DEFAULTS
    from rbnodia.tasks.search import NoDiaSearchConfig

    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(results, indent=1))
    summaries = _summaries(results)
    key = f"search_{SEARCH_DEFAULTS['design']}:{NoDiaSearchConfig().packaged_model_name()}"
    table = _table(summaries, smoke, key)
    for folder in [out] + ([doc_dir] if doc_dir else []):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "search_comparison.rst").write_text(table)
        _plot(summaries, folder / "search_completeness.png")
    command = section_command(6, smoke)
    figures = []
    for preset, summary in summaries.items():
        dia = summary["paths"]["dia_nodia"]
        search = summary["paths"][key]
        note = (f"{summary['n_detectors']} simulated {preset.upper()} detectors, "
                f"{summary['shape'][0]}x{summary['shape'][1]}; one thread per step")
        figures.append(Figure.time(
            f"6.{preset}_time", 6, f"{preset.upper()} detector: {path_label(key)}",
            search["total_seconds"], "s", baseline=dia["total_seconds"],
            baseline_label="DIA path: PSF-matched subtraction, detection, noDIA scoring", note=note,
            command=command))
        figures.append(Figure.amount(
            f"6.{preset}_completeness", 6, f"{preset.upper()}: completeness of the search at S/N >= 10",
            search["completeness_snr10"], "fraction", baseline=dia["completeness_snr10"],
            baseline_label="DIA path, noDIA CNN", note=note, command=command))
    return figures
