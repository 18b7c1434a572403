"""Operand widths on the host half of the device stack: compiler and emulator run 4-, 8- and
16-bit operands (mixed too) with 32- and 48-bit accumulators bit for bit against the NumPy
reference.
"""

import numpy as np
import pytest

import tessera
from tessera import numerics
from tessera.compiler import compile_gemm, compile_model
from tessera.spec.packing import pack_entries, unpack_entries
from tessera.runtime import Emulator
from tessera.spec import AcceleratorConfig, isa, operand_range, pack_operands, unpack_operands
from tessera.spec.isa import Buffer
from tessera.spec.protocol import FRAME_OVERHEAD, Kind, Status

from compiler_helpers import check_structure, hazards
from runtime_helpers import error_record, request

SMALL = dict(rows=3, cols=5, act_depth=200, weight_depth=100, param_depth=40, max_payload=128)
TINY = dict(rows=2, cols=3, act_depth=64, weight_depth=16, param_depth=8, max_payload=64)


@pytest.fixture(scope="module")
def digits():
    from tessera.cli.demo import train_digits_mlp
    return train_digits_mlp(0)


def _dtype(bits):
    return np.int8 if bits <= 8 else np.int16


def _random_operands(rng, shape, bits):
    lo, hi = operand_range(bits)
    return rng.integers(lo, hi + 1, shape).astype(_dtype(bits))


def _mlp(rng, sizes, activations, *, bits, weight_bits, mode):
    layers = []
    for k, n, act in zip(sizes, sizes[1:], activations):
        layers.append((rng.normal(0, 1 / np.sqrt(k), (k, n)), rng.normal(0, 0.2, n), act))
    return tessera.quantize(layers, calibration=rng.normal(0, 1, (64, sizes[0])), mode=mode,
                            bits=bits, weight_bits=weight_bits)


def _run(config, qmodel, x, *, raw=True):
    with tessera.connect("emu", config=config) as dev:
        return dev.run(qmodel, x, raw=raw)


# -- packing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [4, 8, 16])
@pytest.mark.parametrize("lanes", [1, 2, 3, 5, 8])
def test_block_packing_is_the_spec_packing(bits, lanes):
    rng = np.random.default_rng(bits * 10 + lanes)
    lo, hi = operand_range(bits)
    values = _random_operands(rng, (9, lanes), bits)
    values[0], values[1] = lo, hi            # the extremes, sign bits set and clear
    data = pack_entries(values, bits)
    assert data == b"".join(pack_operands(row, bits) for row in values)
    np.testing.assert_array_equal(unpack_entries(data, 9, lanes, bits), values)
    size = (lanes * bits + 7) // 8
    for e, row in enumerate(values):
        assert unpack_operands(data[e * size:(e + 1) * size], lanes, bits) == row.tolist()


def test_four_bit_entry_layout():
    """Operand 2j in the low nibble of byte j; an odd final operand leaves a zero high nibble."""
    data = pack_entries(np.array([[1, -2, 7], [-8, 0, -1]], dtype=np.int8), 4)
    assert data == bytes([0xE1, 0x07, 0x08, 0x0F])


def test_unpack_length_checked():
    with pytest.raises(ValueError, match=r"^2 entries of 3 4-bit operands are 4 bytes, not 3$"):
        unpack_entries(b"abc", 2, 3, 4)


# -- models -------------------------------------------------------------------------------------

def test_digits_mlp_at_4_bits(digits):
    clf, x_train, x_test, _, y_test = digits
    qmodel = tessera.quantize(clf, calibration=x_train, bits=4)
    config = AcceleratorConfig(input_bits=4, weight_bits=4)
    assert config.act_entry_bytes == 4 and config.weight_entry_bytes == 4
    x_q = qmodel.quantize_input(x_test)
    y = _run(config, qmodel, x_q)
    np.testing.assert_array_equal(y, qmodel.predict(x_q, raw=True))
    assert y.dtype == np.int8 and -8 <= y.min() and y.max() <= 7
    assert np.mean(np.argmax(y, axis=1) == y_test) >= 0.9
    np.testing.assert_array_equal(_run(config, qmodel, x_test[:50], raw=False),
                                  qmodel.predict(x_test[:50]))


