"""Readers for the real DES autoscan stamps (Goldstein et al. 2015), the data
set of Acero-Cuellar et al.

Layout on disk (``https://portal.nersc.gov/project/dessn/autoscan/``)::

    stamps*/.../<night YYYYMMDD>/<exposure folder>/diff<ID>.fits
                                                  /srch<ID>.fits
                                                  /temp<ID>.fits
    autoscan_features.3.csv

Each FITS file holds a 51 x 51 image in HDU 0.  The CSV starts with ``#``
comment lines, then a header line; its columns are ``ID``, ``OBJECT_TYPE``
(0 real = injected fake SN Ia, 1 bogus), ``BAND`` and 38 features.

Rows are handled one by one: a labelled ID whose three stamps are not all
present, readable, 2-d and of the expected size is skipped, and the skips are
counted per reason, logged, and kept in ``meta["skipped"]``; stamp files
without a label are counted too.  Nothing is dropped silently.

For the Butler, stamps are grouped by (visit, detector) derived from the
exposure folder name: DES SN folders are ``<exposure number><CCD as 3
digits>`` (e.g. ``470681007`` -> visit 470681, detector 7).  A folder name
that is not all digits (or has fewer than 4) gives visit 0 and detector 0.
The night folder (``YYYYMMDD``) sets the visit's date.  Pointing, exposure
time and sky region are not in the stamp files: visits are registered with
a 90 s exposure time and a small placeholder region (1 arcmin square at
RA = Dec = 0), stated in ``meta``.
"""

from __future__ import annotations

__all__ = [
    "AUTOSCAN_LABELS",
    "DECAM_FILTERS",
    "find_label_file",
    "ingest_autoscan_to_butler",
    "read_autoscan",
]

import csv
import datetime
import logging
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core.stampset import LabelledStamps

_log = logging.getLogger(__name__)

AUTOSCAN_LABELS = "autoscan_features.3.csv"
"""Name of the DES label/feature table."""

DECAM_FILTERS = {
    "g": "g DECam SDSS c0001 4720.0 1520.0",
    "r": "r DECam SDSS c0002 6415.0 1480.0",
    "i": "i DECam SDSS c0003 7835.0 1470.0",
    "z": "z DECam SDSS c0004 9260.0 1520.0",
    "Y": "Y DECam c0005 10095.0 1130.0",
}
"""DECam physical filters (obs_decam names) by band."""

_STAMP = re.compile(r"^(diff|srch|temp)(\d+)\.fits(\.gz|\.fz)?$", re.IGNORECASE)
_NIGHT = re.compile(r"^(19|20)\d{6}$")


def find_label_file(path: str | Path) -> Path:
    """Find the ``autoscan_features.3.csv`` of an autoscan folder.

    Parameters
    ----------
    path : `str` or `pathlib.Path`
        The label file itself, or a folder: the file is looked for in it,
        then in its parents, then anywhere below it.

    Returns
    -------
    label_file : `pathlib.Path`
        The label file.

    Raises
    ------
    FileNotFoundError
        Raised if there is none.
    """
    path = Path(path)
    if path.is_file():
        return path
    for base in [path, *path.parents]:
        candidate = base / AUTOSCAN_LABELS
        if candidate.exists():
            return candidate
    found = sorted(path.rglob(AUTOSCAN_LABELS))
    if found:
        return found[0]
    raise FileNotFoundError(f"No {AUTOSCAN_LABELS} in or above {path}.")


def _read_labels(path: Path) -> tuple[list[str], list[list[str]]]:
    header: list[str] | None = None
    rows: list[list[str]] = []
    with open(path, newline="") as f:
        for line in f:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            fields = next(csv.reader([stripped]))
            if header is None:
                header = [h.strip() for h in fields]
                continue
            rows.append([x.strip() for x in fields])
    if header is None:
        raise ValueError(f"{path} has no header line.")
    upper = [h.upper() for h in header]
    for needed in ("ID", "OBJECT_TYPE"):
        if needed not in upper:
            raise ValueError(f"{path} has no {needed} column (columns: {header[:6]} ...).")
    return upper, rows


def _whole_number(text: str) -> int:
    """Return the integer a CSV field holds (``"12"`` or ``"12.0"``);
    anything else, ``"0.7"``, ``"nan"`` and ``"inf"`` included, raises
    `ValueError` (or `OverflowError`).
    """
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def _folder_ids(exposure: str) -> tuple[int, int]:
    if exposure.isdigit() and len(exposure) >= 4:
        return int(exposure[:-3]), int(exposure[-3:])
    return 0, 0


def _index_stamps(root: Path) -> dict[int, dict[str, Any]]:
    index: dict[int, dict[str, Any]] = defaultdict(dict)
    for f in root.rglob("*"):
        m = _STAMP.match(f.name)
        if not m or not f.is_file():
            continue
        kind, sid = m.group(1).lower(), int(m.group(2))
        entry = index[sid]
        entry[kind] = f
        entry.setdefault("exposure", f.parent.name)
        night = f.parent.parent.name
        entry.setdefault("night", night if _NIGHT.match(night) else None)
    return index


