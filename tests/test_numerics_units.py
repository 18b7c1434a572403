"""Unit tests of the numerics primitives, the public API surface and input validation."""

import re

import numpy as np
import pytest

import tessera.numerics as tn

F32 = np.float32
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def test_all_names_resolve():
    for name in tn.__all__:
        assert hasattr(tn, name), name
    assert len(set(tn.__all__)) == len(tn.__all__)


def test_round_half_away():
    x = np.array([0.5, -0.5, 1.5, -1.5, 2.5, 0.49999999999999994, -2.4999999, 3.0])
    np.testing.assert_array_equal(tn.round_half_away(x), [1, -1, 2, -2, 3, 0, -2, 3])
    assert tn.round_half_away(np.float32(2.5)).dtype == np.float32


def test_srdhm_edges():
    np.testing.assert_array_equal(tn.srdhm(I32_MIN, I32_MIN), I32_MAX)
    np.testing.assert_array_equal(tn.srdhm(I32_MIN, I32_MAX), -I32_MAX)
    # Positive ties round up, negative ties toward zero (nudge 1 - 2^30, truncating division).
    np.testing.assert_array_equal(tn.srdhm([1, -1, 3, -3, 5], 1 << 30), [1, 0, 2, -1, 3])
    np.testing.assert_array_equal(tn.srdhm([7, -7], 0), [0, 0])


def test_rdbpot_edges():
    np.testing.assert_array_equal(tn.rdbpot([5, -5, 6, -6, 7, -7], 1), [3, -3, 3, -3, 4, -4])
    np.testing.assert_array_equal(tn.rdbpot([3, -3, 2, -2], 2), [1, -1, 1, -1])
    np.testing.assert_array_equal(tn.rdbpot([I32_MIN, I32_MAX, I32_MAX], [31, 31, 0]),
                                  [-1, 1, I32_MAX])
    np.testing.assert_array_equal(tn.rdbpot([123, -123], 0), [123, -123])


def test_srdhm_and_rdbpot_equal_gemmlowp_literally():
    # The fast forms (round half up; one shift) against gemmlowp's code written out: nudge by
    # sign, truncating division, saturation; mask/remainder/threshold.
    rng = np.random.default_rng(3)
    edges = np.array([I32_MIN, I32_MIN + 1, -(1 << 30), -3, -1, 0, 1, 3, 1 << 30, I32_MAX])
    a = np.concatenate([np.repeat(edges, edges.size),
                        rng.integers(I32_MIN, I32_MAX, 100000, endpoint=True)])
    b = np.concatenate([np.tile(edges, edges.size),
                        rng.integers(I32_MIN, I32_MAX, 100000, endpoint=True)])
    ab = a.astype(np.int64) * b
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    literal = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    literal = np.where((a == I32_MIN) & (b == I32_MIN), I32_MAX, literal)
    np.testing.assert_array_equal(tn.srdhm(a, b), literal)
    e = rng.integers(0, 32, a.size)
    mask = (np.int64(1) << e) - 1
    literal = (a >> e) + ((a & mask) > (mask >> 1) + (a < 0))
    np.testing.assert_array_equal(tn.rdbpot(a, e), literal)


def test_shift_left_wraps_like_int32():
    np.testing.assert_array_equal(tn.shift_left_int32([1 << 30, -(1 << 30), 3], [1, 1, 2]),
                                  [I32_MIN, I32_MIN, 12])
    np.testing.assert_array_equal(tn.shift_left_int32([(1 << 29) + 1], 2), [I32_MIN + 4])


@pytest.mark.parametrize("bits", [4, 32, 48])
def test_wrap_signed_is_twos_complement(bits):
    half = 1 << (bits - 1)
    values = [half - 1, half, -half, -half - 1, 3 * half + 5, -(1 << 62), 0, -1]
    want = [((v + half) % (2 * half)) - half for v in values]      # Python's exact integers
    np.testing.assert_array_equal(tn.wrap_signed(values, bits), want)
    if bits == 32:
        np.testing.assert_array_equal(tn.wrap_int32(values), want)


def test_quantize_multiplier_edges():
    m0, e = tn.quantize_multiplier([1 - 2 ** -33, 2 ** -33, 2 ** -32, 0.75, 1.0])
    np.testing.assert_array_equal(m0, [1 << 30, 0, 1 << 30, 3 << 29, 1 << 30])
    np.testing.assert_array_equal(e, [1, 0, -31, 0, 1])


