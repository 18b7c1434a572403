"""Bit-exact behaviour of the quantizer: numerics chaining, ORT's formulas, LUTs, save/load."""

import numpy as np
import pytest

import tessera
from tessera import numerics
from tessera.quantize import QuantizedModel
from tessera.quantize.calibrate import activation_qparams
from tessera.quantize.floatmodel import float_forward


def _mlp(seed=0, sizes=(20, 16, 12, 5), activations=("relu", "tanh", None)):
    rng = np.random.default_rng(seed)
    layers = []
    for (k, n), act in zip(zip(sizes, sizes[1:]), activations):
        layers.append((rng.normal(size=(k, n)) / np.sqrt(k), rng.normal(size=n) * 0.2, act))
    x = rng.normal(size=(300, sizes[0])) * 1.5 + 0.3
    return layers, x


def _by_hand(qmodel, x):
    """Chain tessera.numerics explicitly from the layer fields."""
    first = qmodel.layers[0]
    x_q = numerics.quantize_tensor(x, first.input_scale, first.input_zero_point, mode=first.mode)
    raw_in = x_q
    for layer in qmodel.layers:
        if layer.activation == "lut":
            y_scale, y_zp, act = layer.lut_input_scale, layer.lut_input_zero_point, layer.lut
        else:
            y_scale, y_zp, act = layer.output_scale, layer.output_zero_point, layer.activation
        x_q = numerics.quantized_linear(
            x_q, layer.weight, layer.bias, x_scale=layer.input_scale,
            x_zero_point=layer.input_zero_point, w_scale=layer.weight_scale, y_scale=y_scale,
            y_zero_point=y_zp, mode=layer.mode, activation=act)
    last = qmodel.layers[-1]
    return raw_in, x_q, numerics.dequantize_tensor(x_q, last.output_scale, last.output_zero_point)


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_predict_equals_numerics_chain(mode, per_channel):
    layers, x = _mlp(activations=("relu6", "sigmoid", "relu"))
    qmodel = tessera.quantize(layers, calibration=x, mode=mode, per_channel=per_channel)
    x_test = _mlp(seed=1)[1]
    x_q, y_q, y = _by_hand(qmodel, x_test)
    np.testing.assert_array_equal(qmodel.quantize_input(x_test), x_q)
    np.testing.assert_array_equal(qmodel.predict(x_q, raw=True), y_q)
    np.testing.assert_array_equal(qmodel.predict(x_test), y)
    assert qmodel.predict(x_test).dtype == np.float32
    assert qmodel.predict(x_q, raw=True).dtype == np.int8
    assert [l.activation for l in qmodel.layers] == ["relu6", "lut", "relu"]


def test_layers_chain_and_relu_ranges_start_at_zero():
    layers, x = _mlp(activations=("relu", "relu6", None))
    qmodel = tessera.quantize(layers, calibration=x)
    for prev, nxt in zip(qmodel.layers, qmodel.layers[1:]):
        assert prev.output_scale == nxt.input_scale
        assert prev.output_zero_point == nxt.input_zero_point
    # relu / relu6 outputs: range [0, max] -> zero point at the bottom of int8.
    assert qmodel.layers[0].output_zero_point == -128
    assert qmodel.layers[1].output_zero_point == -128
    assert qmodel.layers[0].bounds == (-128, 127)
    for layer in qmodel.layers:
        assert layer.weight.dtype == np.int8 and layer.bias.dtype == np.int32
        assert layer.weight_scale.dtype == np.float32
        assert isinstance(layer.input_scale, np.float32)
        assert int(np.abs(layer.weight).max()) == 127          # per-channel absmax hits 127
        assert int(layer.weight.min()) >= -127


def test_scales_and_zero_points_match_onnxruntime():
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import compute_scale_zp, quantize_data

    # Activations: compute_scale_zp with int8 asymmetric range.
    rng = np.random.default_rng(3)
    for rmin, rmax in [(-1.3, 2.7), (0.0, 6.0), (0.25, 3.0), (-5.0, -0.5), (0.0, 0.0),
                       *rng.normal(size=(50, 2)) * 10]:
        rmin, rmax = np.float32(min(rmin, rmax)), np.float32(max(rmin, rmax))
        zp, scale = compute_scale_zp(np.array(rmin), np.array(rmax), np.array(-128, np.int8),
                                     np.array(127, np.int8))
        ours = activation_qparams(rmin, rmax)
        assert ours == (scale, int(zp)) and ours[0].dtype == np.float32

    # Weights per channel (symmetric int8, -127..127) and bias quantization.
    layers, x = _mlp()
    qmodel = tessera.quantize(layers, calibration=x, per_channel=True)
    layer, (w, b, _) = qmodel.layers[0], layers[0]
    w32 = w.astype(np.float32)
    for n in range(w.shape[1]):
        zp, scale, q = quantize_data(w32[:, n], TensorProto.INT8, symmetric=True)
        assert int(zp) == 0 and layer.weight_scale[n] == scale
        np.testing.assert_array_equal(layer.weight[:, n], q)
    zp, scale, q = quantize_data(w32, TensorProto.INT8, symmetric=True)
    per_tensor = tessera.quantize(layers, calibration=x, per_channel=False).layers[0]
    np.testing.assert_array_equal(per_tensor.weight, q)
    np.testing.assert_array_equal(per_tensor.weight_scale, np.full(w.shape[1], scale))
    # ORT's quantize_bias_static_impl: float32 bias scale, float64 division, round half even.
    bias_scale = layer.input_scale * layer.weight_scale
    expected = np.round(b.astype(np.float32).astype(np.float64) / bias_scale.astype(np.float64))
    np.testing.assert_array_equal(layer.bias, expected.astype(np.int32))