WIDTHS = [(4, 4), (4, 8), (8, 4), (16, 16), (16, 8), (8, 16), (16, 4)]
CASES = [(b, w, mode) for b, w in WIDTHS for mode in ("onnx", "tflite")
         if mode == "onnx" or b + w <= 24]     # tflite needs acc_bits 32


@pytest.mark.parametrize("bits, weight_bits, mode", CASES)
@pytest.mark.parametrize("shape", ["small", "tiny"])
def test_mlp_bit_exact(bits, weight_bits, mode, shape):
    config = AcceleratorConfig(**(SMALL if shape == "small" else TINY), input_bits=bits,
                               weight_bits=weight_bits)
    assert config.acc_bits == (48 if bits + weight_bits > 24 else 32)
    rng = np.random.default_rng(bits * 100 + weight_bits + (mode == "tflite"))
    qmodel = _mlp(rng, [23, 17, 9, 4], ["relu", "relu6", "none"], bits=bits,
                  weight_bits=weight_bits, mode=mode)
    compiled = compile_model(qmodel, config)
    for m in (1, 7, 41):
        x_q = _random_operands(rng, (m, 23), bits)
        expected = qmodel.predict(x_q, raw=True)
        np.testing.assert_array_equal(compiled.reference(x_q), expected)
        np.testing.assert_array_equal(_run(config, qmodel, x_q), expected)
    program = compiled.program(x_q)
    assert hazards(check_structure(program.frames, config, program.stores)) == []


def test_digits_mlp_at_16_bits(digits):
    clf, x_train, x_test, _, y_test = digits
    qmodel = tessera.quantize(clf, calibration=x_train, bits=16)
    config = AcceleratorConfig(input_bits=16, weight_bits=16)
    assert (config.acc_bits, config.requant_modes, config.lut) == (48, ("onnx",), False)
    x_q = qmodel.quantize_input(x_test)
    y = _run(config, qmodel, x_q)
    np.testing.assert_array_equal(y, qmodel.predict(x_q, raw=True))
    assert y.dtype == np.int16 and np.abs(y).max() > 127      # really 16-bit outputs
    assert np.mean(np.argmax(y, axis=1) == y_test) >= 0.95


def test_eight_bit_model_on_48_bit_accumulators():
    rng = np.random.default_rng(4)
    qmodel = _mlp(rng, [12, 9, 4], ["relu", "none"], bits=8, weight_bits=8, mode="onnx")
    config = AcceleratorConfig(**SMALL, acc_bits=48)
    x_q = _random_operands(rng, (17, 12), 8)
    np.testing.assert_array_equal(_run(config, qmodel, x_q), qmodel.predict(x_q, raw=True))
    assert compile_model(qmodel, config).layers[0].acc_bits == 48


def test_narrower_weights_run_on_a_wider_array():
    """A model with 4-bit weights runs exactly on an 8-bit weight array (the default config)."""
    rng = np.random.default_rng(5)
    qmodel = _mlp(rng, [10, 8, 3], ["relu", "none"], bits=8, weight_bits=4, mode="onnx")
    x_q = _random_operands(rng, (11, 10), 8)
    np.testing.assert_array_equal(_run(AcceleratorConfig(**SMALL), qmodel, x_q),
                                  qmodel.predict(x_q, raw=True))


# -- bare GEMMs with extreme operands ------------------------------------------------------------

def _expected_gemm(x_q, w, bias, mult, shift, *, mode, zero_point, lo, hi, bits, acc_bits):
    """Independent oracle: exact integers, the drain's wrap, then numerics.postprocess."""
    acc = x_q.astype(np.int64) @ w.astype(np.int64) + bias.astype(np.int64)
    half = 1 << (acc_bits - 1)
    acc = (acc + half) % (2 * half) - half
    return numerics.postprocess(acc, mult, shift, mode=mode, zero_point=zero_point, lo=lo,
                                hi=hi, bits=bits, acc_bits=acc_bits)


