"""hw/decoder.py and hw/executor.py: the pipelined instruction decode (checks spread over the last,
padding bytes) and the registered request checks against the emulator, and the constant multiplier."""

import pytest
from amaranth.hdl import Const, Module, Signal
from amaranth.sim import Simulator

from tessera.hw.decoder import DECODE_STEPS, HEAD_BYTES, times_const
from tessera.spec import isa
from tessera.spec.isa import Buffer, Gemm, Load, Nop, Store, Sync
from tessera.spec.protocol import Kind, Status, encode_frame

from hw_exec_helpers import CONFIG, exact_counters, parse, run_emulator, run_rtl

CFG = CONFIG.replace(cols=3, act_depth=64, max_payload=96)


def _enc(*insns):
    return b"".join(isa.encode(i) for i in insns)


def _poke(insn, index, value=0x80):
    word = bytearray(isa.encode(insn))
    word[index] |= value
    return bytes(word)


def _status(response):
    frame = parse(response, CFG)
    return Status(frame.kind), int.from_bytes(frame.payload[:2], "little"), frame.payload[2]


CASES = {
    # a set bit in each byte the pipeline reads in a different step, and the last head byte
    "last_head_byte": (_poke(Load(Buffer.ACT, 0, 1, bytes(2)), HEAD_BYTES - 1) + bytes(2),
                       (Status.BAD_FIELD, 0, 1)),
    **{f"tail_byte_{i}": (_poke(Gemm(0, 0, 1), HEAD_BYTES + i), (Status.BAD_FIELD, 0, 2))
       for i in range(DECODE_STEPS)},
    # the same with a bit in the low nibble (the decoder flags each nibble of a tail byte)
    **{f"tail_byte_{i}_low": (_poke(Gemm(0, 0, 1), HEAD_BYTES + i, 0x01),
                              (Status.BAD_FIELD, 0, 2))
       for i in range(DECODE_STEPS)},
    # padding outranks a range error; a range error outranks a late payload
    "pad_before_range": (_poke(Store(63, 2), isa.INSN_BYTES - 1), (Status.BAD_FIELD, 0, 4)),
    "range_before_late": (_enc(Load(Buffer.PARAM, 7, 2)), (Status.BAD_ADDRESS, 0, 1)),
    "opcode_before_pad": (_poke(Sync(), 0, 0x0E), (Status.BAD_OPCODE, 0, 15)),
    # the version 3 opcodes are unknown to a configuration without cnn
    **{f"v3_opcode_{op}": (_enc(Nop()) + bytes([op]) + bytes(15), (Status.BAD_OPCODE, 16, op))
       for op in (6, 7, 8)},
    # LOAD payloads that end exactly at / one byte past the end of the frame (3 bytes/entry)
    "payload_fits": (_enc(Sync(), Load(Buffer.WGT, 2, 3, bytes(9))), (Status.OK, 0, 0)),
    "payload_late": (_enc(Sync(), Load(Buffer.WGT, 2, 3, bytes(9)))[:-1],
                     (Status.TRUNCATED, 16, 1)),
    "param_late": (_enc(Load(Buffer.PARAM, 0, 2, bytes(18)))[:-9], (Status.TRUNCATED, 0, 1)),
    # STORE of exactly max_payload bytes (48 entries x 2) is allowed, one more entry is not
    "store_max": (_enc(Nop(), Store(0, 48)), (Status.OK, 0, 0)),
    "store_too_big": (_enc(Store(0, 49)), (Status.STORE_NOT_LAST, 0, 4)),
    "store_not_last": (_enc(Store(0, 1), Nop()), (Status.STORE_NOT_LAST, 0, 4)),
}


def test_pipeline_boundaries_equal_the_emulator():
    requests = [encode_frame(Kind.CLEAR_COUNTERS, 250)]
    requests += [encode_frame(Kind.EXEC, i, body) for i, (body, _) in enumerate(CASES.values())]
    requests.append(encode_frame(Kind.COUNTERS, 251))
    rtl = run_rtl(requests, CFG)
    emu = run_emulator(requests, CFG)
    for name, got, want, (_, expected) in zip(CASES, rtl[1:], emu[1:], CASES.values()):
        assert got == want, name
        if expected[0] != Status.OK:
            assert _status(got) == expected, (name, _status(got))
        else:
            assert parse(got, CFG).kind == Status.OK, name
    # the executor's timing (16 cycles per instruction, 1 per payload byte) is the model's
    assert exact_counters(parse(rtl[-1], CFG).payload) == \
        exact_counters(parse(emu[-1], CFG).payload)


@pytest.mark.parametrize("factor", [0, 1, 2, 3, 6, 8, 9, 16, 255])
def test_times_const_is_the_product(factor):
    m = Module()
    value = Signal(16)
    product = Signal(32)
    m.d.comb += product.eq(times_const(value, factor))
    sim = Simulator(m)
    seen = []

    async def bench(ctx):
        for v in (0, 1, 7, 0x1234, 0xFFFF):
            ctx.set(value, v)
            seen.append((v, ctx.get(product)))

    sim.add_testbench(bench)
    sim.run()
    assert seen == [(v, v * factor) for v in (0, 1, 7, 0x1234, 0xFFFF)]


def test_times_const_refuses_a_negative_factor():
    with pytest.raises(ValueError, match="non-negative factor, not -2"):
        times_const(Const(3, 4), -2)


def test_read_ranges_and_request_classes_equal_the_emulator():
    # READ checks count > act_depth - addr with the room registered while the request is read:
    # the last entry, one past it, an address above the buffer and the largest address.
    def read(seq, addr, count):
        return encode_frame(Kind.READ, seq, addr.to_bytes(2, "little") +
                            count.to_bytes(2, "little"))
    depth = CFG.act_depth
    requests = [read(1, depth - 2, 2), read(2, depth - 2, 3), read(3, depth + 5, 1),
                read(4, 0xFFFF, 1), read(5, 0, 48), read(6, 0, 49),
                encode_frame(Kind.EXEC, 7, _enc(Nop())), encode_frame(Kind.EXEC, 7, b""),
                encode_frame(Kind.HELLO, 8), encode_frame(Kind.EXEC, 7, b""),
                encode_frame(Kind.COUNTERS, 9, b"\x00"), encode_frame(0x06, 10)]
    rtl = run_rtl(requests, CFG)
    assert rtl == run_emulator(requests, CFG)
    kinds = [parse(r, CFG).kind for r in rtl]
    assert kinds == [Status.OK, Status.BAD_ADDRESS, Status.BAD_ADDRESS, Status.BAD_ADDRESS,
                     Status.OK, Status.BAD_FIELD, Status.OK, Status.OK, Status.OK, Status.OK,
                     Status.BAD_LENGTH, Status.BAD_KIND]
