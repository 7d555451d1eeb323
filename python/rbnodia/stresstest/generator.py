"""Make, write and read stress sets.

A stress set is a folder::

    stamps_des.npz     LabelledStamps (diff, srch, tmpl, label, id, family, mag, snr)
    stamps_lsst.npz
    truth_des.ecsv     per-stamp conditions (astropy ECSV), rows aligned with the stamps
    truth_lsst.ecsv
    summary.json       generator version, n, seed, settings, counts, rejection rates, timing

It is written to ``<folder>.partial`` and renamed when complete, so a failure
never leaves a half-written set.  Everything is determined by ``seed``: each
stamp has its own random stream (seeded by ``(seed, setting, slot)``), so the
result does not depend on the number of worker processes.

``mag`` holds, for reals, the magnitude of the difference flux (the
transient's flux, or a variable star's change); NaN for bogus.  ``snr`` is
the detection significance (`rbnodia.stresstest.detection`).  ``id`` is
``setting_index * 10**9 + slot``.
"""

from __future__ import annotations

__all__ = [
    "GENERATOR_VERSION",
    "PATCH_SIZE",
    "ensure_stress_set",
    "family_plan",
    "load_stress_set",
    "make_stress_set",
]

import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.stampset import REAL, LabelledStamps
from ..version import __version__
from .families import FAMILIES, build_scene
from .profiles import FourierGrid
from .progress import Progress
from .scene import run_scene
from .settings import SETTINGS, get_setting

_LOG = logging.getLogger(__name__)

GENERATOR_VERSION = "rbnodia.stresstest/1"
"""Identifies the generator's recipe; a stored set made by another version is
not reused."""

PATCH_SIZE = 99
"""Side of the periodic patch each stamp is cut from (odd, with small prime
factors for fast FFTs: 99 = 9 x 11)."""

MAX_ATTEMPTS = 200
"""Scenes drawn for one stamp before giving up (a bug, never expected)."""

CHUNK = 100
"""Stamps per unit of work handed to a worker."""


def family_plan(n: int, seed: int, setting_index: int) -> np.ndarray:
    """Return the family of each of ``n`` stamps: counts proportional to the family
    weights (largest remainders), in a seeded random order.

    Parameters
    ----------
    n : `int`
        Stamps.
    seed : `int`
        Seed of the order.
    setting_index : `int`
        Index of the observing setting (each has its own order).

    Returns
    -------
    families : `numpy.ndarray`
        Family name per stamp.
    """
    names = list(FAMILIES)
    weights = np.array([FAMILIES[name].weight for name in names])
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    remainders = np.argsort(-(exact - counts), kind="stable")
    counts[remainders[: n - counts.sum()]] += 1
    plan = np.repeat(np.array(names), counts)
    return np.random.default_rng([seed, setting_index, 7]).permutation(plan)


@dataclass(frozen=True)
class _Chunk:
    setting: str
    setting_index: int
    seed: int
    start: int
    families: tuple[str, ...]
    stamp_size: int


def _make_chunk(chunk: _Chunk) -> dict[str, Any]:
    """Stamps and truth rows for one chunk (runs in a worker)."""
    setting = get_setting(chunk.setting)
    grid = FourierGrid(PATCH_SIZE)
    size = chunk.stamp_size
    n = len(chunk.families)
    out: dict[str, Any] = {name: np.empty((n, size, size), np.float32) for name in ("diff", "srch", "tmpl")}
    rows = []
    for i, family in enumerate(chunk.families):
        slot = chunk.start + i
        rng = np.random.default_rng([chunk.seed, chunk.setting_index, slot])
        for attempt in range(1, MAX_ATTEMPTS + 1):
            scene = build_scene(family, rng, setting, PATCH_SIZE)
            result = run_scene(scene, rng, grid, size)
            if result is not None:
                break
        else:
            raise RuntimeError(f"No detection for family {family} slot {slot} after {MAX_ATTEMPTS} scenes.")
        out["diff"][i], out["srch"][i], out["tmpl"][i] = result.diff, result.srch, result.tmpl
        c = scene.conditions
        rows.append(
            {
                "id": chunk.setting_index * 10**9 + slot,
                "setting": chunk.setting,
                "family": family,
                "label": scene.label,
                "snr": result.snr,
                "target_snr": scene.target_snr,
                "mag": setting.magnitude(result.scale) if scene.label == REAL else float("nan"),
                "offset_px": result.offset,
                "attempts": attempt,
                "psf_science": c.psf_science.family,
                "psf_template": c.psf_template.family,
                "seeing_arcsec": c.psf_science.fwhm * setting.pixel_scale,
                "template_seeing_arcsec": c.psf_template.fwhm * setting.pixel_scale,
                "template_epochs": c.epochs,
                "registration_error_px": float(np.hypot(*c.registration_error)),
                "flux_scale_error": c.flux_scale_error,
                "details": json.dumps(scene.details, sort_keys=True),
            }
        )
    out["rows"] = rows
    return out