@pytest.mark.parametrize("bits, weight_bits, mode", CASES)
def test_bare_gemm_extremes(bits, weight_bits, mode):
    """Full-scale operands of both signs, K beyond one weight slot (split), M and N not
    multiples of the array, per-channel requant, a non-zero zero point and a narrow clamp."""
    config = AcceleratorConfig(**TINY, input_bits=bits, weight_bits=weight_bits)
    rng = np.random.default_rng(bits + 2 * weight_bits + (mode == "tflite"))
    k, n, m = 37, 7, 9
    w_lo, w_hi = operand_range(weight_bits)
    x_lo, x_hi = operand_range(bits)
    w = np.where(rng.random((k, n)) < 0.5, w_lo, w_hi).astype(_dtype(weight_bits))
    w[:, -1] = _random_operands(rng, k, weight_bits)
    bias = rng.integers(-5000, 5000, n, dtype=np.int32)
    # Dyadic scales (exact ties) that map K * full-scale products onto a few output ranges.
    exponent = weight_bits + rng.integers(0, 4, n)
    scale = (np.float32(2.0) ** -exponent.astype(np.float32)).astype(np.float32)
    mult, shift = numerics.requant_multipliers(np.float32(1.0), scale, np.float32(1.0), mode)
    zero_point, lo, hi = 1, x_lo + 1, x_hi - 1
    compiled = compile_gemm(w, bias, mult, shift, config, mode=mode, zero_point=zero_point,
                            lo=lo, hi=hi)
    assert len(compiled.allocation.layers[0].weights.k_parts) > 1   # K split across GEMMs
    x_q = np.where(w[:, :1].T > 0, x_hi, x_lo).astype(_dtype(bits)).repeat(m, axis=0)
    x_q[1::2] = _random_operands(rng, (m // 2, k), bits)
    x_q[2] = np.where(w[:, 0] > 0, x_lo, x_hi)      # the most negative accumulator of column 0
    with tessera.connect("emu", config=config) as dev:
        for frame in compiled.setup_frames:
            dev.link.request(Kind.EXEC, frame)
        y = dev.execute(compiled.program(x_q))
    expected = _expected_gemm(x_q, w, bias, mult, shift, mode=mode, zero_point=zero_point,
                              lo=lo, hi=hi, bits=bits, acc_bits=config.acc_bits)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(compiled.reference(x_q), expected)
    assert (y == lo).any() and (y == hi).any()     # the clamp is exercised at both ends
    acc = np.abs(x_q.astype(np.int64) @ w.astype(np.int64)).max()
    if config.acc_bits == 48:
        assert acc >= 1 << 31    # beyond int32: a 32-bit datapath would wrap
    if bits + weight_bits >= 24:
        assert acc > 1 << 24     # float32(acc) rounds in mode onnx


@pytest.mark.parametrize("bits, entry_bytes", [(4, 2), (8, 3), (16, 6)])
def test_link_bytes_are_the_packed_entries(bits, entry_bytes):
    """rx/tx byte counters equal the compiler's link cost, with packed entries on the wire."""
    config = AcceleratorConfig(**SMALL, input_bits=bits, weight_bits=bits)
    rng = np.random.default_rng(8)
    qmodel = _mlp(rng, [20, 13, 5], ["relu", "none"], bits=bits, weight_bits=bits, mode="onnx")
    compiled = compile_model(qmodel, config)
    x_q = _random_operands(rng, (10, 20), bits)
    program = compiled.program(x_q)
    with tessera.connect("emu", config=config) as dev:
        for frame in compiled.setup_frames:
            dev.link.request(Kind.EXEC, frame)
        dev.clear_counters()
        dev.execute(program)
        counters = dev.counters()
    link = compiled.link_bytes(10)
    assert counters["rx_bytes"] == link["request"] + FRAME_OVERHEAD     # + the COUNTERS request
    assert counters["tx_bytes"] == link["response"] + FRAME_OVERHEAD    # + the clear's answer
    assert config.act_entry_bytes == entry_bytes                        # 3 rows x bits
    assert program.response_bytes == 4 * 5 * entry_bytes                # 4 row tiles x N=5
    assert compiled.setup_bytes == sum(len(f) + 2 * FRAME_OVERHEAD for f in compiled.setup_frames)


# -- the emulator's ISA at 4 bits -------------------------------------------------------------

@pytest.mark.parametrize("bits", [4, 16])
def test_emulator_loads_stores_and_reads_packed_entries(bits):
    config = AcceleratorConfig(**SMALL, input_bits=bits, weight_bits=bits)
    emu = Emulator(config)
    lo, hi = operand_range(bits)
    entries = np.array([[lo, hi, 3], [1, -1, 0]], dtype=_dtype(bits))
    payload = pack_entries(entries, bits)
    assert len(payload) == 2 * config.act_entry_bytes == 2 * ((3 * bits + 7) // 8)
    frame = isa.Load(Buffer.ACT, 10, 2, payload).encode() + isa.Store(10, 2).encode()
    assert request(emu, Kind.EXEC, frame) == (Status.OK, payload)
    np.testing.assert_array_equal(emu.machine.act[10:12], entries)
    with tessera.connect("emu", config=config) as dev:
        dev.link.request(Kind.EXEC, isa.Load(Buffer.ACT, 3, 2, payload).encode())
        np.testing.assert_array_equal(dev.read(3, 2), entries)


def test_emulator_drops_padding_bits():
    """3 rows x 4 bits = 12 bits of a 2-byte entry: the padding nibble is not stored."""
    emu = Emulator(AcceleratorConfig(**SMALL, input_bits=4, weight_bits=4))
    frame = isa.Load(Buffer.ACT, 0, 1, bytes([0x21, 0xF3])).encode() + isa.Store(0, 1).encode()
    assert request(emu, Kind.EXEC, frame) == (Status.OK, bytes([0x21, 0x03]))
    np.testing.assert_array_equal(emu.machine.act[0], [1, 2, 3])


def test_emulator_reset_post_state_is_the_output_range():
    emu = Emulator(AcceleratorConfig(**SMALL, input_bits=4, weight_bits=4))
    assert (emu.machine.post.lo, emu.machine.post.hi) == (-8, 7)


@pytest.mark.parametrize("field, value", [("zero_point", 8), ("zero_point", -9), ("lo", -9),
                                          ("hi", 8), ("lo", 100), ("hi", -128)])
def test_emulator_refuses_post_outside_the_output_range(field, value):
    emu = Emulator(AcceleratorConfig(**SMALL, input_bits=4, weight_bits=4))
    post = {"zero_point": 0, "lo": -8, "hi": 7, field: value}
    frame = isa.Nop().encode() + isa.Post(**post).encode()
    status, payload = request(emu, Kind.EXEC, frame)
    assert status == Status.BAD_FIELD
    assert error_record(payload) == (16, isa.Opcode.POST)
    assert (emu.machine.post.lo, emu.machine.post.hi) == (-8, 7)   # the post state is kept


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_emulator_accepts_post_at_the_range_ends(bits):
    emu = Emulator(AcceleratorConfig(**SMALL, input_bits=bits, weight_bits=8))
    lo, hi = operand_range(bits)
    assert (emu.machine.post.lo, emu.machine.post.hi) == (lo, hi)      # reset state
    assert request(emu, Kind.EXEC, isa.Post(zero_point=lo, lo=hi, hi=hi).encode()) == \
        (Status.OK, b"")
    assert (emu.machine.post.zero_point, emu.machine.post.lo, emu.machine.post.hi) == \
        (lo, hi, hi)


def test_int8_emulator_refuses_wide_post_values():
    """ISA version 2 encodes s16 values; an 8-bit device refuses those outside int8."""
    emu = Emulator(AcceleratorConfig(**SMALL))
    status, payload = request(emu, Kind.EXEC, isa.Post(zero_point=128).encode())
    assert status == Status.BAD_FIELD and error_record(payload) == (0, isa.Opcode.POST)
    assert request(emu, Kind.EXEC, isa.Post(hi=-128).encode(), seq=1) == (Status.OK, b"")


# -- errors ----------------------------------------------------------------------------------------

def test_model_width_must_match_the_configuration():
    rng = np.random.default_rng(9)
    q4 = _mlp(rng, [6, 4, 2], ["relu", "none"], bits=4, weight_bits=4, mode="onnx")
    with pytest.raises(ValueError, match=(
            r"^Layer 'fc0' has 4-bit activations but the accelerator configuration has "
            r"input_bits=8: quantize the model with tessera\.quantize\(\.\.\., bits=8\), or "
            r"compile for a configuration with input_bits=4 \(config\.with_widths\(4, 4\)\)$")):
        compile_model(q4, AcceleratorConfig())
    q8 = _mlp(rng, [6, 4, 2], ["relu", "none"], bits=4, weight_bits=8, mode="onnx")
    with pytest.raises(ValueError, match=(
            r"^Layer 'fc0' has 8-bit weights but the accelerator configuration has "
            r"weight_bits=4: quantize the model with tessera\.quantize\(\.\.\., weight_bits=4\), "
            r"or compile for a configuration with weight_bits=8$")):
        compile_model(q8, AcceleratorConfig(input_bits=4, weight_bits=4))
    with tessera.connect("emu") as dev:
        with pytest.raises(ValueError, match=r"^Layer 'fc0' has 4-bit activations"):
            dev.run(q4, np.zeros((1, 6), dtype=np.int8), raw=True)


def test_program_input_must_fit_the_width():
    rng = np.random.default_rng(10)
    qmodel = _mlp(rng, [6, 4, 2], ["relu", "none"], bits=4, weight_bits=4, mode="onnx")
    compiled = compile_model(qmodel, AcceleratorConfig(**SMALL, input_bits=4, weight_bits=4))
    x_q = np.zeros((2, 6), dtype=np.int8)
    x_q[1, 3] = 8
    with pytest.raises(ValueError, match=r"^Program input holds 8, outside the 4-bit operand "
                                         r"range \[-8, 7\]$"):
        compiled.program(x_q)


def test_bare_gemm_values_must_fit_the_widths():
    config = AcceleratorConfig(**SMALL, input_bits=4, weight_bits=4)
    w = np.ones((4, 2), dtype=np.int8)
    bias = np.zeros(2, dtype=np.int32)
    mult = np.float32(0.5).view(np.uint32)
    with pytest.raises(ValueError, match=r"^Layer 'gemm': weight holds -9, outside the 4-bit "
                                         r"operand range \[-8, 7\]$"):
        compile_gemm(np.full((4, 2), -9, dtype=np.int8), bias, mult, 0, config)
    for what, kwargs in (("zero_point", {"zero_point": 8}), ("lo", {"lo": -9}),
                         ("hi", {"hi": 100})):
        shown = list(kwargs.values())[0]
        with pytest.raises(ValueError, match=rf"^Layer 'gemm': {what} must be an integer from "
                                             rf"-8 to 7 \(the 4-bit output range\), not "
                                             rf"{shown}$"):
            compile_gemm(w, bias, mult, 0, config, **kwargs)


def test_overflow_proof_at_the_configured_widths():
    """The proof ranges over the configured input width: a bias that leaves room for 4-bit
    inputs overflows with 8-bit ones, and one more unit overflows at 4 bits too."""
    k = 16
    w = np.full((k, 1), -7, dtype=np.int8)
    worst = 8 * 7 * k                    # x = -8 everywhere: sum_k x * w
    mult = np.float32(1e-6).view(np.uint32)
    four = AcceleratorConfig(**SMALL, input_bits=4, weight_bits=4)
    fits = np.array([(1 << 31) - 1 - worst], dtype=np.int32)
    compiled = compile_gemm(w, fits, mult, 0, four)
    assert compiled.layers[0].acc_bound == (1 << 31) - 1
    with pytest.raises(OverflowError, match=(
            rf"^Layer 'gemm' \(K={k}\): the int32 accumulator x @ w \+ bias can reach "
            rf"{(1 << 31)} in magnitude for 4-bit inputs x and 4-bit weights w, which does not "
            rf"fit int32 \(\|acc\| < 2\*\*31\); .* or split the layer into layers of fewer "
            rf"than {k} inputs, or use acc_bits=48 with mode 'onnx'$")):
        compile_gemm(w, fits + 1, mult, 0, four)
    with pytest.raises(OverflowError, match=rf"can reach {(1 << 31) - 1 - worst + 128 * 7 * k} "
                                            rf"in magnitude for 8-bit inputs x and 8-bit"):
        compile_gemm(w, fits, mult, 0, AcceleratorConfig(**SMALL))
