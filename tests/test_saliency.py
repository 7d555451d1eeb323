"""Saliency diagnostics: segment importances (paper Eq. 4), quadrants,
gradient saliency against finite differences, figures and the CLI.

Conventions under test: labels 0 = real / 1 = bogus, softmax column 0 =
P(real), real is the positive class, saliency = |d P(top class) / d input|.
"""

import json

import numpy as np
import pytest

from rbnodia.core.saliency import (
    NO_DOMINANT,
    PREDICTION_CLASSES,
    QUADRANTS,
    confusion_quadrant,
    dominant_by_cut,
    dominant_segment,
    group_names,
    is_prediction_only,
    prediction_class,
    segment_importances,
    summarize_importances,
)

SIZE = 11


# ---------------------------------------------------------------------------
# Pure numpy.


def _maps(layout, stacking, n=4, seed=0):
    from rbnodia.core.layouts import input_shape

    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(size=(n,) + input_shape(layout, SIZE, stacking))).astype(np.float32)


@pytest.mark.parametrize("layout", ["noDIA", "DIA"])
@pytest.mark.parametrize("stacking", ["horizontal", "channels"])
def test_importances_sum_to_one_and_match_eq4(layout, stacking):
    from rbnodia.core.layouts import Layout, split_segments

    maps = _maps(layout, stacking)
    importances = segment_importances(maps, layout, stacking)
    assert list(importances) == list(Layout(layout).segments)
    total = sum(importances.values())
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)
    # Eq. 4 by hand, segment by segment.
    segments = split_segments(maps, layout, stacking)
    for name, value in importances.items():
        expected = segments[name].sum(axis=(1, 2)) / maps.sum(axis=(1, 2, 3))
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        assert np.all((value >= 0) & (value <= 1))


def test_importances_of_hand_made_maps():
    maps = np.zeros((2, 2, 6, 1))
    maps[0, :, 0:2] = 1.0  # all on diff
    maps[1, 0, 2] = -3.0  # signed gradients are taken in absolute value
    maps[1, 0, 5] = 1.0
    importances = segment_importances(maps, "DIA")
    np.testing.assert_allclose(importances["diff"], [1.0, 0.0])
    np.testing.assert_allclose(importances["srch"], [0.0, 0.75])
    np.testing.assert_allclose(importances["tmpl"], [0.0, 0.25])
    assert list(dominant_segment(importances)) == ["diff", "srch"]


def test_all_zero_map_gives_nan_not_crash():
    maps = _maps("DIA", "horizontal", n=3)
    maps[1] = 0.0
    importances = segment_importances(maps, "DIA")
    for value in importances.values():
        assert np.isnan(value[1]) and np.isfinite(value[[0, 2]]).all()
    dominant = dominant_segment(importances)
    assert dominant[1] == NO_DOMINANT and dominant[0] != NO_DOMINANT
    assert not any(used[1] for used in dominant_by_cut(importances).values())
    summary = summarize_importances(importances, np.array(["TP", "TP", "TN"]))
    assert summary["groups"]["TP"]["n"] == 2 and summary["groups"]["TP"]["n_undefined"] == 1
    assert summary["groups"]["TP"]["dominant_count"][dominant[0]] == 1
    json.dumps(summary, allow_nan=False)  # JSON-ready: no NaN anywhere


def test_single_map_and_bad_shapes():
    one = segment_importances(np.ones((SIZE, 2 * SIZE, 1)), "noDIA")
    np.testing.assert_allclose(one["srch"], [0.5])
    with pytest.raises(ValueError):
        segment_importances(np.ones((1, SIZE, 2 * SIZE + 1, 1)), "noDIA")
    with pytest.raises(ValueError):
        segment_importances(np.ones((1, SIZE, SIZE, 3)), "noDIA", "channels")


def test_dominant_cut_and_ties():
    importances = {
        "diff": np.array([0.4, 0.2, 1 / 3, 0.5]),
        "srch": np.array([0.4, 0.3, 1 / 3, 0.5]),
        "tmpl": np.array([0.2, 0.5, 1 / 3, 0.0]),
    }
    assert list(dominant_segment(importances)) == ["diff", "tmpl", "diff", "diff"]  # ties: layout order
    used = dominant_by_cut(importances)
    assert list(used["diff"]) == [True, False, False, True]  # strict: exactly 1/3 is not above
    assert list(used["srch"]) == [True, False, False, True]
    assert list(used["tmpl"]) == [False, True, False, False]
    assert list(dominant_by_cut(importances, cut=0.45)["diff"]) == [False, False, False, True]


