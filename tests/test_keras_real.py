"""Real Keras and the real TFLiteConverter: the seed's Keras example, the converter-made CNN
fixtures of tests/data/tflite_cnn (regenerated and run in TFLite Micro), functional graphs."""

import runpy
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from tflite_micro.python.tflite_micro import runtime as tflm

import tessera

import make_tflite_fixtures as fixtures

ROOT = Path(__file__).resolve().parents[1]


def tflm_run(model_bytes, x_q):
    """Return TFLite Micro's int8 outputs for the int8 inputs ``x_q`` [B, ...], one by one."""
    interpreter = tflm.Interpreter.from_bytes(model_bytes)
    outputs = []
    for row in x_q:
        interpreter.set_input(row[None], 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0)[0])
    return np.stack(outputs)


def int8_inputs(shape, *, seed=0, random_rows=24):
    """Discriminating int8 inputs ``[B, *shape]``: both extremes, a ±extreme checkerboard
    (saturates every window and the padding border), a ramp and uniform random rows."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    rows = [np.full(size, -128), np.full(size, 127), np.where(np.arange(size) % 2, 127, -128),
            np.arange(size) % 256 - 128, np.zeros(size)]
    rows += list(rng.integers(-128, 128, size=(random_rows, size)))
    return np.stack(rows).astype(np.int8).reshape(-1, *shape)


def test_keras_seed_example_runs(capsys):
    module = runpy.run_path(str(ROOT / "examples" / "keras_linear_regression.py"))
    figures = module["main"]([])
    out = capsys.readouterr().out
    assert "MSE float (Keras)" in out and "MSE int8, tessera.quantize" in out
    w0, w1, b = figures["weights"]
    assert abs(w0 - 3) < 0.1 and abs(w1 - 2) < 0.1 and abs(b) < 0.1
    # The noise has variance 0.01: int8 costs at most a few percent of it, both ways.
    assert figures["mse_float"] < 0.02
    assert abs(figures["mse_int8"] - figures["mse_float"]) < 1e-3
    assert abs(figures["mse_tflite"] - figures["mse_float"]) < 1e-3
    assert figures["identical_int8"] and figures["identical_tflite"]
    # The converter's file in the default mode is LiteRT's interpreter, bit for bit.
    interpreter = Interpreter(model_content=figures["tflite_model"])
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero_point = inp["quantization"]
    x_q = np.clip(np.round(figures["x"] / scale) + zero_point, -128, 127).astype(np.int8)
    interpreter.resize_tensor_input(inp["index"], x_q.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x_q)
    interpreter.invoke()
    y_q = interpreter.get_tensor(outp["index"]).astype(np.float32)
    scale, zero_point = outp["quantization"]
    np.testing.assert_array_equal(figures["y_tflite"], (y_q[:, 0] - zero_point) * scale)


def test_converter_fixtures_regenerate(tmp_path):
    """The committed fixtures are what the script writes today, and run the same in TFLM."""
    for path in fixtures.write_fixtures(tmp_path):
        committed = (fixtures.FIXTURE_DIR / path.name).read_bytes()
        fresh = path.read_bytes()
        x_q = int8_inputs(fixtures.FIXTURES[path.stem][0])
        np.testing.assert_array_equal(tflm_run(committed, x_q), tflm_run(fresh, x_q),
                                      err_msg=path.name)
        assert committed == fresh, (f"{path.name}: the converter now writes other bytes; rerun "
                                    "tests/make_tflite_fixtures.py and commit the files")


@pytest.mark.parametrize("name", sorted(fixtures.FIXTURES))
def test_converter_fixtures_are_nontrivial(name):
    """Each fixture's output depends on its input (a constant output would test nothing)."""
    data = (fixtures.FIXTURE_DIR / f"{name}.tflite").read_bytes()
    y = tflm_run(data, int8_inputs(fixtures.FIXTURES[name][0]))
    assert len({row.tobytes() for row in y}) > y.shape[0] // 2


