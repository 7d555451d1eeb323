"""Fast labelled-stamp training sets.

Instead of full detectors, many small patches (``patch_size`` squared
pixels, default 320) are simulated with the same physics as
`~rbnodia.sim.simulate_detector`: static sky with host galaxies and stars,
a deep template on its own grid warped onto the science grid, an
Alard-Lupton kernel fitted on the whole patch, detection on the difference
and truth labels.  Every detection whose stamp lies fully inside its patch
gives one ``(diff, srch, tmpl)`` triplet.

Patches see each template ``visits_per_patch`` (8) times (different epochs,
seeing, noise, transients and artifacts), as a survey revisits a field;
this also lets a worker reuse the rendered template.

To get enough bogus detections from small patches, artifact rates are
boosted over a real detector's (`TRAINING_BOOST`); each stamp still looks
like the real thing, only the family mix is enriched.  Classes are balanced
by sampling: detections are taken in patch order until every shard has its
quota of real and bogus stamps, so the result depends only on ``seed``
(not on the number of workers).
"""

from __future__ import annotations

__all__ = ["make_training_set", "simulate_patch_stamps", "TRAINING_BOOST", "training_options"]

import json
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.stampset import BOGUS, REAL, LabelledStamps
from .presets import Preset, get_preset
from .repo import DEFAULT_SEED

_log = logging.getLogger(__name__)

TRAINING_BOOST: dict[str, tuple[float, float]] = {
    "star_density": (1.0, 3.0),
    "cosmic_ray_rate": (5.0, 40.0),
    "hot_pixels": (0.0, 20.0),
    "bad_columns": (0.0, 15.0),
    "astrometric_error_arcsec": (0.5, 3.0),
    "variable_star_fraction": (1.0, 5.0),
}
"""Per-patch ranges of multipliers of the preset rates (drawn log-uniformly,
or uniformly when the range starts at 0): each training patch is a
different "troubled detector", so that small patches yield enough bogus
detections of every family."""

TRAINING_FIXED: dict[str, float] = {
    "satellite_probability": 0.15,
    "template_edge_probability": 0.2,
}
"""Per-patch probabilities of the rare, large artifacts."""

BOGUS_PER_PATCH = 9.0
"""Bogus detections (stamps fully inside) per 256 x 256 training patch that
the injections are scaled to: the mean number of injections is
``BOGUS_PER_PATCH (patch / 256)^2 real_fraction / (1 - real_fraction) / 0.8``
(0.8: fraction of injections detected with a complete stamp), which keeps
the discarded surplus of either class small."""


def training_options(
    preset: Preset, patch_size: int, real_fraction: float, rng: np.random.Generator
) -> dict[str, Any]:
    """Preset overrides and run options of one training patch."""
    opts: dict[str, Any] = {}
    for name, (lo, hi) in TRAINING_BOOST.items():
        factor = rng.uniform(lo, hi) if lo <= 0 else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        opts[name] = getattr(preset, name) * factor
    opts["variable_star_fraction"] = min(opts["variable_star_fraction"], 1.0)
    opts["cosmic_ray_repair_fraction"] = float(rng.uniform(0.3, 0.9))
    opts.update(TRAINING_FIXED)
    area = (patch_size / 256.0) ** 2
    opts["bright_stars"] = float(rng.uniform(0.0, 16.0)) * area
    opts["bright_galaxies"] = float(rng.uniform(0.0, 3.0)) * area
    opts["image_size"] = (patch_size, patch_size)
    opts["kernel_candidates"] = "psf"
    opts["max_stamp_half"] = patch_size // 2
    opts["dither_arcsec"] = min(preset.dither_arcsec, 1.0)
    area = (patch_size / 256.0) ** 2
    ratio = real_fraction / max(1.0 - real_fraction, 1e-3)
    mean = float(np.clip(BOGUS_PER_PATCH * area * ratio / 0.8, 0.0, 14.0 * area))
    opts["n_transients"] = int(rng.poisson(mean))
    return opts