def test_confusion_quadrants_by_hand():
    labels = np.array([0, 0, 1, 1, 0, 1])
    predicted_real = np.array([True, False, True, False, True, False])
    assert list(confusion_quadrant(labels, predicted_real)) == ["TP", "FN", "FP", "TN", "TP", "TN"]
    assert list(confusion_quadrant(None, predicted_real)) == list(prediction_class(predicted_real))
    assert list(prediction_class([True, False])) == ["predicted real", "predicted bogus"]
    with pytest.raises(ValueError):
        confusion_quadrant(np.array([0, 2]), np.array([True, True]))
    with pytest.raises(ValueError):
        confusion_quadrant(np.array([0]), np.array([True, True]))
    assert group_names(np.array(["TN", "TN"])) == QUADRANTS
    assert group_names(prediction_class([True])) == PREDICTION_CLASSES
    assert not is_prediction_only(np.array([], dtype=str))


def test_summary_fractions():
    importances = {"srch": np.array([0.7, 0.2, 0.6, 0.1]), "tmpl": np.array([0.3, 0.8, 0.4, 0.9])}
    groups = np.array(["TP", "TP", "TN", "FP"])
    summary = summarize_importances(importances, groups, cut=0.5)
    tp = summary["groups"]["TP"]
    assert tp["dominant_fraction"] == {"srch": 0.5, "tmpl": 0.5}
    assert tp["mean_importance"]["srch"] == pytest.approx(0.45)
    assert summary["groups"]["FN"]["n"] == 0 and summary["groups"]["FN"]["dominant_fraction"]["srch"] is None
    assert summary["all"]["n"] == 4
    assert sum(summary["all"]["dominant_fraction"].values()) == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Gradient saliency (TensorFlow, tiny models).


def _wrap(network, layout, stacking="horizontal", size=SIZE):
    from rbnodia.nn import ModelMetadata, RealBogusModel

    metadata = ModelMetadata(
        name="tiny", architecture="tiny", layout=layout, stacking=stacking, stamp_size=size
    )
    return RealBogusModel(network, metadata)


def _srch_only_model(layout, stacking):
    """Output depends on the srch segment only."""
    import keras

    from rbnodia.core.layouts import Layout, input_shape

    keras.utils.set_random_seed(3)
    shape = input_shape(layout, SIZE, stacking)
    inputs = keras.Input(shape)
    position = Layout(layout).segments.index("srch")
    if stacking == "horizontal":
        k = len(Layout(layout).segments)
        crop = ((0, 0), (position * SIZE, (k - 1 - position) * SIZE))
        x = keras.layers.Cropping2D(crop)(inputs)
    else:
        x = keras.layers.Lambda(lambda t: t[..., position : position + 1])(inputs)
    x = keras.layers.Conv2D(2, 3, activation="tanh")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return _wrap(keras.Model(inputs, outputs), layout, stacking)


@pytest.mark.parametrize(
    "layout,stacking", [("noDIA", "horizontal"), ("DIA", "horizontal"), ("DIA", "channels")]
)
def test_one_segment_model_has_zero_saliency_elsewhere(layout, stacking):
    from rbnodia.core.layouts import split_segments
    from rbnodia.nn.saliency import saliency_maps

    model = _srch_only_model(layout, stacking)
    shape = (5,) + model.input_shape
    inputs = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    result = saliency_maps(model, inputs, batch_size=2)
    segments = split_segments(result.maps, layout, stacking)
    for name, values in segments.items():
        if name == "srch":
            assert (values.reshape(5, -1).max(axis=1) > 0).all()
        else:
            assert np.all(values == 0.0), name
    importances = segment_importances(result.maps, layout, stacking)
    np.testing.assert_array_equal(importances["srch"], 1.0)
    # Same forward pass as plain inference.
    np.testing.assert_allclose(result.probabilities, model.probabilities(inputs), rtol=1e-5, atol=1e-7)


