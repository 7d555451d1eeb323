"""Inference backends of RealBogusModel: ONNX Runtime equals TensorFlow,
``auto`` picks and falls back correctly, backend and threads are arguments
(no environment variables), and models load once per process.
"""

import numpy as np
import pytest

from rbnodia.nn import INFERENCE_BACKENDS, RealBogusModel, architecture_names, load_model
from rbnodia.nn.model import ModelMetadata

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _inputs(model: RealBogusModel, n: int, seed: int = 0) -> np.ndarray:
    shape = model.input_shape
    return np.random.default_rng(seed).normal(0.5, 0.3, (n,) + shape).astype(np.float32)


@pytest.mark.parametrize("arch", architecture_names())
def test_onnx_equals_tensorflow(arch, randomised_model):
    model = randomised_model(arch)
    # 300 = 2 ONNX chunks + a remainder that is not a multiple of the fold block.
    for n in (1, 17, 300):
        x = _inputs(model, n)
        tf_probs = model.probabilities(x, backend="tensorflow")
        onnx_probs = model.probabilities(x, backend="onnx")
        assert onnx_probs.shape == tf_probs.shape == (n, 2) and onnx_probs.dtype == np.float32
        np.testing.assert_allclose(onnx_probs, tf_probs, rtol=0, atol=1e-5)
        np.testing.assert_allclose(model.predict(x, backend="onnx"), tf_probs[:, 0], rtol=0, atol=1e-5)


def test_fold_rewrite_is_used_and_exact(randomised_model):
    from rbnodia.nn.onnx.runtime import OnnxPredictor
    from rbnodia.nn.onnx.translate import translate_variants

    model = randomised_model("paper_nodia")
    x = _inputs(model, 64)
    folded = OnnxPredictor(translate_variants(model.network), threads=1)
    plain = OnnxPredictor(translate_variants(model.network, fold=0), threads=1)
    assert folded.fold > 1 and plain.fold == 0
    np.testing.assert_allclose(folded(x), plain(x), rtol=0, atol=1e-6)
    np.testing.assert_allclose(folded(x[:5]), plain(x[:5]), rtol=0, atol=1e-6)


def test_chunk_bounds_cover_the_batch_once():
    from rbnodia.nn.onnx.runtime import MIN_PIECE, _chunk_bounds

    for n in (0, 1, 15, 16, 17, 100, 128, 300, 1000):
        for chunk in (1, 16, 128):
            for threads in (1, 2, 3):
                for align in (1, 16):
                    bounds = _chunk_bounds(n, chunk, threads, align)
                    covered = [i for start, stop in bounds for i in range(start, stop)]
                    assert covered == list(range(n))
                    assert all(stop - start <= max(chunk, align) for start, stop in bounds)
                    assert all((stop - start) % align == 0 for start, stop in bounds[:-1])
    # Split so that every thread works, but not into slivers.
    assert _chunk_bounds(256, 128, 2) == [(0, 128), (128, 256)]
    assert _chunk_bounds(100, 128, 2) == [(0, 50), (50, 100)]
    assert len(_chunk_bounds(MIN_PIECE, 128, 2)) == 1


@pytest.mark.parametrize("arch", ["paper_nodia", "improved_dia"])
def test_parallel_chunks_give_the_same_outputs(arch, randomised_model):
    """Chunks on several threads at once: the same probabilities and
    saliency maps as one thread in one call, in the input order.
    """
    from rbnodia.nn.onnx.runtime import OnnxPredictor, OnnxSaliency
    from rbnodia.nn.onnx.translate import translate_variants

    model = randomised_model(arch)
    x = _inputs(model, 203, seed=4)
    forward, maps_graph = translate_variants(model.network), translate_variants(model.network, saliency=True)
    single = OnnxPredictor(forward, threads=1, chunk=1000)(x)
    for threads, chunk in ((2, 32), (3, 16)):
        parallel = OnnxPredictor(forward, threads=threads, chunk=chunk)(x)
        np.testing.assert_allclose(parallel, single, rtol=0, atol=1e-6)
        # the per-call thread count overrides the runner's
        np.testing.assert_allclose(OnnxPredictor(forward, threads=1, chunk=chunk)(x, threads=threads), single,
                                   rtol=0, atol=1e-6)
    maps, probabilities = OnnxSaliency(maps_graph, threads=1, chunk=1000)(x)
    parallel_maps, parallel_probabilities = OnnxSaliency(maps_graph, threads=2, chunk=32)(x)
    np.testing.assert_array_equal(parallel_maps, maps)
    np.testing.assert_array_equal(parallel_probabilities, probabilities)
    np.testing.assert_allclose(probabilities, single, rtol=0, atol=1e-6)


