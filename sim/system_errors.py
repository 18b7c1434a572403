"""cocotb system tests: hand-built bad programs get the right error, then the device still works.

Every scenario sends one ``EXEC`` whose program breaks one rule of ``docs/isa.md`` (unknown
opcode, a buffer range past its depth, a bad field, a truncated instruction or payload, a
``STORE`` that is not last or too large), usually after a few valid instructions, so that the
``ErrorRecord`` offset is not trivially zero and a GEMM may still be running. The response must
equal the emulator's (status, offset, opcode) and carry the status the table prescribes; then the
design must be idle and a compiled GEMM must still run bit-exactly.
"""

import cocotb
import numpy as np

from tessera import numerics
from tessera.compiler import assemble_outputs, compile_gemm
from tessera.spec import isa
from tessera.spec.isa import Buffer, Opcode
from tessera.spec.protocol import ERROR_LAYOUT, Status

from tb import TB, config_from_env

_CONFIG = config_from_env()
_MODE = _CONFIG.requant_modes[0]


def _word(opcode, **fields):
    return isa.LAYOUTS[opcode].to_bytes(opcode=int(opcode), **fields)


def _post():
    """A valid POST selecting a mode the configuration builds."""
    return _word(Opcode.POST, mode=int(isa.Mode.parse(_MODE)), zero_point=0, lo=-128, hi=127)


def _gemm(**changes):
    c = _CONFIG
    fields = dict(clear=1, drain=1, a_addr=0, w_addr=0, k=2, out_addr=c.act_depth - c.cols,
                  param_addr=0, m_rows=c.rows, n_cols=c.cols)
    fields.update(changes)
    return _word(Opcode.GEMM, **fields)


def _load(buffer, addr, count, payload=None):
    size = count * _CONFIG.entry_bytes(buffer) if payload is None else len(payload)
    return _word(Opcode.LOAD, buffer=int(buffer), addr=addr, count=count) + \
        (bytes(size) if payload is None else payload)


def _valid_params(n):
    """PARAM entries with a valid requant encoding for ``_MODE``."""
    mult, shift = numerics.requant_multipliers(0.05, np.full(n, 0.02, np.float32), 0.1, _MODE)
    return b"".join(isa.PARAM_LAYOUT.to_bytes(bias=0, multiplier=int(m), shift=int(s))
                    for m, s in zip(mult, shift))


def _prologue():
    """Valid instructions that set up a drainable GEMM (returned bytes, then the GEMM)."""
    c = _CONFIG
    return (_post() + _load(Buffer.PARAM, 0, c.cols, _valid_params(c.cols)) + _gemm())


