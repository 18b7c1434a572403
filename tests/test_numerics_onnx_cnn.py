"""Mode "onnx" CNN kernels (tessera.numerics.ops_onnx) against ONNX Runtime, bit for bit.

Each kernel runs against the real ORT kernel on single-op graphs (``tests/oracles/
onnx_cnn_models.py``), both as the QOperator node and as the QDQ pattern ORT fuses into it.
The inputs discriminate: saturated rows, padding borders, per-channel scales with a power-of-two
multiplier (rounding ties), accumulators beyond 2^24, strides x dilations; and where a
neighbouring rule would be plausible (no fused multiply-add, float32 instead of double, the
float average pool instead of the global one) a check shows that rule *fails* on the same data.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from oracles.onnx_cnn_models import (run_add, run_average_pool, run_concat, run_conv,
                                     run_global_average_pool, run_max_pool, run_softmax)
from tessera.numerics import dequantize_tensor, get_mode, ops_onnx, ops_tflite
from tessera.numerics.rounding import round_half_away

F32 = np.float32
RNG = np.random.default_rng(20261207)


def _int8(shape, rng=RNG):
    x = rng.integers(-128, 128, shape).astype(np.int8)
    x[0] = 127                      # saturated samples
    if shape[0] > 1:
        x[1] = -128
    return x


def test_mode_registry_points_here():
    assert get_mode("onnx").ops is ops_onnx
    for name in ops_onnx.__all__:
        assert callable(getattr(ops_onnx, name))


def test_same_calls_as_mode_tflite():
    # The graph calls both modes' kernels alike (docs/graph.md): every parameter of a tflite
    # kernel is one of the onnx kernel's, with the same default.
    for name in sorted(set(ops_tflite.__all__) & set(ops_onnx.__all__)):
        ours = inspect.signature(getattr(ops_onnx, name)).parameters
        for param in inspect.signature(getattr(ops_tflite, name)).parameters.values():
            assert param.name in ours, f"ops_onnx.{name} lacks {param.name!r}"
            assert ours[param.name].default == param.default, f"{name}({param.name}=...)"


CONV_CASES = [
    # (H, W, IC, OC, KH, KW, stride, dilation, padding)
    (7, 6, 3, 4, 3, 3, (1, 1), (1, 1), ((1, 1), (1, 1))),
    (9, 8, 2, 5, 3, 2, (2, 1), (2, 2), ((2, 0), (0, 1))),
    (6, 9, 4, 3, 1, 5, (1, 2), (1, 2), ((0, 0), (3, 4))),
    (5, 5, 1, 2, 5, 5, (3, 3), (1, 1), ((2, 2), (2, 2))),
]


def _conv_params(oc, rng=RNG):
    ws = rng.uniform(0.001, 0.02, oc).astype(F32)
    ws[0] = 1 / 8                   # with x 1/16 and y 1/4: M = 1/32 exactly, many ties
    return dict(x_scale=1 / 16, x_zero_point=-3, w_scale=ws, y_scale=1 / 4, y_zero_point=5)


@pytest.mark.parametrize("qdq", [False, True], ids=["QLinearConv", "QDQ"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"k{c[4]}x{c[5]}s{c[6]}d{c[7]}")
def test_conv2d_matches_ort(case, qdq):
    h, w, ic, oc, kh, kw, stride, dilation, padding = case
    x = _int8((6, h, w, ic))
    wq = RNG.integers(-127, 128, (oc, kh, kw, ic)).astype(np.int8)
    bias = RNG.integers(-3000, 3000, oc).astype(np.int32)
    q = _conv_params(oc)
    geometry = dict(stride=stride, dilation=dilation, padding=padding)
    expected = run_conv(x, np.transpose(wq, (0, 3, 1, 2)), bias, **q, **geometry, qdq=qdq)
    np.testing.assert_array_equal(ops_onnx.conv2d(x, wq, bias, **q, **geometry), expected)


def test_conv2d_rounds_float32_accumulators_to_even():
    # acc = +-(2^19 * 69 + 1) > 2^24 and M = 2^-20: exactly acc * M = +-34.500001 -> +-35, but
    # float32(acc) drops the +1 and ORT rounds the tie +-34.5 to even, +-34.
    x = np.array([[[[100, -20, 7, 127]]]], np.int8)
    wq = np.array([[[[3, -5, 127, 1]]], [[[-127, 9, 0, 44]]]], np.int8)
    acc0 = ((x[0, 0, 0].astype(np.int64) + 3) * wq[:, 0, 0].astype(np.int64)).sum(axis=1)
    target = np.array([2 ** 19 * 69 + 1, -(2 ** 19 * 69 + 1)])
    bias = (target - acc0).astype(np.int32)
    q = dict(x_scale=2.0 ** -10, x_zero_point=-3, w_scale=np.full(2, 2.0 ** -10, F32),
             y_scale=1.0, y_zero_point=2)
    expected = run_conv(x, np.transpose(wq, (0, 3, 1, 2)), bias, **q, stride=(1, 1),
                        dilation=(1, 1), padding=((0, 0), (0, 0)))
    got = ops_onnx.conv2d(x, wq, bias, **q)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[0, 0, 0], [34 + 2, -34 + 2])


@pytest.mark.parametrize("qdq", [False, True], ids=["QLinearConv", "QDQ"])
@pytest.mark.parametrize("mult", [1, 2])
@pytest.mark.parametrize("case", CONV_CASES[:3], ids=lambda c: f"k{c[4]}x{c[5]}s{c[6]}d{c[7]}")
def test_depthwise_conv2d_matches_ort(case, mult, qdq):
    h, w, ic, _, kh, kw, stride, dilation, padding = case
    x = _int8((5, h, w, ic))
    wq = RNG.integers(-127, 128, (1, kh, kw, ic * mult)).astype(np.int8)
    bias = RNG.integers(-3000, 3000, ic * mult).astype(np.int32)
    q = _conv_params(ic * mult)
    geometry = dict(stride=stride, dilation=dilation, padding=padding)
    expected = run_conv(x, np.transpose(wq, (3, 0, 1, 2)), bias, **q, **geometry, group=ic,
                        qdq=qdq)
    got = ops_onnx.depthwise_conv2d(x, wq, bias, **q, depth_multiplier=mult, **geometry)
    np.testing.assert_array_equal(got, expected)


def _all_pairs():
    a = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    return (np.repeat(a, 256).reshape(1, 256, 256, 1),
            np.tile(a, 256).reshape(1, 256, 256, 1))


ADD_CASES = [
    dict(a_scale=0.06406, a_zero_point=-109, b_scale=0.02771, b_zero_point=-124,
         y_scale=0.00506, y_zero_point=-84),
    dict(a_scale=0.5, a_zero_point=0, b_scale=0.25, b_zero_point=3, y_scale=1.0,
         y_zero_point=-1),                        # every sum a multiple of 1/4: ties
    dict(a_scale=0.02, a_zero_point=5, b_scale=0.3, b_zero_point=-2, y_scale=0.01,
         y_zero_point=127),                       # saturates both ways
]


@pytest.mark.parametrize("qdq", [False, True], ids=["QLinearAdd", "QDQ"])
@pytest.mark.parametrize("q", ADD_CASES, ids=["fma", "ties", "saturating"])
def test_add_matches_ort_on_every_pair(q, qdq):
    a, b = _all_pairs()
    np.testing.assert_array_equal(ops_onnx.add(a, b, **q), run_add(a, b, **q, qdq=qdq))


@pytest.mark.parametrize("q", ADD_CASES, ids=["fma", "ties", "saturating"])
def test_add_of_uint8_tensors_matches_ort(q):
    a, b = _all_pairs()
    expected = run_add(a, b, **q, unsigned=True)
    np.testing.assert_array_equal(ops_onnx.add(a, b, **q, unsigned=True), expected)


def test_uint8_add_rounds_unlike_int8():
    # Found by search: the same sums in the uint8 domain round differently in 46 outputs.
    a, b = _all_pairs()
    q = dict(a_scale=F32(0.0641), a_zero_point=2, b_scale=F32(0.0051), b_zero_point=-59,
             y_scale=F32(0.0026), y_zero_point=-84)
    expected = run_add(a, b, **q, unsigned=True)
    np.testing.assert_array_equal(ops_onnx.add(a, b, **q, unsigned=True), expected)
    assert np.any(ops_onnx.add(a, b, **q) != expected)


def test_add_needs_the_fused_multiply_adds():
    a, b = _all_pairs()
    q = ADD_CASES[0]
    expected = run_add(a, b, **q)
    exact = (np.float64(F32(q["a_scale"])) * (a.astype(np.int64) - q["a_zero_point"])
             + np.float64(F32(q["b_scale"])) * (b.astype(np.int64) - q["b_zero_point"])) \
        / np.float64(F32(q["y_scale"]))
    exact = np.clip(np.rint(exact) + q["y_zero_point"], -128, 127)
    ra, rb = F32(q["a_scale"]) / F32(q["y_scale"]), F32(q["b_scale"]) / F32(q["y_scale"])
    fixed = F32(q["y_zero_point"]) - (ra * F32(q["a_zero_point"]) + rb * F32(q["b_zero_point"]))
    unfused = np.clip(np.rint(a.astype(F32) * ra + (b.astype(F32) * rb + fixed)), -128, 127)
    assert np.any(exact != expected) and np.any(unfused != expected)


def test_add_activation_clamps():
    a, b = _all_pairs()
    q = ADD_CASES[2]
    y = ops_onnx.add(a, b, **q, activation="relu")
    np.testing.assert_array_equal(y, np.maximum(run_add(a, b, **q), q["y_zero_point"]))


def test_fma_float32_rounds_once():
    # 1 + 2^-24 + 2^-48: a double sum rounds to 1 + 2^-24 (a float32 tie) and then to 1.0;
    # the fused result is the float32 above 1.
    a, b, c = F32(1 + 2 ** -23), F32(0.5 + 2 ** -24), F32(0.5)
    assert ops_onnx.fma_float32(a, b, c) == np.nextafter(F32(1), F32(2))


POOL_CASES = [
    # (H, W, pool, stride, padding)
    (7, 6, (3, 3), (1, 1), ((1, 1), (1, 1))),
    (8, 9, (2, 3), (2, 2), ((0, 1), (2, 0))),
    (5, 7, (3, 2), (2, 3), ((1, 0), (1, 1))),
    (6, 6, (2, 2), (2, 2), ((0, 0), (0, 0))),
]
POOL_Q = dict(x_scale=0.037, x_zero_point=-7, y_scale=0.021, y_zero_point=4)


@pytest.mark.parametrize("qdq", [False, True], ids=["QLinearAveragePool", "QDQ"])
@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[2]}s{c[3]}p{c[4]}")
def test_average_pool2d_matches_ort(case, count_include_pad, qdq):
    h, w, pool, stride, padding = case
    x = _int8((6, h, w, 5))
    geometry = dict(pool=pool, stride=stride, padding=padding)
    expected = run_average_pool(x, **POOL_Q, **geometry, count_include_pad=count_include_pad,
                                qdq=qdq)
    got = ops_onnx.average_pool2d(x, **POOL_Q, **geometry, count_include_pad=count_include_pad)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case", POOL_CASES[:3], ids=lambda c: f"{c[2]}s{c[3]}p{c[4]}")
def test_average_pool2d_of_uint8_tensors_matches_ort(case):
    h, w, pool, stride, padding = case
    x = _int8((16, h, w, 5))
    geometry = dict(pool=pool, stride=stride, padding=padding)
    expected = run_average_pool(x, **POOL_Q, **geometry, unsigned=True)
    got = ops_onnx.average_pool2d(x, **POOL_Q, **geometry, unsigned=True)
    np.testing.assert_array_equal(got, expected)
    assert np.any(ops_onnx.average_pool2d(x, **POOL_Q, **geometry) != expected)


def test_average_pool2d_over_the_whole_image_is_the_global_pool():
    # ORT hands a window covering the unpadded image to its integer global average pool; the
    # float path rounds differently on these inputs.
    x = _int8((64, 3, 3, 8), np.random.default_rng(20261207))
    q = dict(x_scale=0.1, x_zero_point=1, y_scale=0.2, y_zero_point=0)   # y = mean / 2: ties
    expected = run_average_pool(x, **q, pool=(3, 3), stride=(1, 1), padding=((0, 0), (0, 0)))
    got = ops_onnx.average_pool2d(x, **q, pool=(3, 3), stride=(1, 1), padding="valid")
    np.testing.assert_array_equal(got, expected)
    deq = dequantize_tensor(x, q["x_scale"], q["x_zero_point"])
    total = np.zeros((64, 1, 1, 8), F32)
    for i in range(3):
        for j in range(3):
            total = total + deq[:, i:i + 1, j:j + 1]
    float_path = np.clip(np.rint(total / F32(9) / F32(q["y_scale"])), -128, 127)
    assert np.any(float_path != expected)


@pytest.mark.parametrize("qdq", [False, True], ids=["QLinearGlobalAveragePool", "QDQ"])
@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (7, 5), (49, 10)])
def test_mean_hw_matches_ort(hw, qdq):
    x = _int8((12, *hw, 6))
    n = hw[0] * hw[1]
    q = dict(x_scale=0.05, x_zero_point=3, y_scale=0.05 * (1 if n == 1 else 0.5),
             y_zero_point=-2)                 # y = 2 * mean: ties whenever the sum is odd / n
    expected = run_global_average_pool(x, **q, qdq=qdq)
    np.testing.assert_array_equal(ops_onnx.mean_hw(x, **q), expected)
    np.testing.assert_array_equal(ops_onnx.mean_hw(x, **q, keepdims=False), expected[:, 0, 0])


def test_mean_hw_rounds_ties_to_even():
    x = np.array([[[[1], [2]], [[0], [0]]], [[[1], [0]], [[0], [0]]]], np.int8)  # sums 3 and 1
    q = dict(x_scale=1.0, x_zero_point=0, y_scale=0.5, y_zero_point=0)  # y = sum / 2
    expected = run_global_average_pool(x, **q)
    np.testing.assert_array_equal(ops_onnx.mean_hw(x, **q), expected)
    np.testing.assert_array_equal(expected[:, 0, 0, 0], [2, 0])
    away = round_half_away(x.astype(np.int64).sum(axis=(1, 2), keepdims=True) / 2)
    assert np.any(away != expected)


@pytest.mark.parametrize("same_q", [True, False], ids=["int8 MaxPool", "requantized"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[2]}s{c[3]}p{c[4]}")
def test_max_pool2d_matches_ort(case, same_q):
    h, w, pool, stride, padding = case
    x = _int8((6, h, w, 3))
    x[2] = -128                        # every window at the lowest value, padding around it
    q = dict(x_scale=0.05, x_zero_point=-3, y_scale=0.05, y_zero_point=-3) if same_q \
        else POOL_Q
    geometry = dict(pool=pool, stride=stride, padding=padding)
    np.testing.assert_array_equal(ops_onnx.max_pool2d(x, **q, **geometry),
                                  run_max_pool(x, **q, **geometry))


SOFTMAX_Q = [dict(x_scale=0.1, x_zero_point=0, y_scale=1 / 256, y_zero_point=-128),
             dict(x_scale=0.0417, x_zero_point=-9, y_scale=0.0061, y_zero_point=-100),
             dict(x_scale=0.4, x_zero_point=5, y_scale=0.0013, y_zero_point=-128)]


@pytest.mark.parametrize("qdq", [False, True], ids=["QLinearSoftmax", "QDQ"])
@pytest.mark.parametrize("q", SOFTMAX_Q, ids=["1/256", "narrow", "wide"])
@pytest.mark.parametrize("length", [1, 2, 10, 33, 129])
def test_softmax_matches_ort(length, q, qdq):
    x = _int8((40, length))
    x[2, :] = -128
    x[2, 0] = 127                      # one dominant element
    x[3, ::2] = 127
    np.testing.assert_array_equal(ops_onnx.softmax(x, **q), run_softmax(x, **q, qdq=qdq))


def test_softmax_needs_the_double_quotient():
    rng = np.random.default_rng(11)
    misses = 0
    for _ in range(40):
        length = int(rng.integers(2, 40))
        q = dict(x_scale=F32(rng.uniform(0.005, 0.5)), x_zero_point=0,
                 y_scale=F32(rng.uniform(0.001, 0.02)), y_zero_point=int(rng.integers(-128, 0)))
        x = rng.integers(-128, 128, (200, length)).astype(np.int8)
        expected = run_softmax(x, **q)
        np.testing.assert_array_equal(ops_onnx.softmax(x, **q), expected)
        table = ops_onnx._softmax_table(q["x_scale"], length)
        e = table[x.astype(np.int64) - x.max(axis=-1, keepdims=True) + 255]
        total = np.zeros((200, 1), F32)
        for k in range(length):
            total = total + e[:, k:k + 1]
        in_float = np.rint(e * np.floor(F32(1) / q["y_scale"]) / total) + q["y_zero_point"]
        misses += int(np.sum(np.clip(in_float, -128, 127) != expected))
    assert misses > 0


def test_softmax_refuses_beta():
    with pytest.raises(ValueError, match="no beta"):
        ops_onnx.softmax(np.zeros((1, 3), np.int8), **SOFTMAX_Q[0], beta=2.0)


@pytest.mark.parametrize("qdq", [False, True], ids=["QLinearConcat", "QDQ"])
def test_concatenate_requantizes_like_ort(qdq):
    xs = [_int8((4, 3, 5, 2)), _int8((4, 3, 5, 3)), _int8((4, 3, 5, 1))]
    q = dict(x_scales=[0.05, 0.02, 0.3], x_zero_points=[3, -7, 0], y_scale=0.05, y_zero_point=3)
    expected = run_concat(xs, scales=q["x_scales"], zero_points=q["x_zero_points"],
                          y_scale=q["y_scale"], y_zero_point=q["y_zero_point"], qdq=qdq)
    np.testing.assert_array_equal(ops_onnx.concatenate(xs, **q), expected)


def test_pad_uses_the_zero_point():
    x = _int8((2, 2, 3, 1))
    y = ops_onnx.pad(x, ((0, 0), (1, 0), (0, 2), (0, 0)), x_scale=0.1, x_zero_point=-4,
                     y_scale=0.1, y_zero_point=-4)
    assert y.shape == (2, 3, 5, 1) and np.all(y[:, 0] == -4) and np.all(y[:, :, 3:] == -4)
    np.testing.assert_array_equal(y[:, 1:, :3], x)
