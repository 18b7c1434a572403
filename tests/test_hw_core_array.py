# amaranth: UnusedElaboratable=no

# (The line above: Drain objects built only to check their constructor are never elaborated.)
"""MacArray: outer-product accumulation, clear, shadow hand-off and shifting read-out."""

import numpy as np
import pytest
from amaranth.sim import Simulator


from tessera import numerics
from tessera.hw.array import MacArray
from tessera.spec import AcceleratorConfig
from tessera.spec.config import operand_range


def drain_order(shadow, m_rows, n_cols):
    """The elements the shifting read-out yields: column by column, rows < m_rows."""
    return [int(shadow[r, c]) for c in range(n_cols) for r in range(m_rows)]


@pytest.mark.parametrize("rows,cols,input_bits,weight_bits", [
    (2, 4, 8, 8), (3, 5, 8, 8), (1, 1, 8, 8),
    (2, 4, 4, 4), (3, 2, 4, 8), (2, 3, 8, 4), (2, 2, 16, 16), (1, 3, 16, 8)])
def test_accumulate_clear_and_drain(rows, cols, input_bits, weight_bits):
    # Operands over their full ranges, the most negative pair at least once per tile (the
    # largest product), accumulators of acc_bits (48 for 16-bit operands: long runs of
    # -32768 * -32768 pass 2^32 and must not wrap).
    config = AcceleratorConfig(rows=rows, cols=cols, input_bits=input_bits,
                               weight_bits=weight_bits)
    dut = MacArray(config)
    assert dut.head.shape().width == config.acc_bits
    a_lo, a_hi = operand_range(input_bits)
    w_lo, w_hi = operand_range(weight_bits)
    rng = np.random.default_rng(rows * 10 + cols + input_bits * weight_bits)
    # Tiles: (steps, clear on the first step, gap cycles after). A gap of 0 means the next
    # tile's steps follow directly without clear (the K split case); otherwise a clearing tile
    # leaves the gap the engine guarantees.
    tiles = [(5, True, 2), (3, True, 0), (4, False, 3), (1, True, 2), (6, True, 2)]
    seen = []

    async def testbench(ctx):
        acc = np.zeros((rows, cols), dtype=np.int64)
        pending_shadow = None
        for steps, clear, gap in tiles:
            for i in range(steps):
                a = rng.integers(a_lo, a_hi + 1, size=rows)
                w = rng.integers(w_lo, w_hi + 1, size=cols)
                # Extreme operands: -128 * -128 is the largest int8 product; with 16-bit
                # operands row 0 / column 0 take -32768 * -32768 on every step.
                if i == 0 or input_bits == 16:
                    a[0], w[0] = a_lo, w_lo
                for r in range(rows):
                    ctx.set(dut.a[r], int(a[r]))
                for c in range(cols):
                    ctx.set(dut.w[c], int(w[c]))
                ctx.set(dut.step, 1)
                ctx.set(dut.clear, int(clear and i == 0))
                product = np.outer(a, w)
                acc = product if clear and i == 0 else acc + product
                await ctx.tick()
            ctx.set(dut.step, 0)
            ctx.set(dut.clear, 0)
            if gap:
                # The last step is accumulated MacArray.latency - 1 cycles later: hand off then.
                for _ in range(MacArray.latency - 1):
                    await ctx.tick()
                ctx.set(dut.shadow_load, 1)
                await ctx.tick()
                ctx.set(dut.shadow_load, 0)
                pending_shadow = acc.copy()
                # Read part of the shadow while the array idles for the rest of the gap.
                m_rows, n_cols = rng.integers(1, rows + 1), rng.integers(1, cols + 1)
                got = []
                for c in range(n_cols):
                    for r in range(m_rows):
                        got.append(ctx.get(dut.head))
                        last = r == m_rows - 1
                        ctx.set(dut.shift_row, int(not last))
                        ctx.set(dut.shift_col, int(last))
                        await ctx.tick()
                ctx.set(dut.shift_row, 0)
                ctx.set(dut.shift_col, 0)
                seen.append((got, drain_order(pending_shadow, m_rows, n_cols)))
                for _ in range(gap - 2):
                    await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(seen) == 4
    for got, want in seen:
        np.testing.assert_array_equal(got, numerics.wrap_signed(want, config.acc_bits))
    if input_bits == weight_bits == 16:    # the acc passed the int32 range (no wrap)
        assert max(max(abs(v) for v in got) for got, _ in seen) >= 1 << 31


