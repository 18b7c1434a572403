"""Mode "tflite" CNN kernels against TFLite Micro (the ``tflite-micro`` wheel), bit for bit.

Every case builds a one-operator (or small multi-operator) int8 ``.tflite`` graph with
``tests/tflite_builder.py``, runs it in TFLite Micro's interpreter (its reference kernels) and
compares with ``tessera.numerics.ops_tflite``. The inputs discriminate: saturating values,
rounding ties, windows over the padding border with a non-zero input zero point, per-channel
scales over decades, dilation x stride, depth multipliers, large K (the float64 product path),
asymmetric SAME; where it matters a neighbouring rule is shown to fail on the same inputs.
"""

import re

import numpy as np
import pytest
from tflite_builder import TFLiteGraph, run_tflm

from tessera.numerics import cnn, ops_tflite

RNG = np.random.default_rng(20261207)
QX = dict(x_scale=np.float32(0.05), x_zero_point=-7)


def _inputs(shape, *, rng=RNG):
    """Random int8 values plus the saturating extremes (all -128, all 127) as batch rows."""
    x = rng.integers(-128, 128, (3,) + shape[1:]).astype(np.int8)
    x[1] = -128
    x[2] = 127
    return x


def _tflm(build, *xs, scale=QX["x_scale"], zero_point=QX["x_zero_point"]):
    g = TFLiteGraph()
    inputs = [g.input(f"x{n}", x.shape, scale=scale, zero_point=zero_point)
              for n, x in enumerate(xs)]
    return run_tflm(g.build([build(g, *inputs)]), list(xs))[0]


def _per_channel(n):
    return (10.0 ** RNG.uniform(-3.5, -1, n)).astype(np.float32)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2), ((2, 1), (1, 3)),
                                              (2, 2)])
@pytest.mark.parametrize("kernel", [(3, 3), (4, 2), (1, 1)])
def test_conv2d(padding, stride, dilation, kernel):
    x = _inputs((1, 8, 7, 5))
    w = RNG.integers(-127, 128, (6,) + kernel + (5,)).astype(np.int8)
    w[0] = 127                                  # a channel at the extremes of the range
    bias = RNG.integers(-20000, 20000, 6).astype(np.int32)
    sw = _per_channel(6)
    args = dict(w_scale=sw, y_scale=np.float32(0.07), y_zero_point=4, stride=stride,
                dilation=dilation, padding=padding, activation="relu6")
    want = _tflm(lambda g, xi: g.conv2d(xi, w, bias, **args), x)
    np.testing.assert_array_equal(ops_tflite.conv2d(x, w, bias, **QX, **args), want)


def test_conv2d_padding_skips_taps_and_same_is_asymmetric():
    # Even input, stride 2, 3x3: TF SAME pads (0, 1), the extra row at the bottom; a non-zero
    # input zero point makes "skip the tap" differ from "pad with raw zeros".
    x = _inputs((1, 6, 6, 2))
    assert cnn.same_padding(6, 3, 2) == (0, 1)
    w = RNG.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8)
    args = dict(w_scale=np.float32(0.01), y_scale=np.float32(0.02), y_zero_point=0, stride=2,
                padding="same")
    want = _tflm(lambda g, xi: g.conv2d(xi, w, None, **args), x)
    np.testing.assert_array_equal(ops_tflite.conv2d(x, w, None, **QX, **args), want)
    raw_zeros = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    wrong = ops_tflite.conv2d(raw_zeros, w, None, **QX, **{**args, "padding": "valid"})
    assert not np.array_equal(wrong, want)
    symmetric = ops_tflite.conv2d(x, w, None, **QX, **{**args, "padding": ((1, 1), (1, 1))})
    assert not np.array_equal(symmetric[:, :3, :3], want)


def test_conv2d_large_k_uses_exact_float64():
    # 5x5x640 taps near +-127 sum to ~2^28, beyond float32's exact integers; a bias cancels
    # the sum so that the output (M = 1) shows every unit of the accumulator.
    x = RNG.choice(np.array([-128, -126, 120, 126], np.int8), (1, 5, 5, 640))
    w = (np.sign(x.astype(np.int16) + 7) * RNG.choice([123, 125, 127], (4, 5, 5, 640)))
    w = w.astype(np.int8)
    products = (x.astype(np.int64) + 7).reshape(1, -1) * w.reshape(4, -1)
    exact = products.sum(axis=1)
    assert np.abs(exact).max() > 1 << 24
    bias = (-exact + [-100, -1, 0, 77]).astype(np.int32)
    float32_sum = ((x.astype(np.float32) + 7).reshape(1, -1) @ w.reshape(4, -1).T.astype(
        np.float32))[0]
    assert not np.array_equal(float32_sum.astype(np.int64), exact)
    args = dict(w_scale=np.float32(1.0), y_scale=np.float32(1.0), y_zero_point=0)
    q = dict(x_scale=np.float32(1.0), x_zero_point=-7)
    want = _tflm(lambda g, xi: g.conv2d(xi, w, bias, **args), x, scale=1.0, zero_point=-7)
    np.testing.assert_array_equal(want.reshape(-1), [-100, -1, 0, 77])
    np.testing.assert_array_equal(ops_tflite.conv2d(x, w, bias, **q, **args), want)