@pytest.mark.parametrize("name", sorted(fixtures.FIXTURES))
def test_converter_fixtures_equal_tflm(name):
    """Each converter-made CNN loaded in mode "tflite" is TFLite Micro, bit for bit."""
    path = fixtures.FIXTURE_DIR / f"{name}.tflite"
    x_q = int8_inputs(fixtures.FIXTURES[name][0], random_rows=200)
    model = tessera.load_model(path, mode="tflite")
    np.testing.assert_array_equal(model.predict(x_q, raw=True), tflm_run(path.read_bytes(), x_q))


# -- post-training quantization of real Keras models (tessera.quantize(keras_model, x)) -----------

def _keras():
    return fixtures._keras().keras


def _error_bound(model, x_cal, x_test, mode, *, tolerance):
    """Quantize ``model``; check its float graph is Keras's and return (qmodel, max error)."""
    from tessera.quantize.keras_graph import keras_float_graph
    expected = model(x_test).numpy()
    np.testing.assert_allclose(keras_float_graph(model).forward(x_test), expected, atol=1e-5)
    qmodel = tessera.quantize(model, calibration=x_cal, mode=mode)
    error = np.abs(qmodel.predict(x_test) - expected).max()
    span = expected.max() - expected.min()
    assert error <= tolerance * span, (error, span)
    return qmodel, expected


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
@pytest.mark.parametrize("name", sorted(fixtures.FIXTURES))
def test_keras_cnn_post_training_quantization(name, mode):
    """Conv2D, DepthwiseConv2D, pools, Add, Concatenate, folded BatchNormalization, Dense and
    Softmax quantize to a graph within 4 % of the float output's span, argmax kept."""
    model = fixtures.build(name)
    x_cal = fixtures.calibration_rows(name, 200, seed=3)
    x_test = fixtures.calibration_rows(name, 100, seed=4)
    qmodel, expected = _error_bound(model, x_cal, x_test, mode, tolerance=0.04)
    assert isinstance(qmodel, tessera.graph.QuantizedGraph) and qmodel.mode == mode
    assert np.mean(qmodel.predict(x_test).argmax(1) == expected.argmax(1)) >= 0.95
    weights = [t for t in qmodel.graph.tensors.values() if t.name.endswith(":weight")]
    assert weights and all(t.qparams.per_channel for t in weights)
    per_tensor = tessera.quantize(model, calibration=x_cal, mode=mode, per_channel=False)
    assert all(not t.qparams.per_channel for t in per_tensor.graph.tensors.values()
               if t.name.endswith(":weight"))


def test_keras_sequential_cnn():
    keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((9, 9, 3)), L.Conv2D(4, 3, name="conv"),
                              L.BatchNormalization(name="bn"), L.ReLU(6.0, name="relu6"),
                              L.MaxPooling2D(name="pool"), L.Reshape((-1,), name="flat"),
                              L.Dropout(0.5, name="drop"), L.Dense(3, name="dense")])
    fixtures._randomise(model, 1)
    x = np.random.default_rng(2).normal(size=(150, 9, 9, 3)).astype(np.float32)
    qmodel, _ = _error_bound(model, x[:100], x[100:], "onnx", tolerance=0.03)
    assert [op.kind for op in qmodel.graph.ops] == ["CONV_2D", "MAX_POOL_2D", "RESHAPE",
                                                    "FULLY_CONNECTED"]
    assert qmodel.graph.ops[0].attrs["activation"] == "relu6"


def test_keras_shared_layer_is_applied_at_every_call():
    """A Dense called twice computes twice (issue 18: it used to be applied once)."""
    keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    shared = L.Dense(6, activation="tanh", name="shared")
    h = shared(inp)
    twice = keras.Model(inp, L.Add(name="add")([h, shared(h)]))
    x = np.random.default_rng(0).uniform(-2, 2, (300, 6)).astype(np.float32)
    qmodel, _ = _error_bound(twice, x[:200], x[200:], "onnx", tolerance=0.03)
    assert [op.kind for op in qmodel.graph.ops] == ["FULLY_CONNECTED", "LUT",
                                                    "FULLY_CONNECTED", "LUT", "ADD"]
    # The same layer twice in a chain is a two-layer dense model that runs on the device.
    chain = keras.Model(inp, shared(shared(inp)))
    qchain, _ = _error_bound(chain, x[:200], x[200:], "onnx", tolerance=0.03)
    assert isinstance(qchain, tessera.QuantizedModel) and len(qchain.layers) == 2
    np.testing.assert_array_equal(qchain.float_layers[0].weight, qchain.float_layers[1].weight)
    with tessera.connect("emu") as dev:
        np.testing.assert_array_equal(dev.run(qchain, x), qchain.predict(x))


