"""Labelled-stamp training sets, written as resumable shards.

``make_training_set`` simulates many small patches (`rbnodia.sim.patches`)
on ``workers`` processes and writes shards ``stamps_00000.npz ...`` of
``shard_size`` stamps.  Every shard is filled from its own stream of
patches (patch indices ``shard * PATCH_STRIDE + j``), with its own quotas
of real and bogus stamps and of each bogus family group
(`rbnodia.sim.composition`), so:

* the result depends only on ``seed`` and the settings, not on ``workers``;
* an interrupted run resumes: shards already written with the same
  settings are kept, the others are (re)written;
* a shard is written atomically (no half-written file).

``make_training_splits`` writes training, validation and test sets for
several presets with distinct seeds.
"""

from __future__ import annotations

__all__ = ["PATCH_STRIDE", "SPLITS", "make_training_set", "make_training_splits", "simulate_patch_stamps"]

import collections
import json
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.stampset import LabelledStamps
from .composition import BOGUS_COMPOSITION, ShardAssembler, bogus_quotas, shard_quotas
from .patches import TRAINING_BOOST, simulate_patch_stamps
from .presets import Preset, get_preset
from .randomize import DOMAIN_RANDOMIZATION
from .repo import DEFAULT_SEED

_log = logging.getLogger(__name__)

PATCH_STRIDE = 1_000_000
"""Patch indices of shard ``k`` start at ``k * PATCH_STRIDE``."""

LOG_EVERY_S = 30.0


def _worker_init() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _patch_job(index: int, kwargs: dict) -> LabelledStamps:
    return simulate_patch_stamps(index, **kwargs)


class _Stream:
    """Patches of one shard, in order, computed ``lookahead`` ahead on a
    pool (or here, without one).
    """

    def __init__(self, pool, start: int, kwargs: dict, lookahead: int):
        self.pool, self.kwargs, self.lookahead = pool, kwargs, lookahead
        self.next_index = start
        self.pending: collections.deque = collections.deque()

    def _submit(self) -> None:
        while self.pool is not None and len(self.pending) < self.lookahead:
            self.pending.append(self.pool.apply_async(_patch_job, (self.next_index, self.kwargs)))
            self.next_index += 1

    def get(self, heartbeat) -> LabelledStamps:
        if self.pool is None:
            self.next_index += 1
            return _patch_job(self.next_index - 1, self.kwargs)
        self._submit()
        result = self.pending.popleft()
        while not result.ready():
            result.wait(5.0)
            heartbeat()
        return result.get()

    def drain(self) -> None:
        """Wait for the patches computed ahead (their stamps are not used)."""
        for result in self.pending:
            result.wait()
        self.pending.clear()


def _settings(preset: Preset, **kwargs) -> dict[str, Any]:
    """Collect what a shard's content depends on (stored in, and compared
    with, its metadata).
    """
    return json.loads(
        json.dumps({"preset": preset.name, "preset_fields": repr(preset), **kwargs}, default=str)
    )


