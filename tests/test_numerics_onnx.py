"""Mode "onnx" is bit-identical to ONNX Runtime on inputs that discriminate between rules.

Each test builds operands whose accumulators sit exactly where plausible neighbouring rules
(float64 multiply, ties away from zero, unrounded float32(acc), float64-formed M) disagree with
docs/numerics.md, runs ORT, and compares with ``np.testing.assert_array_equal``. ``test_teeth``
shows the same inputs make every neighbouring rule fail, so the comparison cannot pass by luck.
"""

import numpy as np
import pytest

from oracles.crafted import realise_accumulators
from oracles.onnx_models import (run_qdq_activation, run_qgemm, run_qlinearmatmul,
                                 run_quantize_linear)
from tessera import numerics as tn

F32 = np.float32


def _m32(sx, sw, sy):
    return (F32(sx) * np.asarray(sw, F32)) / F32(sy)


# Candidate requant rules: (acc int64 [..., N], scales) -> int64 before zero point and clamp.
def rule_reference(acc, sx, sw, sy):
    return np.rint(acc.astype(F32) * _m32(sx, sw, sy)).astype(np.int64)


def rule_float64_multiply(acc, sx, sw, sy):
    return np.rint(acc.astype(np.float64) * _m32(sx, sw, sy).astype(np.float64)).astype(np.int64)


def rule_ties_away(acc, sx, sw, sy):
    return tn.round_half_away(acc.astype(F32) * _m32(sx, sw, sy)).astype(np.int64)


def rule_exact_acc(acc, sx, sw, sy):
    prod = (acc.astype(np.float64) * _m32(sx, sw, sy).astype(np.float64)).astype(F32)
    return np.rint(prod).astype(np.int64)


def rule_float64_m(acc, sx, sw, sy):
    m = (np.float64(F32(sx)) * np.asarray(sw, F32).astype(np.float64) / np.float64(F32(sy)))
    return np.rint(acc.astype(F32) * m.astype(F32)).astype(np.int64)


NEIGHBOURS = [rule_float64_multiply, rule_ties_away, rule_exact_acc, rule_float64_m]

# Per-channel scales. Channel 0: M = 1/4 exactly (ties); 1: M = 2^-19 with acc near 2^25
# (float32(acc) rounds by up to 2 there); 2: non-dyadic M with acc near 2^25; 3, 4: non-dyadic M
# whose float32 and float64 formations differ (found by search below).
SX, SY, ZX, ZY = F32(0.037109375), F32(0.1484375), 7, -3     # sx = 19/512, sy = 76/512


def _scales():
    sw = [F32(2 ** -6) * SY / SX, F32(2 ** -19) * SY / SX, F32(1.234e-6)]
    rng = np.random.default_rng(5)
    while len(sw) < 5:
        s = F32(rng.uniform(1e-4, 1e-3))
        if _m32(SX, s, SY) != F32(np.float64(SX) * np.float64(s) / np.float64(SY)):
            sw.append(s)
    return np.array(sw, dtype=F32)


SW = _scales()
# Centre of each channel's scan window: near a .5 output for the large-accumulator channels.
CENTERS = [0, (1 << 25) + (1 << 18), int(round(40.5 / float(_m32(SX, SW[2], SY)))), 0, -20000]


def _discriminating_targets(rows=48, window=1 << 16):
    """Return [rows, N] accumulators at which some neighbour disagrees with the reference."""
    cols = []
    for c, center in enumerate(CENTERS):
        # A contiguous window, plus the accumulators nearest to each half-way output k + 1/2.
        m = float(_m32(SX, SW[c], SY))
        halves = np.rint((np.arange(-130 - ZY, 130 - ZY) + 0.5) / m).astype(np.int64)
        acc = np.arange(center - window, center + window, dtype=np.int64)
        if abs(center) < 1 << 20:    # keep K small: far-away halves need many int8 pieces
            acc = np.concatenate([acc, (halves[:, None] + np.arange(-2, 3)).ravel()])
        acc = np.unique(acc[np.abs(acc) < 1 << 31])[:, None]
        ref = rule_reference(acc, SX, SW[c:c + 1], SY)[:, 0]
        visible = (ref + ZY >= -128) & (ref + ZY <= 127)
        differs = np.zeros(acc.shape[0], dtype=bool)
        for rule in NEIGHBOURS:
            differs |= rule(acc, SX, SW[c:c + 1], SY)[:, 0] != ref
        found = acc[visible & differs, 0]
        assert found.size >= 4, f"channel {c}: no discriminating accumulators"
        cols.append(found[np.linspace(0, found.size - 1, rows).astype(int)])
    return np.stack(cols, axis=1)