def test_auto_prefers_onnx_and_environment_is_ignored(monkeypatch):
    """Backend and thread count are arguments; the environment variables
    that used to choose them have no effect.
    """
    model = RealBogusModel.from_architecture("paper_nodia")
    assert model.inference_backend() == "onnx"
    assert model.inference_backend("tensorflow") == "tensorflow"
    x = _inputs(model, 40)
    monkeypatch.setenv("RBNODIA_INFERENCE_BACKEND", "tensorflow")
    monkeypatch.setenv("RBNODIA_INFERENCE_THREADS", "not a number")
    assert model.inference_backend() == "onnx"
    one = model.predict(x, threads=1)
    np.testing.assert_allclose(model.predict(x, threads=2), one, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, threads=0), one, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, backend="tensorflow", threads=1), one, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="Unknown inference backend"):
        model.predict(x, backend="torch")
    with pytest.raises(ValueError, match="threads"):
        model.predict(x, threads=-1)
    assert set(INFERENCE_BACKENDS) == {"auto", "tensorflow", "onnx"}


def test_unsupported_network_falls_back_to_tensorflow():
    import keras

    network = keras.Sequential([keras.Input((51, 102, 1)), keras.layers.AveragePooling2D(3),
                                keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model = RealBogusModel(network, ModelMetadata(name="odd", architecture="custom", layout="noDIA"))
    x = _inputs(model, 3)
    assert model.inference_backend() == "tensorflow"
    np.testing.assert_allclose(model.predict(x), np.asarray(network(x))[:, 0], atol=1e-6)
    with pytest.raises(RuntimeError, match="ONNX backend is unavailable"):
        model.predict(x, backend="onnx")


def test_onnx_graph_built_once_and_rebuilt_after_weight_change(monkeypatch, randomised_model):
    import rbnodia.nn.onnx.runtime as backend

    built = []
    original = backend.OnnxPredictor.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(backend.OnnxPredictor, "__init__", counting_init)
    model = randomised_model("paper_nodia")
    x = _inputs(model, 20)
    model.predict(x, backend="onnx")
    model.predict(x, backend="onnx")
    model.predict(x)
    assert len(built) == 1
    weights = model.network.get_weights()
    weights[-1] = weights[-1] + np.array([2.0, -2.0], np.float32)  # shift the softmax towards "real"
    model.network.set_weights(weights)
    model.refresh_hash()
    np.testing.assert_allclose(model.predict(x, backend="onnx"), model.predict(x, backend="tensorflow"),
                               atol=1e-5)
    assert len(built) == 2


def test_empty_and_bad_batches():
    model = RealBogusModel.from_architecture("paper_dia")
    assert model.probabilities(np.zeros((0, 51, 153, 1), np.float32), backend="onnx").shape == (0, 2)
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(np.zeros((2, 51, 153, 1), np.float32), batch_size=0)


def test_model_file_loaded_once_per_process(tmp_path, monkeypatch):
    """load_model and the classification task read and build a model file once."""
    from astropy.table import Table

    from rbnodia.nn import model as model_module
    from rbnodia.tasks.classify import ClassifyRealBogusConfig, ClassifyRealBogusTask

    path = tmp_path / "once.rbmodel"
    RealBogusModel.from_architecture("paper_nodia", name="once").save(path)
    loads = []
    original = model_module.RealBogusModel.from_bytes.__func__

    def counting_from_bytes(cls, data, source="<bytes>"):
        loads.append(1)
        return original(cls, data, source)

    monkeypatch.setattr(model_module.RealBogusModel, "from_bytes", classmethod(counting_from_bytes))
    first = load_model(path)
    assert load_model(str(path)) is first and load_model(path.read_bytes()) is first
    config = ClassifyRealBogusConfig()
    config.modelName = str(path)
    config.doSaliency = False
    task = ClassifyRealBogusTask(config=config)
    rng = np.random.default_rng(0)
    image = rng.normal(size=(120, 120)).astype(np.float32)
    detections = Table({"id": np.arange(3), "x": [30.0, 60.0, 90.0], "y": [30.0, 60.0, 90.0]})
    for _ in range(2):
        result = task.run(science=image, template=image * 0.5, detections=detections)
        assert len(result.reliability) == 3
    assert len(loads) == 1


_FORKED = {}


def _predict_in_forked_child(x):
    return _FORKED["predictor"](x)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_parallel_chunks_report_errors_and_survive_fork(randomised_model):
    """A failing chunk raises in the caller (after every thread stopped), and
    a forked child (pipetask -j) builds its own worker threads.
    """
    import multiprocessing

    from rbnodia.nn.onnx.runtime import OnnxPredictor, _chunk_bounds, _run_chunks
    from rbnodia.nn.onnx.translate import translate_variants

    done = []

    def work(start, stop):
        if start == 32:
            raise RuntimeError("chunk failed")
        done.append(start)

    with pytest.raises(RuntimeError, match="chunk failed"):
        _run_chunks(work, _chunk_bounds(200, 16, 2), threads=2)
    assert 32 not in done and 0 in done

    model = randomised_model("improved_nodia")
    predictor = OnnxPredictor(translate_variants(model.network), threads=2, chunk=16)
    x = _inputs(model, 64, seed=7)
    expected = predictor(x)  # the parent's pool exists now
    _FORKED["predictor"] = predictor
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        # a stale pool would hang
        in_child = pool.apply_async(_predict_in_forked_child, (x,)).get(timeout=120)
    np.testing.assert_array_equal(in_child, expected)
