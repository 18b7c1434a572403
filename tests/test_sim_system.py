"""System tests of the RTL under cocotb: random compiled models, error programs, link faults,
counters -- each response checked byte for byte against the emulator (see ``sim/tb.py``).

Every configuration is built once per session (and cached across sessions by the Verilog's
hash); the cocotb modules of ``sim/`` run against it with pytest's ``tmp_path`` as test dir.
Verilator runs every configuration; Icarus (when installed, or alone with ``SIM=icarus``) runs
the small one.

Operand widths other than 8 (``WIDTH_CONFIGS``) run the random-model programs on Verilator:
4-bit activations and weights, 8-bit activations (with the LUT) over 4-bit weights, and 16-bit
operands with 48-bit accumulators (mode "onnx").
"""

import functools

import pytest

from sim_helpers import CONFIGS, build, require, simulators

from tessera.sim import runner
from tessera.spec import AcceleratorConfig

MODULES = ("system_programs", "system_errors", "system_link", "system_counters")

#: (configuration, simulator) pairs: Icarus, ~5x slower per cycle, runs the smallest one.
TARGETS = [(name, "verilator") for name in CONFIGS] + [("2x4", "icarus")]


def _targets():
    wanted = simulators()
    return [pytest.param(name, sim, id=f"{name}-{sim}") for name, sim in TARGETS
            if sim in wanted]


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize(("config_name", "simulator"), _targets())
def test_system(config_name, simulator, module, tmp_path):
    require(simulator)
    sim = build(config_name, simulator)
    runner.run_test(sim, module, test_dir=tmp_path, config=CONFIGS[config_name])


def test_failing_testbench_reports_the_test_and_message(tmp_path):
    """A scoreboard mismatch fails the pytest test with the cocotb test's name and message."""
    sim = build("2x4", simulators()[0])
    with pytest.raises(AssertionError) as info:
        runner.run_test(sim, "system_selfcheck", test_dir=tmp_path, config=CONFIGS["2x4"])
    text = str(info.value)
    assert "1 of 1 cocotb tests in system_selfcheck failed" in text
    assert "scoreboard_catches_a_wrong_model" in text
    assert "but the model answered" in text


#: Operand-width configurations (fields): the 2x4 buffers.
WIDTH_CONFIGS = {
    "2x4-int4": dict(input_bits=4, weight_bits=4),
    "2x4-a8w4": dict(input_bits=8, weight_bits=4),
    "2x4-int16": dict(input_bits=16, weight_bits=16),     # 48-bit accumulators, mode onnx
}


def _width_config(name) -> AcceleratorConfig:
    return CONFIGS["2x4"].replace(**WIDTH_CONFIGS[name], acc_bits=None, requant_modes=None,
                                  lut=None)


@functools.lru_cache(maxsize=None)
def _width_build(name):
    return runner.build(_width_config(name), "verilator")


@pytest.mark.slow
@pytest.mark.parametrize("name", WIDTH_CONFIGS)
def test_system_programs_at_widths(name, tmp_path):
    require("verilator")
    config = _width_config(name)
    assert (config.input_bits, config.weight_bits) != (8, 8)
    runner.run_test(_width_build(name), "system_programs", test_dir=tmp_path, config=config)