def _chunks(n: int, seed: int, setting: str, setting_index: int, stamp_size: int) -> list[_Chunk]:
    plan = family_plan(n, seed, setting_index)
    return [
        _Chunk(setting, setting_index, seed, start, tuple(plan[start : start + CHUNK]), stamp_size)
        for start in range(0, n, CHUNK)
    ]


def _split(n: int, settings: Sequence[str]) -> dict[str, int]:
    base, extra = divmod(n, len(settings))
    return {name: base + (i < extra) for i, name in enumerate(settings)}


def _write_setting(folder: Path, setting: str, parts: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    from astropy.table import Table

    rows = [row for part in parts for row in part["rows"]]
    table = Table(rows=rows)
    stamps = LabelledStamps(
        diff=np.concatenate([p["diff"] for p in parts]),
        srch=np.concatenate([p["srch"] for p in parts]),
        tmpl=np.concatenate([p["tmpl"] for p in parts]),
        label=table["label"],
        id=table["id"],
        family=table["family"],
        mag=table["mag"],
        snr=table["snr"],
        meta={
            "generator": GENERATOR_VERSION,
            "rbnodia": __version__,
            "setting": setting,
            "seed": seed,
            "label_convention": "0 = real, 1 = bogus (DES autoscan); variable_star is real (Rubin)",
            "mag": "real: magnitude of the difference flux; bogus: NaN",
            "snr": "detection significance (top-hat aperture sum / its robust noise)",
        },
    )
    stamps.save(folder / f"stamps_{setting}.npz")
    table.write(folder / f"truth_{setting}.ecsv", format="ascii.ecsv")
    attempts = np.asarray(table["attempts"])
    families = np.asarray(table["family"])
    return {
        "n": len(stamps),
        **{k: v for k, v in stamps.summary().items() if k in ("n_real", "n_bogus", "families")},
        "scenes_per_stamp": {
            name: round(float(attempts[families == name].mean()), 3)
            for name in FAMILIES
            if (families == name).any()
        },
    }


def make_stress_set(
    n: int,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    settings: Sequence[str] | None = None,
    stamp_size: int = 51,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate a stress set of ``n`` stamps, split evenly over ``settings``.

    Parameters
    ----------
    n : `int`
        Number of stamps (at least one per setting).
    out_dir : path-like
        Folder to create; must not exist.
    seed : `int`
        Master seed; the same seed gives identical arrays.
    settings : sequence of `str`, optional
        Names in `rbnodia.stresstest.SETTINGS` (default: all).
    stamp_size : `int`
        Odd stamp side, at most the patch size.
    workers : `int`
        Processes (1: in this process).
    progress : `bool`
        Show a tqdm bar (log lines are written regardless).

    Returns
    -------
    summary : `dict`
        What ``summary.json`` holds.
    """
    out_dir = Path(out_dir)
    settings = list(SETTINGS) if settings is None else list(settings)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; remove it or choose another folder.")
    for name in settings:
        get_setting(name)
    if n < len(settings) or stamp_size % 2 == 0 or not 1 <= stamp_size <= PATCH_SIZE:
        raise ValueError(f"Need n >= {len(settings)} and an odd stamp size <= {PATCH_SIZE}.")
    counts = _split(n, settings)
    jobs = [
        c
        for i, name in enumerate(settings)
        for c in _chunks(counts[name], seed, name, list(SETTINGS).index(name), stamp_size)
    ]
    _LOG.info("Generating %d stress-test stamps (%s) with seed %d on %d worker(s).", n, counts, seed, workers)
    bar = Progress(n, "stress stamps", _LOG, progress)
    results: list[dict[str, Any]] = []
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for part in pool.map(_make_chunk, jobs):
                results.append(part)
                bar.update(len(part["rows"]))
    else:
        for job in jobs:
            results.append(_make_chunk(job))
            bar.update(len(job.families))
    seconds = bar.close()
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    summary: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "rbnodia": __version__,
        "n": n,
        "seed": seed,
        "settings": list(settings),
        "stamp_size": stamp_size,
        "patch_size": PATCH_SIZE,
        "families": {
            name: {"label": f.label, "weight": f.weight, "description": f.description}
            for name, f in FAMILIES.items()
        },
        "seconds": round(seconds, 2),
        "stamps_per_second": round(n / max(seconds, 1e-9), 2),
        "workers": workers,
        "per_setting": {},
    }
    for name in settings:
        parts = [r for r, job in zip(results, jobs) if job.setting == name]
        summary["per_setting"][name] = _write_setting(partial, name, parts, seed)
    (partial / "summary.json").write_text(json.dumps(summary, indent=2))
    os.replace(partial, out_dir)
    _LOG.info("Wrote %d stamps to %s in %.1f s (%.1f stamps/s).", n, out_dir, seconds, n / max(seconds, 1e-9))
    return summary


def load_stress_set(folder: str | os.PathLike) -> tuple[LabelledStamps, Any, dict[str, Any]]:
    """Read a stress set: the stamps, the truth table (rows aligned) and the
    summary.

    Parameters
    ----------
    folder : `str` or `os.PathLike`
        The stress set's folder.

    Returns
    -------
    stamps : `rbnodia.core.LabelledStamps`
        The stamps.
    truth : `astropy.table.Table`
        The truth table, rows aligned with the stamps.
    summary : `dict` [`str`, `object`]
        The summary written with the set.
    """
    from astropy.table import Table, vstack

    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{folder} holds no stress set (no summary.json).")
    summary = json.loads(summary_path.read_text())
    stamps = [LabelledStamps.load(folder / f"stamps_{name}.npz") for name in summary["settings"]]
    tables = [Table.read(folder / f"truth_{name}.ecsv", format="ascii.ecsv") for name in summary["settings"]]
    joined = stamps[0] if len(stamps) == 1 else LabelledStamps.concatenate(stamps)
    truth = vstack(tables)
    if not np.array_equal(np.asarray(truth["id"]), joined.id):
        raise ValueError(f"Truth tables in {folder} do not match the stamps.")
    return joined, truth, summary


def ensure_stress_set(
    folder: str | os.PathLike,
    n: int,
    *,
    seed: int,
    settings: Sequence[str] | None = None,
    workers: int = 1,
    progress: bool = True,
    regenerate: bool = False,
) -> tuple[LabelledStamps, Any, dict[str, Any]]:
    """Reuse the stress set in ``folder`` if it was made with the same
    recipe, ``n``, ``seed`` and settings; otherwise make it.

    Parameters
    ----------
    folder : `str` or `os.PathLike`
        The stress set's folder.
    n : `int`
        Stamps.
    seed : `int`
        Seed of the set.
    settings : `~collections.abc.Sequence` [`str`], optional
        Observing settings; default all.
    workers : `int`, optional
        Processes.
    progress : `bool`, optional
        Show progress bars.
    regenerate : `bool`, optional
        Remake a set made with another recipe.

    Returns
    -------
    stress_set : `tuple`
        ``(stamps, truth, summary)``, as `load_stress_set` returns them.

    Raises
    ------
    FileExistsError
        If ``folder`` holds a different stress set and ``regenerate`` is
        False.
    """
    folder = Path(folder)
    settings = list(SETTINGS) if settings is None else list(settings)
    if folder.exists():
        summary_path = folder / "summary.json"
        stored = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        wanted = {"generator": GENERATOR_VERSION, "n": n, "seed": seed, "settings": list(settings)}
        if all(stored.get(key) == value for key, value in wanted.items()):
            _LOG.info("Reusing the stress set in %s.", folder)
            return load_stress_set(folder)
        if not regenerate:
            found = {key: stored.get(key) for key in wanted}
            raise FileExistsError(
                f"{folder} holds a different stress set ({found}, wanted {wanted}); "
                "use another --out or --regenerate."
            )
        shutil.rmtree(folder)
    make_stress_set(n, folder, seed=seed, settings=settings, workers=workers, progress=progress)
    return load_stress_set(folder)
