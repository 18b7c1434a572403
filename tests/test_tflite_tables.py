"""Standalone TFLite element-wise operators equal TFLite Micro on all 256 int8 inputs.

Each operator is a one-operator model (``tests/tflite_builder.py``) with random input and output
quantizations — differing ones included, where TFLite Micro's RELU6 clamps in the input's domain
and ignores the output quantization — run on the ``tflite-micro`` wheel; the table Tessera builds
(:mod:`tessera.quantize.tflite_tables`) and the imported graph's ``predict`` must equal it.
"""

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from tflite_builder import ACTIVATIONS, TFLiteGraph, quantization, run_tflm

import tessera
from tessera.numerics import activations_tflite

OPS = schema.BuiltinOperator
ALL_INT8 = np.arange(-128, 128, dtype=np.int16).astype(np.int8)


def _leaky(alpha):
    options = schema.LeakyReluOptionsT()
    options.alpha = alpha
    return schema.BuiltinOptions.LeakyReluOptions, options


# kind -> (builtin code, options, fixed output quantization or None)
CASES = {
    "RELU": (OPS.RELU, (None, None), None),
    "RELU6": (OPS.RELU6, (None, None), None),
    "LEAKY_RELU": (OPS.LEAKY_RELU, _leaky(0.3), None),
    "LEAKY_RELU_0": (OPS.LEAKY_RELU, _leaky(0.0), None),
    "HARD_SWISH": (OPS.HARD_SWISH, (None, None), None),
    "LOGISTIC": (OPS.LOGISTIC, (None, None), (1 / 256, -128)),
    "TANH": (OPS.TANH, (None, None), (1 / 128, 0)),
    "QUANTIZE": (OPS.QUANTIZE, (None, None), None),
}


def _quantizations(kind, count=8):
    """Quantizations: equal input and output, zero points at the int8 ends (a RELU6 whose six
    saturates), power-of-two scales, then random ones."""
    rng = np.random.default_rng(sum(map(ord, kind)))
    # Power-of-two scales (a TANH's 1/128 feeding a LOGISTIC) put gemmlowp's ties on inputs.
    rows = [(0.05, -3, 0.05, -3), (0.01, 127, 0.2, -128), (1 / 128, 0, 1 / 64, 5),
            (1 / 1024, -128, 1 / 32, 0)]
    for _ in range(count - 4):
        rows.append((float(np.exp(rng.uniform(-6, 0.5))), int(rng.integers(-128, 128)),
                     float(np.exp(rng.uniform(-6, 0.5))), int(rng.integers(-128, 128))))
    fixed = CASES[kind][2]
    return [(sx, zx) + (fixed or (sy, zy)) for sx, zx, sy, zy in rows]


def _one_op(kind, sx, zx, sy, zy):
    code, (options_type, options), _ = CASES[kind]
    g = TFLiteGraph()
    x = g.input("x", (1, 16, 16, 1), scale=sx, zero_point=zx)
    # A max pool first makes it a graph (the chain importer wants a FULLY_CONNECTED first).
    p = g.max_pool2d(x, pool=1, stride=1, name="pool")
    y = g.elementwise(code, p, y_scale=sy, y_zero_point=zy, options_type=options_type,
                      options=options, name=kind.lower())
    return g.build(outputs=[y])


@pytest.mark.parametrize("kind", list(CASES))
def test_every_int8_input_equals_tflm(kind):
    x = ALL_INT8.reshape(1, 16, 16, 1)
    for sx, zx, sy, zy in _quantizations(kind):
        model = _one_op(kind, sx, zx, sy, zy)
        expected = run_tflm(model, [x])[0]
        qgraph = tessera.load_model(model, mode="tflite")
        np.testing.assert_array_equal(qgraph.predict(x, raw=True), expected,
                                      err_msg=f"{kind} x ({sx}, {zx}) y ({sy}, {zy})")


def test_relu6_with_differing_quantizations_clamps_the_raw_input():
    # TFLite Micro's RELU6 ignores the output quantization: six = round(6 / 0.05) + 10 = 130
    # saturates to 127, zero = 10; the result is the input clamped, not rescaled.
    y = activations_tflite.relu6(ALL_INT8, x_scale=0.05, x_zero_point=10, y_scale=0.5,
                                 y_zero_point=-100)
    np.testing.assert_array_equal(y, np.clip(ALL_INT8, 10, 127))