def test_requant_multipliers_onnx_encoding():
    mult, shift = tn.requant_multipliers(2 ** -5, np.array([2 ** -6, 0.1], F32), 2 ** -9, "onnx")
    assert mult.dtype == np.uint32 and shift.dtype == np.int8
    np.testing.assert_array_equal(mult.view(F32), [0.25, (F32(2 ** -5) * F32(0.1)) / F32(2 ** -9)])
    np.testing.assert_array_equal(shift, [0, 0])


def test_onnx_requant_rounds_acc_to_float32_and_handles_huge_values():
    mult, shift = tn.requant_multipliers(1.0, 2.0 ** -19, 1.0, "onnx")
    acc = np.array([(1 << 25) + (1 << 18) + 1, (1 << 25) + (1 << 18) + 3, I32_MAX, I32_MIN])
    np.testing.assert_array_equal(tn.requantize(acc, mult, shift, "onnx"), [64, 65, 4096, -4096])
    mult, shift = tn.requant_multipliers(1.0, 2.0 ** 23, 1.0, "onnx")
    big = tn.requantize(np.array([I32_MAX, I32_MIN]), mult, shift, "onnx")
    np.testing.assert_array_equal(big, [2 ** 54, -(2 ** 54)])
    y = tn.postprocess(np.array([I32_MAX, I32_MIN, 0]), mult, shift, mode="onnx", zero_point=5,
                       lo=-128, hi=127)
    np.testing.assert_array_equal(y, [127, -128, 5])


def test_activation_bounds():
    assert tn.activation_bounds("none", 0.1, 7) == (-128, 127)
    assert tn.activation_bounds("relu", 0.1, 7) == (7, 127)
    assert tn.activation_bounds("relu6", 0.1, -100) == (-100, -40)
    assert tn.activation_bounds("relu6", 12.0, 3) == (3, 4)        # 0.5 rounds away: 1
    assert tn.activation_bounds("relu6", 0.01, 0) == (0, 127)
    assert tn.activation_bounds(np.zeros(256, np.int8), 0.1, 7) == (-128, 127)


def test_postprocess_lut():
    lut = (np.arange(256) - 128).astype(np.int8)[::-1].copy()
    mult, shift = tn.requant_multipliers(1.0, 1.0, 1.0, "onnx")
    y = tn.postprocess(np.array([[-3, 0, 300]]), mult, shift, mode="onnx", zero_point=0,
                       lo=-128, hi=127, lut=lut)
    np.testing.assert_array_equal(y, [[2, -1, -128]])


def test_integer_matmul_exact_on_extremes_and_chunked_k():
    rng = np.random.default_rng(0)
    for k in (1, 1024, 1025, 5000):
        x = rng.choice(np.array([-128, 127], np.int8), (7, k))
        w = rng.choice(np.array([-128, 127], np.int8), (k, 5))
        np.testing.assert_array_equal(tn.integer_matmul(x, w),
                                      x.astype(np.int64) @ w.astype(np.int64))
    x = np.full((2, 70000), -128, np.int8)
    assert tn.integer_matmul(x, np.full((70000, 1), -128, np.int8))[0, 0] == 70000 * 16384


def test_fold_and_bound():
    w = np.array([[1, -2], [3, 127]], np.int8)
    np.testing.assert_array_equal(tn.fold_input_zero_point(w, np.array([10, 0], np.int32), 2),
                                  [10 - 8, -250])
    assert tn.accumulator_bound(w, np.array([0, 5], np.int32)) == 128 * 127 + 2 * 127 - 5
    w = np.full((140000, 2), 127, np.int8)
    with pytest.raises(OverflowError, match=re.escape("output channel 0 does not fit int32")):
        tn.fold_input_zero_point(w, None, 127)


def test_quantized_linear_accumulator_overflow_names_channel():
    x = np.full((1, 140000), 127, np.int8)
    w = np.zeros((140000, 3), np.int8)
    w[:, 2] = 127
    with pytest.raises(OverflowError, match=r"Accumulator of output channel 2 \(row 0\)"):
        tn.quantized_linear(x, w, None, x_scale=1.0, x_zero_point=0, w_scale=1.0, y_scale=1.0,
                            y_zero_point=0)


