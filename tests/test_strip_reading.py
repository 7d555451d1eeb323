"""Images read in strips (``readRows``) from deferred Butler handles give
bitwise the results of the whole images in memory.
"""

import numpy as np
import pytest
from astropy.table import Table
from model_files import make_classify_task

from rbnodia.core.stamps import cut_stamps, plan_row_strips

HEIGHT, WIDTH = 300, 260
STRIP_ROWS = 64


def test_plan_covers_every_detection_once_in_order():
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.uniform(-100, HEIGHT + 100, 200), [np.nan, np.inf, -1e12, 63.5, 64.49]])
    x = rng.uniform(0, WIDTH, len(y))
    strips = plan_row_strips(x, y, 10, HEIGHT, STRIP_ROWS, 51)
    rows = np.concatenate([s.rows for s in strips])
    assert sorted(rows.tolist()) == list(range(len(y)))
    for strip in strips:
        assert (np.diff(strip.rows) > 0).all()
        assert 10 <= strip.begin < strip.end <= 10 + HEIGHT
        assert strip.end - strip.begin <= STRIP_ROWS + 50
    assert len(plan_row_strips(x, y, 10, HEIGHT, 0, 51)) == 1
    assert plan_row_strips(x[:0], y[:0], 10, HEIGHT, STRIP_ROWS, 51) == []


def test_strip_stamps_equal_whole_image_stamps():
    rng = np.random.default_rng(4)
    image = rng.normal(0, 1, (HEIGHT, WIDTH)).astype(np.float32)
    image[rng.random(image.shape) < 0.01] = np.nan
    bad = rng.random(image.shape) < 0.02
    y = np.concatenate([rng.uniform(-40, HEIGHT + 40, 300), np.arange(-30, HEIGHT + 30, 0.5)])
    x = rng.uniform(-20, WIDTH + 20, len(y))
    origin = (5, 20)
    y = y + origin[1]
    whole = cut_stamps(image, x, y, 11, bad=bad, origin=origin)
    for strip in plan_row_strips(x, y, origin[1], HEIGHT, 16, 11):
        rows = slice(strip.begin - origin[1], strip.end - origin[1])
        part = cut_stamps(image[rows], x[strip.rows], y[strip.rows], 11, bad=bad[rows],
                          origin=(origin[0], strip.begin))
        np.testing.assert_array_equal(part.pixels, whole.pixels[strip.rows])
        np.testing.assert_array_equal(part.usable, whole.usable[strip.rows])
        np.testing.assert_array_equal(part.flags, whole.flags[strip.rows])


@pytest.fixture(scope="module")
def strip_repo(tmp_path_factory):
    """One simulated LSST detector, with extra detections on the strip
    borders, on and past the image edges, and with no usable position.
    """
    from lsst.daf.butler import Butler
    from rbnodia.sim import write_simulated_repo

    root = tmp_path_factory.mktemp("strips") / "repo"
    sim = write_simulated_repo(root, preset="lsst", n_visits=1, n_detectors=1, seed=11,
                               image_size=(HEIGHT, WIDTH), progress=False)
    butler = Butler.from_config(str(root))
    data_id = sim["data_ids"][0]
    found = butler.get("dia_source_unstandardized", data_id, collections=sim["collection"])
    offsets = (-26.0, -25.5, -0.51, -0.5, 0.0, 0.49, 25.4)
    borders = [b + d for b in range(0, HEIGHT + 1, STRIP_ROWS) for d in offsets]
    edges = [(30.0, 0.0), (40.0, -0.6), (50.0, -25.0), (60.0, -40.0), (70.0, HEIGHT - 0.5),
             (80.0, HEIGHT - 0.51), (90.0, HEIGHT + 3.0), (100.0, HEIGHT + 80.0), (1.0, 150.0),
             (-400.0, 150.0), (WIDTH - 0.5, 150.0), (100.0, np.nan), (np.nan, 100.0), (50.0, np.inf),
             (50.0, 1e12)]
    x = np.concatenate([found["x"], [WIDTH / 2 + 7 * k for k in range(len(borders))], [e[0] for e in edges]])
    y = np.concatenate([found["y"], borders, [e[1] for e in edges]])
    ids = np.concatenate([np.asarray(found["id"], dtype=np.int64),
                          np.arange(len(borders) + len(edges), dtype=np.int64) + 10**6])
    detections = Table({"id": ids, "x": x.astype(np.float64), "y": y.astype(np.float64)})
    return {"butler": butler, "data_id": data_id, "collection": sim["collection"], "detections": detections}


def _inputs(repo, deferred, names=("science", "template", "difference")):
    datasets = {"science": "preliminary_visit_image", "template": "template_detector",
                "difference": "difference_image"}
    get = repo["butler"].getDeferred if deferred else repo["butler"].get
    return {name: get(datasets[name], repo["data_id"], collections=repo["collection"]) for name in names}


def _assert_tables_equal(a, b, close=()):
    assert a.colnames == b.colnames
    for name in a.colnames:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if name in close:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7, err_msg=name)
        else:
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


@pytest.mark.parametrize("layout", ["noDIA", "DIA"])
def test_strips_are_bitwise_the_whole_image(strip_repo, nodia_model_file, dia_model_file, layout,
                                            monkeypatch):
    from lsst.daf.butler import DeferredDatasetHandle

    model_file = nodia_model_file if layout == "noDIA" else dia_model_file
    names = ("science", "template") + (("difference",) if layout == "DIA" else ())
    detections = strip_repo["detections"]
    in_memory = _inputs(strip_repo, deferred=False, names=names)
    options = dict(layout=layout, doSaliency=True, doWriteSaliencyMaps=True)
    whole = make_classify_task(model_file, readRows=0, **options).run(detections=detections, **in_memory)
    table = whole.reliability
    assert table["flag_no_data"].sum() >= 6  # NaN, inf, far and off-image rows
    assert table["flag_edge"].sum() >= 6
    assert np.isfinite(table["ra"]).sum() > 0

    reads = []
    original = DeferredDatasetHandle.get

    def recording_get(self, *, component=None, parameters=None, storageClass=None):
        parameters = parameters or {}
        for part in parameters.get("components", [component]):
            reads.append((part, parameters.get("bbox")))
        return original(self, component=component, parameters=parameters, storageClass=storageClass)

    monkeypatch.setattr(DeferredDatasetHandle, "get", recording_get)
    for rows in (STRIP_ROWS, 37):
        reads.clear()
        task = make_classify_task(model_file, readRows=rows, batchSize=16, **options)
        strips = task.run(detections=detections, **_inputs(strip_repo, deferred=True, names=names))
        pixel_reads = [box for component, box in reads if component in (None, "image", "mask", "variance")]
        assert pixel_reads and all(box is not None and box.y.size <= rows + 50 for box in pixel_reads)
        assert "variance" not in [component for component, _ in reads]
        # Against the whole image: stamps, flags, scores and positions are
        # bitwise equal; the saliency maps and fractions depend on how the
        # detections are batched (here 16 per strip against all at once) in
        # the last bits.
        saliency = ("saliency_diff", "saliency_srch", "saliency_tmpl")
        _assert_tables_equal(strips.reliability, table, close=saliency)
        _assert_tables_equal(strips.saliency, whole.saliency, close=("saliency",))
        # Against the same strips cut from the images in memory: everything.
        same = task.run(detections=detections, **in_memory)
        _assert_tables_equal(strips.reliability, same.reliability)
        _assert_tables_equal(strips.saliency, same.saliency)
