"""ONNX import: float graphs quantized by Tessera, models quantized by ONNX Runtime kept exactly.

Outputs of ``predict`` and of the emulator must equal ONNX Runtime's bit for bit on inputs that
discriminate: the digits test rows, inputs far outside the calibration range (saturated int8
inputs, the largest accumulators), all-zero rows, crafted ties and accumulators beyond 2^24.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tessera
from import_models import digits_mlp, float_onnx, ort_quantize, ort_session
from oracles.crafted import realise_accumulators

F32 = np.float32


@pytest.fixture(scope="module")
def digits():
    clf, x_train, x_test = digits_mlp()
    weights = list(zip(clf.coefs_, clf.intercepts_))
    rng = np.random.default_rng(5)
    extreme = np.concatenate([x_test, 4 * x_test[:100], np.zeros((3, 64), F32),
                              rng.uniform(-2, 3, (100, 64)).astype(F32)])
    return weights, x_train, extreme


def _emu_equal(qmodel, x, expected):
    with tessera.connect("emu") as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x), expected)


@pytest.mark.parametrize("style", ["gemm", "matmul"])
def test_float_onnx_equals_quantizing_the_weights(digits, style):
    weights, x_train, x = digits
    acts = ["relu6", "tanh", None]
    w3 = [(w, b) for w, b in weights]
    model = float_onnx(w3, acts, style=style)
    ours = tessera.quantize(model, calibration=x_train[:300])
    direct = tessera.quantize([(np.asarray(w, F32), np.asarray(b, F32), a)
                               for (w, b), a in zip(w3, acts)], calibration=x_train[:300])
    for a, b in zip(ours.layers, direct.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert (a.output_scale, a.output_zero_point, a.activation) == \
            (b.output_scale, b.output_zero_point, b.activation)
    np.testing.assert_array_equal(ours.predict(x), direct.predict(x))
    assert ours.info["source"] == "ONNX (the ONNX model)"
    assert "ONNX Runtime" in ours.summary()


CASES = [("QDQ", "int8", True), ("QDQ", "int8", False), ("QOperator", "int8", True),
         ("QDQ", "uint8", True), ("QOperator", "uint8", False)]


@pytest.mark.parametrize("fmt,activations,per_channel", CASES)
def test_ort_quantized_digits_bit_exact(digits, tmp_path, fmt, activations, per_channel):
    weights, x_train, x = digits
    model = float_onnx(weights, ["relu", "sigmoid", None])
    path = ort_quantize(model, x_train[:400], tmp_path / "q.onnx", fmt=fmt,
                        activations=activations, per_channel=per_channel, tmp_path=tmp_path)
    qmodel = tessera.quantize(str(path))
    assert qmodel.mode == "onnx" and qmodel.info["source"].startswith(f"ONNX {fmt}")
    assert [l.activation for l in qmodel.layers] == ["none", "lut", "none"]
    assert any(l.per_channel for l in qmodel.layers) == per_channel
    expected = ort_session(path).run(None, {"x": x})[0]
    np.testing.assert_array_equal(qmodel.predict(x), expected)
    raw = qmodel.quantize_input(x)
    np.testing.assert_array_equal(qmodel.dequantize_output(qmodel.predict(raw, raw=True)),
                                  expected)
    _emu_equal(qmodel, x, expected)
    assert (qmodel.quantize_input(x) == -128).any() and (qmodel.quantize_input(x) == 127).any()


def _crafted_qgemm(path):
    """One QGemm layer with ties (M = 1/4 on channel 0) and accumulators beyond 2^24."""
    sx, sy = F32(2 ** -5), F32(2 ** -9)
    sw = np.array([2 ** -6, 3.1e-4, 2 ** -22, 0.002], F32)
    targets = np.stack([np.arange(-398, 402, 4)[:160],                       # acc*1/4 ties
                        np.linspace(-90000, 90000, 160).astype(np.int64),
                        np.linspace(-(5 << 22), 5 << 22, 160).astype(np.int64) | 1,
                        np.arange(-80, 80) * 1001], axis=1)
    bias = np.array([2, -7, 1 << 18, 5], np.int32)
    x, w = realise_accumulators(targets, x_zero_point=3, bias=bias)
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in [
        ("as", sx), ("az", np.int8(3)), ("b", w), ("bs", sw), ("bz", np.zeros(4, np.int8)),
        ("c", bias), ("ys", sy), ("yz", np.int8(-5))]]
    node = helper.make_node("QGemm", ["x", "as", "az", "b", "bs", "bz", "c", "ys", "yz"], ["y"],
                            domain="com.microsoft", name="crafted")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.INT8, ["m", x.shape[1]])], [helper.make_tensor_value_info(
            "y", TensorProto.INT8, ["m", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    onnx.save(model, path)
    return x


def test_crafted_qgemm_ties_and_wide_accumulators(tmp_path):
    x = _crafted_qgemm(tmp_path / "crafted.onnx")
    qmodel = tessera.quantize(tmp_path / "crafted.onnx")
    expected = ort_session(tmp_path / "crafted.onnx").run(None, {"x": x})[0]
    ours = qmodel.predict(x, raw=True)
    np.testing.assert_array_equal(ours, expected)
    wide = tessera.AcceleratorConfig(act_depth=8192, weight_depth=8192)
    with tessera.connect("emu", config=wide) as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x, raw=True), expected)
    # Teeth: ties away from zero would differ on channel 0.
    layer = qmodel.layers[0]
    acc = (x.astype(np.int64) - 3) @ layer.weight.astype(np.int64) + layer.bias
    away = np.clip(np.sign(acc[:, 0]) * np.floor(np.abs(acc[:, 0]) / 4 + 0.5) - 5, -128, 127)
    assert np.any(away != expected[:, 0])


def test_export_onnx_round_trip(digits, tmp_path):
    weights, x_train, x = digits
    qmodel = tessera.quantize([(w, b, a) for (w, b), a in zip(weights, ["relu", "tanh", None])],
                              calibration=x_train[:300])
    path = tmp_path / "export.onnx"
    qmodel.to_onnx(path)
    np.testing.assert_array_equal(ort_session(path).run(None, {"input": x})[0],
                                  qmodel.predict(x))
    raw = qmodel.quantize_input(x)
    exported = tessera.export_onnx(qmodel, raw=True)
    np.testing.assert_array_equal(ort_session(exported).run(None, {"input": raw})[0],
                                  qmodel.predict(raw, raw=True))
    relu6 = tessera.quantize([(w, b, "relu6") for w, b in weights[:2]], calibration=x_train)
    np.testing.assert_array_equal(ort_session(relu6.to_onnx()).run(None, {"input": x})[0],
                                  relu6.predict(x))
    again = tessera.quantize(relu6.to_onnx())   # a clamp-only export re-imports as QDQ
    assert all(l.activation != "lut" for l in again.layers)   # clamps, no tables
    np.testing.assert_array_equal(again.predict(x), relu6.predict(x))


def test_export_refuses_tflite_mode(digits):
    weights, x_train, _ = digits
    qmodel = tessera.quantize([(weights[0][0], weights[0][1], None)], calibration=x_train,
                              mode="tflite")
    with pytest.raises(ValueError, match="The model is in mode 'tflite'; ONNX Runtime computes "
                                         "mode 'onnx'"):
        qmodel.to_onnx()
    assert qmodel.to_onnx(strict=False).graph.node


@pytest.mark.slow
def test_rtl_simulation_runs_ort_quantized_digits(digits, tmp_path):
    """The digits MLP quantized by onnxruntime (QDQ, per-channel, with a sigmoid LUT layer) runs
    on the RTL (``tessera.connect("sim")``) with outputs equal to ORT's, bit for bit."""
    weights, x_train, x = digits
    model = float_onnx(weights, ["relu", "sigmoid", None])
    path = ort_quantize(model, x_train[:400], tmp_path / "q.onnx", fmt="QDQ",
                        activations="int8", per_channel=True, tmp_path=tmp_path)
    qmodel = tessera.quantize(str(path))
    rows = np.r_[0:24, len(x) - 60:len(x)]            # plain, saturating and random inputs
    expected = ort_session(path).run(None, {"x": x[rows]})[0]
    with tessera.connect("sim") as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x[rows]), expected)
