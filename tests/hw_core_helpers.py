"""Shared bench of the Core tests: port driver, random scenario with its reference, cycle model.

The scenario draws ACT/WGT operands of the configuration's widths (``input_bits``,
``weight_bits``), packs them with :func:`tessera.spec.config.pack_operands` exactly as the host
does, and computes each drained tile with ``tessera.numerics`` (``wrap(acc + bias)`` to the
accumulator width, then ``postprocess`` at ``output_bits``).
"""

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from tessera import numerics
from tessera.hw.core import Core, gemm_command, write_width
from tessera.spec import isa
from tessera.spec.config import operand_range, pack_operands, unpack_operands
from tessera.spec.timing import DRAIN_OVERHEAD_CYCLES, GEMM_OVERHEAD_CYCLES

__all__ = ["Command", "CoreBench", "Scenario", "entries_from",
           "entry_values", "model_timeline", "run_core"]


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
        # The drain's timer covers its writes: an idle core never writes a result (that
        # would block the host's write port).
        assert not (ctx.get(dut.idle) and not ctx.get(dut.write.ready)), \
            f"cycle {self.cycle}: the core is idle but the drain is writing"
        self.compute += ctx.get(dut.events.compute)
        self.stall += ctx.get(dut.events.stall)
        self.macs += ctx.get(dut.events.macs)
        self.write_blocked += not ctx.get(dut.write.ready)
        await ctx.tick()
        self.cycle += 1

    async def write(self, buffer, addr, entries):
        ctx, dut = self.ctx, self.dut
        for i, entry in enumerate(entries):
            ctx.set(dut.write.en, 1)
            ctx.set(dut.write.buffer, buffer)
            ctx.set(dut.write.addr, addr + i)
            ctx.set(dut.write.data, entry)
            while not ctx.get(dut.write.ready):
                await self.tick()
            await self.tick()
        ctx.set(dut.write.en, 0)

    async def run(self, commands):
        """Stream ``commands`` back to back; return their accept cycles and the idle cycle."""
        ctx, dut = self.ctx, self.dut
        start, accepts = self.cycle, []
        for cmd in commands:
            ctx.set(dut.i_cmd.payload, gemm_command(dut.config).const(vars(cmd)))
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
            ctx.set(dut.read.en, 1)
            ctx.set(dut.read.addr, addr + i)
            await self.tick()
            out.append(ctx.get(dut.read.data))
        ctx.set(dut.read.en, 0)
        return out


def entries_from(matrix, bits=8):
    """Pack the rows of a matrix as entries, the host's way (:func:`pack_operands`)."""
    return [int.from_bytes(pack_operands(row, bits), "little") for row in matrix]


