"""cocotb testbench for tests/test_hw_mac_ice40.py: replays a per-cycle schedule, records outputs.

The schedule (JSON at ``$MAC_ICE40_SCHEDULE``) is ``{"inputs": [{port: value, ...}, ...],
"outputs": [port, ...]}``: one dict of input values per cycle (signed values of the packed
``a``/``w`` vectors are given as their unsigned bit patterns). After each rising edge the named
outputs are sampled (their raw unsigned bit patterns) and written, as a list per cycle, to
``$MAC_ICE40_TRACE``: entry *i* shows the registers after the edge that sampled cycle *i*'s
inputs. The design is held in reset for two cycles first.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer


@cocotb.test()
async def replay_schedule(dut):
    schedule = json.loads(open(os.environ["MAC_ICE40_SCHEDULE"]).read())
    Clock(dut.clk, 10, unit="ns").start()
    ports = sorted({name for cycle in schedule["inputs"] for name in cycle})
    dut.rst.value = 1
    for name in ports:
        getattr(dut, name).value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    trace = []
    for cycle in schedule["inputs"]:
        for name, value in cycle.items():
            getattr(dut, name).value = value
        await RisingEdge(dut.clk)
        await ReadOnly()
        trace.append([getattr(dut, name).value.to_unsigned() for name in schedule["outputs"]])
        await Timer(1, unit="ns")   # out of ReadOnly before the next cycle's inputs
    with open(os.environ["MAC_ICE40_TRACE"], "w") as f:
        json.dump(trace, f)
