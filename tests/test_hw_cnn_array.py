"""The MAC array's max-pool mode (``cnn`` only, ``hw/array.py``) against ``conv.run_conv``.

Gathered operands of a max pool (padding -128, ties, both extremes) stepped through the array
with ``maximum``: every column of the shadow holds each row's maximum, exactly the emulator's
accumulator; the same steps without ``maximum`` still sum products; a configuration without
``cnn`` has no ``maximum`` port and none of its logic.
"""

import numpy as np
from amaranth.back import rtlil
from amaranth.sim import Simulator

from tessera.hw.array import MacArray
from tessera.runtime import conv
from tessera.spec import AcceleratorConfig
from tessera.spec.isa import ConvKind


async def capture_shadow(ctx, array, rows, cols):
    """After a command's last step: copy the accumulators to the shadow, return it shifted out."""
    for _ in range(MacArray.latency - 1):
        await ctx.tick()
    ctx.set(array.shadow_load, 1)
    await ctx.tick()
    ctx.set(array.shadow_load, 0)
    shadow = np.zeros((rows, cols), dtype=np.int64)
    for c in range(cols):
        for r in range(rows):
            shadow[r, c] = ctx.get(array.head)
            ctx.set(array.shift_row, r < rows - 1)
            ctx.set(array.shift_col, r == rows - 1)
            await ctx.tick()
    ctx.set(array.shift_row, 0)
    ctx.set(array.shift_col, 0)
    return shadow


def _shadow(dut, config, steps, weights, maximum):
    """Step ``steps [k, rows]`` (and ``weights [k, cols]``); return the shadow ``[rows, cols]``."""
    rows, cols = config.rows, config.cols
    out = np.zeros((rows, cols), dtype=np.int64)

    async def bench(ctx):
        for i, (a, w) in enumerate(zip(steps, weights)):
            for r in range(rows):
                ctx.set(dut.a[r], int(a[r]))
            for c in range(cols):
                ctx.set(dut.w[c], int(w[c]))
            ctx.set(dut.step, 1)
            ctx.set(dut.clear, i == 0)
            ctx.set(dut.maximum, maximum)
            await ctx.tick()
        ctx.set(dut.step, 0)
        ctx.set(dut.maximum, 0)
        out[:] = await capture_shadow(ctx, dut, rows, cols)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def test_max_pool_keeps_the_emulators_maximum():
    config = AcceleratorConfig(rows=4, cols=2, cnn=True)
    window = conv.Window(4, 4, 1, 2, 2, 1, 3, 3, 2, 2, 1, 1, 1, 1, -128)
    rng = np.random.default_rng(3)
    act = rng.integers(-128, 128, size=(32, 4)).astype(np.int8)
    act[4:8, 1] = 127                                 # ties with the extreme
    acc = conv.run_conv(ConvKind.MAX_POOL, window, act, None, 0, 0, 4, 2)   # [P, 1]
    gathered = conv._gathered(act, 0, window, 4)[:, :, 0]                   # [P, taps]
    steps = gathered.T                                                      # [taps, P=rows]
    weights = rng.integers(-128, 128, size=(len(steps), 2))
    got = _shadow(MacArray(config), config, steps, weights, maximum=1)
    np.testing.assert_array_equal(got, np.repeat(acc, 2, axis=1))
    summed = _shadow(MacArray(config), config, steps, weights, maximum=0)
    np.testing.assert_array_equal(summed, steps.T.astype(np.int64) @ weights)


def test_without_cnn_the_array_is_unchanged():
    dut = MacArray(AcceleratorConfig(rows=2, cols=2))
    assert "maximum" not in dut.signature.members
    text = rtlil.convert(dut)
    assert "maximum" not in text and "a_late" not in text


def test_public_names_of_the_cnn_units_resolve():
    import importlib
    for name in ("gather", "window", "pool", "add", "conv_commands", "gathered", "act_banks",
                 "conv_checks", "pool_post"):
        module = importlib.import_module(f"tessera.hw.{name}")
        assert module.__all__
        for public in module.__all__:
            assert hasattr(module, public), f"tessera.hw.{name}.__all__ names missing {public!r}"
