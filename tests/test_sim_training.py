"""Fast training-set mode: reproducibility and class ratio."""

import json

import numpy as np
import pytest
from rbnodia.core.stampset import LabelledStamps
from rbnodia.sim import make_training_set


def _run(out, seed, **kw):
    kw.setdefault("patch_size", 256)
    return make_training_set(
        30, out, preset="des", seed=seed, real_fraction=0.4, workers=1, progress=False, shard_size=12, **kw
    )


def test_reproducible_and_balanced(tmp_path):
    a = _run(tmp_path / "a", 3)
    _run(tmp_path / "b", 3)
    assert len(a["shards"]) == 3
    sa, sb = LabelledStamps.load(tmp_path / "a"), LabelledStamps.load(tmp_path / "b")
    assert len(sa) == 30
    for name in ("diff", "srch", "tmpl"):
        assert np.array_equal(getattr(sa, name), getattr(sb, name), equal_nan=True)
    assert np.array_equal(sa.label, sb.label) and np.array_equal(sa.id, sb.id)
    assert (sa.label == 0).sum() == 12 and (sa.label == 1).sum() == 18
    # Every shard has the requested ratio (to rounding).
    for path in a["shards"]:
        shard = LabelledStamps.load(path)
        assert abs((shard.label == 0).mean() - 0.4) <= 0.5 / len(shard) + 1e-9
        assert shard.meta["seed"] == 3
    assert sa.diff.shape[1:] == (51, 51) and sa.diff.dtype == np.float32
    assert np.all(np.isfinite(sa.diff[:, 25, 25]))
    assert len(np.unique(sa.id)) == len(sa)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["n"] == 30
    assert sum(a["families"].values()) == 30


def test_different_seed_differs(tmp_path):
    _run(tmp_path / "a", 3)
    _run(tmp_path / "c", 4)
    assert not np.array_equal(
        LabelledStamps.load(tmp_path / "a").diff, LabelledStamps.load(tmp_path / "c").diff
    )


def test_workers_do_not_change_result(tmp_path):
    one = make_training_set(60, tmp_path / "w1", seed=5, workers=1, progress=False)
    two = make_training_set(60, tmp_path / "w2", seed=5, workers=2, progress=False)
    assert one["n"] == two["n"] == 60
    s1, s2 = LabelledStamps.load(tmp_path / "w1"), LabelledStamps.load(tmp_path / "w2")
    assert np.array_equal(s1.diff, s2.diff, equal_nan=True) and np.array_equal(s1.id, s2.id)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        make_training_set(0, tmp_path)
    with pytest.raises(ValueError):
        make_training_set(10, tmp_path, real_fraction=1.5)
