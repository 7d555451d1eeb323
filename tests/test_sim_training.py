"""Fast training-set mode: reproducibility, class ratio, composition,
resumable shards and domain randomization.
"""

import json
import os

import numpy as np
import pytest

from rbnodia.core.stampset import LabelledStamps
from rbnodia.sim import (
    BOGUS_COMPOSITION,
    DOMAIN_RANDOMIZATION,
    FAMILY_GROUPS,
    ShardAssembler,
    bogus_quotas,
    get_preset,
    make_training_set,
    make_training_splits,
    randomized_options,
)
from rbnodia.sim.patches import patch_options
from rbnodia.sim.randomize import VISIT_RANDOMIZED
from rbnodia.sim.template import SCIENCE_ONLY_FIELDS, template_key
from rbnodia.sim.truth import family_group


def _run(out, seed, **kw):
    kw.setdefault("patch_size", 256)
    return make_training_set(
        30, out, preset="des", seed=seed, real_fraction=0.4, workers=1, progress=False, shard_size=12, **kw
    )


def test_reproducible_balanced_and_composed(tmp_path):
    a = _run(tmp_path / "a", 3)
    _run(tmp_path / "b", 3)
    assert len(a["shards"]) == 3
    sa, sb = LabelledStamps.load(tmp_path / "a"), LabelledStamps.load(tmp_path / "b")
    assert len(sa) == 30
    for name in ("diff", "srch", "tmpl"):
        assert np.array_equal(getattr(sa, name), getattr(sb, name), equal_nan=True)
    assert np.array_equal(sa.label, sb.label) and np.array_equal(sa.id, sb.id)
    assert (sa.label == 0).sum() == 12 and (sa.label == 1).sum() == 18
    for path in a["shards"]:
        shard = LabelledStamps.load(path)
        # Every shard has the requested ratio (to rounding) ...
        assert abs((shard.label == 0).mean() - 0.4) <= 0.5 / len(shard) + 1e-9
        assert shard.meta["seed"] == 3
        # ... and each bogus group its quota, up to stamps borrowed from the surplus.
        quotas = bogus_quotas(int((shard.label == 1).sum()), BOGUS_COMPOSITION, 1)
        groups = family_group(shard.family[shard.label == 1])
        borrowed = shard.meta["borrowed"]
        for group, quota in quotas.items():
            missing = borrowed.get(f"bogus:{group}", 0)
            assert int((groups == group).sum()) >= quota - missing
    assert sa.diff.shape[1:] == (51, 51) and sa.diff.dtype == np.float32
    assert np.all(np.isfinite(sa.diff[:, 25, 25]))
    assert np.all(np.isfinite(sa.snr)) and len(np.unique(sa.id)) == len(sa)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["n"] == 30
    assert sum(a["families"].values()) == 30


def test_resume_keeps_finished_shards(tmp_path):
    first = _run(tmp_path / "r", 3)
    before = {p: (os.path.getmtime(p), LabelledStamps.load(p)) for p in first["shards"]}
    os.remove(first["shards"][1])
    again = _run(tmp_path / "r", 3)
    assert again["shards_kept"] == 2 and again["shards"] == first["shards"]
    for path, (mtime, stamps) in before.items():
        if path != first["shards"][1]:
            assert os.path.getmtime(path) == mtime
        assert np.array_equal(LabelledStamps.load(path).diff, stamps.diff, equal_nan=True)
    # Other settings are refused unless the set is overwritten.
    with pytest.raises(ValueError, match="other settings"):
        _run(tmp_path / "r", 4)
    assert _run(tmp_path / "r", 4, overwrite=True)["shards_kept"] == 0


def test_workers_do_not_change_result(tmp_path):
    one = make_training_set(40, tmp_path / "w1", seed=5, workers=1, progress=False, shard_size=20)
    two = make_training_set(40, tmp_path / "w2", seed=5, workers=2, progress=False, shard_size=20)
    assert one["n"] == two["n"] == 40 and len(two["shards"]) == 2
    s1, s2 = LabelledStamps.load(tmp_path / "w1"), LabelledStamps.load(tmp_path / "w2")
    assert np.array_equal(s1.diff, s2.diff, equal_nan=True) and np.array_equal(s1.id, s2.id)


def test_splits_use_distinct_seeds(tmp_path):
    summary = make_training_splits(
        tmp_path,
        n_train=8,
        n_validation=0,
        n_test=6,
        presets=("lsst",),
        seed=11,
        workers=1,
        progress=False,
        patch_size=192,
    )
    assert set(summary) == {"train", "test"}
    train = LabelledStamps.load(tmp_path / "train" / "lsst")
    test = LabelledStamps.load(tmp_path / "test" / "lsst")
    assert len(train) == 8 and len(test) == 6
    assert train.meta["seed"] == 11 and test.meta["seed"] == 31
    assert (tmp_path / "splits.json").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        make_training_set(0, tmp_path)
    with pytest.raises(ValueError):
        make_training_set(10, tmp_path, real_fraction=1.5)
    with pytest.raises(ValueError, match="Unknown family groups"):
        bogus_quotas(10, {"nonsense": 1.0}, 1)


