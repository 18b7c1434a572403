"""Gate-level simulation of the ECP5 presets' bitstream netlists (slow; not collected by default).

Like ``test_sim_gates.py`` for the OrangeCrab-25F (4x4) and the ULX3S-85F (8x16): Yosys's ECP5
cell models plus the MULT18X18D model of :mod:`tessera.hw.mac_ecp5` and the DP16KD model of
:mod:`tessera.sim.gates` (Yosys has black boxes). Each synthesises and compiles a large netlist,
so the file is outside the default suite's ``test_*.py``; run it with

    pytest -m slow tests/slow_gates_ecp5.py
"""

import pytest

from gates_helpers import check_board


@pytest.mark.slow
@pytest.mark.parametrize("board", ["orangecrab-25f", "ulx3s-85f"])
def test_ecp5_netlist_runs_the_digits_model_like_the_emulator(board):
    check_board(board)
