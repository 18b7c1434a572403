"""Mode "tflite" against an independent pure-Python model and LiteRT 2.3's reference kernels.

The dense layer runs on LiteRT as a 1x1 ``CONV_2D`` (per-channel scales), whose reference kernel
requantizes with ``MultiplyByQuantizedMultiplier``. The measured behaviour of the other kernels
is recorded as tests too: LiteRT 2.3's ``FULLY_CONNECTED`` reference kernel rounds
``float64(acc) * M`` half away from zero (not mode "tflite"), and the default resolver (XNNPACK)
equals mode "onnx".
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from oracles.crafted import realise_accumulators
from oracles.litert_model import run_dense
from tessera import numerics as tn

F32 = np.float32
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


# --- independent pure-Python implementation of docs/numerics.md, mode "tflite" -------------------
def py_quantize_multiplier(sx, sw, sy):
    m = float(sx) * float(sw) / float(sy)               # Python floats are float64
    q, e = math.frexp(m)
    scaled = Fraction(q) * (1 << 31)                     # exact
    m0 = math.floor(scaled + Fraction(1, 2))             # ties away (q > 0)
    if m0 == 1 << 31:
        m0, e = m0 // 2, e + 1
    if e < -31:
        m0, e = 0, 0
    return m0, e


def py_srdhm(a, b):
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudged = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return abs(nudged) // (1 << 31) * (1 if nudged >= 0 else -1)     # C truncating division


def py_rdbpot(x, k):
    mask = (1 << k) - 1
    return (x >> k) + ((x & mask) > ((mask >> 1) + (x < 0)))


def py_requant(acc, m0, e):
    shifted = acc << max(e, 0)
    shifted = (shifted + (1 << 31)) % (1 << 32) - (1 << 31)         # int32 wrap, as C does
    return py_rdbpot(py_srdhm(shifted, m0), max(-e, 0))


# --- neighbouring rules that mode "tflite" must be distinguished from -------------------------
def _m64(sx, sw, sy):
    return np.float64(sx) * np.asarray(sw, F32).astype(np.float64) / np.float64(sy)


def rule_float64_away(acc, sx, sw, sy):       # LiteRT >= 2025 FULLY_CONNECTED reference
    return tn.round_half_away(acc * _m64(sx, sw, sy)).astype(np.int64)


def rule_float64_even(acc, sx, sw, sy):
    return np.rint(acc * _m64(sx, sw, sy)).astype(np.int64)


def rule_single_rounding(acc, sx, sw, sy):    # TFLITE_SINGLE_ROUNDING builds
    m0, e = tn.requant_multipliers(sx, sw, sy, "tflite")
    total = 31 - e.astype(np.int64)
    return (acc * m0.astype(np.int64) + (np.int64(1) << (total - 1))) >> total


def rule_ruy_half_up(acc, sx, sw, sy):        # ruy/x86: final shift rounds half up
    m0, e = tn.requant_multipliers(sx, sw, sy, "tflite")
    k = np.maximum(-e.astype(np.int64), 0)
    s = tn.srdhm(tn.shift_left_int32(acc, np.maximum(e, 0)), m0)
    return np.where(k > 0, (s + (np.int64(1) << np.maximum(k - 1, 0))) >> k, s)


def rule_reference(acc, sx, sw, sy):
    m0, e = tn.requant_multipliers(sx, sw, sy, "tflite")
    return tn.requantize(acc, m0, e, "tflite")


NEIGHBOURS = [rule_float64_away, rule_float64_even, rule_single_rounding, rule_ruy_half_up]

SX, SY, ZX, ZY = F32(0.037109375), F32(0.1484375), 7, -3
# Channel 0: M = 1/64 (ties, double rounding); 1, 3: non-dyadic; 2: M = 2^-19 with |acc| > 2^24.
SW = np.array([F32(2 ** -6) * SY / SX, F32(3.1e-4), F32(2 ** -19) * SY / SX, F32(0.002)], F32)
QUANT = dict(x_scale=SX, x_zero_point=ZX, w_scale=SW, y_scale=SY, y_zero_point=ZY)


def _discriminating_targets(rows=40):
    m = _m64(SX, SW, SY)
    cols = []
    for c in range(len(SW)):
        halves = np.rint((np.arange(-130 - ZY, 130 - ZY) + 0.5) / m[c]).astype(np.int64)
        acc = np.concatenate([np.arange(-3000, 3000), (halves[:, None] + np.arange(-2, 3)).ravel()])
        acc = np.unique(acc[np.abs(acc) < 1 << 31])
        wide = np.repeat(acc[:, None], len(SW), axis=1)
        ref = rule_reference(wide, SX, SW, SY)[:, c]
        differs = np.zeros(acc.size, dtype=bool)
        for rule in NEIGHBOURS:
            differs |= rule(wide, SX, SW, SY)[:, c] != ref
        found = acc[differs & (np.abs(ref + ZY) <= 127)]
        cols.append(found[np.linspace(0, found.size - 1, rows).astype(int)])
    return np.stack(cols, axis=1)


TARGETS = _discriminating_targets()


@pytest.fixture(scope="module")
def crafted():
    bias = (TARGETS[0] // 2).astype(np.int32)
    x, w = realise_accumulators(TARGETS, x_zero_point=ZX, bias=bias)
    return x, w, bias


def test_targets_reach_beyond_float32_exact_range():
    assert np.abs(TARGETS).max() > 1 << 24


def test_matches_pure_python_model(crafted):
    x, w, bias = crafted
    ours = tn.quantized_linear(x, w, bias, mode="tflite", **QUANT)
    expected = np.empty(TARGETS.shape, dtype=np.int8)
    for c in range(len(SW)):
        m0, e = py_quantize_multiplier(SX, SW[c], SY)
        for r in range(TARGETS.shape[0]):
            expected[r, c] = min(127, max(-128, py_requant(int(TARGETS[r, c]), m0, e) + ZY))
    np.testing.assert_array_equal(ours, expected)


def test_requantize_matches_pure_python_on_random_accumulators():
    rng = np.random.default_rng(7)
    acc = rng.integers(INT32_MIN, INT32_MAX, 3000, dtype=np.int64, endpoint=True)
    acc[:4] = [INT32_MIN, INT32_MAX, 0, -1]
    for sx, sw, sy in [(0.02, 0.003, 0.7), (0.5, 1.85, 0.25), (1e-3, 1e-4, 3.0), (1.0, 1.0, 1.0)]:
        m0, e = py_quantize_multiplier(F32(sx), F32(sw), F32(sy))
        mult, shift = tn.requant_multipliers(sx, sw, sy, "tflite")
        assert (int(mult[0]), int(shift[0])) == (m0, e)
        expected = [py_requant(int(a), m0, e) for a in acc]
        np.testing.assert_array_equal(tn.requantize(acc, mult, shift, "tflite"), expected)


def test_conv2d_reference_kernel_discriminating(crafted):
    x, w, bias = crafted
    ours = tn.quantized_linear(x, w, bias, mode="tflite", **QUANT)
    np.testing.assert_array_equal(ours, run_dense(x, w, bias, op="conv2d", **QUANT))


def test_teeth(crafted):
    x, w, bias = crafted
    oracle = run_dense(x, w, bias, op="conv2d", **QUANT)
    for rule in NEIGHBOURS:
        y = np.clip(rule(TARGETS, SX, SW, SY) + ZY, -128, 127)
        assert np.any(y != oracle), f"{rule.__name__} would pass: the test has no teeth"


@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_conv2d_fused_activation(crafted, activation):
    x, w, bias = crafted
    q = dict(QUANT, y_scale=F32(0.0371), y_zero_point=-40)
    ours = tn.quantized_linear(x, w, bias, mode="tflite", activation=activation, **q)
    np.testing.assert_array_equal(
        ours, run_dense(x, w, bias, op="conv2d", activation=activation, **q))
    assert np.any(ours == -40) and (activation == "relu" or ours.max() < 127)


def test_conv2d_multiplier_edge_cases():
    """m0 == 2^31 carry, M >= 1 (left shift that wraps on int32, like the C code) and e < -31."""
    rng = np.random.default_rng(3)
    sx = rng.uniform(0.01, 0.1, 4096).astype(F32)
    sy = rng.uniform(0.05, 0.5, 4096).astype(F32)
    sw = F32(2 ** -8) * sy / sx
    q, _ = np.frexp(np.float64(sx) * sw.astype(np.float64) / np.float64(sy))
    j = int(np.flatnonzero(tn.round_half_away(q * 2.0 ** 31) == 2 ** 31)[0])
    quant = dict(x_scale=F32(0.5), x_zero_point=0, y_scale=F32(0.25), y_zero_point=2)
    big = dict(quant, w_scale=np.array([F32(1.85), F32(2 ** -34)], F32))   # M = 3.7 and 2^-33
    mult, shift = tn.requant_multipliers(0.5, big["w_scale"], 0.25, "tflite")
    assert shift[0] == 2 and (mult[1], shift[1]) == (0, 0)
    carry = dict(x_scale=sx[j], x_zero_point=0, w_scale=sw[j], y_scale=sy[j], y_zero_point=2)
    mult, shift = tn.requant_multipliers(sx[j], sw[j], sy[j], "tflite")
    assert mult[0] == 1 << 30
    # Channel 0 (e = 2): acc << 2 wraps for acc >= 2^29 (acc = 2^29 - 1 does not).
    bias = np.array([1 << 29, 0], np.int32)
    offsets = np.array([1, -1, 12345, -4, 3, -7000, 0])
    targets = np.stack([(1 << 29) + offsets, offsets * 1000], axis=1)
    x, w = realise_accumulators(targets, x_zero_point=0, bias=bias)
    ours = tn.quantized_linear(x, w, bias, mode="tflite", **big)
    np.testing.assert_array_equal(ours, run_dense(x, w, bias, **big))
    assert set(ours[:, 0].tolist()) == {127, -128} and set(ours[:, 1].tolist()) == {2}
    x1 = rng.integers(-128, 128, (64, 300), dtype=np.int8)
    w1 = rng.integers(-127, 128, (300, 1), dtype=np.int8)
    np.testing.assert_array_equal(tn.quantized_linear(x1, w1, None, mode="tflite", **carry),
                                  run_dense(x1, w1, None, **carry))


def test_fully_connected_reference_is_float64_ties_away(crafted):
    """Measured: LiteRT 2.3's FULLY_CONNECTED reference kernel is NOT mode "tflite"."""
    x, w, bias = crafted
    fc = run_dense(x, w, bias, op="fully_connected", **QUANT)
    away = np.clip(rule_float64_away(TARGETS, SX, SW, SY) + ZY, -128, 127)
    np.testing.assert_array_equal(fc, away)
    assert np.any(fc != tn.quantized_linear(x, w, bias, mode="tflite", **QUANT))


@pytest.mark.parametrize("op", ["conv2d", "fully_connected"])
def test_default_resolver_xnnpack_is_onnx_mode(crafted, op):
    """Measured: the default LiteRT resolver (XNNPACK delegate) equals mode "onnx"."""
    x, w, bias = crafted
    np.testing.assert_array_equal(run_dense(x, w, bias, op=op, reference=False, **QUANT),
                                  tn.quantized_linear(x, w, bias, mode="onnx", **QUANT))
