"""Labelled stamp sets: the on-disk format for training and evaluation data.

A set holds raw (unscaled) ``diff``, ``srch`` and ``tmpl`` stamps with their
labels, so any scaling or layout can be applied later.  Files are ``.npz``
archives (one "shard"); large sets are folders of shards.

Labels use the DES autoscan convention: ``0 = real``, ``1 = bogus``.
"""

from __future__ import annotations

__all__ = ["BOGUS", "REAL", "LabelledStamps", "cut_labelled_stamps"]

import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .scaling import SCALING_VERSION

REAL = 0
"""Label of a real astrophysical transient (DES convention)."""
BOGUS = 1
"""Label of a bogus detection (artifact, subtraction residual, noise)."""

_ARRAYS = ("diff", "srch", "tmpl", "label", "id", "family", "mag", "snr")


@dataclass
class LabelledStamps:
    """Raw stamps with labels and per-stamp truth.

    Attributes
    ----------
    diff, srch, tmpl : `numpy.ndarray`
        ``(n, size, size)`` float32 raw stamps (NaN where unusable).
    label : `numpy.ndarray`
        ``(n,)`` int8, 0 real / 1 bogus.
    id : `numpy.ndarray`
        ``(n,)`` int64 detection ids.
    family : `numpy.ndarray`
        ``(n,)`` str: what made the detection (e.g. ``sn_hosted``,
        ``dipole``, ``cosmic_ray``).
    mag : `numpy.ndarray`
        ``(n,)`` float32 injected magnitude (NaN for bogus).
    snr : `numpy.ndarray`
        ``(n,)`` float32 detection signal-to-noise.
    meta : `dict`
        Provenance (simulator, preset, seeds, source files ...).
    """

    diff: np.ndarray
    srch: np.ndarray
    tmpl: np.ndarray
    label: np.ndarray
    id: np.ndarray
    family: np.ndarray
    mag: np.ndarray
    snr: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked before the casts, which would turn a label of 0.7 into 0 or 257 into 1.
        label, ids = np.asarray(self.label), np.asarray(self.id)
        if label.size and not np.isin(label, (REAL, BOGUS)).all():
            raise ValueError("Labels must be 0 (real) or 1 (bogus).")
        if ids.size and ids.dtype.kind not in "iu":
            raise ValueError(f"Ids must be integers, got dtype {ids.dtype}.")
        self.diff = np.asarray(self.diff, dtype=np.float32)
        self.srch = np.asarray(self.srch, dtype=np.float32)
        self.tmpl = np.asarray(self.tmpl, dtype=np.float32)
        self.label = np.asarray(self.label, dtype=np.int8)
        self.id = np.asarray(self.id, dtype=np.int64)
        self.family = np.asarray(self.family, dtype=str)
        self.mag = np.asarray(self.mag, dtype=np.float32)
        self.snr = np.asarray(self.snr, dtype=np.float32)
        n = len(self.label)
        for name in _ARRAYS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"Column {name!r} has {len(getattr(self, name))} rows, expected {n}.")
        if self.diff.ndim != 3 or self.diff.shape != self.srch.shape or self.diff.shape != self.tmpl.shape:
            raise ValueError(
                "Stamps must be (n, size, size) and alike: "
                f"{self.diff.shape}, {self.srch.shape}, {self.tmpl.shape}."
            )

    def __len__(self) -> int:
        return len(self.label)

    @property
    def stamp_size(self) -> int:
        """Stamp size in pixels."""
        return int(self.diff.shape[1])

    def subset(self, index: np.ndarray | slice) -> LabelledStamps:
        """Return the rows selected by a boolean mask, index array or slice.

        Parameters
        ----------
        index : `numpy.ndarray` or `slice`
            The selection.

        Returns
        -------
        stamps : `LabelledStamps`
            The selected rows, with a copy of ``meta``.
        """
        return LabelledStamps(**{name: getattr(self, name)[index] for name in _ARRAYS}, meta=dict(self.meta))

    @classmethod
    def concatenate(cls, parts: Sequence[LabelledStamps]) -> LabelledStamps:
        """Join sets; ``meta`` keeps the first part's and lists all parts'.

        Parameters
        ----------
        parts : `~collections.abc.Sequence` [`LabelledStamps`]
            The sets, in order.

        Returns
        -------
        stamps : `LabelledStamps`
            All rows.
        """
        if not parts:
            raise ValueError("Nothing to concatenate.")
        meta = dict(parts[0].meta)
        meta["parts"] = [p.meta for p in parts]
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS}, meta=meta)

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` shard atomically.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            The file; ``.npz`` is appended if missing.

        Returns
        -------
        path : `pathlib.Path`
            The file written.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        tmp = path.with_name(path.stem + ".partial.npz")
        np.savez(tmp, **{name: getattr(self, name) for name in _ARRAYS}, meta=json.dumps(self.meta))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, paths: str | os.PathLike | Iterable[str | os.PathLike]) -> LabelledStamps:
        """Read one shard, a folder of shards, or a list of either.

        Parameters
        ----------
        paths : `str` or `os.PathLike` or `~collections.abc.Iterable`
            A shard, a folder of ``.npz`` shards, or several of either.

        Returns
        -------
        stamps : `LabelledStamps`
            Every row, in file order.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        files: list[Path] = []
        for p in map(Path, paths):
            if p.is_dir():
                files.extend(sorted(f for f in p.glob("*.npz") if not f.name.endswith(".partial.npz")))
            elif p.exists():
                files.append(p)
            else:
                raise FileNotFoundError(f"No stamp file or folder {p}.")
        if not files:
            raise FileNotFoundError(f"No .npz stamp files in {[str(p) for p in paths]}.")
        parts = [cls._load_one(f) for f in files]
        return parts[0] if len(parts) == 1 else cls.concatenate(parts)

    @classmethod
    def _load_one(cls, path: Path) -> LabelledStamps:
        """One ``.npz`` shard; anything else is refused as not a labelled-stamps file."""
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a labelled-stamps file (not an .npz archive).")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [n for n in _ARRAYS if n not in data]
                if missing:
                    raise ValueError(f"{path} is not a labelled-stamps file (missing {missing}).")
                meta = json.loads(str(data["meta"])) if "meta" in data else {}
                arrays = {n: data[n] for n in _ARRAYS}
        except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a labelled-stamps file ({err}).") from err
        except ValueError as err:
            if "labelled-stamps" in str(err):
                raise
            raise ValueError(f"{path} is not a labelled-stamps file ({err}).") from err
        if not isinstance(meta, dict):
            raise ValueError(f"{path} is not a labelled-stamps file (its meta is not a JSON object).")
        meta.setdefault("source", str(path))
        try:
            return cls(**arrays, meta=meta)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def model_inputs(self, layout, stacking="horizontal", scaling=SCALING_VERSION):
        """Scale and stack the stamps for a network.

        Parameters
        ----------
        layout : `~rbnodia.core.Layout` or `str`
            Which segments.
        stacking : `~rbnodia.core.Stacking` or `str`, optional
            Side by side or as channels.
        scaling : `~rbnodia.core.scaling.Scaling` or `str`, optional
            The scaling recipe (the model's); the paper's by default.

        Returns
        -------
        inputs : `numpy.ndarray`
            ``(n,) + input_shape`` float32 network inputs.
        flags : `numpy.ndarray`
            Per-stamp scaling flags (`rbnodia.core.flags`).
        """
        from .layouts import Layout, stack_segments
        from .preprocess import scale_cutouts
        from .stamps import Cutouts

        layout = Layout(layout)
        cutouts = {}
        for name in layout.segments:
            pixels = getattr(self, name)
            usable = np.isfinite(pixels)
            cutouts[name] = Cutouts(pixels=pixels, usable=usable, flags=np.zeros(len(self), dtype=np.int32))
        scaled, flags = scale_cutouts(cutouts, scaling=scaling)
        return stack_segments(scaled, layout, stacking), flags

    def summary(self) -> dict[str, Any]:
        """Count stamps per label and family, for metadata and logs.

        Returns
        -------
        summary : `dict` [`str`, `object`]
            ``n``, ``n_real``, ``n_bogus``, ``stamp_size`` and ``families``
            (count per family).
        """
        families, counts = np.unique(self.family, return_counts=True)
        return {
            "n": len(self),
            "n_real": int((self.label == REAL).sum()),
            "n_bogus": int((self.label == BOGUS).sum()),
            "stamp_size": self.stamp_size if len(self) else None,
            "families": {str(f): int(c) for f, c in zip(families, counts)},
        }


def cut_labelled_stamps(
    images: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    ids: np.ndarray,
    labels: np.ndarray,
    family: np.ndarray | None = None,
    mag: np.ndarray | None = None,
    snr: np.ndarray | None = None,
    size: int = 51,
    meta: dict[str, Any] | None = None,
) -> LabelledStamps:
    """Cut raw ``diff``/``srch``/``tmpl`` stamps at labelled positions.

    Parameters
    ----------
    images : `~collections.abc.Mapping` [`str`, `~rbnodia.core.PixelImage`]
        Aligned images keyed ``diff``, ``srch`` and ``tmpl``.
    x, y : `numpy.ndarray`
        Positions in pixel coordinates.
    ids, labels : `numpy.ndarray`
        Detection ids and labels (0 real, 1 bogus).
    family, mag, snr : `numpy.ndarray`, optional
        Per-detection truth; defaults ``"unknown"``, NaN, NaN.
    size : `int`
        Stamp size (odd).
    meta : `dict`, optional
        Provenance stored with the set.

    Returns
    -------
    stamps : `LabelledStamps`
        Raw stamps (NaN where unusable: off the image, non-finite, or bad).
    """
    from .stamps import cut_stamps

    n = len(ids)
    stamps = {}
    for name in ("diff", "srch", "tmpl"):
        image = images[name]
        stamps[name] = cut_stamps(image.array, x, y, size, bad=image.bad, origin=image.origin).pixels
    return LabelledStamps(
        **stamps,
        label=labels,
        id=ids,
        family=np.full(n, "unknown") if family is None else family,
        mag=np.full(n, np.nan) if mag is None else mag,
        snr=np.full(n, np.nan) if snr is None else snr,
        meta=dict(meta or {}),
    )
