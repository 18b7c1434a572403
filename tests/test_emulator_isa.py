"""Instruction semantics of the emulator against tessera.numerics, and the ISA error table."""

import numpy as np
import pytest

from runtime_helpers import (error_record, exec_ok, layer_reference, load, params_bytes,
                             request)
from tessera import numerics
from tessera.runtime import Emulator, ParameterError
from tessera.runtime.machine import PARAM_DTYPE
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import LAYOUTS, Buffer, Mode, Opcode
from tessera.spec.protocol import Kind, Status

CFG = AcceleratorConfig(rows=4, cols=8, act_depth=256, weight_depth=256, param_depth=32,
                        max_payload=512)


def _word(opcode, **fields):
    return LAYOUTS[opcode].to_bytes(opcode=int(opcode), **fields)


def _random_layer(rng, k, cols=CFG.cols, mode="onnx"):
    a = rng.integers(-128, 128, (k, CFG.rows), dtype=np.int8)
    w = rng.integers(-128, 128, (k, cols), dtype=np.int8)
    bias = rng.integers(-5000, 5000, cols).astype(np.int32)
    w_scale = rng.uniform(0.002, 0.02, cols).astype(np.float32)
    mult, shift = numerics.requant_multipliers(np.float32(0.05), w_scale, np.float32(0.9), mode)
    return a, w, bias, mult, shift


def _setup(a, w, bias, mult, shift, a_addr=0, w_addr=0, p_addr=0):
    return (load(Buffer.ACT, a_addr, a, CFG.rows) + load(Buffer.WGT, w_addr, w, CFG.cols) +
            load(Buffer.PARAM, p_addr, params_bytes(bias, mult, shift), 9))


def _stored(payload, count):
    return np.frombuffer(payload, np.int8).reshape(count, CFG.rows)


def test_param_dtype_matches_param_layout():
    entry = isa.PARAM_LAYOUT.to_bytes(bias=-123456, multiplier=0xDEADBEEF, shift=-7)
    p = np.frombuffer(entry, PARAM_DTYPE)[0]
    assert (int(p["bias"]), int(p["multiplier"]), int(p["shift"])) == (-123456, 0xDEADBEEF, -7)


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_gemm_clear_drain_matches_numerics(mode):
    rng = np.random.default_rng(1)
    a, w, bias, mult, shift = _random_layer(rng, 20, mode=mode)
    emu = Emulator(CFG)
    program = (_setup(a, w, bias, mult, shift) +
               isa.Post(Mode.parse(mode), zero_point=3, lo=-100, hi=90).encode() +
               isa.Gemm(0, 0, 20, out_addr=100, param_addr=0, m_rows=4, n_cols=8).encode() +
               isa.Store(100, 8).encode())
    y = _stored(exec_ok(emu, program), 8)
    ref, _ = layer_reference(a, w, bias, mult, shift, mode=mode, zero_point=3, lo=-100, hi=90)
    np.testing.assert_array_equal(y.T, ref)


def test_partial_tile_writes_zero_bytes_and_only_n_cols_entries():
    rng = np.random.default_rng(2)
    a, w, bias, mult, shift = _random_layer(rng, 5)
    emu = Emulator(CFG)
    emu.machine.act[100:110] = 77      # stale contents that must be overwritten / left alone
    program = (_setup(a, w, bias, mult, shift) +
               isa.Gemm(0, 0, 5, out_addr=100, param_addr=0, m_rows=3, n_cols=6).encode() +
               isa.Store(100, 8).encode())
    y = _stored(exec_ok(emu, program), 8)
    ref, _ = layer_reference(a, w, bias, mult, shift)
    np.testing.assert_array_equal(y[:6, :3], ref[:3, :6].T)
    np.testing.assert_array_equal(y[:6, 3], 0)        # rows >= m_rows are written as zero
    np.testing.assert_array_equal(y[6:], 77)          # entries beyond n_cols untouched


def test_k_split_accumulates_across_gemms():
    rng = np.random.default_rng(3)
    a, w, bias, mult, shift = _random_layer(rng, 30)
    emu = Emulator(CFG)
    exec_ok(emu, _setup(a, w, bias, mult, shift), seq=1)
    program = (isa.Gemm(0, 0, 12, clear=True, drain=False, m_rows=4, n_cols=8).encode() +
               isa.Gemm(12, 12, 10, clear=False, drain=False, m_rows=4, n_cols=8).encode() +
               isa.Gemm(22, 22, 8, clear=False, drain=True, out_addr=200, m_rows=4,
                        n_cols=8).encode() +
               isa.Store(200, 8).encode())
    y = _stored(exec_ok(emu, program), 8)
    ref, _ = layer_reference(a, w, bias, mult, shift)
    np.testing.assert_array_equal(y.T, ref)