def test_bogus_quotas():
    quotas = bogus_quotas(1000, BOGUS_COMPOSITION, 1)
    assert sum(quotas.values()) == 1000
    assert quotas["noise"] == 200 and quotas["galaxy_residual"] == 150
    # Where variable stars are real, their share goes to the other groups.
    lsst = bogus_quotas(1000, BOGUS_COMPOSITION, 0)
    assert "variable_star" not in lsst and sum(lsst.values()) == 1000
    assert bogus_quotas(7, None, 1) == {"any": 7}
    assert set(BOGUS_COMPOSITION) <= set(FAMILY_GROUPS)


def _stamps(families, labels):
    n = len(families)
    return LabelledStamps(
        diff=np.zeros((n, 3, 3)),
        srch=np.zeros((n, 3, 3)),
        tmpl=np.zeros((n, 3, 3)),
        label=labels,
        id=np.arange(n),
        family=families,
        mag=np.full(n, np.nan),
        snr=np.full(n, 5.0),
    )


def test_shard_assembler_quotas_and_stall():
    assembler = ShardAssembler(2, {"noise": 2, "dipole": 1})
    assembler.add(_stamps(["sn_hosted", "noise", "noise", "noise", "cosmic_ray"], [0, 1, 1, 1, 1]))
    assert assembler.missing() == {"real": 1, "bogus:dipole": 1}
    assert not assembler.ready()
    assembler.add(_stamps(["sn_hostless", "dipole"], [0, 1]))
    assert assembler.ready()
    shard, borrowed = assembler.shard(np.random.default_rng(0))
    assert len(shard) == 5 and borrowed == {}
    assert sorted(shard.family) == ["dipole", "noise", "noise", "sn_hosted", "sn_hostless"]
    # A group the stream never produces: after OVERFLOW_FACTOR times the
    # bogus quota, the deficit comes from the surplus.
    stalled = ShardAssembler(0, {"dipole": 2})
    for _ in range(3):
        assert not stalled.ready()
        stalled.add(_stamps(["noise", "hot_pixel"], [1, 1]))
    assert stalled.ready()
    shard, borrowed = stalled.shard(np.random.default_rng(0))
    assert borrowed == {"bogus:dipole": 2} and len(shard) == 2


def test_domain_randomization_ranges():
    preset = get_preset("des")
    sky = [randomized_options(preset, np.random.default_rng(i), per="sky") for i in range(300)]
    visit = [randomized_options(preset, np.random.default_rng(i), per="visit") for i in range(300)]
    assert set(visit[0]) == set(VISIT_RANDOMIZED) and VISIT_RANDOMIZED <= SCIENCE_ONLY_FIELDS
    assert not set(sky[0]) & set(VISIT_RANDOMIZED)
    for name, spec in DOMAIN_RANDOMIZATION.items():
        if name == "sky_offset_mag":
            values = np.array([o["sky_brightness"]["r"] - preset.sky_brightness["r"] for o in sky])
        else:
            values = np.array([o[name] for o in (visit if name in VISIT_RANDOMIZED else sky)])
        if spec[0] == "times":
            ratio = values / getattr(preset, name)
            assert ratio.min() >= spec[1] - 1e-9 and ratio.max() <= spec[2] + 1e-9
            assert ratio.max() / ratio.min() > 0.5 * spec[2] / spec[1]  # the range is used
        elif spec[0] in ("value", "integer"):
            assert values.min() >= spec[1] - 1e-9 and values.max() <= spec[2] + 1e-9
            assert values.max() - values.min() > 0.5 * (spec[2] - spec[1])
        elif spec[0] == "probability":
            assert abs(values.mean() - spec[1]) < 0.06
        else:
            assert set(values) == set(spec[1])


def test_patch_options_share_the_template_within_a_sky():
    """Visits of a patch sky differ only in fields the template does not
    read (so it is rendered once); different skies differ.
    """
    preset = get_preset("lsst")
    kw = dict(seed=2, patch_size=256, real_fraction=0.5, visits_per_patch=4, domain_randomization=True)
    keys = []
    for index in range(8):
        opts = patch_options(preset, index, **kw)
        run = {
            k: opts.pop(k)
            for k in list(opts)
            if k not in {f for f, _ in template_key(preset)}
            and k not in SCIENCE_ONLY_FIELDS
            and k != "image_size"
        }
        assert run["band"] in preset.bands
        keys.append((template_key(preset.with_options(**opts)), run["band"]))
    assert keys[0] == keys[1] == keys[2] == keys[3] and keys[4] == keys[7] and keys[0] != keys[4]
    nominal = patch_options(preset, 0, **{**kw, "domain_randomization": False})
    assert nominal["flux_scale_error"] if "flux_scale_error" in nominal else True
    assert "template_n_coadd" not in nominal and "variance_underestimate" not in nominal


def test_patch_options_weight_hosts_by_light_in_part_of_the_patches():
    """Each patch draws its host weighting in HOST_WEIGHT_POWER, so that some
    patches put transients on bright galaxies in proportion to their light.
    """
    from rbnodia.sim.patches import HOST_WEIGHT_POWER

    preset = get_preset("des")
    kw = dict(seed=5, patch_size=256, real_fraction=0.5, visits_per_patch=1, domain_randomization=False)
    powers = np.array([patch_options(preset, index, **kw)["host_weight_power"] for index in range(40)])
    low, high = HOST_WEIGHT_POWER
    assert ((powers >= low) & (powers <= high)).all()
    assert powers.min() < low + 0.25 * (high - low) and powers.max() > high - 0.25 * (high - low)