def _read_stamp(path: Path, stamp_size: int | None) -> np.ndarray:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        data = hdul[0].data
        if data is None and len(hdul) > 1:
            data = hdul[1].data
    if data is None:
        raise ValueError("no image data")
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"not 2-d: {data.shape}")
    if stamp_size is not None and data.shape != (stamp_size, stamp_size):
        raise ValueError(f"shape {data.shape}")
    return data


def _read(path: str | Path, labels: str | Path | None, stamp_size: int | None, progress: bool = False):
    from tqdm import tqdm

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"No autoscan folder {root}.")
    label_file = Path(labels) if labels is not None else find_label_file(root)
    columns, rows = _read_labels(label_file)
    col = {name: i for i, name in enumerate(columns)}
    index = _index_stamps(root if root.is_dir() else root.parent)
    skipped: Counter = Counter()
    out: dict[str, list] = defaultdict(list)
    labelled = set()
    for row in tqdm(rows, desc="autoscan", unit="row", disable=not progress):
        try:
            sid = _whole_number(row[col["ID"]])
            label = _whole_number(row[col["OBJECT_TYPE"]])
        except (ValueError, OverflowError, IndexError):
            skipped["bad_csv_row"] += 1
            continue
        labelled.add(sid)
        if label not in (0, 1):
            skipped["bad_label"] += 1
            continue
        entry = index.get(sid)
        if entry is None:
            skipped["no_stamps"] += 1
            continue
        missing = [k for k in ("diff", "srch", "temp") if k not in entry]
        if missing:
            skipped["missing_" + "_".join(missing)] += 1
            continue
        try:
            diff = _read_stamp(entry["diff"], stamp_size)
            srch = _read_stamp(entry["srch"], stamp_size)
            tmpl = _read_stamp(entry["temp"], stamp_size)
        except Exception as err:  # astropy raises many types on corrupt files
            reason = "corrupt" if not isinstance(err, ValueError) else "bad_shape_or_data"
            skipped[reason] += 1
            _log.debug("Skipping autoscan ID %d: %s", sid, err)
            continue
        if not (diff.shape == srch.shape == tmpl.shape):
            skipped["mismatched_shapes"] += 1
            continue

        def value(name, default=np.nan):
            i = col.get(name)
            if i is None or i >= len(row):
                return default
            try:
                return float(row[i])
            except ValueError:
                return default

        band = row[col["BAND"]] if "BAND" in col and col["BAND"] < len(row) else ""
        visit, detector = _folder_ids(entry["exposure"])
        out["diff"].append(diff)
        out["srch"].append(srch)
        out["tmpl"].append(tmpl)
        out["label"].append(label)
        out["id"].append(sid)
        out["family"].append("des_fake" if label == 0 else "des_bogus")
        out["mag"].append(value("MAG"))
        out["snr"].append(value("SNR"))
        out["band"].append(band)
        out["visit"].append(visit)
        out["detector"].append(detector)
        out["night"].append(entry.get("night") or "")
    unlabelled = len(set(index) - labelled)
    if unlabelled:
        skipped["unlabelled_stamps"] += unlabelled
    if skipped:
        _log.warning(
            "Autoscan %s: read %d stamp triplets, skipped %s.",
            root,
            len(out["label"]),
            dict(sorted(skipped.items())),
        )
    else:
        _log.info("Autoscan %s: read %d stamp triplets.", root, len(out["label"]))
    return out, dict(skipped), label_file


def read_autoscan(
    path: str | Path, *, labels: str | Path | None = None, stamp_size: int | None = 51, progress: bool = False
) -> LabelledStamps:
    """Read DES autoscan stamps and labels.

    Parameters
    ----------
    path : `str` or `pathlib.Path`
        Folder holding the stamp tree (searched recursively) and, in it or a
        parent, ``autoscan_features.3.csv``.
    labels : `str` or `pathlib.Path`, optional
        The label CSV, if elsewhere.
    stamp_size : `int` or `None`
        Required stamp width (``None`` accepts any square size).
    progress : `bool`
        Show a progress bar.

    Returns
    -------
    stamps : `~rbnodia.core.LabelledStamps`
        Rows in CSV order; ``label`` 0 = real (fake SN Ia), 1 = bogus;
        ``family`` ``des_fake`` / ``des_bogus``; ``mag`` and ``snr`` from
        the ``MAG`` / ``SNR`` feature columns when present (else NaN);
        ``meta`` holds the source, per-row ``band``, ``visit``,
        ``detector`` and ``night``, and the ``skipped`` counts.

    Raises
    ------
    FileNotFoundError
        If the folder or the label file does not exist.
    ValueError
        If no stamp could be read.
    """
    out, skipped, label_file = _read(path, labels, stamp_size, progress)
    if not out["label"]:
        raise ValueError(f"No readable labelled stamps under {path} (skipped: {skipped}).")
    meta = {
        "source": str(path),
        "labels": str(label_file),
        "survey": "DES Y1 autoscan (Goldstein et al. 2015)",
        "label_convention": "0 = real (fake SN Ia), 1 = bogus (DES)",
        "skipped": skipped,
        "band": list(out["band"]),
        "visit": [int(v) for v in out["visit"]],
        "detector": [int(d) for d in out["detector"]],
        "night": list(out["night"]),
    }
    return LabelledStamps(
        diff=np.stack(out["diff"]),
        srch=np.stack(out["srch"]),
        tmpl=np.stack(out["tmpl"]),
        label=np.array(out["label"], dtype=np.int8),
        id=np.array(out["id"], dtype=np.int64),
        family=np.array(out["family"]),
        mag=np.array(out["mag"], dtype=np.float32),
        snr=np.array(out["snr"], dtype=np.float32),
        meta=meta,
    )


