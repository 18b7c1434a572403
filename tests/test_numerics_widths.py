"""intN operands (4/8/16 bits) and 48-bit accumulators in the numerics reference."""

import numpy as np
import pytest

from tessera import numerics
from tessera.numerics import (accumulator_bound, activation_bounds, default_acc_bits,
                              integer_matmul, linear_accumulators, postprocess, quantize_tensor,
                              quantized_linear, requant_multipliers)

DTYPE = {4: np.int8, 8: np.int8, 16: np.int16}


def _rand(rng, bits, shape, *, symmetric=False):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return rng.integers(lo + symmetric, hi + 1, size=shape).astype(DTYPE[bits])


def _oracle(x, w, b, zx, m_bits, zy, lo, hi):
    """Python-int accumulators, float32 scalar requant (onnx), clamp."""
    m = np.float32(np.uint32(m_bits).view(np.float32))
    out = np.empty((x.shape[0], w.shape[1]), dtype=np.int64)
    for i in range(x.shape[0]):
        for n in range(w.shape[1]):
            acc = sum((int(x[i, k]) - zx) * int(w[k, n]) for k in range(x.shape[1])) + int(b[n])
            v = int(np.rint(np.float32(acc) * m))
            out[i, n] = min(max(v + zy, lo), hi)
    return out


@pytest.mark.parametrize("in_bits, w_bits", [(4, 4), (4, 8), (8, 4), (16, 8), (16, 16), (8, 16)])
def test_quantized_linear_matches_python_ints(in_bits, w_bits):
    rng = np.random.default_rng(in_bits * 100 + w_bits)
    k, n = 37, 5
    x = _rand(rng, in_bits, (6, k))
    w = _rand(rng, w_bits, (k, n), symmetric=True)
    b = rng.integers(-1000, 1000, size=n).astype(np.int32)
    zx = 1 if in_bits == 4 else -3
    sx, sw = np.float32(2 ** -5), np.float32(2 ** -6)
    acc = linear_accumulators(x, w, b, zx, input_bits=in_bits, weight_bits=w_bits)
    # Dyadic output scale (exact ties) that maps the accumulators onto the output range.
    spread = np.abs(acc).max() / (1 << (in_bits - 1))
    sy = np.float32(2.0 ** (np.round(np.log2(spread)) - 11))
    y = quantized_linear(x, w, b, x_scale=sx, x_zero_point=zx, w_scale=sw, y_scale=sy,
                         y_zero_point=2, input_bits=in_bits, weight_bits=w_bits)
    assert y.dtype == DTYPE[in_bits]
    mult, _ = requant_multipliers(sx, sw, sy, "onnx")
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    want = _oracle(x, w, b, zx, mult[0], 2, lo, hi)
    np.testing.assert_array_equal(y.astype(np.int64), want)
    assert lo < y.min() or y.max() < hi  # not everything saturated


def test_48_bit_accumulators_beyond_int32_round_like_float32():
    rng = np.random.default_rng(7)
    k = 300
    x = np.full((2, k), -32768, dtype=np.int16)
    x[1] = rng.integers(-32768, 32768, size=k)
    w = np.full((k, 3), -32767, dtype=np.int16)
    w[:, 1] = rng.integers(-32767, 32768, size=k)
    acc = linear_accumulators(x, w, None, 0, input_bits=16, weight_bits=16)
    assert np.abs(acc).max() > 1 << 38
    with pytest.raises(OverflowError, match="does not fit int32"):
        linear_accumulators(x, w, None, 0, input_bits=16, weight_bits=16, acc_bits=32)
    sx, sw, sy = np.float32(1e-3), np.float32(1e-3), np.float32(3.0)
    y = quantized_linear(x, w, None, x_scale=sx, x_zero_point=0, w_scale=sw, y_scale=sy,
                         y_zero_point=0, input_bits=16, weight_bits=16)
    mult, _ = requant_multipliers(sx, sw, sy, "onnx")
    np.testing.assert_array_equal(y.astype(np.int64),
                                  _oracle(x, w, np.zeros(3, np.int32), 0, mult[0], 0, -32768,
                                          32767))
    assert default_acc_bits(16, 16) == 48 and default_acc_bits(16, 8) == 32


