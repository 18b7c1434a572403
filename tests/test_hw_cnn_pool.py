"""The average pool's divider (``hw/pool.py``) against the emulator's ``conv.pool_average``.

Ties (``a = k*n + n/2``) both signs, exact quotients, zero, one tap, the largest tap counts and
sums, back to back at exactly ``POOL_DIVIDE_CYCLES`` cycles per element.
"""

import numpy as np
from amaranth.sim import Simulator

from tessera.hw.pool import PoolDivider
from tessera.runtime import conv
from tessera.spec.timing import POOL_DIVIDE_CYCLES


def _cases():
    rng = np.random.default_rng(5)
    sums, taps = [0, 1, -1, 5, -5, 7, -7, 128, -128, 127 * 961, -128 * 961, 3, -3], \
        [1, 2, 2, 2, 2, 2, 2, 1, 1, 961, 961, 6, 6]
    for n in (2, 4, 6, 9, 25, 961):                     # ties: k*n + n/2 (even n)
        for k in (-3, 0, 2, 127):
            sums.append(k * n + n // 2 if n % 2 == 0 else k * n + 1)
            taps.append(n)
            sums.append(-(k * n + n // 2))
            taps.append(n)
    n = rng.integers(1, 962, size=200)
    sums += (rng.integers(-128, 128, size=200) * n + rng.integers(-n + 1, n)).tolist()
    taps += n.tolist()
    a, n = np.array(sums, dtype=np.int64), np.array(taps, dtype=np.int64)
    keep = np.abs(a) <= 128 * n                         # what 8-bit operands can sum to
    return a[keep], n[keep]


def test_quotients_and_timing_are_the_emulators():
    sums, taps = _cases()
    dut = PoolDivider()
    accepted, shown = [], []

    async def bench(ctx):
        cycle = 0
        for a, n in zip(sums.tolist(), taps.tolist()):
            ctx.set(dut.i_div.payload.sum, a)
            ctx.set(dut.i_div.payload.taps, n)
            ctx.set(dut.i_div.valid, 1)
            while True:
                ready = ctx.get(dut.i_div.ready)
                if ctx.get(dut.o_valid):
                    shown.append(ctx.get(dut.o_quotient))
                await ctx.tick()
                cycle += 1
                if ready:
                    accepted.append(cycle)
                    break
        ctx.set(dut.i_div.valid, 0)
        for _ in range(POOL_DIVIDE_CYCLES + 2):
            if ctx.get(dut.o_valid):
                shown.append(ctx.get(dut.o_quotient))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(shown, conv.pool_average(sums, taps))
    assert set(np.diff(accepted).tolist()) == {POOL_DIVIDE_CYCLES}
