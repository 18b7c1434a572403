"""A real model in mode "tflite" is bit-identical to LiteRT's reference kernels, on the emulator
and on the RTL.

The digits MLP (64-32-10, the demo's model) is quantized by Tessera in mode "tflite"; every layer
is then run on LiteRT 2.3 with the reference op resolver as the 1x1 CONV_2D a converter would
emit (its kernel requantizes with MultiplyByQuantizedMultiplier; see docs/numerics.md for why
not FULLY_CONNECTED), chaining the int8 outputs. The test inputs include saturating extremes.
"""

import numpy as np
import pytest

import tessera
from oracles.litert_model import run_dense
from tessera.cli.demo import train_digits_mlp


@pytest.fixture(scope="module")
def digits_tflite():
    clf, x_train, x_test, _, _ = train_digits_mlp(seed=0)
    qmodel = tessera.quantize(clf, calibration=x_train, mode="tflite", per_channel=True)
    x = np.concatenate([x_test, 3.0 * x_test[:40], -x_test[:20]]).astype(np.float32)
    x_q = qmodel.quantize_input(x)
    y_q = x_q
    for layer in qmodel.layers:
        y_q = run_dense(y_q, layer.weight, layer.bias, reference=True, op="conv2d",
                        activation=layer.activation, x_scale=layer.input_scale,
                        x_zero_point=layer.input_zero_point, w_scale=layer.weight_scale,
                        y_scale=layer.output_scale, y_zero_point=layer.output_zero_point)
    return qmodel, x_q, y_q


def test_reference_equals_litert_reference_kernels(digits_tflite):
    qmodel, x_q, litert = digits_tflite
    assert [l.activation for l in qmodel.layers] == ["relu", "none"]
    assert (x_q == 127).any(), "the inputs must include saturated values"
    np.testing.assert_array_equal(qmodel.predict(x_q, raw=True), litert)


def test_emulator_equals_litert_reference_kernels(digits_tflite):
    qmodel, x_q, litert = digits_tflite
    with tessera.connect("emu") as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x_q, raw=True), litert)


@pytest.mark.slow
def test_rtl_equals_litert_reference_kernels(digits_tflite):
    qmodel, x_q, litert = digits_tflite
    rows = np.r_[0:24, len(x_q) - 40:len(x_q)]       # plain and saturating inputs
    with tessera.connect("sim") as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x_q[rows], raw=True), litert[rows])
