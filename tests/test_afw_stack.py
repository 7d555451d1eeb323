"""The afw code (`rbnodia.adapters.afw`) against the real afw: image and
catalog inputs, and the ``Catalog`` output of ``computeReliability`` read
the way ap_association's reliability filter reads it.

afw exists only in the LSST stack container, so these tests are skipped
everywhere else.
"""

import numpy as np
import pytest

afw_table = pytest.importorskip(
    "lsst.afw.table",
    reason="lsst.afw is not installed: the afw adapters and the Catalog output run only in the LSST stack "
    "container",
)
afw_image = pytest.importorskip("lsst.afw.image")
afw_geom = pytest.importorskip("lsst.afw.geom")
geom = pytest.importorskip("lsst.geom")

ORIGIN = (1000, 2000)
SIZE = 160


def _exposure(rng, sigma):
    bbox = geom.Box2I(geom.Point2I(*ORIGIN), geom.Extent2I(SIZE, SIZE))
    exposure = afw_image.ExposureF(bbox)
    exposure.image.array[:] = rng.normal(100.0, sigma, (SIZE, SIZE))
    exposure.variance.array[:] = sigma**2
    no_data = exposure.mask.getPlaneBitMask("NO_DATA")
    exposure.mask.array[:, :10] |= no_data
    wcs = afw_geom.makeSkyWcs(
        crpix=geom.Point2D(ORIGIN[0] + SIZE / 2, ORIGIN[1] + SIZE / 2),
        crval=geom.SpherePoint(150.0, 2.0, geom.degrees),
        cdMatrix=afw_geom.makeCdMatrix(scale=0.2 * geom.arcseconds),
    )
    exposure.setWcs(wcs)
    return exposure


def _dia_sources(positions):
    schema = afw_table.SourceTable.makeMinimalSchema()
    centroid = afw_table.Point2DKey.addFields(schema, "base_SdssCentroid", "centroid", "pixel")
    schema.getAliasMap().set("slot_Centroid", "base_SdssCentroid")
    catalog = afw_table.SourceCatalog(schema)
    for k, (x, y) in enumerate(positions):
        record = catalog.addNew()
        record.setId(500 + k)
        record.set(centroid, geom.Point2D(x, y))
    return catalog


def test_image_and_catalog_adapters():
    from rbnodia.adapters import pixel_to_sky, to_detections, to_pixel_image

    exposure = _exposure(np.random.default_rng(1), 4.0)
    pixels = to_pixel_image(exposure, ["NO_DATA", "NOT_A_PLANE"])
    assert pixels.origin == ORIGIN
    assert pixels.bad[:, :10].all() and not pixels.bad[:, 10:].any()
    np.testing.assert_array_equal(pixels.array, exposure.image.array)
    x, y = np.array([1010.0, 1080.5]), np.array([2020.0, 2100.0])
    ra, dec = pixel_to_sky(exposure, x, y)
    for k in range(2):
        expected = exposure.getWcs().pixelToSky(geom.Point2D(x[k], y[k]))
        assert abs(ra[k] - expected.getRa().asDegrees()) < 1e-9
        assert abs(dec[k] - expected.getDec().asDegrees()) < 1e-9
    found = to_detections(_dia_sources(zip(x, y)), "id", "slot_Centroid_x", "slot_Centroid_y")
    assert found.id.tolist() == [500, 501]
    np.testing.assert_allclose(found.x, x)
    with pytest.raises(KeyError, match="lacks column"):
        to_detections(_dia_sources(zip(x, y)), "id", "no_such_x", "slot_Centroid_y")


def test_catalog_output_is_what_ap_association_reads():
    from rbnodia.tasks.compute_reliability import ComputeReliabilityConfig, ComputeReliabilityTask

    rng = np.random.default_rng(2)
    science, template = _exposure(rng, 5.0), _exposure(rng, 3.0)
    positions = [(1050.0, 2050.0), (1100.0, 2090.0), (np.nan, 2050.0), (500.0, 500.0)]
    sources = _dia_sources(positions)
    config = ComputeReliabilityConfig()
    config.modelSource = "package"
    config.imageStorageClass = "ExposureF"
    config.catalogStorageClass = "SourceCatalog"
    config.outputStorageClass = "Catalog"
    config.xColumn, config.yColumn = "slot_Centroid_x", "slot_Centroid_y"
    config.validate()
    result = ComputeReliabilityTask(config=config).run(science, template, sources)
    reliability = result.classifications
    assert isinstance(reliability, afw_table.BaseCatalog)
    assert reliability.schema.find("id").key.getTypeString() == "L"
    assert reliability.schema.find("score").key.getTypeString() == "F"
    assert reliability.schema.find("version").key.getSize() == 7
    assert np.isfinite(reliability["score"]).all()
    assert reliability["score"][2] == 0.0 and reliability["score"][3] == 0.0  # unscorable: policy score

    # What lsst.ap.association.FilterDiaSourceReliabilityTask.run does with it.
    schema = afw_table.SourceTable.makeMinimalSchema()
    schema.addField("reliability", type="F", doc="reliability")
    schema.addField("reliabilityVersion", type="String", size=7, doc="model version")
    dia = afw_table.SourceCatalog(schema)
    for record in sources:
        dia.addNew().setId(record.getId())
    assert np.all(dia["id"] == reliability["id"])
    dia["reliability"] = reliability["score"]
    src_key = reliability.schema.find("version").key
    dst_key = dia.schema.find("reliabilityVersion").key
    for i in range(len(dia)):
        dia[i].set(dst_key, reliability[i].get(src_key))  # afw raises LengthError past 7 characters
    assert dia[0].get(dst_key) == reliability[0].get(src_key)
    assert (dia["reliability"] < 0.5)[2:].all()  # AP's cut rejects the unscorable rows


def test_catalog_round_trips_through_the_butler(tmp_path):
    from lsst.daf.butler import DatasetType
    from rbnodia.adapters.afw import to_afw_catalog
    from rbnodia.butler.repo import create_repo

    catalog = to_afw_catalog(
        {"id": np.array([3, 1], dtype=np.int64), "score": np.array([0.25, 0.75], dtype=np.float32),
         "version": np.array(["abc1234", "abc1234"])},
        {"id": "id", "score": "score", "version": "version"}, {"version": 7},
    )
    butler = create_repo(tmp_path / "repo")
    butler.registry.registerDatasetType(DatasetType("afw_reliability", butler.dimensions.empty, "Catalog"))
    butler.registry.registerRun("test")
    ref = butler.put(catalog, "afw_reliability", {}, run="test")
    back = butler.get(ref)
    assert back["id"].tolist() == [3, 1] and back[1].get(back.schema.find("version").key) == "abc1234"
    with pytest.raises(ValueError, match="up to 8 characters"):
        to_afw_catalog({"version": np.array(["abcdefgh"])}, {"version": "v"}, {"version": 7})
