# amaranth: UnusedElaboratable=no

"""Amaranth-simulator tests of the requant units and the activation stage, bit for bit."""

from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Fragment, signed
from amaranth.sim import Simulator

from tessera import numerics
from tessera.hw.activation import Activation, clamp_bounds
from tessera.hw.requant_onnx import OnnxRequant, requant_bits
from tessera.hw.requant_tflite import TfliteRequant

from hw_requant_vectors import (INT32_MAX, INT32_MIN, SAT16, f32_bits, onnx_oracle,
                                onnx_oracle_wide, onnx_vectors, onnx_vectors48, saturation,
                                tflite_oracle, tflite_vectors, write_lut)


def run_pipeline(dut, inputs, *, stall_every=0, output="result"):
    """Stream ``inputs`` (port name -> array) through ``dut``; return its ``result`` values.

    ``en`` is held high except every ``stall_every``-th cycle (0: never), when the inputs change
    to garbage: a held pipeline must ignore them and keep its state. ``output="rounded"`` reads
    a TfliteRequant's unsaturated result (at its ``rounded_latency``) instead.
    """
    latency = dut.latency if output == "result" else dut.rounded_latency
    n = len(next(iter(inputs.values())))
    results = []

    async def testbench(ctx):
        cycle = index = 0
        while len(results) < n:
            stalled = stall_every and cycle % stall_every == stall_every - 1
            ctx.set(dut.en, not stalled)
            for name, values in inputs.items():
                port = getattr(dut, name)
                ctx.set(port, -1 if stalled else int(values[min(index, n - 1)]))
            await ctx.tick()
            if not stalled:
                index += 1
                if index >= latency:
                    results.append(ctx.get(getattr(dut, output)))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results, dtype=np.int64)


def run_iterative(dut, inputs, *, stall_every=0, output="result"):
    """Like :func:`run_pipeline` for an iterative unit: ``en`` is also low while ``hold``.

    While the unit holds, or every ``stall_every``-th cycle, the operands are garbage.
    Returns the results and the number of cycles taken.
    """
    latency = dut.latency if output == "result" else dut.rounded_latency
    n = len(next(iter(inputs.values())))
    results = []
    cycles = []

    async def testbench(ctx):
        cycle = index = 0
        while len(results) < n:
            stalled = bool(stall_every) and cycle % stall_every == stall_every - 1
            hold = ctx.get(dut.hold)
            enabled = not stalled and not hold
            ctx.set(dut.en, enabled)
            ctx.set(dut.valid, index < n)
            for name, values in inputs.items():
                port = getattr(dut, name)
                ctx.set(port, int(values[min(index, n - 1)]) if enabled else -1)
            await ctx.tick()
            if enabled:
                index += 1
                if index >= latency:
                    results.append(ctx.get(getattr(dut, output)))
            cycle += 1
        cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results, dtype=np.int64), cycles[0]


@pytest.mark.parametrize("cycles", [2, 3, 5, 24])
def test_onnx_iterative_matches_float32_and_numerics(cycles):
    # Every digit size (24/c rounded up; 5 leaves a short top digit) and enable stalls in the
    # middle of an element's iterations.
    rng = np.random.default_rng(20240601 + cycles)
    a, bits = onnx_vectors(rng, 400)
    for stall_every in (0, 3):
        got, taken = run_iterative(OnnxRequant(cycles), {"a": a, "multiplier": bits},
                                   stall_every=stall_every)
        np.testing.assert_array_equal(got, onnx_oracle(a, bits))
        np.testing.assert_array_equal(got, _numerics_sat16(a, bits, np.zeros_like(a), "onnx"))
        if not stall_every:   # exactly `cycles` per element plus the pipeline fill
            assert taken == len(a) * cycles + OnnxRequant.latency - 1