def test_conv2d_rounding_ties():
    # M = 0.5 exactly: odd accumulators are ties; gemmlowp rounds negative ties toward zero.
    x = np.arange(-128, 128, dtype=np.int16).astype(np.int8).reshape(4, 8, 8, 1)
    w = np.ones((1, 1, 1, 1), np.int8)
    args = dict(w_scale=np.float32(0.5), y_scale=np.float32(1.0), y_zero_point=0)
    q = dict(x_scale=np.float32(1.0), x_zero_point=0)
    want = _tflm(lambda g, xi: g.conv2d(xi, w, None, **args), x, scale=1.0, zero_point=0)
    got = ops_tflite.conv2d(x, w, None, **q, **args)
    np.testing.assert_array_equal(got, want)
    half_away = np.clip(np.sign(x) * np.floor(np.abs(x.astype(float)) / 2 + 0.5), -128, 127)
    assert not np.array_equal(half_away.astype(np.int8), want)


@pytest.mark.parametrize("multiplier", [1, 2, 3])
@pytest.mark.parametrize("stride, dilation, padding", [(1, 1, "same"), (2, 1, "same"),
                                                       (1, 2, "valid"), (2, 2, "same")])
def test_depthwise_conv2d(multiplier, stride, dilation, padding):
    x = _inputs((1, 9, 8, 4))
    channels = 4 * multiplier
    w = RNG.integers(-127, 128, (1, 3, 3, channels)).astype(np.int8)
    bias = RNG.integers(-5000, 5000, channels).astype(np.int32)
    args = dict(w_scale=_per_channel(channels), y_scale=np.float32(0.03), y_zero_point=-3,
                depth_multiplier=multiplier, stride=stride, dilation=dilation, padding=padding,
                activation="relu")
    want = _tflm(lambda g, xi: g.depthwise_conv2d(xi, w, bias, **args), x)
    np.testing.assert_array_equal(ops_tflite.depthwise_conv2d(x, w, bias, **QX, **args), want)


@pytest.mark.parametrize("pool, stride, padding", [
    (2, 2, "valid"), (3, 2, "same"), ((4, 3), 3, "same"), ((3, 5), (1, 2), "same"),
    ((8, 7), 1, "valid"), (5, 1, "same"),
])
def test_pools(pool, stride, padding):
    # Windows overhang the border (SAME): the average counts only in-bounds taps.
    x = _inputs((1, 8, 7, 3))
    args = dict(**QX, y_scale=QX["x_scale"], y_zero_point=QX["x_zero_point"], pool=pool,
                stride=stride, padding=padding)
    want = _tflm(lambda g, xi: g.average_pool2d(xi, pool=pool, stride=stride, padding=padding),
                 x)
    np.testing.assert_array_equal(ops_tflite.average_pool2d(x, **args), want)
    want = _tflm(lambda g, xi: g.max_pool2d(xi, pool=pool, stride=stride, padding=padding,
                                            activation="relu"), x)
    np.testing.assert_array_equal(ops_tflite.max_pool2d(x, **args, activation="relu"), want)


def test_average_pool_ties_round_half_away():
    x = np.array([[1, 2], [-1, -2], [3, 4], [-3, -4], [127, 127], [-128, -127]], np.int8)
    x = x.reshape(6, 1, 2, 1)
    want = _tflm(lambda g, xi: g.average_pool2d(xi, pool=(1, 2), stride=1), x)
    args = dict(**QX, y_scale=QX["x_scale"], y_zero_point=QX["x_zero_point"], pool=(1, 2),
                stride=1)
    got = ops_tflite.average_pool2d(x, **args)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got.reshape(-1), [2, -2, 4, -4, 127, -128])


def test_average_pool_border_divides_by_in_bounds_taps():
    x = np.full((1, 3, 3, 1), 90, np.int8)
    args = dict(**QX, y_scale=QX["x_scale"], y_zero_point=QX["x_zero_point"], pool=3,
                stride=1, padding="same")
    want = _tflm(lambda g, xi: g.average_pool2d(xi, pool=3, stride=1, padding="same"), x)
    np.testing.assert_array_equal(ops_tflite.average_pool2d(x, **args), want)
    assert (want == 90).all()                 # 9 taps would give 40 in the corners