def test_saliency_matches_finite_differences():
    import keras

    from rbnodia.nn.saliency import saliency_maps

    keras.utils.set_random_seed(7)
    size = 5
    inputs = keras.Input((size, 2 * size, 1), dtype="float64")
    x = keras.layers.Conv2D(3, 3, activation="tanh", dtype="float64")(inputs)
    x = keras.layers.Flatten(dtype="float64")(x)
    outputs = keras.layers.Dense(2, activation="softmax", dtype="float64")(x)
    network = keras.Model(inputs, outputs)
    model = _wrap(network, "noDIA", size=size)
    # float32-representable inputs, so the compiled float32 entry sees the same values.
    points = np.random.default_rng(2).normal(size=(3, size, 2 * size, 1)).astype(np.float32)
    points = points.astype(np.float64)
    result = saliency_maps(model, points, backend="tensorflow")
    eps = 1e-6
    n = points[0].size
    for i, point in enumerate(points):
        top = int(np.argmax(result.probabilities[i]))
        steps = np.repeat(point.reshape(1, -1), 2 * n, axis=0)
        steps[np.arange(n), np.arange(n)] += eps
        steps[n + np.arange(n), np.arange(n)] -= eps
        probabilities = np.asarray(network(steps.reshape((2 * n,) + point.shape)))
        gradient = (probabilities[:n, top] - probabilities[n:, top]) / (2 * eps)
        np.testing.assert_allclose(result.maps[i].ravel(), np.abs(gradient), rtol=1e-4, atol=1e-7)


