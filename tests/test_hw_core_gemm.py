"""Core (buffers, GEMM engine, array, drain, post-processor) against tessera.numerics.

The testbench loads ACT/WGT/PARAM/LUT through the host write port, streams GEMM commands
back to back, reads the drained tiles through the host read port and compares them bit for bit
with ``numerics.postprocess(wrap32(integer_matmul + bias))``. It also checks, cycle for cycle, the
timing model of docs/architecture.md: when each command is accepted, when ``idle`` rises, and the
``events`` totals (``compute``, ``stall``, ``macs``).
"""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hw_core_helpers import CoreBench, Scenario, entry_values, model_timeline, run_core

from tessera.hw.core import Core
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.timing import GEMM_OVERHEAD_CYCLES


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


@pytest.mark.parametrize("name", ["2x4", "3x5-tflite", "2x4-iterative3"])
def test_param_read_ahead_across_columns_and_drains(name):
    # The drain reads PARAM one column ahead and takes a command's first entry before its
    # hand-off: one-row tiles change column (and entry) every sent element, and k = 1 GEMMs make
    # every hand-off wait for the previous drain (back to back), with first entries at both
    # ends of PARAM, overlapping and adjacent to the previous drain's entries, and a one-column
    # tile between them.
    config = CONFIGS[name]
    cols = config.cols

    def build(s):
        s.gemm(0, 0, 1, out_addr=64, m_rows=1, param_addr=0)
        s.gemm(1, 1, 1, out_addr=72, m_rows=1, param_addr=16 - cols)
        s.gemm(2, 2, 1, out_addr=80, m_rows=1, n_cols=1, param_addr=15)
        s.gemm(3, 3, 1, out_addr=88, m_rows=1, param_addr=1)
        s.gemm(4, 4, 1, out_addr=96, m_rows=1, param_addr=cols + 1)
        s.gemm(5, 5, 1, out_addr=104, m_rows=2, param_addr=2)
        s.gemm(6, 6, 1, out_addr=112, m_rows=1, n_cols=2, param_addr=3)

    results = run_core(config, build, seed=5)
    assert results["stall"] > 0


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
        np.testing.assert_array_equal(entry_values(value, 8), scenario.expected[256 + i])
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
    # port, so some host writes must wait for write.ready, and every entry of both ends up written.
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
            ctx.set(dut.write.en, 1)
            ctx.set(dut.write.buffer, isa.Buffer.ACT)
            ctx.set(dut.write.addr, 90 + i)
            ctx.set(dut.write.data, value)
            while not ctx.get(dut.write.ready):
                state["waited"] += 1
                await ctx.tick()
            await ctx.tick()
        ctx.set(dut.write.en, 0)
        state["loaded"] = None

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(commands)
    sim.add_testbench(writer)
    sim.run()
    assert state["waited"] == 2 * config.cols
    assert state["host"] == host
    for addr, value in zip([64, 65, 66, 67, 72, 73, 74, 75], state["act"]):
        np.testing.assert_array_equal(entry_values(value, config.rows),
                                      scenario.expected[addr])
