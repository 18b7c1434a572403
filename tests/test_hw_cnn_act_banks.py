"""The banked ACT (``hw/act_banks.py``) against a model: entry-wide writes and reads, per-bank
gather reads at different addresses in one cycle, a gather read winning its bank only."""

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from tessera.hw.act_banks import ActBanks
from tessera.spec import AcceleratorConfig


@pytest.mark.parametrize("rows, bank_lanes", [(4, 1), (8, 2)])
def test_writes_entry_reads_and_gather_reads_agree_with_a_model(rows, bank_lanes):
    config = AcceleratorConfig(rows=rows, cols=2, act_depth=64, cnn=True,
                               act_bank_lanes=bank_lanes)
    dut = ActBanks(config)
    banks, width = rows // bank_lanes, 8 * bank_lanes
    rng = np.random.default_rng(rows)
    model = [int.from_bytes(rng.bytes(rows), "little") for _ in range(64)]   # entries

    async def bench(ctx):
        for addr, value in enumerate(model):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_addr, addr)
            ctx.set(dut.wr_data, value)
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        for trial in range(40):
            entry = int(rng.integers(0, 64))
            gathers = rng.integers(0, 64, size=banks).tolist()
            enables = rng.integers(0, 2, size=banks).tolist()
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.rd_addr, entry)
            for b in range(banks):
                ctx.set(dut.bank_en[b], enables[b])
                ctx.set(Value.cast(dut.bank_addr[b]), gathers[b])
            await ctx.tick()
            for b in range(banks):
                source = gathers[b] if enables[b] else entry
                want = model[source] >> (b * width) & ((1 << width) - 1)
                assert ctx.get(Value.cast(dut.bank_data[b])) == want
            if not any(enables):
                assert ctx.get(dut.rd_data) == model[entry]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