def _carry_out_vectors(result_bits):
    """Return ``(a, M bits)`` with ``|a * M|`` around ``2^(r-1) - 1/2`` and ``2^(r-1)``."""
    top = 1 << (result_bits - 1)
    a, m = [], []
    for k in range(1, 16):
        for frac in (-1.5, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5):
            a.append(round((top - 1 + frac) * 2 ** k))
            m.append(2.0 ** -k)
    for scale in (1 / 3, 0.7, 1.1):
        for frac in np.linspace(-1.0, 1.0, 41):
            a.append(round((top - 0.5 + frac) / scale))
            m.append(scale)
    a = np.array(a + [-x for x in a], dtype=np.int64)
    bits = f32_bits(m + m)
    rounded = np.rint(np.array([np.float32(float(x)) for x in a]) * bits.view(np.float32))
    for value in (top, -top, top - 1, 1 - top):   # carried out, and the values beside them
        assert np.sum(rounded == value) >= 20
    return a, bits


@pytest.mark.parametrize("cycles", [1, 24], ids=["pipelined", "iterative"])
def test_onnx_saturates_where_rounding_carries_out(cycles):
    # A floor of 2^(r-1) - 1 rounded up is 2^(r-1), one past the result range: saturated to
    # 2^(r-1) - 1 when positive, exactly -2^(r-1) when negative; beside it values that round
    # to +-(2^(r-1) - 1), ties to even on both sides, dyadic and non-dyadic M; int16 results
    # (32-bit accumulators) and int24 ones (48-bit, 16-bit outputs).
    for acc_bits, result_bits in ((32, 16), (48, 24)):
        a, bits = _carry_out_vectors(result_bits)
        unit = OnnxRequant(cycles, acc_bits=acc_bits, result_bits=result_bits)
        got = (run_pipeline(unit, {"a": a, "multiplier": bits}) if cycles == 1
               else run_iterative(unit, {"a": a, "multiplier": bits})[0])
        np.testing.assert_array_equal(got, onnx_oracle_wide(a, bits, result_bits))


def test_onnx_rejects_bad_cycles():
    for bad in (0, 25, 2.0, True):
        with pytest.raises(ValueError, match="Requant cycles per element must be an integer "
                                             "from 1 to 24"):
            OnnxRequant(bad)


def _numerics_sat16(acc, multiplier, shift, mode):
    got = numerics.requantize(np.asarray(acc, dtype=np.int32), np.asarray(multiplier, np.uint32),
                              np.asarray(shift, dtype=np.int8), mode)
    return np.clip(got, *SAT16)


def test_onnx_matches_float32_and_numerics():
    rng = np.random.default_rng(20240601)
    a, bits = onnx_vectors(rng, 1500)
    got = run_pipeline(OnnxRequant(), {"a": a, "multiplier": bits})
    np.testing.assert_array_equal(got, onnx_oracle(a, bits))
    np.testing.assert_array_equal(got, _numerics_sat16(a, bits, np.zeros_like(a), "onnx"))


def _exact_rint(a, multiplier_bits):
    # rint of the exact (unrounded) product a * M, ties to even: a single rounding.
    values = multiplier_bits.view(np.float32).tolist()
    return np.clip([round(Fraction(int(x)) * Fraction(m)) for x, m in zip(a, values)], *SAT16)


def test_onnx_inputs_discriminate():
    # The stimulus must contain the cases a sloppier rule gets wrong, or the test above proves
    # little: exact ties of the final rint, of float32(a) and of the float32 product.
    rng = np.random.default_rng(20240601)
    a, bits = onnx_vectors(rng, 1500)
    product = a.astype(np.float32) * bits.view(np.float32)
    half_away = np.where(product >= 0, np.floor(product + 0.5), np.ceil(product - 0.5))
    assert np.sum(half_away != np.rint(product)) >= 100
    assert np.sum(a.astype(np.float32).astype(np.int64) != a) >= 300
    magnitudes = [x for x in np.abs(a).tolist() if x > 1 << 24]
    a_ties = sum((x & ((1 << (x.bit_length() - 24)) - 1)) == 1 << (x.bit_length() - 25)
                 for x in magnitudes)
    assert a_ties >= 200
    assert np.sum(_exact_rint(a, bits) != onnx_oracle(a, bits)) >= 50


