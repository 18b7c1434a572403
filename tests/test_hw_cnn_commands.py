"""The CONV command sequencer (``hw/conv_commands.py``) against docs/isa.md's command list.

Each kind on windows whose channel count is, is not, and is below a multiple of ``cols``, a
depth multiplier of 3, a partial last tile: the commands (weights, parameters, drain address,
``m_rows``, ``n_cols``, ``k``, the gather's tile and channel) in order, taken one per cycle,
with the MAC count the emulator's cycle model gives; two ``CONV`` instructions back to back
under random stalls; the constant compares at every value.
"""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw_cnn_helpers import set_sizes, set_window
from tessera.hw.conv_commands import ConvCommandSequencer, _at_most
from tessera.runtime import conv
from tessera.runtime.cycles import CycleModel
from tessera.spec import AcceleratorConfig
from tessera.spec.isa import ConvKind

FIELDS = ("w_addr", "k", "out_addr", "param_addr", "m_rows", "n_cols")


def _expected(kind, window, rows, cols, src, dst, w_addr, param_addr):
    groups, k = conv.conv_groups(kind, window, cols)
    p_out = window.out_h * window.out_w
    commands = []
    for t in range(-(-p_out // rows)):
        for g in range(groups):
            m_rows = min(rows, p_out - t * rows)
            if kind == ConvKind.CONV:
                n_cols, first_channel = min(cols, window.out_c - g * cols), g * cols
                channel = 0
            else:
                n_cols, first_channel = 1, g
                channel = g // (window.out_c // window.in_c)
            commands.append(dict(
                w_addr=w_addr + g * k, k=k, out_addr=dst + t * window.out_c + first_channel,
                param_addr=param_addr + first_channel, m_rows=m_rows, n_cols=n_cols,
                src=src, first_tile=int(t == 0 and g == 0), next_tile=int(t > 0 and g == 0),
                all_channels=int(kind == ConvKind.CONV), channel=channel))
    return commands


def _offered(ctx, cmd):
    """Return the fields of the command on ``o_cmd`` as ``_expected`` lists them."""
    record = {name: ctx.get(getattr(cmd, name)) for name in FIELDS}
    record.update({name: ctx.get(getattr(cmd.gather, name))
                   for name in ("src", "first_tile", "next_tile", "all_channels", "channel")})
    return record


def _run(config, window, kind, fields, count):
    dut = ConvCommandSequencer(config)
    seen = []

    async def bench(ctx):
        set_window(ctx, dut.window, window)
        set_sizes(ctx, dut.sizes, window)
        for name, value in dict(fields, kind=kind).items():
            ctx.set(getattr(dut.i_conv.payload, name), value)
        ctx.set(dut.i_conv.valid, 1)
        await ctx.tick()
        ctx.set(dut.i_conv.valid, 0)
        ctx.set(dut.o_cmd.ready, 1)
        for _ in range(count):
            assert ctx.get(dut.o_cmd.valid), "a command was not offered in the next cycle"
            seen.append(_offered(ctx, dut.o_cmd.payload))
            await ctx.tick()
        assert not ctx.get(dut.o_cmd.valid)
        assert ctx.get(dut.i_conv.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


CASES = {
    "conv, out_c not a multiple of cols": (ConvKind.CONV, conv.Window(
        5, 5, 3, 5, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 0)),
    "conv 1x1, out_c below cols": (ConvKind.CONV, conv.Window(
        3, 3, 4, 3, 3, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0)),
    "depthwise, multiplier 3": (ConvKind.DEPTHWISE, conv.Window(
        6, 4, 2, 3, 2, 6, 3, 3, 2, 2, 1, 1, 1, 1, -5)),
    "average pool": (ConvKind.AVERAGE_POOL, conv.Window(
        4, 4, 5, 2, 2, 5, 2, 2, 2, 2, 1, 1, 0, 0, 0)),
    "max pool, partial tile": (ConvKind.MAX_POOL, conv.Window(
        5, 5, 3, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, -128)),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("rows, cols", [(4, 4), (8, 2)])
def test_commands_are_the_isas(name, rows, cols):
    kind, window = CASES[name]
    config = AcceleratorConfig(rows=rows, cols=cols, cnn=True)
    fields = dict(src=11, dst=300, w_addr=40, param_addr=17)
    expected = _expected(kind, window, rows, cols, **fields)
    seen = _run(config, window, kind, fields, len(expected))
    assert seen == expected
    groups, k = conv.conv_groups(kind, window, cols)
    model = CycleModel()
    tiles = -(-window.out_h * window.out_w // rows)
    model.conv(per_tile_cycles=[k] * tiles, pixels=window.out_h * window.out_w, rows=rows,
               groups=groups, cols=cols if kind == ConvKind.CONV else 1, out_c=window.out_c,
               k=k)
    assert sum(c["m_rows"] * c["n_cols"] * c["k"] for c in seen) == model.macs


@pytest.mark.parametrize("rows, cols", [(4, 4), (8, 2)])
def test_back_to_back_with_stalls(rows, cols):
    """Two ``CONV`` instructions offered back to back while ``o_cmd.ready`` stalls at random:
    the commands in order, each offered from the cycle after the previous was taken (or the
    ``CONV`` accepted) until taken, and the second ``CONV`` accepted in the very cycle the first
    one's last command is taken."""
    window = CASES["depthwise, multiplier 3"][1]
    config = AcceleratorConfig(rows=rows, cols=cols, cnn=True)
    convs = [(ConvKind.CONV, dict(src=11, dst=300, w_addr=40, param_addr=17)),
             (ConvKind.DEPTHWISE, dict(src=5, dst=1000, w_addr=7, param_addr=3))]
    expected = [_expected(kind, window, rows, cols, **fields) for kind, fields in convs]
    dut = ConvCommandSequencer(config)
    rng = random.Random(rows * cols)
    seen, events = [], []

    async def bench(ctx):
        set_window(ctx, dut.window, window)
        set_sizes(ctx, dut.sizes, window)
        queue = list(convs)
        cycle = 0
        while queue or ctx.get(dut.o_cmd.valid):
            if queue:
                for name, value in dict(queue[0][1], kind=queue[0][0]).items():
                    ctx.set(getattr(dut.i_conv.payload, name), value)
            ctx.set(dut.i_conv.valid, bool(queue))
            ready = rng.random() < 0.6
            ctx.set(dut.o_cmd.ready, ready)
            valid = ctx.get(dut.o_cmd.valid)
            if valid and ready:
                seen.append(_offered(ctx, dut.o_cmd.payload))
                events.append(("taken", cycle))
            elif not valid:
                events.append(("idle", cycle))
            if queue and ctx.get(dut.i_conv.ready):
                queue.pop(0)
                events.append(("accepted", cycle))
            await ctx.tick()
            cycle += 1
            assert cycle < 2000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == expected[0] + expected[1]
    accepted = [c for what, c in events if what == "accepted"]
    taken = [c for what, c in events if what == "taken"]
    idle = [c for what, c in events if what == "idle"]
    # the first CONV at once; the second with the first's last command
    assert accepted == [0, taken[len(expected[0]) - 1]]
    # o_cmd.valid low only in the cycle the first CONV was accepted
    assert idle == [0]


@pytest.mark.parametrize("bound", [1, 2, 4, 8, 32, 3, 6, 64])
def test_at_most_every_value(bound):
    """The sequencer's constant compares (powers of two without an adder) at every value."""
    value = Signal(6)
    result = _at_most(value, bound)
    seen = []

    async def bench(ctx):
        for v in range(64):
            ctx.set(value, v)
            seen.append(ctx.get(result))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert seen == [int(v <= bound) for v in range(64)]
