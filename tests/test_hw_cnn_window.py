"""The window address generator (``hw/window.py``) against the emulator's gather plan.

Every step's per-lane request — ACT entry, operand, padding — must be the one
``tessera.runtime.conv.gather_plan`` gives, in the ISA's order, for convolutions (all channels
per step sequence) and for depthwise/pool commands (one channel each), with strides, dilation,
padding on every side, row wraps and a last tile with lanes past the last pixel.
"""

import pytest
from amaranth.sim import Simulator

from hw_cnn_helpers import set_window
from test_hw_cnn_gather import WINDOWS, _requests
from tessera.hw.window import WindowAddressGenerator
from tessera.runtime import conv
from tessera.spec import AcceleratorConfig


def _generate(config, window, commands):
    """Run the generator on ``commands``; return the steps as lists of (entry, operand, pad)."""
    dut = WindowAddressGenerator(config)
    steps = []

    async def bench(ctx):
        set_window(ctx, dut.window, window)
        ctx.set(dut.o_step.ready, 1)
        pending = list(commands)
        for _ in range(20000):
            if pending:
                for name, value in pending[0].items():
                    ctx.set(getattr(dut.i_cmd.payload, name), value)
                ctx.set(dut.i_cmd.valid, 1)
            else:
                ctx.set(dut.i_cmd.valid, 0)
            accepted = ctx.get(dut.i_cmd.valid) and ctx.get(dut.i_cmd.ready)
            if ctx.get(dut.o_step.valid):
                lanes = dut.o_step.payload
                step = []
                for r in range(config.rows):
                    pad = ctx.get(lanes[r].pad)
                    step.append((0, 0, 1) if pad else
                                (ctx.get(lanes[r].entry), ctx.get(lanes[r].operand), 0))
                steps.append(step)
            await ctx.tick()
            if accepted:
                pending.pop(0)
            if not pending and not ctx.get(dut.o_step.valid):
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return steps


def _convolution(config, window, src):
    """Return ``(steps generated, steps of the emulator's plan)`` of a whole convolution."""
    tiles = -(-window.out_h * window.out_w // config.rows)
    commands = [dict(src=src, first_tile=t == 0, next_tile=t > 0, all_channels=1, channel=0)
                for t in range(tiles)]
    expected = [lanes for _t, _tap, _c, lanes in _requests(window, config.rows, src)]
    return _generate(config, window, commands), expected


@pytest.mark.parametrize("rows", [4, 8])
@pytest.mark.parametrize("name", list(WINDOWS))
def test_convolution_steps_are_the_emulators(rows, name):
    config = AcceleratorConfig(rows=rows, cols=2, act_depth=512, cnn=True)
    steps, expected = _convolution(config, WINDOWS[name], 7)
    assert steps == expected


@pytest.mark.parametrize("name", ["3x3 same", "stride 2, padded"])
def test_one_channel_commands_are_the_emulators(name):
    window, src, rows = WINDOWS[name], 2, 4
    config = AcceleratorConfig(rows=rows, cols=2, act_depth=512, cnn=True)
    tiles = -(-window.out_h * window.out_w // rows)
    commands, expected = [], []
    steps = _requests(window, rows, src)
    for t in range(tiles):
        for c in range(window.in_c):
            commands.append(dict(src=src, first_tile=t == 0, next_tile=t > 0 and c == 0,
                                 all_channels=0, channel=c))
            expected += [lanes for tt, _tap, cc, lanes in steps if (tt, cc) == (t, c)]
    assert _generate(config, window, commands) == expected


def test_rows_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power-of-two row count, not 6"):
        WindowAddressGenerator(AcceleratorConfig(rows=6, cols=2, cnn=True))


#: Windows beyond WINDOWS' small ones: a one-pixel-wide map (every tile crosses `rows` output
#: rows) and wide rows with the largest strides, dilation and padding (q near its width).
WIDE_WINDOWS = {
    "one column": conv.Window(9, 1, 2, 9, 1, 2, 3, 1, 1, 1, 1, 1, 1, 0, 7),
    "wide, stride 7, pad 15": conv.Window(8, 1000, 1, 3, 143, 1, 3, 3, 2, 7, 3, 7, 2, 15, 0),
}


@pytest.mark.parametrize("name, rows", [("one column", 1), ("one column", 4),
                                        ("one column", 32), ("wide, stride 7, pad 15", 4)])
def test_wide_windows_are_the_emulators(name, rows):
    window = WIDE_WINDOWS[name]
    config = AcceleratorConfig(rows=rows, cols=2, act_depth=2048, cnn=True)
    steps, expected = _convolution(config, window, 5)
    assert steps == expected
    entries = [entry for step in steps for entry, _o, pad in step if not pad]
    assert max(entries) > (600 if window.in_w > 1 else 2 * 9 // rows)
