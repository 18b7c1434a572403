"""A whole CONV's accumulators on the RTL datapath against the emulator's ``conv.run_conv``.

The commands of a ``CONV`` (docs/isa.md's list, checked against the command sequencer in
test_hw_cnn_commands.py) run through :class:`GatheredSteps` — window addresses, the banked ACT's
arbitrated reads, the weights — into a :class:`MacArray`; after each command the shadow must
hold exactly the emulator's accumulators of its tile and channel group, for each kind, and the
steps must be shown at the emulator's gather cost.
"""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw_cnn_helpers import set_window
from test_hw_cnn_array import capture_shadow
from test_hw_cnn_commands import CASES, _expected
from tessera.hw.array import MacArray
from tessera.hw.gathered import GatheredSteps
from tessera.hw.window_setup import setup_cycles
from tessera.runtime import conv
from tessera.spec import AcceleratorConfig
from tessera.spec.isa import ConvKind
from tessera.spec.timing import GATHER_PIPELINE_CYCLES, GEMM_OVERHEAD_CYCLES


class _Datapath(Elaboratable):
    def __init__(self, config, act, wgt):
        self.config, self.act, self.wgt = config, act, wgt
        self.steps = GatheredSteps(config)
        self.array = MacArray(config)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.steps = steps = self.steps
        m.submodules.array = array = self.array
        lanes = cfg.act_bank_lanes
        for b in range(cfg.rows // lanes):
            words = [sum((int(v) & 0xFF) << (8 * i)
                         for i, v in enumerate(entry[b * lanes:(b + 1) * lanes]))
                     for entry in self.act]
            m.submodules[f"bank{b}"] = mem = Memory(shape=8 * lanes, depth=len(words), init=words)
            port = mem.read_port()
            m.d.comb += [port.en.eq(steps.bank_en[b]), port.addr.eq(steps.bank_addr[b]),
                         steps.bank_data[b].eq(port.data)]
        words = [sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(entry))
                 for entry in self.wgt]
        m.submodules.wgt = wgt = Memory(shape=8 * cfg.cols, depth=len(words), init=words)
        port = wgt.read_port()
        m.d.comb += [port.en.eq(steps.wgt_en), port.addr.eq(steps.wgt_addr),
                     steps.wgt_data.eq(port.data),
                     array.a.as_value().eq(steps.a.as_value()), array.w.as_value().eq(steps.w),
                     array.step.eq(steps.step), array.clear.eq(steps.clear),
                     array.maximum.eq(steps.maximum)]
        return m


def _set_command(ctx, steps, kind, command):
    for name in ("w_addr", "k", "out_addr", "param_addr", "m_rows", "n_cols"):
        ctx.set(getattr(steps.i_cmd.payload, name), command[name])
    ctx.set(steps.i_cmd.payload.kind, kind)
    for name in ("src", "first_tile", "next_tile", "all_channels", "channel"):
        ctx.set(getattr(steps.i_cmd.payload.gather, name), command[name])


async def set_up(ctx, steps, window, src, config):
    """Give ``steps`` the window and ``src`` and wait for the generator's set-up."""
    set_window(ctx, steps.window, window)
    ctx.set(steps.src, src)
    ctx.set(steps.load, 1)
    await ctx.tick()
    ctx.set(steps.load, 0)
    await ctx.tick().repeat(setup_cycles(config.rows))


def _run(config, window, kind, commands, act, wgt):
    dut = _Datapath(config, act, wgt)
    steps, array = dut.steps, dut.array
    rows, cols = config.rows, config.cols
    results, step_gaps, taps = [], [], []

    async def bench(ctx):
        await set_up(ctx, steps, window, commands[0]["src"], config)
        for command in commands:
            _set_command(ctx, steps, kind, command)
            ctx.set(steps.i_cmd.valid, 1)
            assert ctx.get(steps.i_cmd.ready)
            await ctx.tick()
            ctx.set(steps.i_cmd.valid, 0)
            # (the engine accepts a command at least GEMM_OVERHEAD_CYCLES after the previous
            # command's last step was taken)
            await ctx.tick().repeat(GEMM_OVERHEAD_CYCLES - 1)
            ctx.set(steps.start, 1)
            await ctx.tick()
            ctx.set(steps.start, 0)
            shown_at, cycle = [], 0
            while True:
                step, last = ctx.get(steps.step), ctx.get(steps.o_last)
                if step:
                    shown_at.append(cycle)
                await ctx.tick()
                cycle += 1
                if last:
                    break
            step_gaps.append(np.diff(shown_at).tolist())
            taps.append([ctx.get(steps.taps[r]) for r in range(rows)])
            results.append(await capture_shadow(ctx, array, rows, cols))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results, step_gaps, taps


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("rows, cols, bank_lanes", [(4, 4, 1), (8, 2, 2)])
def test_accumulators_are_the_emulators(name, rows, cols, bank_lanes):
    kind, window = CASES[name]
    config = AcceleratorConfig(rows=rows, cols=cols, act_depth=256, weight_depth=512, cnn=True,
                               act_bank_lanes=bank_lanes)
    rng = np.random.default_rng(rows)
    act = rng.integers(-128, 128, size=(config.act_depth, rows)).astype(np.int8)
    act[::5, 0] = 127
    wgt = rng.integers(-128, 128, size=(config.weight_depth, cols)).astype(np.int8)
    fields = dict(src=11, dst=300, w_addr=40, param_addr=17)
    commands = _expected(kind, window, rows, cols, **fields)
    results, gaps, taps = _run(config, window, kind, commands, act, wgt)
    in_bounds = conv.pool_taps(window, rows)[:, 0]

    acc = conv.run_conv(kind, window, act, wgt, fields["src"], fields["w_addr"], rows, cols)
    # (an average pool's accumulators are its tap sums: the divider is the drain's)
    plan = conv.gather_plan(window, rows, bank_lanes)
    tiles, groups = plan.step_cycles.shape[0], len(commands) // plan.step_cycles.shape[0]
    for i, (command, shadow) in enumerate(zip(commands, results)):
        t, g = divmod(i, groups)
        m_rows, n_cols = command["m_rows"], command["n_cols"]
        first = g * cols if kind == ConvKind.CONV else g
        np.testing.assert_array_equal(shadow[:m_rows, :n_cols],
                                      acc[t * rows:t * rows + m_rows, first:first + n_cols])
        per_step = np.repeat(plan.step_cycles[t], window.in_c if kind == ConvKind.CONV else 1)
        assert gaps[i] == per_step[1:].tolist()
        if kind != ConvKind.CONV:            # one channel per command: the divisor of a pool
            assert taps[i][:m_rows] == in_bounds[t * rows:t * rows + m_rows].tolist()