def test_quantize_dequantize_and_lut():
    x = np.array([0.125, 0.375, -0.125, 100.0, np.inf], F32)
    np.testing.assert_array_equal(tn.quantize_tensor(x, 0.25, 0), [0, 2, 0, 127, 127])
    np.testing.assert_array_equal(tn.quantize_tensor(x, 0.25, 0, mode="tflite"),
                                  [1, 2, -1, 127, 127])
    np.testing.assert_array_equal(tn.dequantize_tensor(np.array([-128, 3], np.int8), 0.5, 3),
                                  np.array([-65.5, 0.0], F32))
    lut = tn.make_lut(lambda v: np.maximum(v, 0), 0.5, 0, 0.5, 0)
    np.testing.assert_array_equal(lut, np.maximum(np.arange(-128, 128), 0).astype(np.int8))


GOOD = dict(x_scale=0.1, x_zero_point=0, w_scale=0.1, y_scale=0.1, y_zero_point=0)
X = np.zeros((2, 3), np.int8)
W = np.zeros((3, 4), np.int8)


@pytest.mark.parametrize("change, error, message", [
    (dict(x_q=X.astype(np.int16)), TypeError, "x_q must have dtype int8, not int16"),
    (dict(x_q=[[1, 2, 3]]), TypeError, "x_q must be a numpy array of int8, not list"),
    (dict(w_q=np.zeros((4, 4), np.int8)), ValueError,
     "w_q must have shape (3, N) to match x_q of shape (2, 3), not (4, 4)"),
    (dict(bias_q=np.zeros(3, np.int32)), ValueError, "bias_q must have shape (4,), not (3,)"),
    (dict(bias_q=np.zeros(4, np.int64)), TypeError, "bias_q must have dtype int32, not int64"),
    (dict(x_scale=0.0), ValueError, "x_scale must be a finite positive float32, not 0.0"),
    (dict(y_scale=float("nan")), ValueError, "y_scale must be a finite positive float32, not nan"),
    (dict(w_scale=np.array([0.1, 0.1, np.inf, 0.1])), ValueError,
     "w_scale must be a finite positive float32, not inf at channel 2"),
    (dict(w_scale=np.ones(3)), ValueError, "w_scale must be a scalar or shape (4,), not shape (3,)"),
    (dict(x_zero_point=128), ValueError, "x_zero_point must be in the int8 range [-128, 127], not 128"),
    (dict(y_zero_point=1.5), TypeError, "y_zero_point must be an integer in [-128, 127], not 1.5"),
    (dict(mode="gemmlowp"), ValueError, "Requant mode must be 'onnx' or 'tflite', not 'gemmlowp'"),
    (dict(activation="gelu"), ValueError, "activation must be one of"),
    (dict(activation=np.zeros(255, np.int8)), ValueError,
     "activation lookup table must be an int8 array of shape (256,)"),
    (dict(x_scale=1e-30, w_scale=1e-30), ValueError, "outside the onnx-mode hardware range"),
    (dict(mode="tflite", y_scale=1e-10, x_scale=10.0), ValueError,
     "too large for the tflite-mode hardware"),
])
def test_quantized_linear_bad_input(change, error, message):
    args = dict(x_q=X, w_q=W, bias_q=None, **GOOD)
    args.update(change)
    with pytest.raises(error, match=re.escape(message)):
        tn.quantized_linear(args.pop("x_q"), args.pop("w_q"), args.pop("bias_q"), **args)


def test_requantize_bad_encoding():
    with pytest.raises(ValueError, match="shift must be 0 in mode 'onnx'"):
        tn.requantize(np.array([1]), np.array([0x3F800000], np.uint32), np.array([1]), "onnx")
    with pytest.raises(TypeError, match="multiplier must have dtype uint32"):
        tn.requantize(np.array([1]), np.array([1.0]), np.array([0]), "onnx")
    with pytest.raises(ValueError, match=re.escape("multiplier must be 0 or in [2**30, 2**31)")):
        tn.requantize(np.array([1]), np.array([5], np.uint32), np.array([0]), "tflite")
    with pytest.raises(OverflowError, match=re.escape("acc[1] = 2147483648 does not fit int32")):
        tn.requantize(np.array([0, 1 << 31]), np.array([1 << 30], np.uint32), 0, "tflite")
    with pytest.raises(ValueError, match="lo must not exceed hi, not lo=5 > hi=4"):
        tn.postprocess(np.array([1]), np.array([1 << 30], np.uint32), 0, mode="tflite",
                       zero_point=0, lo=5, hi=4)


def test_docs_example_runs():
    import pathlib
    doc = pathlib.Path(__file__).parents[1] / "docs" / "numerics.md"
    code = re.search(r"```python\n(.*?)```", doc.read_text(), re.S).group(1)
    exec(compile(code, str(doc), "exec"), {})
