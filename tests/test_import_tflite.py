"""TFLite import: int8 FULLY_CONNECTED chains bit-identical to LiteRT's default interpreter.

Measured on ai-edge-litert 2.3 (also in tests/test_numerics_tflite.py): the default resolver
(XNNPACK) computes FULLY_CONNECTED as mode "onnx", so imported models default to it. Inputs
discriminate: crafted accumulators with exact ties and |acc| > 2^24, per-channel scales, non-zero
zero points, fused RELU/RELU6 with zy > -128, LOGISTIC/TANH tables.
"""

import numpy as np
import pytest

import tessera
from import_models import run_tflite, tflite_mlp
from oracles.crafted import realise_accumulators

F32 = np.float32


def _crafted_layers():
    sx, zx = F32(2 ** -5), 3
    targets = np.stack([np.arange(-398, 402, 4)[:120],                    # ties at M = 1/4
                        np.linspace(-90000, 90000, 120).astype(np.int64),
                        np.linspace(-(5 << 22), 5 << 22, 120).astype(np.int64) | 1,
                        np.arange(-60, 60) * 1001], axis=1)
    bias = np.array([2, -7, 1 << 18, 5], np.int32)
    x, w = realise_accumulators(targets, x_zero_point=zx, bias=bias)
    first = dict(w=w, b=bias, w_scale=np.array([2 ** -6, 3.1e-4, 2 ** -22, 0.002], F32),
                 y_scale=F32(2 ** -9), y_zero_point=-5, fused="relu")
    rng = np.random.default_rng(2)
    second = dict(w=rng.integers(-127, 128, (4, 6), dtype=np.int8),
                  b=rng.integers(-300, 300, 6).astype(np.int32), w_scale=F32(0.01),
                  y_scale=F32(0.07), y_zero_point=-9, fused="relu6", table="TANH",
                  t_scale=F32(1 / 128), t_zero_point=0)
    third = dict(w=rng.integers(-127, 128, (6, 3), dtype=np.int8), b=None,
                 w_scale=np.array([0.02, 0.011, 0.03], F32), y_scale=F32(0.05),
                 y_zero_point=4, table="LOGISTIC", t_scale=F32(1 / 256), t_zero_point=-128)
    return x, [first, second, third], sx, zx


@pytest.fixture(scope="module")
def crafted():
    x, layers, sx, zx = _crafted_layers()
    return x, tflite_mlp(layers, x_scale=sx, x_zero_point=zx)


def test_default_interpreter_bit_exact(crafted):
    x, content = crafted
    qmodel = tessera.quantize(content)
    assert qmodel.mode == "onnx" and "XNNPACK" in qmodel.info["matches"]
    assert [l.activation for l in qmodel.layers] == ["relu", "lut", "lut"]
    assert qmodel.layers[0].per_channel and "LiteRT default resolver" in qmodel.info["lut_tables"]
    expected = run_tflite(content, x, resolver="AUTO")
    np.testing.assert_array_equal(qmodel.predict(x, raw=True), expected)
    wide = tessera.AcceleratorConfig(act_depth=8192, weight_depth=8192)
    with tessera.connect("emu", config=wide) as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x, raw=True), expected)


def test_first_layer_discriminates_modes(crafted):
    """The crafted first layer separates mode "onnx" from "tflite" and from LiteRT's kernels."""
    x, content = crafted
    layers = _crafted_layers()[1][:1]
    one = tflite_mlp(layers, x_scale=F32(2 ** -5), x_zero_point=3)
    onnx_mode, tflite_mode = tessera.quantize(one), tessera.quantize(one, mode="tflite")
    auto = run_tflite(one, x, resolver="AUTO")
    np.testing.assert_array_equal(onnx_mode.predict(x, raw=True), auto)
    assert np.any(tflite_mode.predict(x, raw=True) != auto)
    for resolver in ("BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):   # other kernels
        assert np.any(run_tflite(one, x, resolver=resolver) != auto), resolver


def test_float_io_model(tmp_path):
    rng = np.random.default_rng(4)
    layers = [dict(w=rng.integers(-127, 128, (10, 7), dtype=np.int8),
                   b=rng.integers(-900, 900, 7).astype(np.int32),
                   w_scale=rng.uniform(0.003, 0.01, 7).astype(F32), y_scale=F32(0.04),
                   y_zero_point=-128, fused="relu"),
              dict(w=rng.integers(-127, 128, (7, 2), dtype=np.int8), b=None, w_scale=F32(0.01),
                   y_scale=F32(0.02), y_zero_point=10)]
    path = tmp_path / "mlp.tflite"
    path.write_bytes(tflite_mlp(layers, x_scale=F32(0.03), x_zero_point=-1, float_io=True))
    qmodel = tessera.load_model(path)
    x = rng.normal(scale=2.0, size=(200, 10)).astype(F32)
    np.testing.assert_array_equal(qmodel.predict(x), run_tflite(path.read_bytes(), x))


def test_errors(crafted, tmp_path):
    _, content = crafted
    with pytest.raises(ValueError, match="is not a TFLite model"):
        tessera.quantize(tmp_path.joinpath("x.tflite").write_bytes(b"hello world") and
                         tmp_path / "x.tflite")
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(content[:len(content) // 3])
    with pytest.raises(ValueError, match=r"cut.tflite is a truncated or corrupt TFLite file"):
        tessera.quantize(bad)
    with pytest.raises(ValueError, match="TFLite model is already quantized: Tessera keeps its "
                                         "parameters exactly, so calibration data is not used"):
        tessera.quantize(content, calibration=np.zeros((2, 3)))


def test_a_dense_layer_on_a_feature_map_is_refused_naming_it():
    # Keras Dense on [1, H, W, C] converts to FULLY_CONNECTED with keep_num_dims (one product per
    # pixel); the chain importer read it as a [batch, K] layer and then failed on the shapes.
    from ai_edge_litert import schema_py_generated as schema
    from tflite_builder import TFLiteGraph
    rng = np.random.default_rng(4)
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 3), scale=0.05, zero_point=0)
    w = g.weights("pixel/w", rng.integers(-127, 128, (5, 3)).astype(np.int8), scale=0.01,
                  axis=0)
    y = g.activation("pixel/y", (1, 4, 4, 5), scale=0.1, zero_point=0)
    options = schema.FullyConnectedOptionsT()
    options.keepNumDims = True
    g.operator(schema.BuiltinOperator.FULLY_CONNECTED, [x, w, -1], [y],
               schema.BuiltinOptions.FullyConnectedOptions, options, version=4)
    flat = g.reshape(y, (1, 80))
    out = g.fully_connected(flat, rng.integers(-127, 128, (2, 80)).astype(np.int8), None,
                            w_scale=0.01, y_scale=0.2, y_zero_point=0)
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"operator 0 \(FULLY_CONNECTED, output 'pixel/y'\) keeps 4 output "
                             r"dimensions \(keep_num_dims\); Tessera reads \[batch, N\] outputs"):
        tessera.load_model(g.build([out]), mode="tflite")
