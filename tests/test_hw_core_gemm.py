"""Core (buffers, GEMM engine, array, drain, post-processor) against tessera.numerics.

The testbench loads ACT/WGT/PARAM/LUT through the host write port, streams GEMM commands
back to back, reads the drained tiles through the host read port and compares them bit for bit
with ``numerics.postprocess(wrap32(integer_matmul + bias))``. It also checks, cycle for cycle, the
timing model of docs/architecture.md: when each command is accepted, when ``idle`` rises, and the
``ev_compute`` / ``ev_stall`` / ``ev_macs`` totals.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.sim import Simulator

from tessera import numerics
from tessera.hw.core import GEMM_COMMAND, Core, write_width
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.timing import DRAIN_OVERHEAD_CYCLES, GEMM_OVERHEAD_CYCLES


@dataclass(frozen=True)
class Command:
    a_addr: int
    w_addr: int
    k: int
    out_addr: int = 0
    param_addr: int = 0
    m_rows: int = 1
    n_cols: int = 1
    clear: bool = True
    drain: bool = True
    mode: int = 0
    lut: bool = False
    zero_point: int = 0
    lo: int = -128
    hi: int = 127


def model_timeline(commands, requant_cycles=1):
    """Return (accept cycles, idle cycle, stall cycles) of back-to-back commands from cycle 0.

    The model of docs/architecture.md: a command is accepted when the engine is free (at the
    earliest in the hand-off cycle of the previous one), its hand-off is nominally ``k +
    GEMM_OVERHEAD_CYCLES`` cycles after its acceptance and waits for the drain to be free; a drain
    occupies ``m_rows*n_cols*requant_cycles + DRAIN_OVERHEAD_CYCLES`` cycles from its hand-off
    cycle.
    """
    accepts, stall, free, drain_free, handoff = [], 0, 0, 0, None
    for cmd in commands:
        accept = free
        accepts.append(accept)
        handoff = accept + cmd.k + GEMM_OVERHEAD_CYCLES
        if cmd.drain:
            stall += max(0, drain_free - handoff)
            handoff = max(handoff, drain_free)
            drain_free = (handoff + cmd.m_rows * cmd.n_cols * requant_cycles
                          + DRAIN_OVERHEAD_CYCLES)
        free = handoff
    return accepts, max(handoff, drain_free), stall


class CoreBench:
    """Drives a Core through its ports and records every cycle's counter events."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut
        self.cycle = 0
        self.compute = self.stall = self.macs = self.write_blocked = 0

    async def tick(self):
        ctx, dut = self.ctx, self.dut
        self.compute += ctx.get(dut.ev_compute)
        self.stall += ctx.get(dut.ev_stall)
        self.macs += ctx.get(dut.ev_macs)
        self.write_blocked += not ctx.get(dut.wr_ready)
        await ctx.tick()
        self.cycle += 1

    async def write(self, buffer, addr, entries):
        ctx, dut = self.ctx, self.dut
        for i, entry in enumerate(entries):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_buffer, buffer)
            ctx.set(dut.wr_addr, addr + i)
            ctx.set(dut.wr_data, entry)
            while not ctx.get(dut.wr_ready):
                await self.tick()
            await self.tick()
        ctx.set(dut.wr_en, 0)

    async def run(self, commands):
        """Stream ``commands`` back to back; return their accept cycles and the idle cycle."""
        ctx, dut = self.ctx, self.dut
        start, accepts = self.cycle, []
        for cmd in commands:
            ctx.set(dut.i_cmd.payload, GEMM_COMMAND.const(vars(cmd)))
            ctx.set(dut.i_cmd.valid, 1)
            while not ctx.get(dut.i_cmd.ready):
                await self.tick()
            accepts.append(self.cycle - start)
            await self.tick()
        ctx.set(dut.i_cmd.valid, 0)
        while not ctx.get(dut.idle):
            await self.tick()
        idle_at = self.cycle - start
        await self.tick()   # count the events of the first idle cycle too (a final hand-off)
        return accepts, idle_at

    async def read(self, addr, count):
        ctx, dut = self.ctx, self.dut
        out = []
        for i in range(count):
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.rd_addr, addr + i)
            await self.tick()
            out.append(ctx.get(dut.rd_data))
        ctx.set(dut.rd_en, 0)
        return out


def entries_from(matrix):
    """Pack the rows of an int8 matrix as entries (byte i = column i)."""
    return [int.from_bytes(row.astype(np.int8).tobytes(), "little") for row in matrix]


def entry_bytes(value, width):
    return np.frombuffer(value.to_bytes(width, "little"), dtype=np.int8)


