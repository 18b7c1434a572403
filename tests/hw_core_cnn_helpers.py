"""Bench of the Core tests of ISA version 3: a program run on Core(cnn) and on the emulator.

:func:`run_program` loads random ACT, WGT and PARAM contents into a ``cnn`` Core through its
host write port and into a :class:`tessera.runtime.machine.Machine`, then plays a list of
instructions (``WINDOW``, ``POST``, ``CONV``, ``ADD``, ``GEMM``, ``SYNC``) on the Core as the
program sequencer does under the cycle model (each instruction fetched in 16 cycles, a
``CONV``, ``ADD`` or ``GEMM`` issued and held until the Core takes it, ``SYNC`` waiting for
``idle``) and through ``Machine.execute`` with a :class:`~tessera.runtime.cycles.CycleModel`.
It returns both sides: the ACT contents, each issue's transfer cycle against the model's
(``Machine.trace``), the ``compute``, ``stall`` and ``macs`` event totals against the model's
counters, and the cycle the Core went idle at the end against the model's.
"""

import numpy as np
from amaranth.sim import Simulator
from hw_cnn_helpers import window_sizes_of
from hw_core_helpers import CoreBench, entries_from, entry_values

from tessera import numerics
from tessera.hw.cnn_issue import add_issue, conv_issue
from tessera.hw.core import Core, gemm_command
from tessera.runtime.cycles import CycleModel
from tessera.runtime.machine import PARAM_DTYPE, Machine
from tessera.spec import isa
from tessera.spec.protocol import Status
from tessera.spec.timing import IDLE_LAG_CYCLES

__all__ = ["check_program", "random_state", "run_program"]

FETCH_CYCLES = isa.INSN_BYTES
#: A program of these benches ends well within this many cycles; more is a hang.
MAX_CYCLES = 100_000


def random_state(config, rng, *, add_params=()):
    """Return random ``(act, wgt, param)`` contents; ``add_params``: PARAM bases of ADDs."""
    act = rng.integers(-128, 128, size=(config.act_depth, config.rows)).astype(np.int8)
    act[rng.random(act.shape) < 0.05] = -128          # extremes
    act[rng.random(act.shape) < 0.05] = 127
    wgt = rng.integers(-128, 128, size=(config.weight_depth, config.cols)).astype(np.int8)
    param = np.zeros(config.param_depth, dtype=PARAM_DTYPE)
    w_scale = rng.uniform(0.5, 2.0, size=config.param_depth).astype(np.float32)
    multiplier, shift = numerics.requant_multipliers(
        np.float32(1.0), w_scale, np.float32(rng.uniform(150, 300)), "tflite")
    param["bias"] = rng.integers(-2000, 2000, size=config.param_depth)
    param["multiplier"], param["shift"] = multiplier, shift
    for base in add_params:
        # TFLite-like ADD parameters: input multipliers below one, the output's small
        param["bias"][base:base + 3] = rng.integers(-128, 128, size=3)
        param["multiplier"][base:base + 3] = rng.integers(1 << 30, 1 << 31, size=3)
        param["shift"][base:base + 3] = [rng.integers(-12, 1), rng.integers(-12, 1),
                                          rng.integers(-24, -18)]
    return act, wgt, param


def _emulate(config, program, act, wgt, param):
    machine = Machine(config)
    machine.act[:], machine.wgt[:], machine.param[:] = act, wgt, param
    machine.trace = []
    model = CycleModel(counter_bits=config.counter_bits,
                       requant_cycles=config.requant_cycles, drain_lanes=config.drain_lanes)
    result = machine.execute(b"".join(isa.encode(insn) for insn in program), model)
    assert result.status == Status.OK, result
    issues = [end for _, opcode, _, end, _ in machine.trace]
    counters = model.counters()
    return {
        "act": machine.act.copy(), "issues": issues,
        "compute": counters["compute_cycles"], "stall": counters["stall_cycles"],
        "macs": counters["macs"],
        "idle_at": max(model.engine_idle_at, model.drain_free_at),
    }


