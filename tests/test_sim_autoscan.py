"""DES autoscan reader on files written in the DES layout."""

import logging

import numpy as np
import pytest
from astropy.io import fits

from rbnodia.sim.autoscan import AUTOSCAN_LABELS, ingest_autoscan_to_butler, read_autoscan


def _write_autoscan(root, rng):
    """Six labelled IDs in two exposure folders, one missing its template,
    one corrupt, one of the wrong size, plus an unlabelled triplet.
    """
    base = root / "stamps9" / "SNWG" / "Archive" / "2013" / "Y1"
    folders = {
        6960264: base / "20130829" / "470681007",
        6960265: base / "20130829" / "470681007",
        6960266: base / "20130829" / "470682031",
        6960267: base / "20130830" / "470990011",
        6960268: base / "20130830" / "470990011",
        6960269: base / "20130830" / "470990011",
        7000000: base / "20130830" / "470990011",  # unlabelled
    }
    truth = {}
    for sid, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        for kind in ("diff", "srch", "temp"):
            if sid == 6960267 and kind == "temp":
                continue  # missing stamp
            shape = (40, 40) if sid == 6960269 else (51, 51)
            data = rng.normal(size=shape).astype(np.float32)
            if sid == 6960268 and kind == "srch":
                (folder / f"{kind}{sid}.fits").write_bytes(b"not a FITS file")
                continue
            fits.PrimaryHDU(data).writeto(folder / f"{kind}{sid}.fits")
            truth[(sid, kind)] = data
        (folder / f"diff{sid}.gif").write_bytes(b"GIF89a")  # GIF copies are ignored
    labels = {6960264: 0, 6960265: 1, 6960266: 0, 6960267: 1, 6960268: 0, 6960269: 1}
    lines = [
        "# autoscan features, DES Y1",
        "# OBJECT_TYPE: 0 real, 1 bogus",
        "ID,OBJECT_TYPE,BAND,SNR,MAG,A_IMAGE",
    ]
    lines += [
        f"{sid},{lab},{'gri'[i % 3]},{10 + i},{22.5 + 0.1 * i},1.3"
        for i, (sid, lab) in enumerate(labels.items())
    ]
    (root / AUTOSCAN_LABELS).write_text("\n".join(lines) + "\n")
    return truth


def test_read_autoscan(tmp_path, caplog):
    truth = _write_autoscan(tmp_path, np.random.default_rng(0))
    with caplog.at_level(logging.WARNING):
        stamps = read_autoscan(tmp_path)
    assert list(stamps.id) == [6960264, 6960265, 6960266]
    assert list(stamps.label) == [0, 1, 0]
    assert stamps.diff.shape == (3, 51, 51)
    assert np.array_equal(stamps.tmpl[0], truth[(6960264, "temp")])
    assert np.array_equal(stamps.srch[2], truth[(6960266, "srch")])
    assert list(stamps.family) == ["des_fake", "des_bogus", "des_fake"]
    assert stamps.snr[1] == pytest.approx(11.0)
    assert stamps.mag[2] == pytest.approx(22.7)
    assert stamps.meta["visit"] == [470681, 470681, 470682]
    assert stamps.meta["detector"] == [7, 7, 31]
    assert stamps.meta["band"] == ["g", "r", "i"]
    skipped = stamps.meta["skipped"]
    assert skipped["missing_temp"] == 1
    assert skipped["corrupt"] == 1
    assert skipped["bad_shape_or_data"] == 1
    assert skipped["unlabelled_stamps"] == 1
    assert "skipped" in caplog.text


def test_read_autoscan_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_autoscan(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        read_autoscan(tmp_path / "empty")


def test_ingest_autoscan_to_butler(tmp_path):
    from lsst.daf.butler import Butler

    _write_autoscan(tmp_path / "autoscan", np.random.default_rng(1))
    summary = ingest_autoscan_to_butler(tmp_path / "autoscan", tmp_path / "repo")
    assert summary["n"] == 3 and summary["n_real"] == 2 and summary["n_bogus"] == 1
    assert len(summary["data_ids"]) == 2
    butler = Butler.from_config(str(tmp_path / "repo"), collections=summary["collection"])
    part = butler.get("rbnodia_labelled_stamps", {"instrument": "DECam", "visit": 470681, "detector": 7})
    assert list(part.id) == [6960264, 6960265]
    assert part.diff.shape == (2, 51, 51)
    # A second ingest into the existing repository adds nothing new but works.
    summary2 = ingest_autoscan_to_butler(tmp_path / "autoscan", tmp_path / "repo", run="DECam/autoscan2")
    assert summary2["n"] == 3


def test_read_autoscan_skips_fields_that_are_not_whole_numbers(tmp_path):
    _write_autoscan(tmp_path, np.random.default_rng(1))
    labels = tmp_path / AUTOSCAN_LABELS
    bad_rows = ["6960264.5,0,g,10,22,1", "inf,1,g,10,22,1", "6960265,0.7,g,10,22,1", "6960266,nan,g,10,22,1",
                "6960266,1e999,g,10,22,1"]
    labels.write_text(labels.read_text() + "\n".join(bad_rows) + "\n")
    stamps = read_autoscan(tmp_path)
    assert list(stamps.id) == [6960264, 6960265, 6960266] and list(stamps.label) == [0, 1, 0]
    assert stamps.meta["skipped"]["bad_csv_row"] == len(bad_rows)