def _cases():
    c = _CONFIG
    nop, store = _word(Opcode.NOP), _word(Opcode.STORE, addr=0, count=1)
    cases = {
        # name: (program, expected status)
        "bad_opcode_6": (nop + bytes([6]) + bytes(15), Status.BAD_OPCODE),
        "bad_opcode_15_after_gemm": (_prologue() + bytes([0xF]) + bytes(15), Status.BAD_OPCODE),
        "load_past_act": (_load(Buffer.ACT, c.act_depth - 1, 2), Status.BAD_ADDRESS),
        "load_past_wgt": (nop + _load(Buffer.WGT, c.weight_depth, 1), Status.BAD_ADDRESS),
        "load_past_param": (_load(Buffer.PARAM, c.param_depth - 2, 3), Status.BAD_ADDRESS),
        "gemm_a_past_act": (_post() + _gemm(a_addr=c.act_depth - 1), Status.BAD_ADDRESS),
        "gemm_w_past_wgt": (_post() + _gemm(w_addr=c.weight_depth - 1), Status.BAD_ADDRESS),
        "gemm_out_past_act": (_post() + _gemm(out_addr=c.act_depth - c.cols + 1),
                              Status.BAD_ADDRESS),
        "gemm_param_past": (_post() + _gemm(param_addr=c.param_depth - c.cols + 1, drain=0),
                            Status.BAD_ADDRESS),
        "store_past_act": (_word(Opcode.STORE, addr=c.act_depth - 1, count=2),
                           Status.BAD_ADDRESS),
        "load_bad_buffer": (_word(Opcode.LOAD, buffer=4, addr=0, count=1) + bytes(16),
                            Status.BAD_FIELD),
        "load_count_0": (_word(Opcode.LOAD, buffer=int(Buffer.ACT), addr=0, count=0),
                         Status.BAD_FIELD),
        "gemm_k_0": (_prologue() + _gemm(k=0), Status.BAD_FIELD),
        "gemm_m_rows_0": (_post() + _gemm(m_rows=0), Status.BAD_FIELD),
        "gemm_m_rows_too_big": (_post() + _gemm(m_rows=c.rows + 1), Status.BAD_FIELD),
        "gemm_n_cols_too_big": (_post() + _gemm(n_cols=c.cols + 1), Status.BAD_FIELD),
        "gemm_pad_set": (_post() + _gemm(_pad0=2), Status.BAD_FIELD),
        "nop_high_bit_set": (bytes(15) + b"\x80", Status.BAD_FIELD),
        "store_count_0": (_word(Opcode.STORE, addr=0, count=0), Status.BAD_FIELD),
        "truncated_instruction": (nop + bytes(8), Status.TRUNCATED),
        "truncated_load_payload": (_load(Buffer.ACT, 0, 3, bytes(3 * c.rows - 1)),
                                   Status.TRUNCATED),
        "store_not_last": (_prologue() + store + nop, Status.STORE_NOT_LAST),
        "store_too_large": (_word(Opcode.STORE, addr=0,
                                  count=c.max_payload // c.act_entry_bytes + 1),
                            Status.STORE_NOT_LAST),
    }
    if not c.lut:
        cases["load_lut_without_lut"] = (_word(Opcode.LOAD, buffer=int(Buffer.LUT), addr=0,
                                               count=1) + bytes(1), Status.BAD_FIELD)
        cases["post_lut_without_lut"] = (_word(Opcode.POST, lut=1, lo=-128, hi=127),
                                         Status.BAD_FIELD)
    for mode in ("onnx", "tflite"):
        if not c.supports(mode):
            cases[f"post_mode_{mode}_not_built"] = (
                nop + _word(Opcode.POST, mode=int(isa.Mode.parse(mode)), lo=-128, hi=127),
                Status.BAD_FIELD)
    return cases


CASES = _cases()


async def _still_works(tb, rng):
    """Run a compiled GEMM with a STORE and check it bit-exactly (and against the model)."""
    c = _CONFIG
    k, n, m = c.rows + 3, c.cols + 1, c.rows + 1
    weight = rng.integers(-128, 128, (k, n), dtype=np.int8)
    bias = rng.integers(-5000, 5000, n, dtype=np.int32)
    mult, shift = numerics.requant_multipliers(0.02, np.full(n, 0.01, np.float32), 0.5, _MODE)
    compiled = compile_gemm(weight, bias, mult, shift, c, mode=_MODE)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    for frame in compiled.setup_frames:
        await tb.exec(frame, what="setup after the error")
    program = compiled.program(x)
    responses = {}
    for index, frame in enumerate(program.frames):
        response = await tb.exec(frame, what="program after the error")
        assert response.kind == Status.OK
        if index in program.stores:
            responses[index] = response.payload
    np.testing.assert_array_equal(assemble_outputs(program, responses), compiled.reference(x))


@cocotb.test()
@cocotb.parametrize(case=list(CASES))
async def error_program(dut, case):
    """A bad program: the status, offset and opcode of the model, then back to work."""
    program, status = CASES[case]
    tb = TB(dut)
    await tb.start()
    response = await tb.exec(program, what=case)
    record = ERROR_LAYOUT.from_bytes(response.payload)
    assert response.kind == status, \
        f"{case}: status {response.kind:#04x}, docs/isa.md says {status.name} ({status:#04x})"
    dut._log.info("%s -> %s at offset %d opcode %d", case, Status(response.kind).name,
                  record["offset"], record["opcode"])
    await _still_works(tb, np.random.default_rng(len(case)))
