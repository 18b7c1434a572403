"""The gate-level check shared by ``test_sim_gates.py`` and ``slow_gates_ecp5.py``.

A board's bitstream netlist (``connect("sim:gates", board=...)``, :mod:`tessera.sim.gates`) runs
the demo's digits MLP: its outputs and every counter but ``cycles`` (which counts the UART's bit
times, absent from the emulator) must equal the emulator's, and the outputs ``predict``'s.
"""

import functools

import numpy as np

import tessera
from tessera.cli.demo import train_digits_mlp
from tessera.hw.boards import get_board

__all__ = ["IMAGES", "digits_model", "check_board"]

#: Test images per run, in two requests (a first with the weights, one without).
IMAGES = 6


@functools.cache
def digits_model():
    """Return ``(qmodel, x_q)``: the demo's digits MLP in mode onnx and :data:`IMAGES` inputs."""
    clf, x_train, x_test, _, _ = train_digits_mlp(0)
    qmodel = tessera.quantize(clf, calibration=x_train, mode="onnx")
    return qmodel, qmodel.quantize_input(x_test[:IMAGES])


def _run(target, config, qmodel, x_q, **options):
    with tessera.connect(target, config=config, **options) as dev:
        dev.clear_counters()
        out = np.concatenate([dev.run(qmodel, x_q[:2], raw=True),
                              dev.run(qmodel, x_q[2:], raw=True)])
        counters = dev.counters()
    counters.pop("cycles")
    return out, counters


def check_board(board):
    """Run the digits model on ``board``'s netlist (Verilator) and on the emulator; compare."""
    qmodel, x_q = digits_model()
    got, counters = _run("sim:gates", None, qmodel, x_q, board=board, simulator="verilator",
                         progress=False)
    want, emu_counters = _run("emu", get_board(board).config, qmodel, x_q)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, qmodel.predict(x_q, raw=True))
    assert counters == emu_counters
    assert counters["macs"] == IMAGES * (64 * 32 + 32 * 10)