@pytest.mark.parametrize("multiplier", [0.0, 2.0 ** -140, -0.75, -(2.0 ** 20)],
                         ids=["zero", "subnormal", "negative", "negative-large"])
def test_onnx_outside_contract_is_still_float32_exact(multiplier):
    # The executor never sends these, but the unit is exact for every finite M anyway.
    a = np.array([0, 1, -1, 3, -5, 1 << 20, INT32_MIN, INT32_MAX, 12345, -98765])
    bits = np.full(a.shape, f32_bits(multiplier), dtype=np.uint32)
    got = run_pipeline(OnnxRequant(), {"a": a, "multiplier": bits})
    np.testing.assert_array_equal(got, onnx_oracle(a, bits))


def test_onnx_holds_while_disabled():
    rng = np.random.default_rng(7)
    a, bits = onnx_vectors(rng, 100)
    a, bits = a[-400:], bits[-400:]
    got = run_pipeline(OnnxRequant(), {"a": a, "multiplier": bits}, stall_every=3)
    np.testing.assert_array_equal(got, onnx_oracle(a, bits))


def test_tflite_matches_integer_formula_and_numerics():
    rng = np.random.default_rng(20240602)
    a, m0, shift = tflite_vectors(rng, 1200)
    got = run_pipeline(TfliteRequant(), {"a": a, "multiplier": m0, "shift": shift})
    np.testing.assert_array_equal(got, tflite_oracle(a, m0, shift))
    np.testing.assert_array_equal(got, _numerics_sat16(a, m0, shift, "tflite"))


def test_tflite_inputs_discriminate():
    # A single rounding of the exact a * m0 * 2^(e - 31) must disagree with the double rounding
    # of the reference often, or the stimulus does not exercise SRDHM and RDBPOT ties.
    rng = np.random.default_rng(20240602)
    a, m0, shift = tflite_vectors(rng, 1200)
    keep = shift <= 0
    a, m0, shift = a[keep], m0[keep], shift[keep]
    single = np.clip([round(Fraction(int(x) * int(m), 1 << (31 - int(e))))
                      for x, m, e in zip(a, m0, shift)], *SAT16)
    assert np.sum(single != tflite_oracle(a, m0, shift)) >= 100


def test_tflite_out_of_contract_operands():
    # INT32_MIN x INT32_MIN saturates (m0 bits read as int32_t), shifts beyond the contract
    # follow the formula with unbounded integers.
    a = np.array([INT32_MIN, INT32_MIN, 1, -1, INT32_MIN, INT32_MAX, 5, INT32_MIN, -7, 123])
    m0 = np.array([1 << 31, 1 << 31, 1 << 31, 1 << 31, 1 << 30, 1 << 30, 1 << 30,
                   (1 << 31) - 1, 1 << 30, 0xFFFFFFFF])
    shift = np.array([0, -3, 31, 0, -32, -33, 40, -60, -128, 127])
    got = run_pipeline(TfliteRequant(), {"a": a, "multiplier": m0, "shift": shift})
    np.testing.assert_array_equal(got, tflite_oracle(a, m0, shift))