@pytest.mark.parametrize("name", ["conv, out_c not a multiple of cols", "depthwise, multiplier 3",
                                  "max pool, partial tile"])
def test_back_to_back_commands_take_the_emulators_compute_cycles(name):
    """Commands started at each hand-off (the engine's acceptance, no stalls): from a start to
    its hand-off (last step shown + 3) is the command's gather cost + GEMM_OVERHEAD_CYCLES +
    GATHER_PIPELINE_CYCLES."""
    kind, window = CASES[name]
    rows, cols, bank_lanes = 8, 2, 1
    config = AcceleratorConfig(rows=rows, cols=cols, act_depth=256, weight_depth=512, cnn=True,
                               act_bank_lanes=bank_lanes)
    act = np.zeros((config.act_depth, rows), dtype=np.int8)
    wgt = np.zeros((config.weight_depth, cols), dtype=np.int8)
    commands = _expected(kind, window, rows, cols, src=11, dst=300, w_addr=40, param_addr=17)
    dut = _Datapath(config, act, wgt)
    steps = dut.steps
    starts, handoffs = [], []

    async def bench(ctx):
        await set_up(ctx, steps, window, commands[0]["src"], config)
        pending, cycle, handoff = list(commands), 0, 1
        while len(handoffs) < len(commands):
            if pending:
                _set_command(ctx, steps, kind, pending[0])
            ctx.set(steps.i_cmd.valid, bool(pending))
            offered = bool(pending) and ctx.get(steps.i_cmd.ready)
            start = cycle == handoff and len(starts) < len(commands)
            ctx.set(steps.start, start)
            if start:
                starts.append(cycle)
            if ctx.get(steps.o_last):
                handoff = cycle + 3
                handoffs.append(handoff)
            await ctx.tick()
            cycle += 1
            if offered:
                pending.pop(0)
            assert cycle < 5000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    plan = conv.gather_plan(window, rows, bank_lanes)
    groups = len(commands) // plan.step_cycles.shape[0]
    per_tile = plan.step_cycles.sum(axis=1) * (window.in_c if kind == ConvKind.CONV else 1)
    expected = [int(per_tile[i // groups]) + GEMM_OVERHEAD_CYCLES + GATHER_PIPELINE_CYCLES
                for i in range(len(commands))]
    assert [h - a for a, h in zip(starts, handoffs)] == expected


def test_the_next_command_waits_for_the_arbiter_not_the_generator():
    """The generator hands its steps over through a skid register, so it runs a step ahead of
    the arbiter: a one-step command (a 1x1 max pool, the compiler's RELU) is all made before the
    engine starts it. The next command is still taken only in the cycle after the arbiter took
    the last step (the start, for one step), and each step is shown 2 + GATHER_PIPELINE_CYCLES
    cycles after its start, also after a wait for the start and across the next-tile commands."""
    kind, window = ConvKind.MAX_POOL, conv.Window(3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, -128)
    rows, cols, wait = 8, 2, 6
    config = AcceleratorConfig(rows=rows, cols=cols, act_depth=256, weight_depth=512, cnn=True,
                               act_bank_lanes=1)
    act = np.zeros((config.act_depth, rows), dtype=np.int8)
    wgt = np.zeros((config.weight_depth, cols), dtype=np.int8)
    commands = _expected(kind, window, rows, cols, src=11, dst=300, w_addr=40, param_addr=17)
    assert [c["k"] for c in commands] == [1] * 6 and sum(c["next_tile"] for c in commands) == 1
    dut = _Datapath(config, act, wgt)
    steps = dut.steps
    taken_at, starts, shown = [], [], []

    async def bench(ctx):
        await set_up(ctx, steps, window, commands[0]["src"], config)
        cycle = 0
        while len(shown) < len(commands):
            if len(taken_at) < len(commands):
                _set_command(ctx, steps, kind, commands[len(taken_at)])
            ctx.set(steps.i_cmd.valid, len(taken_at) < len(commands))
            offered = len(taken_at) < len(commands) and ctx.get(steps.i_cmd.ready)
            start = len(starts) < len(taken_at) and cycle == taken_at[len(starts)] + wait
            ctx.set(steps.start, start)
            if start:
                starts.append(cycle)
            if ctx.get(steps.step):
                assert ctx.get(steps.o_last)
                shown.append(cycle)
            await ctx.tick()
            if offered:
                taken_at.append(cycle)
            cycle += 1
            assert cycle < 1000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert taken_at[1:] == [a + 1 for a in starts[:-1]]
    assert shown == [a + 2 + GATHER_PIPELINE_CYCLES for a in starts]