def simulate_patch_stamps(
    index: int,
    *,
    preset: str | Preset,
    seed: int,
    patch_size: int = 320,
    stamp_size: int = 51,
    real_fraction: float = 0.5,
    visits_per_patch: int = 8,
    **options,
) -> LabelledStamps:
    """Labelled stamps of one training patch (deterministic in ``seed`` and
    ``index``)."""
    from .detector import simulate_detector
    from .stamps import labelled_stamps_from_detector

    preset = get_preset(preset)
    # Conditions that shape the static sky and template are per patch sky
    # (shared by its visits), the rest per visit.
    sky_rng = np.random.default_rng([seed, index // visits_per_patch, 76])
    opts = training_options(preset, patch_size, real_fraction, np.random.default_rng([seed, index, 77]))
    sky_opts = training_options(preset, patch_size, real_fraction, sky_rng)
    for name in (
        "star_density",
        "astrometric_error_arcsec",
        "variable_star_fraction",
        "hot_pixels",
        "bad_columns",
        "bright_stars",
        "bright_galaxies",
    ):
        opts[name] = sky_opts[name]
    opts.update(options)
    half = stamp_size // 2
    sim = simulate_detector(
        preset,
        visit=index + 1,
        detector=index // visits_per_patch,
        seed=seed,
        inject_margin=half + 2,
        **opts,
    )
    x = np.asarray(sim.detections["x"])
    y = np.asarray(sim.detections["y"])
    inside = (x >= half) & (x <= patch_size - 1 - half) & (y >= half) & (y <= patch_size - 1 - half)
    stamps = labelled_stamps_from_detector(sim, stamp_size).subset(inside)
    stamps.id = np.int64(index) * 1000 + np.arange(len(stamps), dtype=np.int64)
    return stamps


def _worker_init() -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def _patch_job(args) -> tuple[int, LabelledStamps]:
    index, kwargs = args
    return index, simulate_patch_stamps(index, **kwargs)


def _quotas(n: int, shard_size: int, real_fraction: float) -> list[tuple[int, int]]:
    """(n_real, n_bogus) per shard, adding up to the requested totals."""
    quotas = []
    done = 0
    real_done = 0
    while done < n:
        size = min(shard_size, n - done)
        real_to = int(round((done + size) * real_fraction))
        quotas.append((real_to - real_done, size - (real_to - real_done)))
        done += size
        real_done = real_to
    return quotas


def make_training_set(
    n: int,
    out_dir: str | Path,
    *,
    preset: str | Preset = "des",
    seed: int = DEFAULT_SEED,
    real_fraction: float = 0.5,
    stamp_size: int = 51,
    workers: int = 2,
    progress: bool = True,
    patch_size: int = 320,
    visits_per_patch: int = 8,
    shard_size: int = 10_000,
    **options,
) -> dict[str, Any]:
    """Write ``n`` labelled stamps as shards ``stamps_00000.npz ...``.

    Parameters
    ----------
    n : `int`
        Number of stamps.
    out_dir : `str` or `pathlib.Path`
        Output folder (created; existing shards are overwritten).
    preset : `str` or `~rbnodia.sim.presets.Preset`
    seed : `int`
        The same seed gives identical arrays, whatever ``workers``.
    real_fraction : `float`
        Fraction of real (label 0) stamps.
    stamp_size : `int`
        Odd stamp width (51 as in the paper).
    workers : `int`
        Processes (1 runs in this process).
    progress : `bool`
        Show a progress bar.
    patch_size : `int`
        Side of the simulated sub-images.
    visits_per_patch : `int`
        Epochs per patch sky/template.
    shard_size : `int`
        Stamps per shard file.
    **options
        Extra simulator options for every patch.

    Returns
    -------
    summary : `dict`
        ``out_dir``, ``shards``, ``n``, ``n_real``, ``n_bogus``,
        ``families``, ``n_patches``, ``seconds``, ``stamps_per_second``.
    """
    from tqdm import tqdm

    if n <= 0:
        raise ValueError(f"n must be positive, got {n}.")
    if not 0.0 <= real_fraction <= 1.0:
        raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}.")
    preset = get_preset(preset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("stamps_*.npz"):
        old.unlink()
    quotas = _quotas(n, shard_size, real_fraction)
    need_real = sum(q[0] for q in quotas)
    need_bogus = sum(q[1] for q in quotas)
    kwargs = dict(
        preset=preset,
        seed=seed,
        patch_size=patch_size,
        stamp_size=stamp_size,
        real_fraction=real_fraction,
        visits_per_patch=visits_per_patch,
        **options,
    )
    t0 = time.monotonic()
    pools: dict[int, list[LabelledStamps]] = {REAL: [], BOGUS: []}
    pooled = {REAL: 0, BOGUS: 0}
    taken = {REAL: 0, BOGUS: 0}
    shards: list[str] = []
    families: dict[str, int] = {}
    n_patches = 0
    last_log = time.monotonic()
    meta_base = {
        "simulator": "rbnodia.sim.make_training_set",
        "preset": preset.name,
        "seed": seed,
        "real_fraction": real_fraction,
        "stamp_size": stamp_size,
        "patch_size": patch_size,
        "visits_per_patch": visits_per_patch,
        "boost": TRAINING_BOOST,
        "label_convention": "0 = real, 1 = bogus (DES)",
    }

    def jobs():
        i = 0
        while True:
            yield i, kwargs
            i += 1

    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(workers, initializer=_worker_init)
        results = pool.imap(_patch_job, jobs(), chunksize=visits_per_patch)
    else:
        pool = None
        _worker_init()
        results = map(_patch_job, jobs())

    bar = tqdm(total=n, desc="stamps", unit="stamp", disable=not progress)
    try:
        for index, stamps in results:
            n_patches += 1
            for cls in (REAL, BOGUS):
                part = stamps.subset(stamps.label == cls)
                still = (need_real if cls == REAL else need_bogus) - taken[cls] - pooled[cls]
                if still > 0 and len(part):
                    part = part.subset(slice(0, still))
                    pools[cls].append(part)
                    pooled[cls] += len(part)
            # Emit every shard whose quotas are met.
            while len(shards) < len(quotas):
                q_real, q_bogus = quotas[len(shards)]
                if pooled[REAL] < q_real or pooled[BOGUS] < q_bogus:
                    break
                parts = []
                for cls, q in ((REAL, q_real), (BOGUS, q_bogus)):
                    joined = LabelledStamps.concatenate(pools[cls]) if pools[cls] else None
                    if q:
                        parts.append(joined.subset(slice(0, q)))
                    rest = joined.subset(slice(q, None)) if joined is not None else None
                    pools[cls] = [rest] if rest is not None and len(rest) else []
                    pooled[cls] -= q
                    taken[cls] += q
                shard = LabelledStamps.concatenate(parts)
                order = np.random.default_rng([seed, len(shards), 99]).permutation(len(shard))
                shard = shard.subset(order)
                shard.meta = dict(meta_base, shard=len(shards), n_shards=len(quotas))
                path = shard.save(out / f"stamps_{len(shards):05d}.npz")
                shards.append(str(path))
                for fam, count in zip(*np.unique(shard.family, return_counts=True)):
                    families[str(fam)] = families.get(str(fam), 0) + int(count)
                bar.update(len(shard))
            if len(shards) == len(quotas):
                break
            if time.monotonic() - last_log > 30:
                _log.info(
                    "Training set: %d patches, %d/%d stamps written, pooled %d real %d bogus.",
                    n_patches,
                    taken[REAL] + taken[BOGUS],
                    n,
                    pooled[REAL],
                    pooled[BOGUS],
                )
                last_log = time.monotonic()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    seconds = time.monotonic() - t0
    summary = {
        "out_dir": str(out),
        "shards": shards,
        "n": taken[REAL] + taken[BOGUS],
        "n_real": taken[REAL],
        "n_bogus": taken[BOGUS],
        "families": dict(sorted(families.items())),
        "n_patches": n_patches,
        "seconds": round(seconds, 1),
        "stamps_per_second": round((taken[REAL] + taken[BOGUS]) / max(seconds, 1e-9), 1),
        "preset": preset.name,
        "seed": seed,
        "workers": workers,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _log.info(
        "Training set %s: %d stamps (%d real, %d bogus) from %d patches in %.0f s (%.1f stamps/s).",
        out,
        summary["n"],
        summary["n_real"],
        summary["n_bogus"],
        n_patches,
        seconds,
        summary["stamps_per_second"],
    )
    return summary
