"""The ADD unit (``hw/add.py``) against the emulator's ``conv.run_add`` (TFLite's int8 ADD).

The AddUnit runs on a PostProcessor's tflite requant (as in the Core, hw/core_cnn.py), pipelined
or iterative (``requant_cycles`` 1, 2, 4). Every operand pair of -128..127 extremes and random
ones, parameters like TFLite's (input multipliers below one, biases the negated zero points) and
at their ends (multiplier 0, the largest ``m0``, shifts -31 and 0), an output clamp narrower than
int8: with ``requant_cycles = 1`` one element every three cycles, results in order after
``AddUnit.latency`` cycles; with ``q > 1`` one every ``3 * q`` cycles once the pipeline is full,
and the last result within the bound hw/add_stream.py relies on.
"""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Value
from amaranth.lib import wiring
from amaranth.sim import Simulator

from tessera.hw.add import AddUnit
from tessera.hw.postproc import PostProcessor
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


class _AddOnPostProcessor(Elaboratable):
    """An AddUnit on a PostProcessor's requant, the PostProcessor otherwise idle."""

    def __init__(self, config):
        self.post = PostProcessor(config)
        self.unit = AddUnit(config)

    def elaborate(self, platform):
        m = Module()
        m.submodules.post, m.submodules.unit = self.post, self.unit
        wiring.connect(m, self.unit.requant, self.post.shared)
        m.d.comb += [self.post.o.ready.eq(1), self.unit.sel.eq(1)]
        return m


def _run(params, a, b, zero_point, lo, hi, cycles=1):
    config = AcceleratorConfig(rows=4, cols=2, cnn=True, requant_modes=("tflite",), lut=False,
                               requant_cycles=cycles)
    top = _AddOnPostProcessor(config)
    dut = top.unit
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
            assert not ctx.get(top.post.o.valid)
            assert cycle < 10 * cycles * len(a) + 100

    sim = Simulator(top)
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


@pytest.mark.parametrize("cycles", [2, 4])
def test_iterative_requant_results_and_timing(cycles):
    rng = np.random.default_rng(40 + cycles)
    edges = np.array([-128, -127, -1, 0, 1, 126, 127], dtype=np.int8)
    a = np.concatenate([np.repeat(edges, len(edges)), rng.integers(-128, 128, 20)]).astype(np.int8)
    b = np.concatenate([np.tile(edges, len(edges)), rng.integers(-128, 128, 20)]).astype(np.int8)
    for extreme in (0, 1):
        params = _params(rng, extreme)
        zero_point, lo, hi = (-3, -100, 90) if extreme else (5, -128, 127)
        accepted, shown = _run(params, a, b, zero_point, lo, hi, cycles)
        np.testing.assert_array_equal([v for _, v in shown],
                                      conv.run_add(a, b, params, zero_point, lo, hi))
        # a stream of three passes per element, each q cycles, once the output passes run
        gaps = np.diff(accepted)
        assert set(gaps[3:].tolist()) == {ADD_PASSES * cycles}
        assert (gaps <= ADD_PASSES * cycles).all()
        # hw/add_stream.py's bound: the last result within 3*q*n + latency - 3 cycles of the
        # first acceptance (the bubbles of the first and last rotations cost one cycle each)
        span = shown[-1][0] - accepted[0]
        assert span <= ADD_PASSES * cycles * len(a) + AddUnit.latency - ADD_PASSES
        assert span > ADD_PASSES * cycles * (len(a) - 1)