def test_shadow_load_while_next_tile_accumulates():
    # The hand-off cycle may coincide with the next tile's clearing step (registered, not yet
    # accumulated): the shadow keeps the finished tile, the array starts the new one.
    config = AcceleratorConfig(rows=2, cols=2)
    dut = MacArray(config)
    out = []

    async def testbench(ctx):
        def step(a, w, clear):
            for r in range(2):
                ctx.set(dut.a[r], a[r])
            for c in range(2):
                ctx.set(dut.w[c], w[c])
            ctx.set(dut.step, 1)
            ctx.set(dut.clear, clear)

        step([3, -4], [5, 7], 1)
        await ctx.tick()
        step([1, 1], [1, -1], 0)
        await ctx.tick()
        ctx.set(dut.step, 0)
        ctx.set(dut.clear, 0)
        for _ in range(MacArray.latency - 1):
            await ctx.tick()              # last step accumulates at the end of the last one
        ctx.set(dut.shadow_load, 1)
        step([2, 2], [2, 2], 1)           # next tile's clearing step in the hand-off cycle
        await ctx.tick()
        ctx.set(dut.shadow_load, 0)
        ctx.set(dut.step, 0)
        ctx.set(dut.clear, 0)

        async def read_shadow():
            for shift_col in (0, 1, 0, 1):
                out.append(ctx.get(dut.head))
                ctx.set(dut.shift_row, 1 - shift_col)
                ctx.set(dut.shift_col, shift_col)
                await ctx.tick()
            ctx.set(dut.shift_row, 0)
            ctx.set(dut.shift_col, 0)

        await read_shadow()               # the finished tile, while the new one accumulates
        ctx.set(dut.shadow_load, 1)       # then capture the new tile
        await ctx.tick()
        ctx.set(dut.shadow_load, 0)
        await read_shadow()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    # acc = [3, -4] (x) [5, 7] + [1, 1] (x) [1, -1], read column by column; then all 2*2.
    np.testing.assert_array_equal(out, [16, -19, 20, -29, 4, 4, 4, 4])


def test_public_names_resolve():
    import importlib
    for name in ("array", "gemm", "drain", "core"):
        module = importlib.import_module(f"tessera.hw.{name}")
        for public in module.__all__:
            assert hasattr(module, public), f"tessera.hw.{name}.__all__ names missing {public!r}"


def test_drain_refuses_a_postprocessor_slower_than_the_timing_constant():
    from tessera.hw.drain import Drain
    from tessera.spec.timing import DRAIN_OVERHEAD_CYCLES

    config = AcceleratorConfig(rows=2, cols=2)
    slow = DRAIN_OVERHEAD_CYCLES - 1
    with pytest.raises(ValueError, match=(
            rf"^PostProcessor latency {slow} needs DRAIN_OVERHEAD_CYCLES >= {slow + 2}, but "
            rf"tessera.spec.timing has {DRAIN_OVERHEAD_CYCLES}; raise the constant \(and the "
            rf"emulator follows\) or shorten the pipeline$")):
        Drain(config, postproc_latency=slow)
    with pytest.raises(ValueError, match=r"^PostProcessor latency must be a non-negative "
                                         r"integer, not -1$"):
        Drain(config, postproc_latency=-1)
    Drain(config, postproc_latency=DRAIN_OVERHEAD_CYCLES - 2)