def test_relu6_after_a_fully_connected_layer_equals_tflm():
    rng = np.random.default_rng(66)
    g = TFLiteGraph()
    x = g.input("x", (1, 12), scale=0.03, zero_point=4)
    h = g.fully_connected(x, rng.integers(-127, 128, (8, 12)).astype(np.int8),
                          rng.integers(-3000, 3000, 8), w_scale=0.01, y_scale=0.02,
                          y_zero_point=-7)
    y = g.elementwise(OPS.RELU6, h, y_scale=0.03, y_zero_point=-128)
    model = g.build(outputs=[y])
    samples = rng.integers(-128, 128, (64, 12)).astype(np.int8)
    expected = np.concatenate([run_tflm(model, [s[None]])[0] for s in samples])
    qmodel = tessera.load_model(model, mode="tflite")
    np.testing.assert_array_equal(qmodel.predict(samples, raw=True), expected)


def test_leaky_relu_with_negative_alpha_is_refused():
    options_type, options = _leaky(-0.5)
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 1), scale=0.05, zero_point=0)
    p = g.max_pool2d(x, pool=1, stride=1, name="pool")
    y = g.elementwise(OPS.LEAKY_RELU, p, y_scale=0.05, y_zero_point=0,
                      options_type=options_type, options=options, name="leaky")
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"LEAKY_RELU.*alpha must be a finite number >= 0, not -0.5"):
        tessera.load_model(g.build(outputs=[y]), mode="tflite")


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_logistic_and_tanh_equal_tflm_at_power_of_two_and_random_scales(kind):
    # LiteRT's BUILTIN_REF differs from TFLite Micro by 1 at small power-of-two input scales
    # (e.g. x = +-1 at scale 1/128): the NumPy port follows TFLite Micro's gemmlowp arithmetic.
    code, _, (sy, zy) = CASES[kind]
    fn = activations_tflite.logistic if kind == "LOGISTIC" else activations_tflite.tanh
    rng = np.random.default_rng(51)
    scales = [(2.0 ** k, z) for k in range(-12, 2, 2) for z in (0, -128, 37)]
    scales += [(float(np.exp(rng.uniform(-8, 1))), int(rng.integers(-128, 128)))
               for _ in range(12)]
    for sx, zx in scales:
        g = TFLiteGraph()
        x = g.input("x", (1, 256), scale=sx, zero_point=zx)
        y = g.elementwise(code, x, y_scale=sy, y_zero_point=zy)
        expected = run_tflm(g.build(outputs=[y]), [ALL_INT8[None]])[0][0]
        np.testing.assert_array_equal(fn(ALL_INT8, x_scale=sx, x_zero_point=zx), expected,
                                      err_msg=f"{kind} x ({sx}, {zx})")


def _constant(g, value, scale, zero_point):
    return g._add_tensor("c", (), schema.TensorType.INT8, quantization(scale, zero_point),
                         np.array(value, np.int8))


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
def test_an_operation_with_a_scalar_constant_is_a_table_equal_to_tflm(kind):
    # The converter's decomposed hard_swish: ADD(x, 3) with RELU6, MUL(t, 1/6).
    rng = np.random.default_rng(len(kind))
    x = ALL_INT8.reshape(1, 16, 16, 1)
    cases = [(0.05, -3, 127, 0.02, 0, 0.1, -128, "relu6"), (0.1, 10, -128, 0.5, 3, 0.3, 7, "none"),
             (1 / 128, 0, 1, 1 / 64, 0, 1 / 256, -128, "relu")]
    cases += [(float(np.exp(rng.uniform(-5, 0))), int(rng.integers(-128, 128)),
               int(rng.integers(-128, 128)), float(np.exp(rng.uniform(-5, 0))),
               int(rng.integers(-128, 128)), float(np.exp(rng.uniform(-5, 0))),
               int(rng.integers(-128, 128)), "none") for _ in range(4)]
    for sx, zx, value, sc, zc, sy, zy, activation in cases:
        for first in (True, False):              # the constant as either operand
            g = TFLiteGraph()
            inp = g.input("x", (1, 16, 16, 1), scale=sx, zero_point=zx)
            p = g.max_pool2d(inp, pool=1, stride=1, name="pool")
            c = _constant(g, value, sc, zc)
            y = g.activation("y", (1, 16, 16, 1), scale=sy, zero_point=zy)
            options, options_type = (schema.AddOptionsT(), schema.BuiltinOptions.AddOptions) \
                if kind == "ADD" else (schema.MulOptionsT(), schema.BuiltinOptions.MulOptions)
            options.fusedActivationFunction = ACTIVATIONS[activation]
            g.operator(getattr(OPS, kind), [c, p] if first else [p, c], [y], options_type,
                       options)
            model = g.build(outputs=[y])
            qgraph = tessera.load_model(model, mode="tflite")
            assert [op.kind for op in qgraph.graph.ops] == ["MAX_POOL_2D", "LUT"]
            np.testing.assert_array_equal(qgraph.predict(x, raw=True), run_tflm(model, [x])[0],
                                          err_msg=f"{kind} {(sx, zx, value, sc, zc, sy, zy)}")