def test_fast_pooling_gradient_equals_maxpoolgrad(caplog):
    """The XLA max-pool gradient equals TensorFlow's MaxPoolGrad, ties included."""
    import keras

    from rbnodia.nn.saliency import _saliency_network, saliency_maps

    keras.utils.set_random_seed(11)
    inputs = keras.Input((SIZE, 3 * SIZE, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same")(inputs)
    x = keras.layers.MaxPooling2D(3)(x)  # 11 x 33 -> 3 x 11, odd remainder cropped
    x = keras.layers.Conv2D(4, 2, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.MaxPooling2D((1, 2), strides=(1, 1))(x)  # overlapping: left as is
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = _wrap(keras.Model(inputs, outputs), "DIA")
    layers = _saliency_network(model.network).layers
    swapped = [layer.name for layer in layers if layer.name.endswith("_fastgrad")]
    assert len(swapped) == 2
    points = np.random.default_rng(3).normal(size=(9, SIZE, 3 * SIZE, 1)).astype(np.float32)
    points[:3, :, :12] = 1.0  # constant regions: tied maxima
    points[3] = 0.0
    fast = saliency_maps(model, points, batch_size=4, backend="tensorflow")
    plain = saliency_maps(model, points, batch_size=4, fast_pooling=False, backend="tensorflow")
    np.testing.assert_array_equal(fast.probabilities, plain.probabilities)
    np.testing.assert_allclose(fast.maps, plain.maps, rtol=1e-6, atol=1e-9)
    assert fast.maps[:3].max() > 0
    assert "Fast max-pool gradient failed" not in caplog.text


@pytest.mark.parametrize("arch", ["paper_nodia", "paper_dia", "improved_nodia", "improved_dia", "patch_nodia",
                                  "patch_dia"])
def test_onnx_saliency_equals_tensorflow(arch, randomised_model):
    """The hand-written ONNX backward pass gives TensorFlow's gradients."""
    pytest.importorskip("onnxruntime")
    from rbnodia.nn.saliency import saliency_backend, saliency_maps

    model = randomised_model(arch)
    assert saliency_backend(model, "onnx") == "onnx"
    assert (model.onnx_runner("saliency").fold > 1) == (arch == "paper_nodia")
    # 37 in batches of 32: whole chunks of 16 (paper_nodia's folded graph) and a remainder.
    shape = (37,) + model.input_shape
    inputs = np.random.default_rng(5).normal(0.5, 0.3, shape).astype(np.float32)
    reference = saliency_maps(model, inputs, batch_size=32, backend="tensorflow")
    result = saliency_maps(model, inputs, batch_size=32, backend="onnx")
    assert result.maps.shape == inputs.shape and result.maps.dtype == np.float32
    np.testing.assert_allclose(result.probabilities, reference.probabilities, rtol=0, atol=1e-5)
    scale = reference.maps.max()
    assert scale > 0
    # Max pooling sends the gradient to each window's maximum, and a relu
    # passes it where its input is positive; where two values of a window, or
    # a pre-activation and 0, differ by less than float32 rounding the
    # backends may decide differently (seen: a batch-norm output of 3e-8), so
    # a few pixels may differ, never the segment shares by much.
    close = np.isclose(result.maps, reference.maps, rtol=1e-3, atol=1e-5 * scale)
    assert close.mean() > (0.99 if "paper" in arch else 0.999), close.mean()
    ours, theirs = (segment_importances(r.maps, model.layout, model.stacking) for r in (result, reference))
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=5e-3)
    # The maps summed over their rows (what the catalog's fractions need), on both backends.
    for backend, maps in (("onnx", result.maps), ("tensorflow", reference.maps)):
        rows = saliency_maps(model, inputs, batch_size=32, backend=backend, sum_rows=True)
        assert rows.maps.shape == (37, 1) + inputs.shape[2:] and rows.maps.dtype == np.float32
        np.testing.assert_array_equal(rows.probabilities, result.probabilities if backend == "onnx"
                                      else reference.probabilities)
        np.testing.assert_allclose(rows.maps, maps.sum(axis=1, keepdims=True), rtol=1e-5,
                                   atol=1e-6 * scale * inputs.shape[1])
        from_rows = segment_importances(rows.maps, model.layout, model.stacking)
        for name in from_rows:
            np.testing.assert_allclose(from_rows[name], ours[name] if backend == "onnx" else theirs[name],
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize("row_sums", [False, True])
def test_onnx_saliency_output_is_not_copied(row_sums):
    """The saliency graph has one saliency output, written by the node that
    computes it: an ``Identity`` before a graph output is a copy of the
    largest tensor of the graph (3 us/stamp), and ONNX Runtime runs every
    node of a graph, fetched or not.
    """
    pytest.importorskip("onnxruntime")
    import onnx

    from rbnodia.nn.architectures import build_network
    from rbnodia.nn.onnx.translate import keras_to_onnx

    graph = onnx.load_from_string(keras_to_onnx(build_network("patch_nodia"), saliency=True,
                                                row_sums=row_sums)).graph
    name = "saliency_row_sums" if row_sums else "gradient"
    assert [output.name for output in graph.output] == ["outputs", name]
    producer = next(node for node in graph.node if name in node.output)
    assert producer.op_type == ("MatMul" if row_sums else "ConvTranspose")


def _central_differences(network, point, top, eps):
    """``|d P_top / d x|`` of a Keras network at ``point`` by central
    differences of step ``eps``, flattened.
    """
    n = point.size
    steps = np.repeat(point.reshape(1, -1).astype(np.float64), 2 * n, axis=0)
    steps[np.arange(n), np.arange(n)] += eps
    steps[n + np.arange(n), np.arange(n)] -= eps
    probabilities = np.asarray(network(steps.reshape((2 * n,) + point.shape).astype(np.float32)), np.float64)
    return np.abs(probabilities[:n, top] - probabilities[n:, top]) / (2 * eps)


def test_onnx_saliency_matches_finite_differences():
    """Strided 'same' convolution, batch norm after an activation and after a
    dense layer, pooling, relu/tanh/sigmoid: the ONNX gradient against central
    differences of the Keras network.
    """
    pytest.importorskip("onnxruntime")
    import keras

    from rbnodia.nn.saliency import saliency_maps

    keras.utils.set_random_seed(8)
    size = 9
    inputs = keras.Input((size, size, 2))
    x = keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh")(inputs)  # 9 -> 5
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(4, 2, activation="relu")(x)  # 5 -> 4
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)
    x = keras.layers.BatchNormalization()(x)  # folded into the dense kernel's gradient
    x = keras.layers.Activation("sigmoid")(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    network = keras.Model(inputs, outputs)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            count = layer.moving_mean.shape[0]
            layer.moving_mean.assign(np.full(count, 0.2, np.float32))
            layer.moving_variance.assign(np.full(count, 0.3, np.float32))
            layer.gamma.assign(np.linspace(0.5, 2.0, count).astype(np.float32))
    model = _wrap(network, "noDIA", "channels", size=size)
    points = np.random.default_rng(9).normal(size=(3, size, size, 2)).astype(np.float32)
    result = saliency_maps(model, points, backend="onnx")
    for i, point in enumerate(points):
        gradient = _central_differences(network, point, int(np.argmax(result.probabilities[i])), 1e-2)
        np.testing.assert_allclose(result.maps[i].ravel(), gradient, rtol=0.05, atol=0.02 * gradient.max())


@pytest.mark.parametrize("after_flatten", ["dense", "batch_norm"])
def test_onnx_saliency_blocked_path_matches_finite_differences(after_flatten):
    """Stride-1 convolutions on 8 channels are undone by flipped
    convolutions, and the relu between them by ``tanh(gain * y)`` in ONNX
    Runtime's blocked layout: still the gradient of the Keras network.  A
    Flatten followed by a Dense flattens in NCHW order, one followed by
    anything else transposes to NHWC first.
    """
    pytest.importorskip("onnxruntime")
    import keras
    import onnx

    from rbnodia.nn.onnx.translate import keras_to_onnx
    from rbnodia.nn.saliency import saliency_maps

    keras.utils.set_random_seed(11)
    size = 7
    inputs = keras.Input((size, size, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)  # 2 in: ConvTranspose
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)  # flipped, "same"
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)  # its gradient comes from a flipped convolution: tanh derivative
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)  # flipped, "valid": 7 -> 5
    x = keras.layers.Flatten()(x)
    if after_flatten == "batch_norm":
        x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    network = keras.Model(inputs, outputs)
    bn = network.layers[3]
    bn.moving_mean.assign(np.full(8, 0.1, np.float32))
    bn.moving_variance.assign(np.linspace(0.2, 2.0, 8).astype(np.float32))
    graph = onnx.load_from_string(keras_to_onnx(network, saliency=True)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("ConvTranspose") == 1 and ops.count("Conv") == 5 and ops.count("Tanh") == 2, ops
    # none at the input (read as one interleaved channel), to NHWC before the Flatten and back
    assert ops.count("Transpose") == (2 if after_flatten == "batch_norm" else 0), ops
    model = _wrap(network, "noDIA", "channels", size=size)
    points = np.random.default_rng(12).normal(size=(3, size, size, 2)).astype(np.float32)
    result = saliency_maps(model, points, backend="onnx")
    reference = saliency_maps(model, points, backend="tensorflow")
    np.testing.assert_allclose(result.maps, reference.maps, rtol=1e-4, atol=1e-6 * reference.maps.max())
    # Central differences agree except where a relu input lies within eps of
    # its kink (then the difference quotient is not the derivative).
    for i, point in enumerate(points):
        gradient = _central_differences(network, point, int(np.argmax(result.probabilities[i])), 1e-3)
        assert gradient.max() > 0
        close = np.isclose(result.maps[i].ravel(), gradient, rtol=0.05, atol=0.02 * gradient.max())
        assert close.mean() > 0.95, close.mean()


@pytest.mark.parametrize("kernel,stride,padding", [(4, 4, "valid"), (3, 2, "valid"), (5, 3, "same")])
def test_onnx_input_gradient_written_channels_last(kernel, stride, padding):
    """The first convolution reads the channels-last input as one
    interleaved channel (no transpose in either direction); its outputs and
    input gradient equal TensorFlow's: with output padding (rows and columns
    the convolution never reads), and with 'same' padding of an odd total.
    """
    pytest.importorskip("onnxruntime")
    import keras
    import onnx

    from rbnodia.nn.onnx.translate import keras_to_onnx
    from rbnodia.nn.saliency import saliency_maps

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, kernel, strides=stride, padding=padding, activation="relu")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    network = keras.Model(inputs, outputs)
    ops = [node.op_type for node in onnx.load_from_string(keras_to_onnx(network, saliency=True)).graph.node]
    assert "Transpose" not in ops, ops
    model = _wrap(network, "DIA", "channels", size=SIZE)
    points = np.random.default_rng(1).normal(size=(5, SIZE, SIZE, 3)).astype(np.float32)
    result = saliency_maps(model, points, backend="onnx")
    reference = saliency_maps(model, points, backend="tensorflow")
    np.testing.assert_allclose(result.probabilities, reference.probabilities, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.maps, reference.maps, rtol=1e-4, atol=1e-6 * reference.maps.max())


def test_onnx_saliency_is_exact_where_the_softmax_saturates():
    """Logit margins of 20-80 make float32 softmax outputs exactly 0 and 1;
    the ONNX maps still equal P_t P_o |d(z_t - z_o)/dx| (the exact
    derivative, from the logits in float64), and the segment shares stay
    defined.
    """
    pytest.importorskip("onnxruntime")
    import keras
    import tensorflow as tf

    from rbnodia.nn.saliency import saliency_maps

    keras.utils.set_random_seed(12)
    inputs = keras.Input((SIZE, SIZE, 2))
    x = keras.layers.Conv2D(8, 5, strides=2, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(2)(x)
    network = keras.Model(inputs, keras.layers.Activation("softmax")(logits))
    logit_network = keras.Model(inputs, logits)
    points = np.random.default_rng(13).normal(size=(40, SIZE, SIZE, 2)).astype(np.float32)
    # Rescale the last layer so the median margin is 50, keep the points with margins of 20-85.
    margin = np.abs(np.diff(np.asarray(logit_network(points), np.float64), axis=1)).ravel()
    factor = 50.0 / np.median(margin)
    kernel, bias = network.layers[-2].get_weights()
    network.layers[-2].set_weights([kernel * factor, bias * factor])
    z = np.asarray(logit_network(points), np.float64)
    margin = np.abs(z[:, 0] - z[:, 1])
    keep = (margin > 20) & (margin < 85)
    assert keep.sum() >= 8
    points, z, margin = points[keep], z[keep], margin[keep]
    model = _wrap(network, "noDIA", "channels", size=SIZE)
    result = saliency_maps(model, points, backend="onnx")
    assert np.all(result.probabilities.max(axis=1) == 1.0)  # saturated in float32

    top = np.argmax(z, axis=1)
    sign = np.where(top == 0, 1.0, -1.0)
    tensor = tf.constant(points)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        out = logit_network(tensor)
        chosen_margin = tf.reduce_sum((out[:, 0] - out[:, 1]) * sign.astype(np.float32))
    margin_gradient = np.asarray(tape.gradient(chosen_margin, tensor), np.float64)
    weight = np.exp(-margin) / (1.0 + np.exp(-margin)) ** 2  # P_t P_o
    expected = np.abs(margin_gradient) * weight[:, None, None, None]
    assert np.all(result.maps.reshape(len(points), -1).max(axis=1) > 0)
    # Per stamp, to float32 rounding of the sums (the reference's own
    # gradient is float32: up to 4e-5 of a stamp's largest value, seen).
    for ours, exact in zip(result.maps, expected):
        np.testing.assert_allclose(ours, exact, rtol=1e-3, atol=1e-4 * exact.max())
    shares = segment_importances(result.maps, model.layout, model.stacking)
    total = sum(value for value in shares.values() if not np.all(np.isnan(value)))
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_onnx_saliency_falls_back_and_obeys_the_backend_choice(monkeypatch, randomised_model):
    pytest.importorskip("onnxruntime")
    import keras

    from rbnodia.nn.saliency import saliency_backend, saliency_maps

    # Overlapping max pooling has no ONNX gradient.
    inputs = keras.Input((SIZE, 2 * SIZE, 1))
    x = keras.layers.MaxPooling2D((2, 2), strides=(1, 1))(inputs)
    x = keras.layers.Flatten()(x)
    overlapping = _wrap(keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)), "noDIA")
    assert saliency_backend(overlapping, "auto") == "tensorflow"
    with pytest.raises(RuntimeError, match="ONNX saliency is unavailable"):
        saliency_maps(overlapping, np.zeros((2, SIZE, 2 * SIZE, 1), np.float32), backend="onnx")
    # A network without a final softmax cannot either.
    inputs = keras.Input((SIZE, 2 * SIZE, 1))
    logits = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
    with pytest.raises(RuntimeError):
        saliency_backend(_wrap(keras.Model(inputs, logits), "noDIA"), "onnx")
    # auto is ONNX Runtime where it can; the backend is an argument, not an environment variable.
    model = randomised_model("paper_nodia")
    assert saliency_backend(model, "auto") == "onnx"
    assert saliency_backend(model, "onnx") == "onnx"
    assert saliency_backend(model, "tensorflow") == "tensorflow"
    monkeypatch.setenv("RBNODIA_INFERENCE_BACKEND", "tensorflow")
    assert saliency_backend(model, "auto") == "onnx"
    with pytest.raises(ValueError, match="Unknown inference backend"):
        saliency_backend(model, "torch")
    points = np.random.default_rng(6).normal(size=(40,) + model.input_shape).astype(np.float32)
    one = saliency_maps(model, points, threads=1, sum_rows=True)
    two = saliency_maps(model, points, threads=2, sum_rows=True)
    np.testing.assert_allclose(two.maps, one.maps, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="threads"):
        saliency_maps(model, points, threads=-2)


