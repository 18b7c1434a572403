"""The ADD unit (``hw/add.py``) against the emulator's ``conv.run_add`` (TFLite's int8 ADD).

Every operand pair of -128..127 extremes and random ones, parameters like TFLite's (input
multipliers below one, biases the negated zero points) and at their ends (multiplier 0, the
largest ``m0``, shifts -31 and 0), an output clamp narrower than int8: one element every three
cycles, results in order after ``AddUnit.latency`` cycles.
"""

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from tessera.hw.add import AddUnit
from tessera.runtime import conv
from tessera.runtime.machine import PARAM_DTYPE
from tessera.spec import AcceleratorConfig
from tessera.spec.timing import ADD_PASSES


def _params(rng, extreme):
    p = np.zeros(3, dtype=PARAM_DTYPE)
    p["bias"] = rng.integers(-128, 128, size=3)
    p["multiplier"] = rng.integers(1 << 30, 1 << 31, size=3)
    p["shift"] = [rng.integers(-12, 1), rng.integers(-12, 1), rng.integers(-31, -15)]
    if extreme:
        p["multiplier"][0], p["shift"][0] = (1 << 31) - 1, 0
        p["multiplier"][1], p["bias"][1] = 0, 127
        p["shift"][2] = -31 if extreme == 2 else -20
    return p


def _run(params, a, b, zero_point, lo, hi):
    dut = AddUnit(AcceleratorConfig(rows=4, cols=2, cnn=True))
    accepted, shown = [], []

    async def bench(ctx):
        for i, entry in enumerate(params):
            for name in ("bias", "multiplier", "shift"):
                ctx.set(getattr(dut.params[i], name), int(entry[name]))
        ctx.set(dut.zero_point, zero_point)
        ctx.set(dut.lo, lo)
        ctx.set(dut.hi, hi)
        cycle, pending = 0, list(zip(a.tolist(), b.tolist()))
        while pending or len(shown) < len(a):
            if pending:
                ctx.set(dut.i_elem.payload.a, pending[0][0])
                ctx.set(dut.i_elem.payload.b, pending[0][1])
            ctx.set(dut.i_elem.valid, bool(pending))
            take = bool(pending) and ctx.get(dut.i_elem.ready)
            if ctx.get(dut.o_valid):
                shown.append((cycle, ctx.get(Value.cast(dut.o_value))))
            await ctx.tick()
            if take:
                accepted.append(cycle)
                pending.pop(0)
            cycle += 1
            assert cycle < 10 * len(a) + 100

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return accepted, shown


@pytest.mark.parametrize("extreme", [0, 1, 2])
def test_results_and_timing_are_the_emulators(extreme):
    rng = np.random.default_rng(extreme)
    edges = np.array([-128, -127, -1, 0, 1, 126, 127], dtype=np.int8)
    a = np.concatenate([np.repeat(edges, len(edges)), rng.integers(-128, 128, 60)]).astype(np.int8)
    b = np.concatenate([np.tile(edges, len(edges)), rng.integers(-128, 128, 60)]).astype(np.int8)
    params = _params(rng, extreme)
    zero_point, lo, hi = (-3, -100, 90) if extreme else (5, -128, 127)
    accepted, shown = _run(params, a, b, zero_point, lo, hi)
    want = conv.run_add(a, b, params, zero_point, lo, hi)
    np.testing.assert_array_equal([v for _, v in shown], want)
    assert set(np.diff(accepted).tolist()) == {ADD_PASSES}
    assert [c - t for (c, _), t in zip(shown, accepted)] == [AddUnit.latency] * len(a)
    if extreme < 2:                                # (a right shift by 31 leaves the zero point)
        assert len(set(want.tolist())) > 20        # the results vary: the test discriminates
