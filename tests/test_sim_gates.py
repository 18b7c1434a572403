"""Gate-level simulation: the iCEBreaker bitstream netlist runs the digits model like the emulator.

``connect("sim:gates", board="icebreaker")`` simulates the netlist Yosys writes for the bitstream
(the script of ``tessera build``, :mod:`tessera.sim.gates`) with Yosys's own cell models, the
host's bytes crossing its UART pins at the bitstream's baud rate (:mod:`gates_helpers`). The
ECP5 presets' netlists are larger: ``slow_gates_ecp5.py``, outside the default collection.
"""

import pytest

from gates_helpers import check_board

import tessera
from tessera.sim import gates


def test_icebreaker_netlist_runs_the_digits_model_like_the_emulator():
    check_board("icebreaker")


def test_icebreaker_netlist_has_the_bitstreams_primitives():
    netlist = gates.synthesise_netlist("icebreaker").read_text()
    cells = {name: netlist.count(f"  {name} ") for name in ("SB_MAC16", "SB_RAM40_4K",
                                                             "SB_PLL40_PAD", "SB_IO")}
    assert cells["SB_MAC16"] == 8 and cells["SB_PLL40_PAD"] == 1 and cells["SB_IO"] == 3
    assert cells["SB_RAM40_4K"] > 0


def test_gates_needs_a_board():
    with pytest.raises(TypeError, match=r"connect\('sim:gates'\) needs board="):
        tessera.connect("sim:gates")