@pytest.mark.parametrize("activation, fn, slope", [
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z)), 0.25), ("tanh", np.tanh, 1.0)])
def test_lut_activations_close_to_float(activation, fn, slope):
    layers, x = _mlp(sizes=(20, 24, 6), activations=(activation, None))
    qmodel = tessera.quantize(layers, calibration=x)
    layer = qmodel.layers[0]
    assert layer.activation == "lut" and layer.lut.shape == (256,)
    # The table maps the pre-activation scale to the output scale: check every entry.
    v = np.arange(-128, 128)
    pre = (v - layer.lut_input_zero_point) * np.float64(layer.lut_input_scale)
    post = (layer.lut.astype(np.int64) - layer.output_zero_point) * float(layer.output_scale)
    assert np.abs(post - fn(pre)).max() <= 0.5 * float(layer.output_scale) * 1.0001
    # One layer alone: the int8 pre-activation (LUT input) is within ~1.5 of its LSBs of float
    # (input quantization + requant rounding); the table adds at most one output LSB.
    single = tessera.quantize(layers[:1], calibration=x)
    err = np.abs(single.predict(x) - float_forward(single.float_layers, x))
    lut_lsb = float(single.layers[0].lut_input_scale)
    assert err.max() <= slope * 1.5 * lut_lsb + float(single.output_scale)
    full_err = np.abs(qmodel.predict(x) - float_forward(qmodel.float_layers, x))
    assert full_err.max() <= 0.05 * np.abs(float_forward(qmodel.float_layers, x)).max()


def test_save_load_round_trip_bit_for_bit(tmp_path):
    layers, x = _mlp(activations=("relu", "tanh", None))
    qmodel = tessera.quantize(layers, calibration=x, mode="tflite", per_channel=False,
                              calibration_method="percentile", percentile=99.9)
    path = tmp_path / "model.tq"
    qmodel.save(path)
    assert path.exists()   # no suffix appended
    loaded = QuantizedModel.load(path)
    for a, b in zip(qmodel.layers, loaded.layers):
        for field in ("weight", "bias", "weight_scale"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
            assert getattr(a, field).dtype == getattr(b, field).dtype
        assert (a.lut is None) == (b.lut is None)
        if a.lut is not None:
            np.testing.assert_array_equal(a.lut, b.lut)
        for field in ("name", "input_scale", "input_zero_point", "output_scale",
                      "output_zero_point", "mode", "activation", "lut_input_scale",
                      "lut_input_zero_point"):
            assert getattr(a, field) == getattr(b, field)
    np.testing.assert_array_equal(loaded.predict(x), qmodel.predict(x))
    np.testing.assert_array_equal(loaded.reference_input, qmodel.reference_input)
    assert loaded.info == qmodel.info
    assert loaded.summary() == qmodel.summary()
    # Without the float reference data the model still runs; summary shows no errors.
    slim = tmp_path / "slim.npz"
    qmodel.save(slim, include_reference=False)
    lean = QuantizedModel.load(slim)
    assert lean.float_layers is None and lean.reference_input is None
    np.testing.assert_array_equal(lean.predict(x), qmodel.predict(x))
    assert "fc0" in lean.summary() and lean.summary().splitlines()[-1].endswith("-")


def test_folded_bias_matches_numerics():
    layers, x = _mlp()
    qmodel = tessera.quantize(layers, calibration=x)
    for layer in qmodel.layers:
        np.testing.assert_array_equal(
            layer.folded_bias(),
            layer.bias - layer.input_zero_point * layer.weight.astype(np.int32).sum(axis=0))


def test_tessera_quantize_is_callable_after_submodule_import():
    import tessera.quantize as module
    layers, x = _mlp()
    assert isinstance(module(layers, calibration=x), QuantizedModel)
    assert isinstance(tessera.quantize(layers, calibration=x), QuantizedModel)


def test_public_names_resolve():
    import tessera.quantize as module
    for name in module.__all__:
        assert getattr(module, name) is not None