def test_saliency_on_paper_network_and_edge_cases():
    from rbnodia.nn import ModelMismatchError, RealBogusModel
    from rbnodia.nn.saliency import SaliencyResult, saliency_maps

    model = RealBogusModel.from_architecture("paper_nodia")
    inputs = np.random.default_rng(4).normal(size=(7, 51, 102, 1)).astype(np.float32)
    result = saliency_maps(model, inputs, batch_size=3)
    assert isinstance(result, SaliencyResult) and len(result) == 7
    assert result.maps.shape == inputs.shape and result.maps.dtype == np.float32
    assert (result.maps >= 0).all()
    np.testing.assert_allclose(result.probabilities, model.probabilities(inputs), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(result.score, result.probabilities[:, 0])
    # Batching does not change the maps.
    one_batch = saliency_maps(model, inputs, batch_size=7)
    np.testing.assert_allclose(one_batch.maps, result.maps, rtol=1e-5, atol=1e-9)
    empty = saliency_maps(model, inputs[:0])
    assert empty.maps.shape == (0, 51, 102, 1) and empty.probabilities.shape == (0, 2)
    with pytest.raises(ModelMismatchError):
        saliency_maps(model, np.zeros((2, 51, 153, 1), np.float32))
    with pytest.raises(ValueError):
        saliency_maps(model, inputs, batch_size=0)
    # The saliency pass leaves the network savable and unchanged.
    reloaded = RealBogusModel.from_bytes(model.to_bytes())
    np.testing.assert_allclose(reloaded.probabilities(inputs), result.probabilities, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------
# Figures.


def _fake_diagnostics(layout, stacking="horizontal", n=10, seed=0):
    rng = np.random.default_rng(seed)
    raw = {name: rng.normal(100, 10, size=(n, SIZE, SIZE)) for name in ("diff", "srch", "tmpl")}
    raw["srch"][0, 0, 0] = np.nan  # unusable pixel
    maps = _maps(layout, stacking, n=n, seed=seed)
    maps[1] = 0.0  # an all-zero map
    return raw, maps


def _assert_png(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("with_labels", [True, False])
@pytest.mark.parametrize("layout,stacking", [("noDIA", "horizontal"), ("DIA", "channels")])
def test_figures_write_pngs(tmp_path, with_labels, layout, stacking):
    from rbnodia.plots.saliency import (
        plot_dominant_breakdown,
        plot_examples_per_quadrant,
        plot_importance_distributions,
        plot_stamps_with_saliency,
    )

    raw, maps = _fake_diagnostics(layout, stacking)
    n = len(maps)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 0]) if with_labels else None
    predicted_real = np.array([True, True, True, False, False, False, True, True, False, True])  # no FN
    groups = confusion_quadrant(labels, predicted_real)
    importances = segment_importances(maps, layout, stacking)
    dominant = dominant_segment(importances)

    plot_stamps_with_saliency(raw, maps[:3], layout, stacking, ["a", "b", "c"], path=tmp_path / "stamps.png")
    plot_dominant_breakdown(groups, dominant, layout, title="t", path=tmp_path / "breakdown.png")
    plot_importance_distributions(importances, groups, layout, path=tmp_path / "dist.png")
    figures = plot_examples_per_quadrant(
        raw, maps, groups, layout, stacking, scores=np.linspace(0, 1, n), ids=np.arange(n),
        max_per_quadrant=2, show=("diff", "srch", "tmpl"), out_dir=tmp_path,
    )
    for name in ("stamps.png", "breakdown.png", "dist.png"):
        _assert_png(tmp_path / name)
    if with_labels:
        assert set(figures) == {"TP", "FP", "TN"}  # FN is empty: no figure
    else:
        assert set(figures) == set(PREDICTION_CLASSES)
    for group in figures:
        _assert_png(tmp_path / f"saliency_examples_{group.replace(' ', '_')}.png")


def test_figures_with_everything_empty(tmp_path):
    from rbnodia.plots.saliency import (
        plot_dominant_breakdown,
        plot_examples_per_quadrant,
        plot_importance_distributions,
        plot_stamps_with_saliency,
    )

    groups = confusion_quadrant(np.zeros(0, int), np.zeros(0, bool))
    empty_maps = np.zeros((0, SIZE, 2 * SIZE, 1))
    importances = segment_importances(empty_maps, "noDIA")
    raw = {name: np.zeros((0, SIZE, SIZE)) for name in ("srch", "tmpl")}
    plot_dominant_breakdown(groups, dominant_segment(importances), "noDIA", path=tmp_path / "b.png")
    plot_importance_distributions(importances, groups, "noDIA", path=tmp_path / "d.png")
    plot_stamps_with_saliency(raw, empty_maps, "noDIA", path=tmp_path / "s.png")
    assert plot_examples_per_quadrant(raw, empty_maps, groups, "noDIA", out_dir=tmp_path) == {}
    for name in ("b.png", "d.png", "s.png"):
        _assert_png(tmp_path / name)


# ---------------------------------------------------------------------------
# CLI end to end.


def _tiny_stamps(path, n=12, size=51):
    from rbnodia.core.stampset import LabelledStamps

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:size, :size] - size // 2
    source = 200.0 * np.exp(-(xx**2 + yy**2) / 8.0)
    tmpl = rng.normal(50, 5, (n, size, size)) + source
    label = np.arange(n) % 2
    srch = rng.normal(50, 5, (n, size, size)) + source * (1 + (label == 0))[:, None, None]
    diff = srch - tmpl
    return LabelledStamps(
        diff=diff, srch=srch, tmpl=tmpl, label=label, id=np.arange(100, 100 + n),
        family=np.where(label == 0, "sn", "noise"), mag=np.full(n, np.nan), snr=np.full(n, 5.0),
    ).save(path)


