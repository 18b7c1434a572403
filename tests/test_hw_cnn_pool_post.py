"""The pool drain's post-processing (``hw/pool_post.py``) against the emulator's pool drain:
``clamp(conv.pool_average(a, n), lo, hi)`` and ``clamp(a, lo, hi)`` (machine.py's ``_conv``),
in order with their tags, at one element per cycle (max) or POOL_DIVIDE_CYCLES (average)."""

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from tessera.hw.pool_post import AVERAGE_LATENCY, PoolPostProcessor
from tessera.runtime import conv
from tessera.spec import AcceleratorConfig
from tessera.spec.timing import POOL_DIVIDE_CYCLES


@pytest.mark.parametrize("average", [0, 1])
def test_results_tags_and_timing_are_the_emulators(average):
    rng = np.random.default_rng(average)
    taps = rng.integers(1, 26, size=60)
    acc = (rng.integers(-128, 128, size=60) * taps + rng.integers(-taps + 1, taps)) \
        if average else rng.integers(-128, 128, size=60)
    acc[:4] = [taps[0] * 127, -taps[1] * 128, 0, 3 * taps[3] // 2 if average else 127]
    lo, hi = -100, 90
    want = np.clip(conv.pool_average(acc, taps) if average else acc, lo, hi)
    dut = PoolPostProcessor(AcceleratorConfig(rows=4, cols=2, cnn=True))
    accepted, shown = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload.lo, lo)
        ctx.set(dut.i.payload.hi, hi)
        ctx.set(dut.i.payload.average, average)
        cycle, pending = 0, list(range(len(acc)))
        while len(shown) < len(acc):
            if pending:
                i = pending[0]
                ctx.set(dut.i.payload.acc, int(acc[i]))
                ctx.set(dut.i.payload.taps, int(taps[i]))
                ctx.set(dut.i.payload.tag, i % 256)
                ctx.set(dut.i.payload.last, i % 3 == 0)
            ctx.set(dut.i.valid, bool(pending))
            take = bool(pending) and ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                shown.append((cycle, ctx.get(Value.cast(dut.o.payload.value)),
                              ctx.get(dut.o.payload.tag), ctx.get(dut.o.payload.last)))
            await ctx.tick()
            if take:
                accepted.append(cycle)
                pending.pop(0)
            cycle += 1
            assert cycle < 2000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal([v for _, v, _, _ in shown], want)
    assert [t for _, _, t, _ in shown] == list(range(len(acc)))
    assert [la for _, _, _, la in shown] == [int(i % 3 == 0) for i in range(len(acc))]
    assert set(np.diff(accepted).tolist()) == {POOL_DIVIDE_CYCLES if average else 1}
    latency = AVERAGE_LATENCY if average else 2
    assert [c - a for (c, _, _, _), a in zip(shown, accepted)] == [latency] * len(acc)