def test_keras_shared_conv_in_two_branches():
    keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    conv = L.Conv2D(2, 3, padding="same", name="shared_conv")
    a = conv(inp)
    b = conv(L.AveragePooling2D(1, name="identity_pool")(inp))
    c = conv(a)
    out = L.GlobalAveragePooling2D(name="gap")(L.Concatenate(name="cat")([a, b, c]))
    model = keras.Model(inp, out)
    fixtures._randomise(model, 5)
    x = np.random.default_rng(3).normal(size=(150, 8, 8, 2)).astype(np.float32)
    qmodel, _ = _error_bound(model, x[:100], x[100:], "tflite", tolerance=0.03)
    assert sorted(op.name for op in qmodel.graph.ops if op.kind == "CONV_2D") == [
        "shared_conv", "shared_conv#1", "shared_conv#2"]


def _refused(model, message):
    x = np.zeros((4, *model.inputs[0].shape[1:]), np.float32)
    with pytest.raises(tessera.UnsupportedModelError, match=message):
        tessera.quantize(model, calibration=x)


def test_keras_unsupported_graphs_are_refused_with_the_layer_named():
    keras = _keras()
    L = keras.layers
    inp = keras.Input((6, 6, 2))
    _refused(keras.Model(inp, L.LeakyReLU(name="leaky")(inp)),
             r"Keras layer 'leaky' \(LeakyReLU\) is not supported; supported: Dense, Conv2D")
    seq = keras.Input((6, 2))
    _refused(keras.Model(seq, L.Dense(3, name="dense3d")(seq)),
             r"Keras layer 'dense3d' \(Dense\) is applied to a \(6, 2\) input; .*Flatten")
    conv = L.Conv2D(2, 1, name="conv")(inp)
    skip = L.Add(name="skip")([L.BatchNormalization(name="bn")(conv), conv])
    _refused(keras.Model(inp, skip), r"Keras layer 'skip' \(Add\) reads 'conv', which "
             r"BatchNormalization 'bn' also reads")
    _refused(keras.Model(inp, L.BatchNormalization(name="bn_in")(inp)),
             r"Keras layer 'bn_in' \(BatchNormalization\) does not directly follow")
    inner = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(2, 1)], name="inner")
    _refused(keras.Model(inp, inner(inp)), r"Keras layer 'inner' \(Sequential\) is a nested model")
    other = keras.Input((6, 6, 2))
    _refused(keras.Model([inp, other], L.Add()([inp, other])), r"has 2 inputs and 1 outputs")


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_keras_mobilenet_style_layers(mode):
    """ZeroPadding2D + a VALID stride-2 DepthwiseConv2D (Keras MobileNet's downsampling),
    SeparableConv2D (depthwise then pointwise), GlobalMaxPooling2D, a sigmoid head."""
    keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(2)
    inp = keras.Input((10, 10, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", name="dw_s2")(x)
    x = L.SeparableConv2D(12, 3, padding="same", depth_multiplier=2, activation="relu",
                          name="separable")(x)
    x = L.GlobalMaxPooling2D(name="gmp")(x)
    model = keras.Model(inp, L.Dense(2, activation="sigmoid", name="head")(x))
    fixtures._randomise(model, 7)
    x = np.random.default_rng(5).uniform(-1, 1, (250, 10, 10, 3)).astype(np.float32)
    qmodel, _ = _error_bound(model, x[:150], x[150:], mode, tolerance=0.04)
    assert [op.kind for op in qmodel.graph.ops] == [
        "CONV_2D", "PAD", "DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MAX_POOL_2D",
        "RESHAPE", "FULLY_CONNECTED", "LUT"]


def test_keras_cnn_digits_example_runs(capsys):
    """examples/keras_cnn_digits.py: Tessera's post-training quantization of a trained Keras
    CNN keeps the float accuracy, and its logit error is within 1.5x TFLiteConverter's (measured
    0.94x)."""
    module = runpy.run_path(str(ROOT / "examples" / "keras_cnn_digits.py"))
    results = module["main"]()
    assert "int8 TFLiteConverter" in capsys.readouterr().out
    float_accuracy = results["float (Keras)"][0]
    assert float_accuracy >= 0.9
    for name, (accuracy, error) in results.items():
        assert abs(accuracy - float_accuracy) <= 0.01, name
    converter_error = results["int8 TFLiteConverter, mode 'tflite'"][1]
    for mode in ("onnx", "tflite"):
        assert results[f"int8 tessera.quantize, mode {mode!r}"][1] <= 1.5 * converter_error


def test_keras_graph_options_and_calibration_are_checked():
    model = fixtures.build("pools")
    x = fixtures.calibration_rows("pools", 8)
    with pytest.raises(ValueError, match=r"quantize\(\) needs calibration data: pass "
                                         r"calibration=x, a representative float batch "
                                         r"\[M, 11, 11, 2\] \(NHWC\)"):
        tessera.quantize(model)
    with pytest.raises(ValueError, match=r"calibration has shape \(8, 2, 11, 11\) but the model "
                                         r"takes \[M, 11, 11, 2\] \(NHWC\)"):
        tessera.quantize(model, calibration=np.transpose(x, (0, 3, 1, 2)))
    with pytest.raises(ValueError, match=r"The Keras Functional 'pools' is a graph .*int8 only, "
                                         r"not 4-bit activations/4-bit weights: quantize with "
                                         r"bits=8"):
        tessera.quantize(model, calibration=x, bits=4)
    bad = x.copy()
    bad[3, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"calibration contains 1 NaN/infinite value"):
        tessera.quantize(model, calibration=bad)


def test_keras_rescaling_is_folded_and_linear_activation_is_skipped():
    """Rescaling(1/255) on raw pixels folds into the next convolution (SAME padding pads the
    scaled input with 0 as well); Activation("linear") is no operation."""
    keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 3))
    x = L.Rescaling(1 / 255, name="rescale")(inp)
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    b = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Activation("linear", name="linear")(L.Concatenate(name="cat")([a, b]))
    model = keras.Model(inp, L.Dense(3, name="dense")(L.Flatten(name="flat")(x)))
    fixtures._randomise(model, 3)
    pixels = np.random.default_rng(6).integers(0, 256, (200, 8, 8, 3)).astype(np.float32)
    qmodel, _ = _error_bound(model, pixels[:120], pixels[120:], "tflite", tolerance=0.03)
    assert [op.kind for op in qmodel.graph.ops] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION", "RESHAPE", "FULLY_CONNECTED"]
    assert (qmodel.input_scale, qmodel.input_zero_point) == (1.0, -128)   # raw pixels 0..255
    _refused(keras.Model(inp, L.Conv2D(2, 1)(L.Rescaling(1 / 127.5, offset=-1, name="shift")(
        inp))), r"Keras layer 'shift' \(Rescaling\) has an offset")
    _refused(keras.Model(inp, L.MaxPooling2D(name="pool")(L.Rescaling(0.5)(inp))),
             r"Keras layer 'pool' \(MaxPooling2D\) reads the output of a Rescaling")


def test_keras_dense_on_an_image_and_a_three_way_add():
    """Dense on an H x W x C tensor is a 1x1 convolution; Add of three tensors is two ADDs."""
    keras = _keras()
    L = keras.layers
    keras.utils.set_random_seed(4)
    inp = keras.Input((5, 5, 3))
    a = L.Dense(4, activation="relu", name="pixel_dense")(inp)
    b = L.Conv2D(4, 3, padding="same", name="conv")(inp)
    c = L.Conv2D(4, 1, name="conv1x1")(inp)
    out = L.GlobalAveragePooling2D(name="gap")(L.Add(name="add3")([a, b, c]))
    model = keras.Model(inp, out)
    fixtures._randomise(model, 4)
    x = np.random.default_rng(8).uniform(-1, 1, (200, 5, 5, 3)).astype(np.float32)
    qmodel, _ = _error_bound(model, x[:120], x[120:], "onnx", tolerance=0.03)
    kinds = [(op.kind, op.name) for op in qmodel.graph.ops]
    assert ("CONV_2D", "pixel_dense") in kinds and [k for k, _ in kinds].count("ADD") == 2