def run_program(config, program, act, wgt, param, *, spram=False):
    """Run ``program`` on Core(config) and on the emulator; return ``(rtl, emulator)`` dicts.

    ``spram``: ACT and WGT simulated as single-port SPRAM (reads after a write are garbage).
    """
    want = _emulate(config, program, act, wgt, param)
    dut = Core(config, spram=spram)
    got = {"issues": []}

    async def testbench(ctx):
        bench = CoreBench(ctx, dut)
        await bench.write(isa.Buffer.ACT, 0, entries_from(act))
        await bench.write(isa.Buffer.WGT, 0, entries_from(wgt))
        await bench.write(isa.Buffer.PARAM, 0, [
            isa.PARAM_LAYOUT.pack(bias=int(p["bias"]), multiplier=int(p["multiplier"]),
                                  shift=int(p["shift"])) for p in param])
        while not ctx.get(dut.idle):
            await bench.tick()
        bench.compute = bench.stall = bench.macs = 0
        origin = bench.cycle
        idle_since = 0

        async def tick():
            nonlocal idle_since
            was_idle = ctx.get(dut.idle)
            await bench.tick()
            assert now() < MAX_CYCLES, f"the Core hangs (cycle {now()}, program {program})"
            if ctx.get(dut.idle) and not was_idle:
                idle_since = bench.cycle - origin

        def now():
            return bench.cycle - origin

        async def issue(port, payload):
            ctx.set(port.payload, payload)
            ctx.set(port.valid, 1)
            while not ctx.get(port.ready):
                await tick()
            got["issues"].append(now())
            at = now()
            await tick()
            ctx.set(port.valid, 0)
            return at

        post = isa.Post(mode=isa.Mode.ONNX)
        window = None
        clock = 0                              # the model's executor time
        for insn in program:
            clock += FETCH_CYCLES
            while now() < clock:
                await tick()
            if isinstance(insn, isa.Window):
                window = insn
            elif isinstance(insn, isa.Post):
                post = insn
            elif isinstance(insn, isa.Conv):
                fields = insn.fields()
                clock = await issue(dut.i_conv, conv_issue(config).const({
                    "conv": {name: int(fields[name])
                             for name in ("kind", "src", "dst", "w_addr", "param_addr")},
                    "window": window.fields(), "sizes": window_sizes_of(window),
                    "post": post.fields()}))
            elif isinstance(insn, isa.Add):
                clock = await issue(dut.i_add, add_issue(config).const(
                    {**insn.fields(), "post": post.fields()}))
            elif isinstance(insn, isa.Gemm):
                clock = await issue(dut.i_cmd, gemm_command(config).const(
                    {**{k: int(v) for k, v in insn.fields().items()}, **post.fields()}))
            elif isinstance(insn, isa.Sync):
                while not ctx.get(dut.idle):
                    await tick()
                clock = max(clock, idle_since + IDLE_LAG_CYCLES)
            else:
                raise AssertionError(f"the bench does not play {insn}")
        while not ctx.get(dut.idle):
            await tick()
        got["idle_at"] = idle_since
        got.update(compute=bench.compute, stall=bench.stall, macs=bench.macs)
        ctx.set(dut.read.en, 1)
        entries = []
        for addr in range(config.act_depth):
            ctx.set(dut.read.addr, addr)
            await bench.tick()
            entries.append(entry_values(ctx.get(dut.read.data), config.rows))
        got["act"] = np.array(entries, dtype=np.int8)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got, want


def check_program(config, program, act, wgt, param, *, spram=False):
    """Run ``program`` both ways and assert every ACT byte and every event count equal."""
    got, want = run_program(config, program, act, wgt, param, spram=spram)
    for addr in range(config.act_depth):
        np.testing.assert_array_equal(got["act"][addr], want["act"][addr],
                                      err_msg=f"ACT[{addr}]")
    assert got["issues"] == want["issues"], (got["issues"], want["issues"])
    for name in ("compute", "stall", "macs", "idle_at"):
        assert got[name] == want[name], (name, got[name], want[name])
    return got, want
