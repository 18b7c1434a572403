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
from tessera.hw.window_setup import setup_cycles
from tessera.runtime import conv
from tessera.spec import AcceleratorConfig


def _generate(config, window, commands, src, *, more=()):
    """Run the generator on ``commands`` after a set-up for ``window`` and ``src``, then on each
    ``(window, src, commands)`` of ``more`` (a set-up each, once the previous steps are all
    shown); return the steps as lists of (entry, operand, pad)."""
    dut = WindowAddressGenerator(config)
    steps = []

    async def bench(ctx):
        ctx.set(dut.o_step.ready, 1)
        for window_, src_, commands_ in [(window, src, commands), *more]:
            set_window(ctx, dut.window, window_)
            ctx.set(dut.src, src_)
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            # ready setup_cycles(rows) after the load: the cycle model's CONV issue
            for _ in range(setup_cycles(config.rows) - 1):
                assert not ctx.get(dut.i_cmd.ready)
                await ctx.tick()
            assert ctx.get(dut.i_cmd.ready)
            await _run_commands(ctx, dut, config, commands_, steps)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return steps


async def _run_commands(ctx, dut, config, commands, steps):
    pending = list(commands)
    idle = 0
    for _ in range(20000):
        if pending:
            for name, value in pending[0].items():
                field = dut.i_cmd.payload if name == "m_rows" else dut.i_cmd.payload.gather
                ctx.set(getattr(field, name), value)
        ctx.set(dut.i_cmd.valid, bool(pending))
        accepted = bool(pending) and ctx.get(dut.i_cmd.ready)
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
        # (a next-tile command shows its first step two cycles after its acceptance)
        idle = 0 if ctx.get(dut.o_step.valid) or accepted else idle + 1
        if not pending and idle > 2:
            return
    raise AssertionError("the generator did not finish its commands")


def _conv_commands(config, window, src):
    """Return a convolution's generator commands (all channels) and the emulator's steps."""
    pixels = window.out_h * window.out_w
    tiles = -(-pixels // config.rows)
    commands = [dict(src=src, first_tile=t == 0, next_tile=t > 0, all_channels=1, channel=0,
                     m_rows=min(config.rows, pixels - t * config.rows))
                for t in range(tiles)]
    return commands, [lanes for _t, _tap, _c, lanes in _requests(window, config.rows, src)]


def _one_channel_commands(config, window, src):
    """Return a depthwise/pool's generator commands (one channel each) and the emulator's
    steps."""
    rows = config.rows
    pixels = window.out_h * window.out_w
    commands, expected = [], []
    steps = _requests(window, rows, src)
    for t in range(-(-pixels // rows)):
        for c in range(window.in_c):
            commands.append(dict(src=src, first_tile=t == 0, next_tile=t > 0 and c == 0,
                                 all_channels=0, channel=c, m_rows=min(rows, pixels - t * rows)))
            expected += [lanes for tt, _tap, cc, lanes in steps if (tt, cc) == (t, c)]
    return commands, expected


def _convolution(config, window, src):
    """Return ``(steps generated, steps of the emulator's plan)`` of a whole convolution."""
    commands, expected = _conv_commands(config, window, src)
    return _generate(config, window, commands, src), expected


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
    commands, expected = _one_channel_commands(config, window, src)
    assert _generate(config, window, commands, src) == expected


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


#: Windows at the generator's limits (fields: in_h, in_w, in_c, out_h, out_w, out_c, kernel_h,
#: kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, pad_value).
LIMIT_WINDOWS = {
    # out_w = rows: every tile is one output row
    "out_w = rows": conv.Window(6, 8, 2, 6, 8, 2, 3, 3, 1, 1, 1, 1, 1, 1, 0),
    # out_w 3 < rows: two or three row wraps per tile, padding on all four sides
    "out_w 3, padded all round": conv.Window(7, 7, 1, 5, 3, 1, 4, 3, 2, 3, 1, 1, 2, 1, 0),
    # stride 7 and dilation 7 on both axes, input rows wider than the output
    "stride 7, dilation 7": conv.Window(30, 29, 1, 3, 4, 1, 2, 2, 7, 7, 7, 7, 3, 5, 0),
    # strides 5 and 3 with dilations 3 and 5, a 5x4 kernel, the largest padding
    "stride 5/3, dilation 3/5": conv.Window(20, 17, 2, 7, 9, 2, 5, 4, 5, 3, 3, 5, 15, 15, 0),
    # 300 channels on a 1x1 kernel: many channel steps per tap, one tap; a partial last tile
    "in_c 300, 1x1": conv.Window(3, 3, 300, 3, 3, 300, 1, 1, 1, 1, 1, 1, 0, 0, 0),
    # a kernel wider than the input: most taps padded, q far below 0 (E wraps mod 2^16)
    "kernel past the input": conv.Window(2, 3, 1, 2, 3, 1, 9, 12, 1, 1, 1, 1, 4, 5, 0),
}


@pytest.mark.parametrize("name", list(LIMIT_WINDOWS))
@pytest.mark.parametrize("rows", [2, 8])
def test_windows_at_the_limits_are_the_emulators(name, rows):
    config = AcceleratorConfig(rows=rows, cols=2, act_depth=2048, cnn=True)
    steps, expected = _convolution(config, LIMIT_WINDOWS[name], 3)
    assert steps == expected
    assert any(pad for step in steps for _e, _o, pad in step)


def test_one_step_commands_and_src_at_the_top_of_act():
    """1x1 windows, one channel per command (one step each, back to back); the input map ends at
    the last ACT entry."""
    config = AcceleratorConfig(rows=4, cols=2, act_depth=64, cnn=True)
    window = conv.Window(5, 3, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0)
    src = 64 - 4 * 3                   # ceil(15 / 4) = 4 entries per channel
    commands, expected = _one_channel_commands(config, window, src)
    steps = _generate(config, window, commands, src)
    assert steps == expected
    assert max(entry for step in steps for entry, _o, pad in step if not pad) == 63


def test_back_to_back_convs_with_different_windows():
    """Three set-ups in a row (different windows, sources and command kinds): each CONV's steps
    are its own, none left from the previous one."""
    config = AcceleratorConfig(rows=8, cols=2, act_depth=1024, cnn=True)
    first, second, third = (WINDOWS["stride 2, padded"], LIMIT_WINDOWS["out_w 3, padded all round"],
                            WINDOWS["3x3 same"])
    commands_1, expected_1 = _conv_commands(config, first, 100)
    commands_2, expected_2 = _one_channel_commands(config, second, 7)
    commands_3, expected_3 = _conv_commands(config, third, 900)
    steps = _generate(config, first, commands_1, 100,
                      more=[(second, 7, commands_2), (third, 900, commands_3)])
    assert steps == expected_1 + expected_2 + expected_3