class Scenario:
    """Random buffers for one config, commands, and the reference result of each drain."""

    def __init__(self, config, rng, *, k_total):
        self.config, self.rng = config, rng
        self.act = rng.integers(-128, 128, size=(k_total, config.rows), dtype=np.int8)
        self.wgt = rng.integers(-128, 128, size=(k_total, config.cols), dtype=np.int8)
        self.bias = rng.integers(-5000, 5000, size=config.param_depth, dtype=np.int32)
        self.lut = rng.integers(-128, 128, size=256, dtype=np.int8)
        mode = "tflite" if "tflite" in config.requant_modes else "onnx"
        self.mode = mode
        y_scale = np.float32(rng.uniform(150, 400))
        w_scale = rng.uniform(0.5, 2.0, size=config.param_depth).astype(np.float32)
        self.multiplier, self.shift = numerics.requant_multipliers(
            np.float32(1.0), w_scale, y_scale, mode)
        self.commands, self.expected = [], {}
        self.acc = np.zeros((config.rows, config.cols), dtype=np.int64)

    def gemm(self, a_addr, w_addr, k, *, out_addr=0, param_addr=0, m_rows=None, n_cols=None,
             clear=True, drain=True, lut=False, zero_point=0, lo=-128, hi=127):
        config = self.config
        m_rows = config.rows if m_rows is None else m_rows
        n_cols = config.cols if n_cols is None else n_cols
        product = numerics.integer_matmul(self.act[a_addr:a_addr + k].T,
                                          self.wgt[w_addr:w_addr + k])
        self.acc = product if clear else self.acc + product
        self.commands.append(Command(
            a_addr=a_addr, w_addr=w_addr, k=k, out_addr=out_addr, param_addr=param_addr,
            m_rows=m_rows, n_cols=n_cols, clear=clear, drain=drain,
            mode=int(isa.Mode.parse(self.mode)), lut=lut, zero_point=zero_point, lo=lo, hi=hi))
        if drain:
            cols = slice(param_addr, param_addr + n_cols)
            acc = numerics.wrap_int32(self.acc[:, :n_cols] + self.bias[cols])
            y = numerics.postprocess(acc, self.multiplier[cols], self.shift[cols],
                                     mode=self.mode, zero_point=zero_point, lo=lo, hi=hi,
                                     lut=self.lut if lut else None)
            y[m_rows:, :] = 0
            for c in range(n_cols):
                self.expected[out_addr + c] = y[:, c]

    async def load(self, bench):
        config = self.config
        await bench.write(isa.Buffer.ACT, 0, entries_from(self.act))
        await bench.write(isa.Buffer.WGT, 0, entries_from(self.wgt))
        params = [isa.PARAM_LAYOUT.pack(bias=int(b), multiplier=int(m), shift=int(s))
                  for b, m, s in zip(self.bias, self.multiplier, self.shift)]
        await bench.write(isa.Buffer.PARAM, 0, params)
        if config.lut:
            await bench.write(isa.Buffer.LUT, 0, [int(v) & 0xFF for v in self.lut])


def run_core(config, build, seed):
    rng = np.random.default_rng(seed)
    dut = Core(config)
    assert len(dut.wr_data) == write_width(config)
    scenario = Scenario(config, rng, k_total=48)
    build(scenario)
    results = {}

    async def testbench(ctx):
        bench = CoreBench(ctx, dut)
        await scenario.load(bench)
        assert ctx.get(dut.idle)
        bench.compute = bench.stall = bench.macs = bench.write_blocked = 0
        accepts, idle_at = await bench.run(scenario.commands)
        results.update(accepts=accepts, idle_at=idle_at, compute=bench.compute,
                       stall=bench.stall, macs=bench.macs, write_blocked=bench.write_blocked)
        addrs = sorted(scenario.expected)
        got = await bench.read(addrs[0], addrs[-1] - addrs[0] + 1)
        results["act"] = {addrs[0] + i: v for i, v in enumerate(got)}

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()

    for addr, want in scenario.expected.items():
        np.testing.assert_array_equal(entry_bytes(results["act"][addr], config.rows), want,
                                      err_msg=f"ACT[{addr}]")
    commands = scenario.commands
    accepts, idle_at, stall = model_timeline(commands, config.requant_cycles)
    assert results["accepts"] == accepts
    assert results["idle_at"] == idle_at
    assert results["stall"] == stall
    assert results["compute"] == sum(c.k + GEMM_OVERHEAD_CYCLES for c in commands)
    assert results["macs"] == sum(c.k * c.m_rows * c.n_cols for c in commands)
    assert results["write_blocked"] == sum(c.n_cols for c in commands if c.drain)
    return results


def _small(rows, cols, **kw):
    return AcceleratorConfig(rows=rows, cols=cols, act_depth=128, weight_depth=64,
                             param_depth=16, **kw)