def entry_values(value, count, bits=8):
    """Unpack the ``count`` operands of an entry read from the host read port."""
    return np.array(unpack_operands(value.to_bytes((count * bits + 7) // 8, "little"),
                                    count, bits), dtype=np.int64)


def _draw(rng, shape, bits):
    lo, hi = operand_range(bits)
    values = rng.integers(lo, hi + 1, size=shape, dtype=np.int8 if bits <= 8 else np.int16)
    return values


class Scenario:
    """Random buffers for one config, commands, and the reference result of each drain.

    Operands are drawn over the full ranges of ``config.input_bits``/``weight_bits``; every
    ``extremes``-th step of ACT row 0 and WGT column 0 is the most negative operand, so the
    largest product (``-2^(a-1) * -2^(w-1)``) is accumulated over long runs of K. ``dyadic``
    picks power-of-two scales, so that the onnx multiplier is exact and results land on ties.
    """

    def __init__(self, config, rng, *, k_total, extremes=0, dyadic=False):
        self.config, self.rng = config, rng
        self.act = _draw(rng, (k_total, config.rows), config.input_bits)
        self.wgt = _draw(rng, (k_total, config.cols), config.weight_bits)
        if extremes:
            self.act[::extremes, 0] = operand_range(config.input_bits)[0]
            self.wgt[::extremes, 0] = operand_range(config.weight_bits)[0]
        self.bias = rng.integers(-5000, 5000, size=config.param_depth, dtype=np.int32)
        self.lut = rng.integers(-128, 128, size=256, dtype=np.int8)
        mode = "tflite" if "tflite" in config.requant_modes else "onnx"
        self.mode = mode
        # Scale the accumulators of ~k_total/2 steps to ~0.6 of the output range.
        in_max, w_max = -operand_range(config.input_bits)[0], -operand_range(config.weight_bits)[0]
        spread = np.sqrt(k_total / 2) * in_max * w_max / 3
        out_max = -operand_range(config.output_bits)[0]
        if dyadic:
            y_scale = np.float32(2.0 ** np.round(np.log2(spread / out_max)))
            w_scale = (2.0 ** rng.integers(-2, 2, size=config.param_depth)).astype(np.float32)
        else:
            y_scale = np.float32(rng.uniform(0.4, 1.1) * spread / out_max)
            w_scale = rng.uniform(0.5, 2.0, size=config.param_depth).astype(np.float32)
        self.multiplier, self.shift = numerics.requant_multipliers(
            np.float32(1.0), w_scale, y_scale, mode)
        self.commands, self.expected = [], {}
        self.acc = np.zeros((config.rows, config.cols), dtype=np.int64)
        self.max_abs_acc = 0     # largest |accumulator| any GEMM reached
        self.ties = 0            # drained elements whose exact acc * M is a half-integer

    def _scale(self, cols):
        # The exact requant multiplier M of PARAM entries `cols` (float64).
        if self.mode == "onnx":
            return self.multiplier[cols].view(np.float32).astype(np.float64)
        return self.multiplier[cols] * 2.0 ** (self.shift[cols].astype(np.int64) - 31)

    def gemm(self, a_addr, w_addr, k, *, out_addr=0, param_addr=0, m_rows=None, n_cols=None,
             clear=True, drain=True, lut=False, zero_point=0, lo=None, hi=None, tie=False):
        """Add a command and its reference result.

        ``tie`` (with ``dyadic`` scales): set the biases of its PARAM entries so that row 0's
        ``(acc + bias) * M`` is an exact half-integer near zero in every column.
        """
        config = self.config
        out_lo, out_hi = operand_range(config.output_bits)
        lo = out_lo if lo is None else lo
        hi = out_hi if hi is None else hi
        m_rows = config.rows if m_rows is None else m_rows
        n_cols = config.cols if n_cols is None else n_cols
        product = numerics.integer_matmul(self.act[a_addr:a_addr + k].T,
                                          self.wgt[w_addr:w_addr + k])
        self.acc = product if clear else self.acc + product
        self.max_abs_acc = max(self.max_abs_acc, int(np.abs(self.acc).max()))
        self.commands.append(Command(
            a_addr=a_addr, w_addr=w_addr, k=k, out_addr=out_addr, param_addr=param_addr,
            m_rows=m_rows, n_cols=n_cols, clear=clear, drain=drain,
            mode=int(isa.Mode.parse(self.mode)), lut=lut, zero_point=zero_point, lo=lo, hi=hi))
        if drain:
            cols = slice(param_addr, param_addr + n_cols)
            if tie:
                half = (self.rng.integers(-3, 3, n_cols) + 0.5) / self._scale(cols)
                self.bias[cols] = half.astype(np.int64) - self.acc[0, :n_cols]
            acc = numerics.wrap_signed(self.acc[:, :n_cols] + self.bias[cols], config.acc_bits)
            scaled = acc[:m_rows] * self._scale(cols)       # exact for power-of-two scales
            self.ties += int(np.sum(scaled - np.floor(scaled) == 0.5))
            y = numerics.postprocess(acc, self.multiplier[cols], self.shift[cols],
                                     mode=self.mode, zero_point=zero_point, lo=lo, hi=hi,
                                     lut=self.lut if lut else None, bits=config.output_bits,
                                     acc_bits=config.acc_bits)
            y[m_rows:, :] = 0
            for c in range(n_cols):
                self.expected[out_addr + c] = y[:, c]

    async def load(self, bench):
        config = self.config
        await bench.write(isa.Buffer.ACT, 0, entries_from(self.act, config.input_bits))
        await bench.write(isa.Buffer.WGT, 0, entries_from(self.wgt, config.weight_bits))
        params = [isa.PARAM_LAYOUT.pack(bias=int(b), multiplier=int(m), shift=int(s))
                  for b, m, s in zip(self.bias, self.multiplier, self.shift)]
        await bench.write(isa.Buffer.PARAM, 0, params)
        if config.lut:
            await bench.write(isa.Buffer.LUT, 0, [int(v) & 0xFF for v in self.lut])


def run_core(config, build, seed, *, k_total=48, **scenario_options):
    """Run the commands ``build(scenario)`` adds on a Core; check results and the cycle model."""
    rng = np.random.default_rng(seed)
    dut = Core(config)
    assert len(dut.write.data) == write_width(config)
    scenario = Scenario(config, rng, k_total=k_total, **scenario_options)
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
        np.testing.assert_array_equal(
            entry_values(results["act"][addr], config.rows, config.output_bits), want,
            err_msg=f"ACT[{addr}]")
    commands = scenario.commands
    accepts, idle_at, stall = model_timeline(commands, config.requant_cycles)
    assert results["accepts"] == accepts
    assert results["idle_at"] == idle_at
    assert results["stall"] == stall
    assert results["compute"] == sum(c.k + GEMM_OVERHEAD_CYCLES for c in commands)
    assert results["macs"] == sum(c.k * c.m_rows * c.n_cols for c in commands)
    assert results["write_blocked"] == sum(c.n_cols for c in commands if c.drain)
    results["scenario"] = scenario
    return results
