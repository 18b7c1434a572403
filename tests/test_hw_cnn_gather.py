"""The gather arbiter (``hw/gather.py``) against the emulator's window gather (runtime/conv.py).

For windows with strides, dilation, padding and map-row wraps, every step's requests (the ACT
entry and operand of each lane's input pixel, or padding) are fed to :class:`GatherArbiter` on a
banked ACT back to back: each step must take exactly ``gather_plan(...).step_cycles`` cycles and
show exactly the operands ``conv._gathered`` gives, on one- and multi-lane banks. Random
requests (conflicts, repeated entries, every lane on one bank, all padding) with idle gaps check
the same rule cycle by cycle on 4, 8 and 16 lanes.
"""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Value
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from tessera.hw.gather import GatherArbiter
from tessera.runtime import conv
from tessera.spec import AcceleratorConfig
from tessera.spec.timing import GATHER_PIPELINE_CYCLES


class _BankedAct(Elaboratable):
    """The arbiter reading ``rows / act_bank_lanes`` bank memories holding ``act``."""

    def __init__(self, config, act):
        self.config, self.act = config, act
        self.arbiter = GatherArbiter(config)

    def elaborate(self, platform):
        m = Module()
        m.submodules.arbiter = arb = self.arbiter
        lanes = self.config.act_bank_lanes
        for b in range(self.config.rows // lanes):
            words = [sum((int(v) & 0xFF) << (8 * i)
                         for i, v in enumerate(entry[b * lanes:(b + 1) * lanes]))
                     for entry in self.act]
            mem = Memory(shape=8 * lanes, depth=len(words), init=words)
            m.submodules[f"bank{b}"] = mem
            port = mem.read_port()
            m.d.comb += [port.en.eq(arb.bank_en[b]), port.addr.eq(arb.bank_addr[b]),
                         arb.bank_data[b].eq(port.data)]
        return m


def _requests(window, rows, src):
    """Return the steps (tile, tap, channel) as lists of ``(entry, operand, pad)`` per lane."""
    plan = conv.gather_plan(window, rows, 1)
    p_out, p_in = window.out_h * window.out_w, window.in_h * window.in_w
    steps = []
    for t in range(-(-p_out // rows)):
        for tap in range(window.taps):
            for c in range(window.in_c):
                lanes = []
                for r in range(rows):
                    p = t * rows + r
                    q = int(plan.source[p, tap]) if p < p_out else p_in
                    lanes.append((0, 0, 1) if q == p_in else
                                 (src + (q // rows) * window.in_c + c, q % rows, 0))
                steps.append((t, tap, c, lanes))
    return steps


def _offer(ctx, arb, lanes):
    """Offer one step's requests, ``(entry, operand, pad)`` per lane, on ``i_step``."""
    for r, (entry, operand, pad) in enumerate(lanes):
        ctx.set(arb.i_step.payload[r].entry, entry)
        ctx.set(arb.i_step.payload[r].base, entry)          # (a step's common channel: 0)
        ctx.set(arb.i_step.payload[r].operand, operand)
        ctx.set(arb.i_step.payload[r].pad, pad)
    ctx.set(arb.i_step.valid, 1)


def _run(config, window, act, src, pad_value):
    dut = _BankedAct(config, act)
    arb = dut.arbiter
    steps = _requests(window, config.rows, src)
    accepted, shown = [], []

    async def bench(ctx):
        ctx.set(arb.pad_value, pad_value & 0xFF)
        cycle = 0
        for _t, _tap, _c, lanes in steps:
            _offer(ctx, arb, lanes)
            while True:
                ready = ctx.get(arb.i_step.ready)
                if ctx.get(arb.o_valid):
                    shown.append([ctx.get(Value.cast(arb.o_operands[r])) for r in range(8)
                                  if r < config.rows])
                await ctx.tick()
                cycle += 1
                if ready:
                    accepted.append(cycle)
                    break
        ctx.set(arb.i_step.valid, 0)
        for _ in range(config.rows + 2 + GATHER_PIPELINE_CYCLES):
            if ctx.get(arb.o_valid):
                shown.append([ctx.get(Value.cast(arb.o_operands[r])) for r in range(config.rows)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return steps, accepted, shown


WINDOWS = {
    "3x3 same": conv.Window(5, 5, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1, 1, 1, -3),
    "3x3 valid, row wraps": conv.Window(5, 5, 1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0),
    "stride 2, padded": conv.Window(7, 6, 1, 4, 3, 1, 3, 3, 2, 2, 1, 1, 1, 1, -128),
    "dilation 2, 10x4 kernel": conv.Window(12, 7, 1, 4, 3, 1, 5, 3, 2, 1, 2, 2, 2, 1, 5),
}


@pytest.mark.parametrize("rows, bank_lanes", [(8, 1), (8, 2), (4, 4)])
@pytest.mark.parametrize("name", list(WINDOWS))
def test_steps_cost_and_gather_what_the_emulator_says(rows, bank_lanes, name):
    window = WINDOWS[name]
    config = AcceleratorConfig(rows=rows, cols=2, act_depth=256, cnn=True,
                               act_bank_lanes=bank_lanes)
    rng = np.random.default_rng(rows + bank_lanes)
    act = rng.integers(-128, 128, size=(config.act_depth, rows)).astype(np.int8)
    act[:, 0] = -128                                 # extremes on lane 0, ties everywhere
    src = 3
    steps, accepted, shown = _run(config, window, act, src, window.pad_value)

    plan = conv.gather_plan(window, rows, bank_lanes)
    expected_cycles = [int(plan.step_cycles[t, tap]) for t, tap, _c, _l in steps]
    # step i's reads: the cycles after its acceptance up to the next one's acceptance
    measured = np.diff(accepted).tolist()
    np.testing.assert_array_equal(measured, expected_cycles[:-1])
    assert max(expected_cycles) > 1 or name != "stride 2, padded"   # conflicts happen

    gathered = conv._gathered(act, src, window, rows)                # [P, taps, in_c]
    p_out = window.out_h * window.out_w
    assert len(shown) == len(steps)
    for (t, tap, c, _lanes), operands in zip(steps, shown):
        valid = min(rows, p_out - t * rows)
        got = np.array(operands[:valid], dtype=np.uint8).view(np.int8)
        np.testing.assert_array_equal(got, gathered[t * rows:t * rows + valid, tap, c])
        np.testing.assert_array_equal(
            np.array(operands[valid:], dtype=np.uint8).view(np.int8),
            np.full(rows - valid, window.pad_value, dtype=np.int8))


def _step_cycles(lanes, bank_lanes):
    """The cost rule of docs/architecture.md: the busiest bank's distinct entries, at least 1."""
    per_bank = {}
    for entry, operand, pad in lanes:
        if not pad:
            per_bank.setdefault(operand // bank_lanes, set()).add(entry)
    return max([1] + [len(entries) for entries in per_bank.values()])


def _random_steps(rng, rows, count, depth):
    """Return ``count`` steps of random requests: many conflicts, pads, all lanes on one bank."""
    steps = []
    for i in range(count):
        style = i % 5
        entries = rng.integers(0, [depth, 3, 2, depth, 1][style], size=rows)
        operands = rng.integers(0, rows, size=rows)
        if style == 2:
            operands[:] = operands[0]                   # every lane on one bank
        pads = rng.random(rows) < [0.2, 0.0, 0.3, 1.0, 0.5][style]
        if style == 4:
            entries[:] = depth - 1                      # the last entry, one read each
        steps.append([(int(e), int(o), int(p)) for e, o, p in zip(entries, operands, pads)])
    return steps


def _run_steps(config, act, steps, pad_value, gaps):
    """Feed ``steps`` (with ``gaps[i]`` idle cycles before step *i*); return what was seen each
    cycle: ``(ready, accepted, valid, operands, bank_en)``."""
    dut = _BankedAct(config, act)
    arb = dut.arbiter
    rows = config.rows
    trace = []

    async def bench(ctx):
        ctx.set(arb.pad_value, pad_value & 0xFF)
        for gap, lanes in zip(gaps, steps):
            ctx.set(arb.i_step.valid, 0)
            for _ in range(gap):
                trace.append((ctx.get(arb.i_step.ready), 0, ctx.get(arb.o_valid),
                              [ctx.get(Value.cast(arb.o_operands[r])) for r in range(rows)],
                              ctx.get(arb.bank_en)))
                await ctx.tick()
            _offer(ctx, arb, lanes)
            while True:
                ready = ctx.get(arb.i_step.ready)
                trace.append((ready, ready, ctx.get(arb.o_valid),
                              [ctx.get(Value.cast(arb.o_operands[r])) for r in range(rows)],
                              ctx.get(arb.bank_en)))
                await ctx.tick()
                if ready:
                    break
        ctx.set(arb.i_step.valid, 0)
        for _ in range(rows + 3):
            trace.append((ctx.get(arb.i_step.ready), 0, ctx.get(arb.o_valid),
                          [ctx.get(Value.cast(arb.o_operands[r])) for r in range(rows)],
                          ctx.get(arb.bank_en)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return trace


@pytest.mark.parametrize("rows, bank_lanes", [(8, 1), (8, 2), (8, 4), (4, 2), (4, 1), (16, 1)])
def test_random_conflicts_cycle_by_cycle(rows, bank_lanes):
    """Random requests (conflicts, repeated entries, pads, a step all on one bank, a step all
    padding), back to back and with idle gaps: each step is accepted exactly its cost after the
    previous one, shown in the cycle after its last read, once, with the ACT's operands or the
    pad value; the banks read only while a step is being read, and at most one read per cost."""
    config = AcceleratorConfig(rows=rows, cols=2, act_depth=64, cnn=True,
                               act_bank_lanes=bank_lanes)
    rng = np.random.default_rng(rows * 10 + bank_lanes)
    act = rng.integers(-128, 128, size=(config.act_depth, rows)).astype(np.int8)
    act[config.act_depth - 1] = [127, -128] * (rows // 2)      # extremes
    steps = _random_steps(rng, rows, 60, config.act_depth)
    gaps = [int(g) if i % 3 == 0 else 0 for i, g in enumerate(rng.integers(0, 3, len(steps)))]
    pad_value = -77
    trace = _run_steps(config, act, steps, pad_value, gaps)

    accepted = [c for c, (_ready, took, *_rest) in enumerate(trace) if took]
    assert len(accepted) == len(steps)
    costs = [_step_cycles(lanes, bank_lanes) for lanes in steps]
    assert max(costs) >= 3 and min(costs) == 1                      # the stimulus discriminates
    shown = [c for c, (_r, _t, valid, *_rest) in enumerate(trace) if valid]
    assert len(shown) == len(steps)
    busy = set()
    for i, (cycle, cost, lanes) in enumerate(zip(accepted, costs, steps)):
        # reads decided in cycle+1 .. cycle+cost and issued a cycle later, shown at
        # cycle+cost+1+GATHER_PIPELINE_CYCLES; the next step waits for the last decision
        assert shown[i] == cycle + cost + 1 + GATHER_PIPELINE_CYCLES, \
            f"step {i} ({lanes}) shown late or early"
        if i + 1 < len(steps):
            gap = gaps[i + 1]
            assert accepted[i + 1] - cycle == (max(cost, gap + 1) if gap else cost)
        busy.update(range(cycle + 2, cycle + cost + 2))
        expected = [pad_value & 0xFF if pad else int(act[entry, operand]) & 0xFF
                    for entry, operand, pad in lanes]
        assert trace[shown[i]][3] == expected, f"step {i}: {lanes}"
    for c, (*_rest, bank_en) in enumerate(trace):
        assert c in busy or bank_en == 0, f"bank read in idle cycle {c}"