@pytest.mark.parametrize(
    "extra", [[], ["--ignore-labels", "--max", "9", "--batch-size", "4", "--threshold", "0"]]
)
def test_cli_end_to_end(tmp_path, nodia_model_file, extra):
    from rbnodia.cli import main

    stamps = _tiny_stamps(tmp_path / "stamps.npz")
    out = tmp_path / "out"
    args = ["saliency", "--stamps", str(stamps), "--model", str(nodia_model_file), "--out", str(out)]
    code = main(args + extra)
    assert code == 0
    summary = json.loads((out / "saliency_summary.json").read_text())
    assert summary["layout"] == "noDIA" and summary["segments"] == ["srch", "tmpl"]
    assert summary["n"] == (9 if extra else 12)
    assert summary["has_labels"] is (not extra)
    assert set(summary["groups"]) == set(PREDICTION_CLASSES if extra else QUADRANTS)
    assert sum(g["n"] for g in summary["groups"].values()) == summary["n"]
    if extra:  # threshold 0: everything is predicted real, the other group is empty
        assert summary["groups"]["predicted bogus"]["n"] == 0
        assert summary["groups"]["predicted bogus"]["dominant_fraction"]["srch"] is None
    fractions = summary["all"]["dominant_fraction"]
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert set(summary["all"]["mean_importance"]) == {"srch", "tmpl"}
    for name in ("saliency_breakdown.png", "saliency_distributions.png", "saliency_stamps.png"):
        _assert_png(out / name)
    assert list(out.glob("saliency_examples_*.png"))
    with np.load(out / "saliency_importances.npz") as data:
        np.testing.assert_allclose(data["I_srch"] + data["I_tmpl"], 1.0, rtol=1e-9)
        assert len(data["id"]) == summary["n"]


def test_cli_rejects_mismatched_model(tmp_path, dia_model_file, capsys):
    from rbnodia.cli import main

    stamps = _tiny_stamps(tmp_path / "stamps.npz", n=2, size=31)
    out = tmp_path / "o"
    code = main(["saliency", "--stamps", str(stamps), "--model", str(dia_model_file), "--out", str(out)])
    assert code == 1
    assert "stamp size" in capsys.readouterr().err