def test_tflite_rounding_addend_around_zero():
    # Stage 4 adds RDBPOT's "- (s < 0)" as "- (p < 0)" (operand sign bits) before SRDHM's floor
    # exists: the two differ exactly for -2^30 <= p < 0, where s = 0. Every such product, with
    # both signs of zero operands, the int32 extremes and k = 0, 1, 2, 30, 31, 32, 33 (out of
    # contract m0 bits too), must still give the formula's value; a sign taken from the wrong
    # place shows as -1 instead of 0 (or the reverse) here.
    m0s = [0, 1, 3, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, (1 << 31) - 1,
           1 << 31, (1 << 31) + 1, 0xC0000000, 0xFFFFFFFF, 0xBFFFFFFF]
    xs = [0, 1, -1, 2, -2, 3, -3, 4096, -4096, INT32_MAX, INT32_MIN, INT32_MIN + 1,
          (1 << 16) - 1, -(1 << 16), 1 << 15, -(1 << 15) - 1]
    shifts = [0, -1, -2, -30, -31, -32, -33, -40]
    grid = np.array(np.meshgrid(xs, m0s, shifts)).reshape(3, -1)
    a = grid[0].astype(np.int64)
    m0 = grid[1].astype(np.uint32)
    shift = grid[2].astype(np.int64)
    product = a * m0.view(np.int32).astype(np.int64)
    assert np.sum((product >= -(1 << 30)) & (product < 0) & (shift < 0)) >= 50
    got = run_pipeline(TfliteRequant(), {"a": a, "multiplier": m0, "shift": shift},
                       stall_every=5)
    np.testing.assert_array_equal(got, tflite_oracle(a, m0, shift))


def test_tflite_holds_while_disabled():
    rng = np.random.default_rng(8)
    a, m0, shift = tflite_vectors(rng, 300)
    a, m0, shift = a[-600:], m0[-600:], shift[-600:]
    got = run_pipeline(TfliteRequant(), {"a": a, "multiplier": m0, "shift": shift},
                       stall_every=4)
    np.testing.assert_array_equal(got, tflite_oracle(a, m0, shift))


def _tflite_every_case(rng):
    # The in-contract vectors, the out-of-contract operands and the rounding-addend grid of the
    # tests above, plus negative multipliers (out of contract: the iterative unit's unsigned
    # digits need their correction there) at every shift.
    a, m0, shift = tflite_vectors(rng, 300)
    edges = np.array([INT32_MIN, INT32_MIN, 1, -1, INT32_MIN, INT32_MAX, 5, INT32_MIN, -7, 123])
    edge_m0 = np.array([1 << 31, 1 << 31, 1 << 31, 1 << 31, 1 << 30, 1 << 30, 1 << 30,
                        (1 << 31) - 1, 1 << 30, 0xFFFFFFFF])
    edge_shift = np.array([0, -3, 31, 0, -32, -33, 40, -60, -128, 127])
    grid = np.array(np.meshgrid([0, 1, -1, 3, -3, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 20],
                                [0xFFFFFFFF, 0xC0000000, 0x80000001, 1 << 31, 0xBFFFFFFF],
                                [0, -1, -2, -31, -33, 1, 5, 30])).reshape(3, -1)
    n = 300
    parts = [(a, m0, shift), (edges, edge_m0, edge_shift), tuple(grid),
             (rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True),
              rng.integers(1 << 31, 1 << 32, n), rng.integers(-40, 31, n))]
    return tuple(np.concatenate([p[i] for p in parts]).astype(dtype)
                 for i, dtype in enumerate((np.int64, np.uint32, np.int64)))


@pytest.mark.parametrize("cycles", [2, 3, 4, 7])
def test_tflite_iterative_matches_integer_formula(cycles):
    # Digit sizes 16, 11, 8, 5 (32/c rounded up; 3 and 7 leave a zero-extended top digit),
    # the int32 extremes, negative multipliers, shifts beyond the contract, enable stalls in the middle
    # of an element's steps, and exactly `cycles` per element.
    rng = np.random.default_rng(20261207 + cycles)
    a, m0, shift = _tflite_every_case(rng)
    for stall_every in (0, 3):
        got, taken = run_iterative(TfliteRequant(cycles), {"a": a, "multiplier": m0,
                                                          "shift": shift},
                                   stall_every=stall_every)
        np.testing.assert_array_equal(got, tflite_oracle(a, m0, shift))
        if not stall_every:
            assert taken == len(a) * cycles + TfliteRequant.latency - 1