@pytest.mark.parametrize("shape", [(1, 5, 5, 4), (1, 7, 3, 2), (1, 1, 1, 3), (1, 25, 5, 2)])
@pytest.mark.parametrize("y_scale, y_zero_point", [(0.05, -7), (0.011, 20), (0.9, -128)])
@pytest.mark.parametrize("keepdims", [True, False])
def test_mean_hw(shape, y_scale, y_zero_point, keepdims):
    x = _inputs(shape)
    args = dict(y_scale=np.float32(y_scale), y_zero_point=y_zero_point, keepdims=keepdims)
    want = _tflm(lambda g, xi: g.mean_hw(xi, **args), x)
    np.testing.assert_array_equal(ops_tflite.mean_hw(x, **QX, **args), want)


@pytest.mark.parametrize("a_scale, b_scale, y_scale", [
    (0.05, 0.05, 0.1), (0.02, 0.07, 0.05), (0.3, 0.001, 0.25), (0.01, 0.01, 0.005),
])
@pytest.mark.parametrize("activation", ["none", "relu", "relu6"])
def test_add(a_scale, b_scale, y_scale, activation):
    a, b = _inputs((1, 4, 5, 3)), _inputs((1, 4, 5, 3))
    b[0, 0] = a[0, 0]
    g = TFLiteGraph()
    ai = g.input("a", a.shape, scale=a_scale, zero_point=-7)
    bi = g.input("b", b.shape, scale=b_scale, zero_point=12)
    y = g.add(ai, bi, y_scale=y_scale, y_zero_point=3, activation=activation)
    want = run_tflm(g.build([y]), [a, b])[0]
    got = ops_tflite.add(a, b, a_scale=a_scale, a_zero_point=-7, b_scale=b_scale,
                         b_zero_point=12, y_scale=y_scale, y_zero_point=3,
                         activation=activation)
    np.testing.assert_array_equal(got, want)


def test_add_broadcasts_channels():
    a, b = _inputs((1, 3, 4, 5)), RNG.integers(-128, 128, (1, 1, 1, 5)).astype(np.int8)
    g = TFLiteGraph()
    ai = g.input("a", a.shape, scale=0.05, zero_point=-7)
    bi = g.input("b", b.shape, scale=0.02, zero_point=1)
    want = run_tflm(g.build([g.add(ai, bi, y_scale=0.06, y_zero_point=0)]), [a, b])[0]
    got = ops_tflite.add(a, b, a_scale=0.05, a_zero_point=-7, b_scale=0.02, b_zero_point=1,
                         y_scale=0.06, y_zero_point=0)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("x_scale", [0.004, 0.05, 0.25, 1.0, 8.0])
@pytest.mark.parametrize("beta", [1.0, 0.3, 2.5])
def test_softmax(x_scale, beta):
    # Ties (equal maxima), rows of one value, saturating rows, differences past diff_min.
    x = RNG.integers(-128, 128, (8, 12)).astype(np.int8)
    x[1] = 5
    x[2] = [127, 127, -128] * 4
    x[3] = np.arange(-128, 128, 22)[:12]
    x[4, :6] = 100
    want = _tflm(lambda g, xi: g.softmax(xi, beta=beta), x, scale=x_scale, zero_point=3)
    got = ops_tflite.softmax(x, x_scale=x_scale, x_zero_point=3, y_scale=1 / 256,
                             y_zero_point=-128, beta=beta)
    np.testing.assert_array_equal(got, want)


def test_softmax_is_not_the_float_softmax():
    x = RNG.integers(-128, 128, (64, 10)).astype(np.int8)
    want = _tflm(lambda g, xi: g.softmax(xi), x, scale=0.1, zero_point=0)
    np.testing.assert_array_equal(
        ops_tflite.softmax(x, x_scale=0.1, x_zero_point=0, y_scale=1 / 256, y_zero_point=-128),
        want)
    e = np.exp(0.1 * (x - x.max(axis=1, keepdims=True)).astype(np.float64))
    float_rule = np.clip(np.round(e / e.sum(axis=1, keepdims=True) * 256) - 128, -128, 127)
    assert not np.array_equal(float_rule, want)


