"""ISA version 3's single-port rule: no ADD and no LOAD into ACT or WGT while a GEMM or CONV is
in flight (docs/isa.md, "Version 3", "Ordering"), refused by the emulator on cnn configurations.

Every later instruction touches regions disjoint from the in-flight one's, so only the
single-port rule can refuse it; the same program on a configuration without ``cnn`` runs.
"""

import numpy as np
import pytest

from runtime_helpers import exec_ok, load, params_bytes, request
from tessera.runtime import Emulator, HazardError
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import Buffer
from tessera.spec.protocol import Kind, Status, encode_frame

SIZES = dict(rows=2, cols=2, act_depth=64, weight_depth=64, param_depth=16)
CNN = AcceleratorConfig(**SIZES, cnn=True, requant_modes=("tflite",))
PLAIN = AcceleratorConfig(**SIZES, requant_modes=("tflite",))

TFLITE = isa.Post(mode=isa.Mode.TFLITE).encode()
# A 1x1 convolution of a 2x2x2 map: reads ACT[0:4], WGT[0:2], PARAM[0:2], writes ACT[8:12].
CONV = (isa.Window(2, 2, 2, 2, 2, 2).encode() +
        isa.Conv(isa.ConvKind.CONV, src=0, dst=8).encode())
# Reads ACT[0:4], WGT[0:4], PARAM[0:2], writes ACT[10:12].
GEMM = isa.Gemm(a_addr=0, w_addr=0, k=4, out_addr=10, param_addr=0, m_rows=2, n_cols=2).encode()
ENGINE_AT = {"CONV": 32, "GEMM": 16}      # byte offset of the engine's instruction

LATER = {
    "load-act": (isa.Load(Buffer.ACT, 40, 2, bytes(4)).encode(), r"LOAD into ACT\[40:42\]"),
    "load-wgt": (isa.Load(Buffer.WGT, 40, 2, bytes(4)).encode(), r"LOAD into WGT\[40:42\]"),
    "add": (isa.Add(a_addr=20, b_addr=24, dst=30, count=2, param_addr=4).encode(), r"ADD"),
}


def _emulator(config):
    emu = Emulator(config)
    m0 = np.full(7, 1 << 30, np.uint32)        # valid tflite entries for the drain and the ADD
    exec_ok(emu, load(Buffer.PARAM, 0, params_bytes(np.zeros(7), m0, np.zeros(7)), 9))
    return emu


def _run(config, program):
    emu = _emulator(config)
    emu.feed(encode_frame(Kind.EXEC, 1, TFLITE + program))
    return emu


@pytest.mark.parametrize("engine", ["CONV", "GEMM"])
@pytest.mark.parametrize("later", LATER, ids=str)
def test_add_or_act_wgt_load_while_the_engine_runs_is_refused(engine, later):
    first = CONV if engine == "CONV" else GEMM
    insn, what = LATER[later]
    at = 16 + len(first)
    with pytest.raises(HazardError, match=(
            rf"Unsynchronised hazard: the {what} at byte {at} would access ACT/WGT while the "
            rf"{engine} at byte {ENGINE_AT[engine]} is in flight; .*single-port.* SYNC before")):
        _run(CNN, first + insn)


@pytest.mark.parametrize("engine", ["CONV", "GEMM"])
def test_a_sync_first_or_a_param_load_is_fine(engine):
    first = CONV if engine == "CONV" else GEMM
    later = b"".join(insn for insn, _ in LATER.values())
    emu = _run(CNN, first + isa.Sync().encode() + later)
    assert emu.stats["executed"] == 2                # setup + this
    # PARAM (and LUT) are block RAM: a LOAD there only has to avoid what the engine reads.
    emu = _run(CNN, first + isa.Load(Buffer.PARAM, 8, 1, params_bytes([0], [0], [0])).encode())
    assert emu.stats["executed"] == 2


def test_the_rule_counts_from_the_last_synchronisation_point():
    # CONV; SYNC; ADD (fine) then a GEMM and an ADD after it (refused: the GEMM is in flight).
    add = LATER["add"][0]
    emu = _emulator(CNN)
    assert emu.machine.execute(TFLITE + CONV + isa.Sync().encode() + add,
                               emu.cycles).status == Status.OK
    program = TFLITE + CONV + isa.Sync().encode() + add + GEMM + add
    with pytest.raises(HazardError, match=r"the ADD at byte 96 .* the GEMM at byte 80 "):
        emu.machine.execute(program, emu.cycles)


def test_configurations_without_cnn_keep_version_2_ordering():
    loads = LATER["load-act"][0] + LATER["load-wgt"][0]
    emu = _run(PLAIN, GEMM + loads)
    assert emu.stats["executed"] == 2
    with pytest.raises(HazardError, match=r"LOAD at byte 32 overwrites WGT\[2:3\]"):
        _run(PLAIN, GEMM + isa.Load(Buffer.WGT, 2, 1, bytes(2)).encode())
    status, _ = request(_emulator(PLAIN), Kind.EXEC, TFLITE + GEMM + LATER["add"][0], 1)
    assert status == Status.BAD_OPCODE               # no ADD in version 2