TARGETS = _discriminating_targets()
QUANT = dict(x_scale=SX, x_zero_point=ZX, w_scale=SW, y_scale=SY, y_zero_point=ZY)


@pytest.fixture(scope="module")
def crafted():
    bias = TARGETS[0].astype(np.int32)          # exercise the bias path too
    x, w = realise_accumulators(TARGETS, x_zero_point=ZX, bias=bias)
    return x, w, bias


def test_targets_exceed_float32_exact_range():
    assert np.abs(TARGETS).max() > 1 << 24
    assert np.any(TARGETS % 4 == 2)


def test_qgemm_per_channel_discriminating(crafted):
    x, w, bias = crafted
    ours = tn.quantized_linear(x, w, bias, **QUANT)
    np.testing.assert_array_equal(ours, run_qgemm(x, w, bias, **QUANT))


def test_qlinearmatmul_per_channel_discriminating():
    x, w = realise_accumulators(TARGETS, x_zero_point=ZX)
    ours = tn.quantized_linear(x, w, None, **QUANT)
    np.testing.assert_array_equal(ours, run_qlinearmatmul(x, w, **QUANT))


def test_teeth(crafted):
    """Every neighbouring rule fails on the discriminating set that the reference passes."""
    x, w, bias = crafted
    oracle = run_qgemm(x, w, bias, **QUANT)
    acc = tn.linear_accumulators(x, w, bias, ZX)
    np.testing.assert_array_equal(acc, TARGETS)
    for rule in [rule_reference] + NEIGHBOURS:
        y = np.clip(rule(acc, SX, SW, SY) + ZY, -128, 127).astype(np.int8)
        mismatches = int((y != oracle).sum())
        if rule is rule_reference:
            assert mismatches == 0
        else:
            assert mismatches > 0, f"{rule.__name__} would pass: the test has no teeth"


def test_dyadic_ties_per_tensor():
    """sx = 2^-5, sw = 2^-6, sy = 2^-9: M = 1/4, a quarter of all accumulators are ties."""
    acc = np.arange(-600, 600, dtype=np.int64)[:, None].repeat(2, axis=1)
    q = dict(x_scale=2 ** -5, x_zero_point=-11, w_scale=2 ** -6, y_scale=2 ** -9,
             y_zero_point=5)
    x, w = realise_accumulators(acc, x_zero_point=-11)
    ours = tn.quantized_linear(x, w, None, **q)
    np.testing.assert_array_equal(ours, run_qgemm(x, w, None, **q))
    np.testing.assert_array_equal(ours, run_qlinearmatmul(x, w, **q))
    away = np.clip(tn.round_half_away(acc / 4) + 5, -128, 127)
    assert np.any(away != ours)


@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_fused_activation_is_what_ort_gives(crafted, activation):
    """A QDQ ``Relu``/``Clip(0, 6)`` after the quantized layer equals our fused clamp."""
    x, w, bias = crafted
    q = dict(QUANT, y_scale=F32(0.0371), y_zero_point=-40)       # relu6 bound inside int8
    lo, hi = tn.activation_bounds(activation, q["y_scale"], q["y_zero_point"])
    assert lo == -40 and (activation == "relu" or hi < 127)
    plain = run_qgemm(x, w, bias, **q)
    oracle = run_qdq_activation(plain, activation, scale=q["y_scale"], zero_point=-40)
    ours = tn.quantized_linear(x, w, bias, **q, activation=activation)
    np.testing.assert_array_equal(ours, oracle)
    assert np.any(plain < lo) and (activation == "relu" or np.any(plain > hi))


def test_random_layers_against_qgemm():
    rng = np.random.default_rng(0)
    for per_channel in (False, True):
        x = rng.integers(-128, 128, (33, 70), dtype=np.int8)
        w = rng.integers(-127, 128, (70, 19), dtype=np.int8)
        b = rng.integers(-40000, 40000, 19, dtype=np.int32)
        sw = rng.uniform(1e-3, 1e-2, 19).astype(F32) if per_channel else F32(0.004)
        q = dict(x_scale=F32(0.03), x_zero_point=-17, w_scale=sw, y_scale=F32(0.9),
                 y_zero_point=12)
        np.testing.assert_array_equal(tn.quantized_linear(x, w, b, **q), run_qgemm(x, w, b, **q))


def test_quantize_tensor_matches_quantize_linear():
    rng = np.random.default_rng(1)
    scale = F32(0.25)
    x = np.concatenate([np.arange(-40, 40, dtype=F32) / 8, rng.normal(0, 30, 500).astype(F32),
                        np.array([np.inf, -np.inf, 1e30, -1e30], dtype=F32)])
    np.testing.assert_array_equal(tn.quantize_tensor(x, scale, 3),
                                  run_quantize_linear(x, scale=scale, zero_point=3))