def test_pad_and_concatenation():
    x, z = _inputs((1, 4, 3, 2)), _inputs((1, 4, 3, 5))
    paddings = ((0, 0), (1, 2), (0, 3), (0, 0))
    want = _tflm(lambda g, xi: g.pad(xi, paddings), x)
    q = dict(**QX, y_scale=QX["x_scale"], y_zero_point=QX["x_zero_point"])
    np.testing.assert_array_equal(ops_tflite.pad(x, paddings, **q), want)
    assert want[0, 0, 0, 0] == QX["x_zero_point"]
    want = _tflm(lambda g, xi, zi: g.concatenation([xi, zi], axis=3), x, z)
    got = ops_tflite.concatenate([x, z], x_scales=[QX["x_scale"]] * 2,
                                 x_zero_points=[QX["x_zero_point"]] * 2,
                                 y_scale=QX["x_scale"], y_zero_point=QX["x_zero_point"])
    np.testing.assert_array_equal(got, want)


def test_residual_block_chain():
    # conv -> depthwise -> ADD (residual, relu) -> average pool -> reshape -> softmax.
    x = _inputs((1, 8, 8, 4))
    w1 = RNG.integers(-127, 128, (4, 3, 3, 4)).astype(np.int8)
    b1 = RNG.integers(-3000, 3000, 4).astype(np.int32)
    w2 = RNG.integers(-127, 128, (1, 3, 3, 4)).astype(np.int8)
    s1, s2 = _per_channel(4), _per_channel(4)
    g = TFLiteGraph()
    xi = g.input("x", (1,) + x.shape[1:], scale=QX["x_scale"], zero_point=QX["x_zero_point"])
    h = g.conv2d(xi, w1, b1, w_scale=s1, y_scale=0.04, y_zero_point=-10, padding="same",
                 activation="relu")
    d = g.depthwise_conv2d(h, w2, None, w_scale=s2, y_scale=0.06, y_zero_point=5,
                           padding="same")
    r = g.add(d, xi, y_scale=0.08, y_zero_point=-20, activation="relu")
    p = g.average_pool2d(r, pool=4, stride=4)
    y = g.softmax(g.reshape(p, (1, -1)), beta=1.0)
    want = np.concatenate([run_tflm(g.build([y]), [row[None]])[0] for row in x])

    h = ops_tflite.conv2d(x, w1, b1, **QX, w_scale=s1, y_scale=0.04, y_zero_point=-10,
                          padding="same", activation="relu")
    d = ops_tflite.depthwise_conv2d(h, w2, None, x_scale=0.04, x_zero_point=-10, w_scale=s2,
                                    y_scale=0.06, y_zero_point=5, padding="same")
    r = ops_tflite.add(d, x, a_scale=0.06, a_zero_point=5, b_scale=QX["x_scale"],
                       b_zero_point=QX["x_zero_point"], y_scale=0.08, y_zero_point=-20,
                       activation="relu")
    p = ops_tflite.average_pool2d(r, x_scale=0.08, x_zero_point=-20, y_scale=0.08,
                                  y_zero_point=-20, pool=4, stride=4)
    got = ops_tflite.softmax(cnn.reshape(p, (-1,)), x_scale=0.08, x_zero_point=-20,
                             y_scale=1 / 256, y_zero_point=-128)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("call, message", [
    (lambda x: ops_tflite.average_pool2d(x, x_scale=0.05, x_zero_point=-7, y_scale=0.1,
                                         y_zero_point=-7, pool=2, stride=2),
     "TFLite Micro's AVERAGE_POOL_2D needs the same input and output quantization, not x "
     "(0.05000000074505806, -7) and y (0.10000000149011612, -7); requantize before or after it"),
    (lambda x: ops_tflite.max_pool2d(x, x_scale=0.05, x_zero_point=-7, y_scale=0.05,
                                     y_zero_point=0, pool=2, stride=2),
     "TFLite Micro's MAX_POOL_2D needs the same input and output quantization"),
    (lambda x: ops_tflite.concatenate([x, x], x_scales=[0.05, 0.05], x_zero_points=[-7, 0],
                                      y_scale=0.05, y_zero_point=-7),
     "TFLite Micro's CONCATENATION needs the same input and output quantization"),
    (lambda x: ops_tflite.softmax(x, x_scale=0.05, x_zero_point=0, y_scale=1 / 128,
                                  y_zero_point=-128),
     "TFLite Micro's int8 SOFTMAX needs output scale 1/256 and zero point -128, not 0.0078125 "
     "and -128"),
    (lambda x: ops_tflite.conv2d(x, np.ones((1, 1, 1, 2), np.int8), None, **QX, w_scale=0.1,
                                 y_scale=0.1, y_zero_point=0, bits=16),
     "Mode 'tflite' CNN kernels take int8 activations (bits=8), not bits=16"),
])
def test_what_tflite_micro_refuses_is_refused(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(np.zeros((1, 4, 4, 2), np.int8))