def _existing(path: Path, settings: dict, size: int) -> LabelledStamps | None:
    """Return the shard at ``path`` if it was written with ``settings`` and
    has ``size`` stamps; raise if it was written with other settings.
    """
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
        if meta.get("settings") != settings:
            raise ValueError(
                f"{path} was written with other settings; use overwrite=True (--overwrite) "
                "to replace the set."
            )
        if len(data["label"]) != size:
            return None
        return LabelledStamps(
            diff=np.zeros((size, 1, 1)),
            srch=np.zeros((size, 1, 1)),
            tmpl=np.zeros((size, 1, 1)),
            label=data["label"],
            id=data["id"],
            family=data["family"],
            mag=data["mag"],
            snr=data["snr"],
        )


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
    domain_randomization: bool = True,
    composition: dict[str, float] | str | None = "default",
    overwrite: bool = False,
    **options,
) -> dict[str, Any]:
    """Write ``n`` labelled stamps as shards ``stamps_00000.npz ...``.

    Parameters
    ----------
    n : `int`
        Number of stamps.
    out_dir : `str` or `pathlib.Path`
        Output folder (created).  Shards already there with the same
        settings are kept (the run resumes); shards with other settings
        raise unless ``overwrite``.
    preset : `str` or `~rbnodia.sim.presets.Preset`
        ``"des"``, ``"lsst"`` or a preset.
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
    domain_randomization : `bool`
        Draw nuisance parameters over wide ranges (`rbnodia.sim.randomize`).
    composition : `dict`, ``"default"`` or `None`
        Share of each family group in the bogus class
        (`~rbnodia.sim.composition.BOGUS_COMPOSITION` by default); `None`
        takes bogus stamps as the patches produce them.
    overwrite : `bool`
        Delete existing shards first.
    **options
        Extra simulator options for every patch.

    Returns
    -------
    summary : `dict`
        ``out_dir``, ``shards``, ``n``, ``n_real``, ``n_bogus``,
        ``families``, ``n_patches``, ``shards_kept``, ``borrowed``,
        ``excluded`` (stamps of `~rbnodia.sim.composition.TRAINING_EXCLUDED`
        families offered and left out, new shards only), ``seconds``,
        ``stamps_per_second`` (new stamps only).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}.")
    if not 0.0 <= real_fraction <= 1.0:
        raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}.")
    preset = get_preset(preset)
    if composition == "default":
        composition = dict(BOGUS_COMPOSITION)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in out.glob("stamps_*.npz"):
            old.unlink()
    kwargs = dict(
        preset=preset,
        seed=seed,
        patch_size=patch_size,
        stamp_size=stamp_size,
        real_fraction=real_fraction,
        visits_per_patch=visits_per_patch,
        domain_randomization=domain_randomization,
        **options,
    )
    settings = _settings(
        preset,
        **{k: v for k, v in kwargs.items() if k != "preset"},
        shard_size=shard_size,
        composition=composition,
    )
    writer = _ShardWriter(out, n, shard_size, real_fraction, preset, composition, settings, seed)
    pool = None
    if workers > 1:
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)
    else:
        _worker_init()
    try:
        writer.run(pool, kwargs, lookahead=max(workers, 1) + 1, progress=progress)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    summary = writer.summary(workers=workers)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _log.info(
        "Training set %s: %d stamps (%d real, %d bogus), %d shards kept, %d patches in %.0f s "
        "(%.1f new stamps/s).",
        out,
        summary["n"],
        summary["n_real"],
        summary["n_bogus"],
        summary["shards_kept"],
        summary["n_patches"],
        summary["seconds"],
        summary["stamps_per_second"],
    )
    return summary


class _ShardWriter:
    """Fill and write the shards of one training set, in order."""

    def __init__(self, out, n, shard_size, real_fraction, preset, composition, settings, seed):
        self.out, self.n, self.preset, self.seed = out, n, preset, seed
        self.composition, self.settings = composition, settings
        self.quotas = shard_quotas(n, shard_size, real_fraction)
        self.shards: list[str] = []
        self.families: collections.Counter = collections.Counter()
        self.labels: collections.Counter = collections.Counter()
        self.borrowed: dict[int, dict[str, int]] = {}
        self.excluded: dict[int, int] = {}
        self.kept = 0
        self.n_new = 0
        self.n_patches = 0
        self.t0 = time.monotonic()
        self.last_log = self.t0

    def _record(self, path: Path, shard: LabelledStamps) -> None:
        self.shards.append(str(path))
        self.families.update(str(f) for f in shard.family)
        self.labels.update(int(v) for v in shard.label)

    def _heartbeat(self, k: int, assembler: ShardAssembler | None = None) -> None:
        """Log a progress line if `LOG_EVERY_S` seconds have passed since the
        last.
        """
        if time.monotonic() - self.last_log < LOG_EVERY_S:
            return
        done = sum(self.labels.values())
        waiting = assembler.missing() if assembler is not None else {}
        _log.info(
            "Training set %s: shard %d of %d, %d of %d stamps written, %d patches; shard still needs %s.",
            self.out,
            k + 1,
            len(self.quotas),
            done,
            self.n,
            self.n_patches,
            waiting,
        )
        self.last_log = time.monotonic()

    def run(self, pool, kwargs: dict, *, lookahead: int, progress: bool) -> None:
        from tqdm import tqdm

        with tqdm(total=self.n, desc="stamps", unit="stamp", disable=not progress) as bar:
            for k, (q_real, q_bogus) in enumerate(self.quotas):
                path = self.out / f"stamps_{k:05d}.npz"
                kept = _existing(path, self.settings, q_real + q_bogus)
                if kept is not None:
                    self.kept += 1
                    self._record(path, kept)
                    bar.update(len(kept))
                    continue
                shard = self._fill(k, q_real, q_bogus, pool, kwargs, lookahead, bar)
                shard.meta = {
                    "simulator": "rbnodia.sim.make_training_set",
                    "preset": self.preset.name,
                    "seed": self.seed,
                    "shard": k,
                    "n_shards": len(self.quotas),
                    "label_convention": "0 = real, 1 = bogus (DES)",
                    "variable_star_label": int(self.preset.variable_star_label),
                    "borrowed": self.borrowed.get(k, {}),
                    "excluded": self.excluded.get(k, 0),
                    "settings": self.settings,
                }
                self._record(shard.save(path), shard)
                self.n_new += len(shard)

    def _fill(self, k, q_real, q_bogus, pool, kwargs, lookahead, bar) -> LabelledStamps:
        """Simulate patches of shard ``k`` until its quotas are met."""
        bogus = bogus_quotas(q_bogus, self.composition, self.preset.variable_star_label)
        assembler = ShardAssembler(q_real, bogus)
        stream = _Stream(pool, k * PATCH_STRIDE, kwargs, lookahead)
        shown = 0
        while not assembler.ready():
            if assembler.n_patches >= PATCH_STRIDE:
                raise RuntimeError(f"Shard {k} could not be filled: still missing {assembler.missing()}.")
            assembler.add(stream.get(lambda: self._heartbeat(k, assembler)))
            self.n_patches += 1
            filled = sum(assembler.count.values())
            bar.update(filled - shown)
            shown = filled
            self._heartbeat(k, assembler)
        stream.drain()
        shard, borrowed = assembler.shard(np.random.default_rng([self.seed, k, 99]))
        bar.update(len(shard) - shown)
        self.excluded[k] = assembler.excluded
        if borrowed:
            self.borrowed[k] = borrowed
            _log.info("Shard %d: %s stamps taken from other groups' surplus.", k, borrowed)
        return shard

    def summary(self, **extra) -> dict[str, Any]:
        seconds = time.monotonic() - self.t0
        return {
            "out_dir": str(self.out),
            "shards": self.shards,
            "n": sum(self.labels.values()),
            "n_real": self.labels.get(0, 0),
            "n_bogus": self.labels.get(1, 0),
            "families": dict(sorted(self.families.items())),
            "n_patches": self.n_patches,
            "shards_kept": self.kept,
            "borrowed": {str(k): v for k, v in self.borrowed.items()},
            "excluded": sum(self.excluded.values()),
            "seconds": round(seconds, 1),
            "stamps_per_second": round(self.n_new / max(seconds, 1e-9), 1),
            "preset": self.preset.name,
            "seed": self.seed,
            "composition": self.composition,
            "domain_randomization": DOMAIN_RANDOMIZATION if self.settings["domain_randomization"] else None,
            "boost": TRAINING_BOOST,
            **extra,
        }


SPLITS = ("train", "validation", "test")


def make_training_splits(
    out_dir: str | Path,
    *,
    n_train: int,
    n_validation: int,
    n_test: int,
    presets: tuple[str, ...] = ("des", "lsst"),
    seed: int = DEFAULT_SEED,
    **kwargs,
) -> dict[str, Any]:
    """Write training, validation and test sets for several presets, as
    ``out_dir/<split>/<preset>/stamps_*.npz``.

    Set ``s`` (0 train, 1 validation, 2 test) of the ``p``-th preset uses
    seed ``seed + 10 s + p``, so no two sets share a patch.  Every set is
    resumable (`make_training_set`).

    Parameters
    ----------
    out_dir : `str` or `pathlib.Path`
        Output folder; ``splits.json`` there holds the summary.
    n_train, n_validation, n_test : `int`
        Stamps per preset in each split (0 skips the split).
    presets : `tuple` [`str`, ...]
        Preset names.
    seed : `int`
        Master seed of the splits.
    **kwargs
        Passed to `make_training_set`.

    Returns
    -------
    summary : `dict`
        ``{split: {preset: summary of make_training_set}}`` (shard lists
        replaced by their number).
    """
    sizes = dict(zip(SPLITS, (n_train, n_validation, n_test), strict=True))
    out = Path(out_dir)
    result: dict[str, Any] = {}
    for s, split in enumerate(SPLITS):
        if sizes[split] <= 0:
            continue
        for p, name in enumerate(presets):
            _log.info("Writing the %s set of preset %s (%d stamps).", split, name, sizes[split])
            summary = make_training_set(
                sizes[split], out / split / name, preset=name, seed=seed + 10 * s + p, **kwargs
            )
            summary["shards"] = len(summary["shards"])
            result.setdefault(split, {})[name] = summary
    (out / "splits.json").write_text(json.dumps(result, indent=2, default=str))
    return result