def test_accumulators_keep_their_value_after_a_drain():
    rng = np.random.default_rng(4)
    a, w, bias, mult, shift = _random_layer(rng, 6)
    emu = Emulator(CFG)
    program = (_setup(a, w, bias, mult, shift) +
               isa.Gemm(0, 0, 6, out_addr=100, m_rows=4, n_cols=8).encode() +
               isa.Gemm(0, 0, 6, clear=False, out_addr=120, m_rows=4, n_cols=8).encode() +
               isa.Store(100, 28).encode())
    y = _stored(exec_ok(emu, program), 28)
    once, acc = layer_reference(a, w, bias, mult, shift)
    twice, _ = layer_reference(a, w, bias, mult, shift, acc=acc)
    np.testing.assert_array_equal(y[:8].T, once)
    np.testing.assert_array_equal(y[20:28].T, twice)


def test_layer_chaining_with_sync_and_lut():
    rng = np.random.default_rng(5)
    a, w, bias, mult, shift = _random_layer(rng, 16)
    w2 = rng.integers(-128, 128, (8, 8), dtype=np.int8)
    bias2 = rng.integers(-300, 300, 8).astype(np.int32)
    mult2, shift2 = numerics.requant_multipliers(np.float32(0.9), np.full(8, 0.01, np.float32),
                                                 np.float32(0.2), "onnx")
    lut = rng.integers(-128, 128, 256, dtype=np.int8)
    emu = Emulator(CFG)
    exec_ok(emu, _setup(a, w, bias, mult, shift), seq=5)
    program1 = (load(Buffer.WGT, 64, w2, CFG.cols) +
                load(Buffer.PARAM, 8, params_bytes(bias2, mult2, shift2), 9) +
                load(Buffer.LUT, 0, lut, 1))
    exec_ok(emu, program1)
    program2 = (isa.Post(lo=0).encode() +
                isa.Gemm(0, 0, 16, out_addr=100, param_addr=0, m_rows=4, n_cols=8).encode() +
                isa.Sync().encode() +
                isa.Post(lut=True, zero_point=-5).encode() +
                isa.Gemm(100, 64, 8, out_addr=150, param_addr=8, m_rows=4, n_cols=8).encode() +
                isa.Nop().encode() +
                isa.Store(150, 8).encode())
    y = _stored(exec_ok(emu, program2, seq=1), 8)
    hidden, _ = layer_reference(a, w, bias, mult, shift, lo=0)
    ref, _ = layer_reference(hidden.T, w2, bias2, mult2, shift2, zero_point=-5, lut=lut)
    np.testing.assert_array_equal(y.T, ref)


def test_bias_add_wraps_to_int32():
    emu = Emulator(CFG)
    emu.machine.act[0] = 127
    emu.machine.wgt[0] = 127
    big = np.full(8, 2**31 - 100, dtype=np.int64).astype(np.int32)
    mult, shift = numerics.requant_multipliers(1.0, np.ones(8, np.float32), 1024.0, "tflite")
    program = (load(Buffer.PARAM, 0, params_bytes(big, mult, shift), 9) +
               isa.Post(Mode.TFLITE).encode() +
               isa.Gemm(0, 0, 1, out_addr=10, m_rows=1, n_cols=8).encode() +
               isa.Store(10, 8).encode())
    y = _stored(exec_ok(emu, program), 8)[:, 0]
    wrapped = numerics.wrap_int32(np.int64(127 * 127) + 2**31 - 100)
    expected = numerics.postprocess(np.full(8, wrapped), mult, shift, mode="tflite",
                                    zero_point=0, lo=-128, hi=127)
    assert wrapped < 0
    np.testing.assert_array_equal(y, expected)


# -- the error table ------------------------------------------------------------------------

GOOD = isa.Nop().encode()


def _error(program, config=CFG):
    emu = Emulator(config)
    status, payload = request(emu, Kind.EXEC, program)
    return status, error_record(payload), emu


@pytest.mark.parametrize("opcode", range(6, 16))
def test_bad_opcode(opcode):
    status, record, _ = _error(GOOD + bytes([opcode | 0x30]) + bytes(15))
    assert (status, record) == (Status.BAD_OPCODE, (16, opcode))


@pytest.mark.parametrize("insn", [
    isa.Load(Buffer.ACT, 250, 7, bytes(28)).encode(),
    isa.Load(Buffer.WGT, 256, 1, bytes(8)).encode(),
    isa.Load(Buffer.PARAM, 30, 3, bytes(27)).encode(),
    isa.Load(Buffer.LUT, 250, 7, bytes(7)).encode(),
    isa.Gemm(250, 0, 7).encode(),
    isa.Gemm(0, 250, 7).encode(),
    isa.Gemm(0, 0, 1, out_addr=250, n_cols=7).encode(),
    isa.Gemm(0, 0, 1, param_addr=30, n_cols=3).encode(),
    isa.Gemm(0, 0, 1, param_addr=30, n_cols=3, drain=False).encode(),
    isa.Store(255, 2).encode(),
])
def test_bad_address(insn):
    status, record, _ = _error(GOOD + GOOD + insn)
    assert (status, record) == (Status.BAD_ADDRESS, (32, insn[0] & 0xF))