CONFIGS = {
    "2x4": _small(2, 4),
    "4x4-onnx": _small(4, 4, requant_modes=("onnx",), lut=False),
    "3x5-tflite": _small(3, 5, requant_modes=("tflite",)),
    "2x4-iterative3": _small(2, 4, requant_modes=("onnx",), requant_cycles=3),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_full_tiles_back_to_back(name):
    # Long k (no stall), then short k so that the drains of full tiles make the engine wait.
    config = CONFIGS[name]

    def build(s):
        s.gemm(0, 0, 24, out_addr=64, param_addr=0)
        s.gemm(8, 3, 20, out_addr=72, param_addr=5, zero_point=-3, lo=-100, hi=90)
        s.gemm(40, 40, 2, out_addr=80, param_addr=1, lut=config.lut)
        s.gemm(1, 2, 1, out_addr=88, param_addr=2)

    results = run_core(config, build, seed=1)
    assert results["stall"] > 0


@pytest.mark.parametrize("name", ["2x4", "3x5-tflite", "2x4-iterative3"])
def test_k_split_and_partial_tiles(name):
    # K split across GEMMs (clear only on the first, drain only on the last), partial tiles, and
    # a tile that keeps accumulating after being drained.
    config = CONFIGS[name]

    def build(s):
        s.gemm(0, 0, 10, clear=True, drain=False)
        s.gemm(10, 10, 7, clear=False, drain=False)
        s.gemm(17, 17, 9, clear=False, out_addr=64, param_addr=3)
        s.gemm(5, 30, 6, out_addr=72, m_rows=1, n_cols=config.cols - 1, param_addr=4)
        s.gemm(26, 1, 3, clear=False, out_addr=80, m_rows=config.rows - 1, n_cols=2)
        s.gemm(2, 2, 1, out_addr=88, m_rows=1, n_cols=1, param_addr=15)
        # Last, a GEMM without drain that outlasts the drains: idle rises in its hand-off cycle.
        s.gemm(0, 0, 30, drain=False)

    results = run_core(config, build, seed=2)
    assert results["idle_at"] == results["accepts"][-1] + 30 + GEMM_OVERHEAD_CYCLES


def test_utilisation_8x8_back_to_back():
    # The 256x256x256 case is 1024 GEMMs of k=256 on 8x8; three of them show the steady state:
    # drains hide under the next GEMM, no stall, utilisation k / (k + GEMM_OVERHEAD_CYCLES).
    config = AcceleratorConfig(rows=8, cols=8, act_depth=512, weight_depth=256, param_depth=16,
                               requant_modes=("onnx",), lut=False)
    rng = np.random.default_rng(3)
    dut = Core(config)
    scenario = Scenario(config, rng, k_total=256)
    for i in range(3):
        scenario.gemm(0, 0, 256, out_addr=256 + 8 * i, param_addr=i)
    results = {}

    async def testbench(ctx):
        bench = CoreBench(ctx, dut)
        await scenario.load(bench)
        bench.compute = bench.stall = bench.macs = bench.write_blocked = 0
        results["accepts"], results["idle_at"] = await bench.run(scenario.commands)
        results.update(compute=bench.compute, stall=bench.stall, macs=bench.macs)
        results["act"] = await bench.read(256, 24)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for i, value in enumerate(results["act"]):
        np.testing.assert_array_equal(entry_bytes(value, 8), scenario.expected[256 + i])
    accepts, idle_at, stall = model_timeline(scenario.commands)
    assert (results["accepts"], results["idle_at"]) == (accepts, idle_at)
    assert accepts == [0, 256 + GEMM_OVERHEAD_CYCLES, 2 * (256 + GEMM_OVERHEAD_CYCLES)]
    assert results["stall"] == stall == 0
    assert results["compute"] == 3 * (256 + GEMM_OVERHEAD_CYCLES)
    utilisation = results["macs"] / (config.rows * config.cols * results["compute"])
    assert utilisation == 256 / (256 + GEMM_OVERHEAD_CYCLES)
    assert utilisation >= 0.90


def test_host_writes_wait_for_the_drain_write_back():
    # The host writes ACT every cycle while tiles drain: the drain has priority on the ACT write
    # port, so some host writes must wait for wr_ready, and every entry of both ends up written.
    config = CONFIGS["2x4"]
    rng = np.random.default_rng(4)
    dut = Core(config)
    scenario = Scenario(config, rng, k_total=48)
    scenario.gemm(0, 0, 3, out_addr=64)
    scenario.gemm(3, 3, 2, out_addr=72, param_addr=4)
    host = rng.integers(0, 1 << (8 * config.rows), size=40).tolist()
    state = {"loaded": False, "waited": 0}

    async def commands(ctx):
        bench = CoreBench(ctx, dut)
        await scenario.load(bench)
        state["loaded"] = True
        await bench.run(scenario.commands)
        while state["loaded"] is not None:      # the writer finishes
            await ctx.tick()
        state["act"] = await bench.read(64, 4) + await bench.read(72, 4)
        state["host"] = await bench.read(90, len(host))

    async def writer(ctx):
        while not state["loaded"]:
            await ctx.tick()
        for i, value in enumerate(host):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_buffer, isa.Buffer.ACT)
            ctx.set(dut.wr_addr, 90 + i)
            ctx.set(dut.wr_data, value)
            while not ctx.get(dut.wr_ready):
                state["waited"] += 1
                await ctx.tick()
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        state["loaded"] = None

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(commands)
    sim.add_testbench(writer)
    sim.run()
    assert state["waited"] == 2 * config.cols
    assert state["host"] == host
    for addr, value in zip([64, 65, 66, 67, 72, 73, 74, 75], state["act"]):
        np.testing.assert_array_equal(entry_bytes(value, config.rows), scenario.expected[addr])