def test_mul_of_two_activations_equals_tflm():
    rng = np.random.default_rng(77)
    g = TFLiteGraph()
    inp = g.input("x", (1, 8, 8, 2), scale=0.04, zero_point=-9)
    c = g.conv2d(inp, rng.integers(-127, 128, (2, 1, 1, 2)).astype(np.int8),
                 rng.integers(-500, 500, 2), w_scale=0.01, y_scale=0.03, y_zero_point=12,
                 name="conv")
    y = g.activation("y", (1, 8, 8, 2), scale=0.02, zero_point=-5)
    options = schema.MulOptionsT()
    options.fusedActivationFunction = ACTIVATIONS["relu"]
    g.operator(OPS.MUL, [inp, c], [y], schema.BuiltinOptions.MulOptions, options)
    model = g.build(outputs=[y])
    x = rng.integers(-128, 128, (12, 8, 8, 2)).astype(np.int8)
    x[0], x[1] = -128, 127
    expected = np.concatenate([run_tflm(model, [s[None]])[0] for s in x])
    qgraph = tessera.load_model(model, mode="tflite")
    assert [op.kind for op in qgraph.graph.ops] == ["CONV_2D", "MUL"]
    np.testing.assert_array_equal(qgraph.predict(x, raw=True), expected)
    from tessera.compiler.presets import get_preset
    with tessera.connect("emu", config=get_preset("icebreaker-cnn").config) as device:
        np.testing.assert_array_equal(device.run(qgraph, x, raw=True), expected)
    with pytest.raises(tessera.UnsupportedModelError,
                       match=r"MUL is imported in mode 'tflite' only .*not 'onnx'"):
        tessera.load_model(model, mode="onnx")


def test_hard_swish_equals_tflm_and_refuses_what_it_refuses():
    # Power-of-two and random scales; an output scale below sx / 128 is refused by TFLite Micro
    # (output multiplier exponent > 0), one far above it shifts an int16 by 16 or more.
    rng = np.random.default_rng(285)
    cases = [(2.0 ** k, z, 2.0 ** j, w) for k in (-8, -4, 0) for j in (-8, -2, 1)
             for z, w in ((0, 0), (-128, 17), (127, -128))]
    cases += [(float(np.exp(rng.uniform(-7, 1))), int(rng.integers(-128, 128)),
               float(np.exp(rng.uniform(-7, 1))), int(rng.integers(-128, 128)))
              for _ in range(30)]
    cases += [(0.001, -91, 2.4, 84), (1.0, 0, 0.001, 0)]
    refused = 0
    for sx, zx, sy, zy in cases:
        g = TFLiteGraph()
        x = g.input("x", (1, 256), scale=sx, zero_point=zx)
        y = g.elementwise(OPS.HARD_SWISH, x, y_scale=sy, y_zero_point=zy)
        try:
            expected = run_tflm(g.build(outputs=[y]), [ALL_INT8[None]])[0][0]
        except RuntimeError:
            refused += 1
            with pytest.raises(ValueError, match="TFLite Micro needs it <= 0"):
                activations_tflite.hard_swish(ALL_INT8, x_scale=sx, x_zero_point=zx,
                                              y_scale=sy, y_zero_point=zy)
            continue
        got = activations_tflite.hard_swish(ALL_INT8, x_scale=sx, x_zero_point=zx,
                                            y_scale=sy, y_zero_point=zy)
        np.testing.assert_array_equal(got, expected, err_msg=f"x ({sx}, {zx}) y ({sy}, {zy})")
    assert refused >= 3


def test_every_public_name_resolves():
    from tessera.quantize import tflite_tables
    for module in (activations_tflite, tflite_tables):
        assert len(set(module.__all__)) == len(module.__all__)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
