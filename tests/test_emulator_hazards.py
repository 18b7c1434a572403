"""The emulator refuses programs whose result would depend on the asynchronous timing."""

import numpy as np
import pytest

from runtime_helpers import exec_ok, load, params_bytes
from tessera import numerics
from tessera.runtime import Emulator, HazardError
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import Buffer
from tessera.spec.protocol import Kind, encode_frame

CFG = AcceleratorConfig(rows=2, cols=2, act_depth=64, weight_depth=64, param_depth=16)


def _emulator():
    emu = Emulator(CFG)
    mult, shift = numerics.requant_multipliers(1.0, np.ones(2, np.float32), 1.0, "onnx")
    exec_ok(emu, load(Buffer.PARAM, 0, params_bytes([0, 0], mult, shift), 9) +
            load(Buffer.PARAM, 2, params_bytes([0, 0], mult, shift), 9))
    return emu


GEMM = isa.Gemm(a_addr=0, w_addr=0, k=4, out_addr=10, param_addr=0, m_rows=2, n_cols=2)


def _run(program):
    emu = _emulator()
    emu.feed(encode_frame(Kind.EXEC, 1, program))
    return emu


def _act(addr, count):
    return isa.Load(Buffer.ACT, addr, count, bytes(2 * count)).encode()


@pytest.mark.parametrize("later, what", [
    (_act(3, 2), r"LOAD at byte 16 overwrites ACT\[3:5\] while the GEMM at byte 0 may still be "
                 r"reading ACT\[0:4\]"),
    (isa.Load(Buffer.WGT, 2, 1, bytes(2)).encode(), r"WGT\[2:3\] .* reading WGT\[0:4\]"),
    (isa.Load(Buffer.PARAM, 1, 1, bytes(9)).encode(), r"PARAM\[1:2\] .* reading PARAM\[0:2\]"),
    (_act(11, 1), r"LOAD at byte 16 writes ACT\[11:12\] while the drain of the GEMM at byte 0 "
                  r"may still be writing ACT\[10:12\]"),
    (isa.Gemm(a_addr=9, w_addr=20, k=2, out_addr=30, m_rows=2, n_cols=2).encode(),
     r"GEMM at byte 16 reads ACT\[9:11\] while the drain of the GEMM at byte 0 may still be "
     r"writing ACT\[10:12\]; the compiler must insert a SYNC between them"),
], ids=["act-read", "wgt-read", "param-read", "act-drain", "gemm-chain"])
def test_unsynchronised_hazards_are_refused(later, what):
    with pytest.raises(HazardError, match=r"Unsynchronised hazard: .*" + what):
        _run(GEMM.encode() + later)


def test_lut_read_by_an_in_flight_drain():
    program = (isa.Post(lut=True).encode() + GEMM.encode() +
               isa.Load(Buffer.LUT, 200, 1, b"\x05").encode())
    with pytest.raises(HazardError, match=r"LUT\[200:201\] .* reading LUT\[0:256\]"):
        _run(program)
    # Without the LUT selected, the drain does not read it.
    _run(isa.Post(lut=False).encode() + GEMM.encode() +
         isa.Load(Buffer.LUT, 200, 1, b"\x05").encode())


def test_sync_resolves_every_hazard():
    later = [_act(3, 2), isa.Load(Buffer.WGT, 2, 1, bytes(2)).encode(), _act(11, 1),
             isa.Gemm(a_addr=9, w_addr=20, k=2, out_addr=30, m_rows=2, n_cols=2).encode()]
    emu = _run(GEMM.encode() + isa.Sync().encode() + b"".join(later))
    assert emu.stats["executed"] == 2   # setup + this


def test_store_and_frame_end_are_synchronisation_points():
    emu = _run(GEMM.encode() + isa.Store(10, 2).encode())
    emu.feed(encode_frame(Kind.EXEC, 2, _act(0, 12)))     # next frame: everything finished
    assert emu.stats["executed"] == 3


@pytest.mark.parametrize("later", [
    _act(4, 6),                                                         # just past the reads
    isa.Load(Buffer.WGT, 4, 2, bytes(4)).encode(),
    isa.Load(Buffer.PARAM, 2, 2, bytes(18)).encode(),
    isa.Gemm(a_addr=0, w_addr=0, k=4, out_addr=12, param_addr=2).encode(),  # reads same input
    isa.Gemm(a_addr=20, w_addr=4, k=2, out_addr=0, param_addr=2).encode(),  # drains over input
    isa.Gemm(a_addr=20, w_addr=4, k=2, out_addr=10, param_addr=2).encode(),  # same output
    isa.Post(zero_point=4).encode(),
], ids=["act-after", "wgt-after", "param-after", "same-input", "drain-over-input",
        "same-output", "post"])
def test_independent_or_ordered_work_is_not_a_hazard(later):
    emu = _run(GEMM.encode() + later)
    assert emu.stats["executed"] == 2   # setup + this


def test_non_draining_gemm_writes_nothing():
    gemm = isa.Gemm(a_addr=0, w_addr=0, k=4, out_addr=10, drain=False, m_rows=2, n_cols=2)
    emu = _run(gemm.encode() + _act(10, 2))
    assert emu.stats["executed"] == 2   # setup + this
