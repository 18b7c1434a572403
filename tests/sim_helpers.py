"""Shared helpers of the RTL simulation tests: configurations, simulators, cached builds."""

import functools
import os
import time

import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from tessera.sim import runner
from tessera.spec import AcceleratorConfig

#: Configurations the system testbench runs on (one build per configuration and simulator).
CONFIGS = {
    # Small buffers: weights streamed, K split across GEMMs, params streamed; both modes + LUT;
    # a short receive timeout for the truncated-frame test.
    "2x4": AcceleratorConfig(rows=2, cols=4, act_depth=256, weight_depth=64, param_depth=16,
                             max_payload=128, rx_timeout_cycles=64),
    # One mode only and no LUT: the BAD_FIELD cases for a missing mode and a missing LUT.
    "4x4-tflite": AcceleratorConfig(rows=4, cols=4, act_depth=512, weight_depth=256,
                                    param_depth=32, max_payload=256, requant_modes=("tflite",),
                                    lut=False, rx_timeout_cycles=300),
    # The default configuration: what tessera.connect("sim") and `tessera demo` use.
    "8x8": AcceleratorConfig(),
}

#: The ISA version 3 configurations of the CNN system tests and the CNN fuzz run: 4 rows x 2
#: columns, small buffers, mode tflite only, a short receive timeout; ACT banks of one lane and
#: of two.
CNN_CONFIGS = {
    "4x2-cnn": AcceleratorConfig(rows=4, cols=2, act_depth=512, weight_depth=1024,
                                 param_depth=64, max_payload=256, cnn=True,
                                 requant_modes=("tflite",), lut=False, rx_timeout_cycles=64),
}
CNN_CONFIGS["4x2-cnn-banked"] = CNN_CONFIGS["4x2-cnn"].replace(act_bank_lanes=2)


def simulators() -> list:
    """Return the simulators to test: ``$SIM`` if set, else Verilator and, when installed, Icarus.

    Verilator comes first (helpers that need one simulator take ``simulators()[0]``). Icarus,
    several times slower per cycle, runs only the small targets its tests select.
    """
    wanted = os.environ.get("SIM")
    if wanted:
        return [wanted]
    return ["verilator"] + (["icarus"] if "icarus" in runner.available_simulators() else [])


def require(simulator):
    """Skip the test when ``simulator`` is the optional Icarus and is not installed."""
    if simulator == "icarus" and "icarus" not in runner.available_simulators():
        pytest.skip("Icarus Verilog is not installed (apt-get install iverilog); Verilator "
                    "runs the same tests")


@functools.lru_cache(maxsize=None)
def build(config_name, simulator, design="accelerator"):
    """Build (or fetch from the cache) the RTL of ``CONFIGS[config_name]`` (or of
    ``CNN_CONFIGS[config_name]``): once per session."""
    config = CONFIGS.get(config_name) or CNN_CONFIGS[config_name]
    return runner.build(config, simulator, design=design)


def run_cycles(dut, script, output):
    """Simulate ``dut`` one clock per entry of ``script``; return ``output`` after each edge.

    Each entry maps port names of ``dut`` to the values they take before that edge (a port
    keeps its value until an entry sets it again).
    """
    seen = []

    async def bench(ctx):
        for inputs in script:
            for name, value in inputs.items():
                ctx.set(Value.cast(getattr(dut, name)), value)
            await ctx.tick()
            seen.append(ctx.get(output))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def group_members(pgid) -> list:
    """Return the live (non-zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def gone(pgid, wait_s=5.0) -> bool:
    """Whether no process of the simulator's group is left (after a short grace period)."""
    deadline = time.monotonic() + wait_s
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