@pytest.mark.parametrize("insn", [
    _word(Opcode.LOAD, buffer=4, addr=0, count=1),
    _word(Opcode.LOAD, buffer=0, addr=0, count=0),
    isa.Gemm(0, 0, 0).encode(),
    isa.Gemm(0, 0, 1, m_rows=0).encode(),
    isa.Gemm(0, 0, 1, m_rows=5).encode(),
    isa.Gemm(0, 0, 1, n_cols=0).encode(),
    isa.Gemm(0, 0, 1, n_cols=9).encode(),
    isa.Store(0, 0).encode(),
    _word(Opcode.GEMM, _pad0=1, k=1, m_rows=1, n_cols=1),
    _word(Opcode.POST, _pad0=2),
    _word(Opcode.STORE, _pad0=1, count=1),
    (1 << 127).to_bytes(16, "little"),                       # bits after a NOP's opcode
    ((1 << 120) | 5).to_bytes(16, "little"),                  # bits after SYNC's opcode
    ((1 << 100) | int.from_bytes(isa.Gemm(0, 0, 1).encode(), "little")).to_bytes(16, "little"),
])
def test_bad_field(insn):
    status, record, _ = _error(GOOD + insn + isa.Store(0, 1).encode())
    assert (status, record) == (Status.BAD_FIELD, (16, insn[0] & 0xF))


@pytest.mark.parametrize("config, insn", [
    (CFG.replace(lut=False), isa.Load(Buffer.LUT, 0, 1, b"\x01").encode()),
    (CFG.replace(lut=False), isa.Post(lut=True).encode()),
    (CFG.replace(requant_modes=("tflite",)), isa.Post(Mode.ONNX).encode()),
    (CFG.replace(requant_modes=("onnx",)), isa.Post(Mode.TFLITE).encode()),
])
def test_bad_field_for_features_the_configuration_lacks(config, insn):
    status, record, _ = _error(insn, config)
    assert (status, record) == (Status.BAD_FIELD, (0, insn[0] & 0xF))


def test_truncated_instruction_and_payload():
    status, record, _ = _error(GOOD + isa.Sync().encode()[:9])
    assert (status, record) == (Status.TRUNCATED, (16, Opcode.SYNC))
    load_insn = isa.Load(Buffer.WGT, 0, 3, bytes(24)).encode()
    status, record, emu = _error(GOOD + load_insn[:-1])
    assert (status, record) == (Status.TRUNCATED, (16, Opcode.LOAD))
    assert not emu.machine.wgt.any()


def test_store_not_last_and_too_large():
    status, record, _ = _error(isa.Store(0, 1).encode() + GOOD)
    assert (status, record) == (Status.STORE_NOT_LAST, (0, Opcode.STORE))
    too_many = CFG.max_payload // CFG.rows + 1
    status, record, _ = _error(GOOD + isa.Store(0, too_many).encode())
    assert (status, record) == (Status.STORE_NOT_LAST, (16, Opcode.STORE))
    emu = Emulator(CFG)
    assert len(exec_ok(emu, isa.Store(0, too_many - 1).encode())) == CFG.max_payload


def test_error_stops_the_frame_but_keeps_earlier_effects():
    first = isa.Load(Buffer.ACT, 0, 1, bytes([1, 2, 3, 4])).encode()
    later = isa.Load(Buffer.ACT, 1, 1, bytes([5, 6, 7, 8])).encode()
    status, record, emu = _error(first + isa.Gemm(0, 0, 0).encode() + later)
    assert (status, record) == (Status.BAD_FIELD, (len(first), Opcode.GEMM))
    np.testing.assert_array_equal(emu.machine.act[:2], [[1, 2, 3, 4], [0, 0, 0, 0]])


def test_invalid_parameter_encoding_is_refused_by_the_emulator():
    emu = Emulator(CFG)
    bad = params_bytes(np.zeros(1), np.array([0x7F800000], np.uint32), [0])   # +inf
    program = (load(Buffer.PARAM, 0, bad, 9) +
               isa.Gemm(0, 0, 1, m_rows=1, n_cols=1).encode())
    with pytest.raises(ParameterError, match=r"PARAM\[0:1\] that is not a valid 'onnx' "
                                             r"encoding .* requant_multipliers"):
        emu.feed(_frame(program))


def test_drain_in_a_mode_the_configuration_lacks_is_refused():
    emu = Emulator(CFG.replace(requant_modes=("tflite",)))
    with pytest.raises(ParameterError, match=r"drains in mode 'onnx', which this configuration "
                                             r"does not build .* issue a POST"):
        emu.feed(_frame(isa.Gemm(0, 0, 1, m_rows=1, n_cols=1).encode()))


def _frame(program):
    from tessera.spec.protocol import encode_frame
    return encode_frame(Kind.EXEC, 0, program)