@pytest.mark.parametrize("cycles", [1, 4])
def test_tflite_unsaturated_result(cycles):
    # `rounded`, one stage before the saturation, is the whole int32 of the formula.
    rng = np.random.default_rng(3232 + cycles)
    a, m0, shift = _tflite_every_case(rng)
    inputs = {"a": a, "multiplier": m0, "shift": shift}
    dut = TfliteRequant(cycles, unsaturated=True)
    got = (run_pipeline(dut, inputs, output="rounded") if cycles == 1
           else run_iterative(dut, inputs, output="rounded")[0])
    want = tflite_oracle(a, m0, shift, result_bits=64)
    assert want.min() >= INT32_MIN and want.max() <= INT32_MAX
    np.testing.assert_array_equal(got, want)
    assert (np.abs(got) > (1 << 24)).sum() > 50


def _activation_vectors(rng, n):
    value = np.concatenate([
        [-32768, 32767, -256, 255, -129, 128, -128, 127, 0, -1, 1],
        rng.integers(-300, 300, n), rng.integers(-32768, 32768, n // 4)])
    size = len(value)
    zero_point = rng.integers(-128, 128, size)
    zero_point[:40] = rng.choice([-128, 127, 0], 40)
    lo = rng.integers(-128, 128, size)
    hi = rng.integers(-128, 128, size)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    # relu (lo = max(-128, zp)), relu6-like (hi = zp + 6/sy) and no clamp.
    kind = rng.integers(0, 3, size)
    lo = np.where(kind == 0, -128, np.where(kind == 1, zero_point, lo))
    hi = np.where(kind == 0, 127, np.where(kind == 1, np.minimum(127, zero_point + 50), hi))
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return value, zero_point, lo, hi


@pytest.mark.parametrize("lut", [False, True], ids=["clamp", "lut"])
def test_activation(lut):
    rng = np.random.default_rng(99)
    value, zero_point, lo, hi = _activation_vectors(rng, 800)
    use_lut = rng.integers(0, 2, len(value)) if lut else np.zeros(len(value), dtype=np.int64)
    table = rng.integers(-128, 128, 256).astype(np.int8)
    dut = Activation(lut=lut)
    expected = np.clip(value + zero_point, lo, hi)
    for i in np.flatnonzero(use_lut):
        expected[i] = table[expected[i] + 128]
    for i, args in enumerate(zip(value, zero_point, lo, hi)):
        # Mode "onnx" with M = 1 makes requant the identity on these values.
        ref = numerics.postprocess(np.array([args[0]], dtype=np.int32), f32_bits([1.0]),
                                   np.int8([0]), mode="onnx", zero_point=int(args[1]),
                                   lo=int(args[2]), hi=int(args[3]),
                                   lut=table if use_lut[i] else None)
        assert ref[0] == expected[i]
    results = _stream_activation(dut, value, zero_point, lo, hi, use_lut=use_lut,
                                 table=table if lut else None)
    np.testing.assert_array_equal(results, expected)


def _stream_activation(dut, value, zero_point, lo, hi, *, use_lut=None, table=None):
    """Return the Activation's result for each element, one element per cycle.

    ``table`` (if given) is written through the LUT port first; ``use_lut`` (if given) is
    driven per element. The result of the element presented before the *j*-th clock edge is
    read after edge *j* + ``Activation.latency`` - 1.
    """
    results = []

    async def testbench(ctx):
        if table is not None:
            await write_lut(ctx, dut, table)
        ctx.set(dut.en, 1)
        for i in range(len(value) + dut.latency - 1):
            if i < len(value):
                ctx.set(dut.value, int(value[i]))
                ctx.set(dut.zero_point, int(zero_point[i]))
                ctx.set(dut.hi, int(hi[i]))
                if use_lut is not None:
                    ctx.set(dut.use_lut, int(use_lut[i]))
                for name, bound in clamp_bounds(int(zero_point[i]), int(lo[i]),
                                                int(hi[i])).items():
                    ctx.set(getattr(dut, name), bound)
            await ctx.tick()
            if i >= dut.latency - 1:
                results.append(ctx.get(dut.result))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results)


def test_activation_rejects_non_bool_lut():
    with pytest.raises(TypeError, match=r"^lut must be True or False, not 1$"):
        Activation(lut=1)
    plain = Activation(lut=False)
    Fragment.get(plain, None)     # elaborates (and marks it used)
    assert "lut_wr_en" not in plain.signature.members and not plain.has_lut


def test_activation_4bit_output_lane():
    # 4-bit layers: zero point and bounds in [-8, 7] (the compiler's contract), requant values
    # over the whole int16 input of the stage; the result is the 4-bit lane.
    rng = np.random.default_rng(4)
    value = np.concatenate([[-32768, 32767, -16, 15, -9, 8, -8, 7, 0, -1, 1],
                            rng.integers(-24, 24, 600), rng.integers(-32768, 32768, 100)])
    size = len(value)
    zero_point = rng.integers(-8, 8, size)
    zero_point[:30] = rng.choice([-8, 7, 0], 30)
    lo, hi = np.sort(rng.integers(-8, 8, (2, size)), axis=0)
    kind = rng.integers(0, 3, size)
    lo = np.where(kind == 0, -8, np.where(kind == 1, np.maximum(-8, zero_point), lo))
    hi = np.where(kind == 0, 7, hi)
    hi = np.maximum(lo, hi)
    expected = np.concatenate([
        numerics.postprocess(np.array([v], dtype=np.int32), f32_bits([1.0]), np.int8([0]),
                             mode="onnx", zero_point=int(z), lo=int(a), hi=int(b), bits=4)
        for v, z, a, b in zip(value, zero_point, lo, hi)])
    assert expected.min() == -8 and expected.max() == 7
    dut = Activation(lut=False, bits=4)
    assert dut.result.shape() == signed(4) and dut.bits == 4
    np.testing.assert_array_equal(_stream_activation(dut, value, zero_point, lo, hi), expected)


def test_activation_rejects_bad_widths():
    with pytest.raises(ValueError, match=r"^Output width must be one of \(4, 8, 16\), not 5$"):
        Activation(lut=False, bits=5)
    with pytest.raises(ValueError, match=r"^The lookup table needs 8-bit outputs, not 4-bit "
                                         r"ones; build the activation with lut=False$"):
        Activation(lut=True, bits=4)


def _numerics_wide(acc, multiplier, acc_bits, result_bits):
    got = numerics.requantize(np.asarray(acc, dtype=np.int64), np.asarray(multiplier, np.uint32),
                              np.zeros(len(acc), dtype=np.int8), "onnx", acc_bits=acc_bits)
    return np.clip(got, *saturation(result_bits))


@pytest.mark.parametrize("cycles", [1, 3])
def test_onnx_int48_matches_float32_and_numerics(cycles):
    # 48-bit accumulators (16-bit operands): the int48 -> float32 conversion rounds to nearest
    # even at every magnitude up to 2^47; results saturate at 24 bits (16-bit outputs).
    rng = np.random.default_rng(4848 + cycles)
    a, bits = onnx_vectors48(rng, 800)
    assert np.abs(a).max() >= 1 << 46 and (np.abs(a) > 1 << 31).sum() > 800
    dut = OnnxRequant(cycles, acc_bits=48, result_bits=24)
    assert dut.a.shape().width == 48 and dut.result.shape().width == 24
    runner = run_pipeline if cycles == 1 else (lambda d, i: run_iterative(d, i)[0])
    got = runner(dut, {"a": a, "multiplier": bits})
    want = onnx_oracle_wide(a, bits, 24)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, _numerics_wide(a, bits, 48, 24))
    # The stimulus reaches both saturation ends and many results strictly inside them.
    assert want.min() == -(1 << 23) and want.max() == (1 << 23) - 1
    assert (np.abs(want) < (1 << 23) - 1).sum() > 1000


def test_onnx_int48_inputs_discriminate():
    # float32(a) rounded towards zero instead of to nearest even, on the int48 stimulus, must
    # change results: the ties of the conversion are really exercised.
    rng = np.random.default_rng(4849)
    a, bits = onnx_vectors48(rng, 200)
    exact = onnx_oracle_wide(a, bits, 24)
    truncated = []
    for x, m in zip(a.tolist(), bits.view(np.float32).tolist()):
        mag = abs(x)
        drop = max(0, mag.bit_length() - 24)
        f = np.float32(((mag >> drop) << drop) * (1 if x >= 0 else -1))
        truncated.append(np.rint(np.float32(f) * np.float32(m)))
    truncated = np.clip(np.array(truncated), *saturation(24))
    assert (truncated != exact).sum() > 30


def test_onnx_int32_with_24_bit_saturation():
    rng = np.random.default_rng(2424)
    a, bits = onnx_vectors(rng, 600)
    got = run_pipeline(OnnxRequant(acc_bits=32, result_bits=24), {"a": a, "multiplier": bits})
    np.testing.assert_array_equal(got, _numerics_wide(a, bits, 32, 24))
    assert (np.abs(got) > SAT16[1]).any()


def test_tflite_with_24_bit_saturation():
    rng = np.random.default_rng(2425)
    a, m0, e = tflite_vectors(rng, 600)
    got = run_pipeline(TfliteRequant(result_bits=24), {"a": a, "multiplier": m0, "shift": e})
    want = numerics.requantize(np.asarray(a, dtype=np.int32), np.asarray(m0, np.uint32),
                               np.asarray(e, dtype=np.int8), "tflite")
    np.testing.assert_array_equal(got, np.clip(want, *saturation(24)))
    assert (np.abs(got) > SAT16[1]).any()


def test_requant_width_parameters():
    assert [requant_bits(b) for b in (4, 8, 16)] == [16, 16, 24]
    with pytest.raises(ValueError, match=r"^Accumulator width must be 32 or 48, not 40$"):
        OnnxRequant(acc_bits=40)
    for bad in (15, 25, True):
        with pytest.raises(ValueError, match=r"^Result width must be an integer from 16 to 24, "
                                             rf"not {bad!r}$"):
            OnnxRequant(result_bits=bad)
    for bad in (15, 33, True):   # up to int32
        with pytest.raises(ValueError, match=r"^Result width must be an integer from 16 to 32, "
                                             rf"not {bad!r}$"):
            TfliteRequant(result_bits=bad)
    for bad in (0, 25, 2.0, True):
        with pytest.raises(ValueError, match=r"^Requant cycles per element must be an integer "
                                             rf"from 1 to 24, not {bad!r}$"):
            TfliteRequant(bad)
    with pytest.raises(TypeError, match=r"^unsaturated must be True or False, not 1$"):
        TfliteRequant(unsaturated=1)


def test_activation_16bit_output_lane():
    # 16-bit layers: zero point and bounds over the int16 range, requant values over int24.
    rng = np.random.default_rng(16)
    value = np.concatenate([[-(1 << 23), (1 << 23) - 1, -65536, 65535, -32769, 32768, -32768,
                             32767, 0, -1, 1],
                            rng.integers(-70000, 70000, 500),
                            rng.integers(-(1 << 23), 1 << 23, 100)])
    size = len(value)
    zero_point = rng.integers(-32768, 32768, size)
    zero_point[:30] = rng.choice([-32768, 32767, 0], 30)
    lo, hi = np.sort(rng.integers(-32768, 32768, (2, size)), axis=0)
    kind = rng.integers(0, 3, size)
    lo = np.where(kind == 0, -32768, np.where(kind == 1, zero_point, lo))
    hi = np.where(kind == 0, 32767, hi)
    hi = np.maximum(lo, hi)
    expected = np.clip(value + zero_point, lo, hi)
    assert expected.min() == -32768 and expected.max() == 32767
    dut = Activation(lut=False, bits=16)
    assert dut.value.shape() == signed(24) and dut.result.shape() == signed(16)
    np.testing.assert_array_equal(_stream_activation(dut, value, zero_point, lo, hi), expected)