def test_onnx_saturates_huge_products_before_the_clamp():
    m = np.array([np.float32(2.0 ** 23)]).view(np.uint32)
    acc = np.array([(1 << 47) - 1, -(1 << 47)], dtype=np.int64)
    v = numerics.requantize(acc, m, np.zeros(1, np.int8), "onnx", acc_bits=48)
    np.testing.assert_array_equal(v, [1 << 62, -(1 << 62)])
    y = postprocess(acc, m, np.zeros(1, np.int8), mode="onnx", zero_point=-5, lo=-32768,
                    hi=32767, bits=16, acc_bits=48)
    np.testing.assert_array_equal(y, [32767, -32768])


def test_integer_matmul_int16_is_exact():
    rng = np.random.default_rng(3)
    x = rng.integers(-32768, 32768, size=(4, 2000)).astype(np.int16)
    w = rng.integers(-32768, 32768, size=(2000, 3)).astype(np.int16)
    want = x.astype(object) @ w.astype(object)
    np.testing.assert_array_equal(integer_matmul(x, w), want.astype(np.int64))


def test_bounds_and_tensors_per_width():
    assert activation_bounds("none", 0.5, 0, bits=4) == (-8, 7)
    assert activation_bounds("relu", 0.5, -3, bits=4) == (-3, 7)
    assert activation_bounds("relu6", 0.5, -3, bits=4) == (-3, 7)
    assert activation_bounds("relu6", 2 ** -10, 5, bits=16) == (5, 5 + 6 * 1024)
    q = quantize_tensor(np.array([-1e9, -0.26, 0.25, 1e9]), 0.5, 1, bits=4)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [-8, 0, 1, 7])
    q = quantize_tensor(np.array([-1e9, 1.5, 1e9]), 0.5, 0, bits=16)
    np.testing.assert_array_equal(q, np.array([-32768, 3, 32767], dtype=np.int16))
    w = np.array([[7], [-7]], dtype=np.int8)
    assert accumulator_bound(w, None, input_bits=4, weight_bits=4) == 7 * 7 + 7 * 8
    assert accumulator_bound(w, None) == 7 * 127 + 7 * 128


def test_width_errors_say_what_to_do():
    x = np.array([[8]], dtype=np.int8)
    w = np.array([[1]], dtype=np.int8)
    kw = dict(x_scale=1.0, x_zero_point=0, w_scale=1.0, y_scale=1.0, y_zero_point=0)
    with pytest.raises(ValueError, match=r"x_q holds 8, outside the 4-bit range \[-8, 7\]"):
        quantized_linear(x, w, None, input_bits=4, **kw)
    with pytest.raises(TypeError, match="x_q must have dtype int16, not int8"):
        quantized_linear(x, w, None, input_bits=16, **kw)
    with pytest.raises(ValueError, match=r"input_bits must be one of \(4, 8, 16\), not 2"):
        quantized_linear(x, w, None, input_bits=2, **kw)
    x4 = np.array([[3]], dtype=np.int8)
    with pytest.raises(ValueError, match="A lookup table applies to 8-bit activations only, "
                                         "not input_bits=4"):
        quantized_linear(x4, w, None, input_bits=4, activation=np.zeros(256, np.int8), **kw)
    with pytest.raises(ValueError, match="Requant mode 'tflite' takes 32-bit accumulators, "
                                         "not acc_bits=48; use mode 'onnx'"):
        quantized_linear(x4, w, None, input_bits=4, acc_bits=48, mode="tflite", **kw)
    with pytest.raises(ValueError, match=r"y_zero_point must be in the int4 range \[-8, 7\], "
                                         "not 9"):
        quantized_linear(x4, w, None, input_bits=4, **{**kw, "y_zero_point": 9})