def ingest_autoscan_to_butler(
    path: str | Path,
    repo: str | Path,
    *,
    labels: str | Path | None = None,
    run: str = "DECam/autoscan",
    dataset_type: str = "rbnodia_labelled_stamps",
    stamp_size: int | None = 51,
) -> dict[str, Any]:
    """Write autoscan stamps into a Butler repository as ``LabelledStamps``
    datasets, one per (visit, detector).

    Parameters
    ----------
    path : `str` or `pathlib.Path`
        Autoscan folder (see `read_autoscan`).
    repo : `str` or `pathlib.Path`
        Repository; created with `rbnodia.butler.repo.create_repo` if it
        does not exist.
    labels : `str` or `pathlib.Path`, optional
        Label CSV, if not found under ``path``.
    run : `str`
        RUN collection to write.
    dataset_type : `str`
        Dataset type name (dimensions instrument, visit, detector; storage
        class ``LabelledStamps``).
    stamp_size : `int` or `None`, optional
        Expected stamp size in pixels (see `read_autoscan`); `None` accepts
        any size common to the three stamps of a row.

    Returns
    -------
    summary : `dict`
        ``repo``, ``collection``, ``dataset_type``, ``data_ids``, ``n``,
        ``n_real``, ``n_bogus``, ``skipped``.
    """
    from lsst.daf.butler import Butler, DatasetType

    from ..butler.repo import create_repo, register_instrument, register_visit, sky_polygon

    stamps = read_autoscan(path, labels=labels, stamp_size=stamp_size)
    repo = Path(repo)
    if (repo / "butler.yaml").exists():
        butler = Butler.from_config(str(repo), writeable=True)
    else:
        butler = create_repo(repo)
    visits = np.array(stamps.meta["visit"], dtype=np.int64)
    detectors = np.array(stamps.meta["detector"], dtype=np.int64)
    bands = np.array(stamps.meta["band"])
    nights = np.array(stamps.meta["night"])
    instrument = "DECam"
    register_instrument(
        butler,
        instrument,
        {d: f"CCD{d:02d}" for d in range(max(63, int(detectors.max()) + 1))},
        {name: band for band, name in DECAM_FILTERS.items()},
    )
    butler.registry.registerDatasetType(
        DatasetType(
            dataset_type, butler.dimensions.conform(["instrument", "visit", "detector"]), "LabelledStamps"
        )
    )
    butler.registry.registerRun(run)
    placeholder = sky_polygon([(0.0, 0.0), (1 / 60, 0.0), (1 / 60, 1 / 60), (0.0, 1 / 60)])
    data_ids = []
    by_visit: dict[int, list[int]] = defaultdict(list)
    for v, d in sorted(set(zip(visits.tolist(), detectors.tolist()))):
        by_visit[v].append(d)
    for visit, dets in by_visit.items():
        rows = np.flatnonzero(visits == visit)
        band = next((b for b in bands[rows] if b in DECAM_FILTERS), "r")
        night = next((n for n in nights[rows] if n), "")
        if night:
            obs_time = datetime.datetime.strptime(night, "%Y%m%d").replace(hour=3, tzinfo=datetime.UTC)
        else:
            obs_time = datetime.datetime(2013, 9, 1, 3, tzinfo=datetime.UTC)
        register_visit(
            butler,
            instrument,
            int(visit),
            DECAM_FILTERS[band],
            obs_time=obs_time,
            exposure_time=90.0,
            detector_regions={int(d): placeholder for d in dets},
        )
        for det in dets:
            sel = (visits == visit) & (detectors == det)
            part = stamps.subset(sel)
            part.meta = {
                k: v for k, v in stamps.meta.items() if k not in ("band", "visit", "detector", "night")
            } | {"visit": int(visit), "detector": int(det), "band": band, "region": "placeholder"}
            data_id = {"instrument": instrument, "visit": int(visit), "detector": int(det)}
            butler.put(part, dataset_type, data_id, run=run)
            data_ids.append(data_id)
    summary = {
        "repo": str(repo),
        "collection": run,
        "dataset_type": dataset_type,
        "data_ids": data_ids,
        "n": len(stamps),
        "n_real": int((stamps.label == 0).sum()),
        "n_bogus": int((stamps.label == 1).sum()),
        "skipped": stamps.meta["skipped"],
    }
    _log.info("Ingested %d autoscan stamps into %s (%s), %d datasets.", len(stamps), repo, run, len(data_ids))
    return summary
