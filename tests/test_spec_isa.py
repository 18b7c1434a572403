"""ISA encoding: field packing, round trips, program splitting, errors."""

import random

import pytest

from tessera.spec import AcceleratorConfig
from tessera.spec.isa import (INSN_BYTES, LAYOUTS, PARAM_LAYOUT, Buffer, Gemm, Load, Mode, Nop,
                              Opcode, Post, ProgramError, Store, Sync, decode, decode_program,
                              encode)


def test_every_layout_is_128_bits_with_opcode_first():
    for opcode, layout in LAYOUTS.items():
        assert layout.width == 128 and layout.nbytes == INSN_BYTES
        assert layout.fields[0].name == "opcode" and layout.offsets["opcode"] == 0
    assert PARAM_LAYOUT.nbytes == 9


def test_gemm_bit_positions():
    # Fields are packed LSB first in declaration order (Amaranth StructLayout rule).
    word = int.from_bytes(encode(Gemm(a_addr=0x1234, w_addr=0x5678, k=0x9ABC, out_addr=1,
                                      param_addr=2, m_rows=3, n_cols=4, clear=True,
                                      drain=False)), "little")
    assert word & 0xF == Opcode.GEMM
    assert (word >> 4) & 1 == 1 and (word >> 5) & 1 == 0
    assert (word >> 8) & 0xFFFF == 0x1234
    assert (word >> 24) & 0xFFFF == 0x5678
    assert (word >> 40) & 0xFFFF == 0x9ABC
    assert (word >> 88) & 0xFF == 3 and (word >> 96) & 0xFF == 4
    assert word >> 104 == 0


def test_post_bit_positions():
    """ISA version 2: zero_point, lo, hi are s16 (16-bit outputs), after mode, lut and padding."""
    word = int.from_bytes(encode(Post(mode=Mode.TFLITE, lut=True, zero_point=-2, lo=-32768,
                                      hi=0x1234)), "little")
    assert word & 0xF == Opcode.POST
    assert (word >> 4) & 1 == 1 and (word >> 5) & 1 == 1 and (word >> 6) & 3 == 0
    assert (word >> 8) & 0xFFFF == 0xFFFE
    assert (word >> 24) & 0xFFFF == 0x8000
    assert (word >> 40) & 0xFFFF == 0x1234
    assert word >> 56 == 0


def test_random_round_trips():
    rng = random.Random(1)
    for _ in range(500):
        insn = rng.choice([
            lambda: Gemm(a_addr=rng.randrange(1 << 16), w_addr=rng.randrange(1 << 16),
                         k=rng.randrange(1 << 16), out_addr=rng.randrange(1 << 16),
                         param_addr=rng.randrange(1 << 16), m_rows=rng.randrange(256),
                         n_cols=rng.randrange(256), clear=rng.random() < .5,
                         drain=rng.random() < .5),
            lambda: Post(mode=rng.choice(list(Mode)), lut=rng.random() < .5,
                         zero_point=rng.randrange(-1 << 15, 1 << 15),
                         lo=rng.randrange(-1 << 15, 1 << 15), hi=rng.randrange(-1 << 15, 1 << 15)),
            lambda: Store(addr=rng.randrange(1 << 16), count=rng.randrange(1 << 16)),
            lambda: Load(Buffer(rng.randrange(4)), rng.randrange(1 << 16), rng.randrange(1 << 16)),
            lambda: Sync(), lambda: Nop(),
        ])()
        assert decode(encode(insn)) == insn


def test_out_of_range_field_is_refused():
    with pytest.raises(ValueError, match=r"Gemm.k must be in \[0, 65535\], not 65536"):
        encode(Gemm(a_addr=0, w_addr=0, k=65536))
    with pytest.raises(ValueError, match=r"Post.zero_point must be in \[-32768, 32767\], "
                                         r"not 32768"):
        encode(Post(zero_point=32768))


def test_decode_program_attaches_payloads_and_reports_truncation():
    cfg = AcceleratorConfig(rows=2, cols=3)
    prog = (encode(Load(Buffer.ACT, 0, 2, bytes([1, 2, 3, 4]))) +
            encode(Load(Buffer.WGT, 5, 1, bytes([7, 8, 9]))) + encode(Sync()))
    insns = decode_program(prog, cfg)
    assert insns[0] == Load(Buffer.ACT, 0, 2, bytes([1, 2, 3, 4]))
    assert insns[1].payload == bytes([7, 8, 9]) and insns[2] == Sync()
    with pytest.raises(ProgramError, match="carries 4 payload bytes but only 3 follow"):
        decode_program(prog[:INSN_BYTES + 3], cfg)
    with pytest.raises(ProgramError, match="Truncated instruction at byte 0: 5 of 16 bytes"):
        decode_program(prog[:5], cfg)
    with pytest.raises(ProgramError, match="Unknown opcode 15"):
        decode(bytes([0x0F]) + bytes(15))
