"""Protocol conformance of the emulator: every request kind and status, dedup, resync."""

import numpy as np
import pytest

from runtime_helpers import error_record, exchange, exec_ok, load, request
from tessera.runtime import Emulator
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import Buffer
from tessera.spec.protocol import (COUNTER_NAMES, FRAME_OVERHEAD, READ_LAYOUT, SYNC, FrameParser,
                                   Kind, Status, decode_counters, decode_id, encode_frame,
                                   encode_id)
from tessera.spec.timing import (HELLO_CYCLES, REQUEST_HEAD_CYCLES,
                                 RESPONSE_TAIL_CYCLES)

CFG = AcceleratorConfig(rows=4, cols=4, act_depth=64, weight_depth=64, param_depth=16,
                        max_payload=128)


@pytest.fixture
def emu():
    return Emulator(CFG)


def _act_program(addr, rows_of_bytes):
    data = np.asarray(rows_of_bytes, dtype=np.int8)
    return load(Buffer.ACT, addr, data, CFG.rows)


def test_hello_returns_id_record(emu):
    status, payload = request(emu, Kind.HELLO, seq=7)
    assert status == Status.OK
    assert payload == encode_id(CFG)
    ident = decode_id(payload)
    assert (ident["config_hash"], ident["rows"], ident["cols"], ident["max_payload"]) == \
        (CFG.hash, 4, 4, 128)
    assert ident["isa_version"] == isa.ISA_VERSION


def test_exec_without_store_answers_empty_and_read_returns_entries(emu):
    data = np.arange(-8, 8, dtype=np.int8).reshape(4, 4)
    assert exec_ok(emu, _act_program(10, data), seq=1) == b""
    status, payload = request(emu, Kind.READ, READ_LAYOUT.to_bytes(addr=10, count=4), seq=2)
    assert status == Status.OK
    np.testing.assert_array_equal(np.frombuffer(payload, np.int8).reshape(4, 4), data)


def test_empty_exec_is_a_no_op(emu):
    assert exec_ok(emu, b"") == b""
    assert emu.stats["executed"] == 1


def test_store_answers_with_activation_entries(emu):
    data = np.arange(16, dtype=np.int8).reshape(4, 4)
    program = _act_program(3, data) + isa.Store(4, 2).encode()
    assert exec_ok(emu, program) == data[1:3].tobytes()


def test_counters_and_clear(emu):
    status, payload = request(emu, Kind.COUNTERS, seq=3)
    assert status == Status.OK
    first = decode_counters(payload)
    assert set(first) == set(COUNTER_NAMES)
    # Only the COUNTERS request itself has been received: 8 bytes of frame overhead, then the
    # executor's IDLE and DISPATCH states copy the counters (spec.timing.REQUEST_HEAD_CYCLES).
    assert first["rx_bytes"] == FRAME_OVERHEAD and first["tx_bytes"] == 0
    assert first["cycles"] == FRAME_OVERHEAD + REQUEST_HEAD_CYCLES
    status, payload = request(emu, Kind.CLEAR_COUNTERS, seq=4)
    assert (status, payload) == (Status.OK, b"")
    after = decode_counters(request(emu, Kind.COUNTERS, seq=5)[1])
    # Since the clear: the empty CLEAR response (8 bytes out), the executor's cycles after it and
    # before this request's snapshot, and this request (8 bytes in).
    assert after == {"cycles": 16 + RESPONSE_TAIL_CYCLES + REQUEST_HEAD_CYCLES,
                     "compute_cycles": 0, "macs": 0, "stall_cycles": 0,
                     "rx_bytes": 8, "tx_bytes": 8}


def test_bad_kind_has_zero_record(emu):
    status, payload = request(emu, 0x7E, b"xyz", seq=9)
    assert status == Status.BAD_KIND
    assert error_record(payload) == (0, 0)


@pytest.mark.parametrize("kind, payload", [
    (Kind.HELLO, b"\x00"), (Kind.COUNTERS, b"ab"), (Kind.CLEAR_COUNTERS, b"a"),
    (Kind.READ, b"\x00\x00\x01"), (Kind.READ, b"\x00" * 5),
])
def test_wrong_payload_length_for_kind_is_bad_length(emu, kind, payload):
    status, record = request(emu, kind, payload, seq=2)
    assert status == Status.BAD_LENGTH
    assert error_record(record) == (0, 0)


@pytest.mark.parametrize("addr, count, status", [
    (0, 0, Status.BAD_FIELD),            # nothing to read
    (0, 33, Status.BAD_FIELD),           # 33 x 4 bytes > max_payload 128
    (60, 5, Status.BAD_ADDRESS),         # beyond act_depth 64
    (64, 1, Status.BAD_ADDRESS),
])
def test_read_errors(emu, addr, count, status):
    got, payload = request(emu, Kind.READ, READ_LAYOUT.to_bytes(addr=addr, count=count))
    assert got == status
    assert error_record(payload) == (0, 0)


def test_read_of_whole_max_payload_is_allowed(emu):
    status, payload = request(emu, Kind.READ, READ_LAYOUT.to_bytes(addr=32, count=32))
    assert status == Status.OK and len(payload) == 128


def test_bad_crc_executes_nothing_and_echoes_seq(emu):
    program = _act_program(0, np.ones((1, 4)))
    frame = bytearray(encode_frame(Kind.EXEC, 5, program))
    frame[10] ^= 0x40
    emu.feed(bytes(frame))
    (response,) = FrameParser().feed(emu.read(1000))
    assert (response.kind, response.seq) == (Status.BAD_CRC, 5)
    assert error_record(response.payload) == (0, 0)
    assert not emu.machine.act.any()
    assert emu.stats["executed"] == 0


def test_bad_length_after_skipping_the_frame(emu):
    # A header announcing 200 > 128 bytes, then the 200 + 2 bytes; the device skips them (they
    # hold a valid-looking frame that must NOT be executed) and answers BAD_LENGTH.
    inner = encode_frame(Kind.EXEC, 1, _act_program(0, np.ones((1, 4))))
    header = bytes([SYNC, Kind.EXEC, 6]) + (200).to_bytes(2, "little")
    from tessera.spec.protocol import crc8
    body = inner + bytes(202 - len(inner))
    emu.feed(header + bytes([crc8(header)]) + body[:100])
    assert emu.pending == 0       # still skipping
    emu.feed(body[100:])
    (response,) = FrameParser().feed(emu.read(1000))
    assert (response.kind, response.seq) == (Status.BAD_LENGTH, 6)
    assert not emu.machine.act.any()
    # The link is in sync afterwards.
    assert request(emu, Kind.HELLO, seq=8)[0] == Status.OK


def test_resync_after_garbage(emu):
    garbage = bytes([0x00, SYNC, 0x02, SYNC, SYNC, 0x13, 0x37, 0xFF, SYNC, 1, 2, 3, 4, 99])
    emu.feed(garbage)
    assert emu.pending == 0
    frames = exchange(emu, Kind.HELLO, seq=3)
    assert [(f.kind, f.seq) for f in frames] == [(Status.OK, 3)]
    assert emu.stats["skipped_bytes"] == len(garbage)


def test_two_frames_in_one_write_get_two_responses(emu):
    emu.feed(encode_frame(Kind.HELLO, 1) + encode_frame(Kind.COUNTERS, 2))
    frames = FrameParser().feed(emu.read(1000))
    assert [(f.kind, f.seq) for f in frames] == [(Status.OK, 1), (Status.OK, 2)]


def test_partial_frame_dropped_after_rx_timeout(emu):
    frame = encode_frame(Kind.HELLO, 4)
    emu.feed(frame[:7])
    emu.rx_timeout()
    assert emu.stats["rx_timeouts"] == 1
    # Without the timeout, the rest of this frame would complete the partial one.
    assert request(emu, Kind.HELLO, seq=5)[0] == Status.OK
    counters = decode_counters(request(emu, Kind.COUNTERS, seq=6)[1])
    assert counters["cycles"] >= CFG.rx_timeout_cycles


def test_receiving_and_last_exec_seq_show_the_link_state(emu):
    assert not emu.receiving and emu.last_exec_seq is None
    emu.feed(encode_frame(Kind.HELLO, 4)[:7])                # part of a frame held
    assert emu.receiving
    emu.rx_timeout()
    assert not emu.receiving
    from tessera.spec.protocol import crc8
    header = bytes([SYNC, Kind.EXEC, 6]) + (200).to_bytes(2, "little")
    emu.feed(header + bytes([crc8(header)]) + bytes(202))    # an oversized frame, all skipped
    assert not emu.receiving and emu.read(1000)
    emu.feed(header + bytes([crc8(header)]) + bytes(10))     # still skipping 192 bytes
    assert emu.receiving
    emu.rx_timeout()
    exec_ok(emu, b"", seq=9)
    assert emu.last_exec_seq == 9 and not emu.receiving
    assert request(emu, Kind.HELLO, seq=10)[0] == Status.OK  # HELLO clears the dedup memory
    assert emu.last_exec_seq is None


def test_repeated_exec_seq_is_not_executed_again(emu):
    # A GEMM with clear=0 would double the accumulator if it ran twice.
    data = np.ones((4, 4), dtype=np.int8)
    exec_ok(emu, _act_program(0, data), seq=1)
    program = isa.Store(0, 1).encode()
    first = exec_ok(emu, program, seq=2)
    # The region changes behind the device's back (a READ does not touch dedup memory) ...
    emu.machine.act[0] = 5
    assert request(emu, Kind.READ, READ_LAYOUT.to_bytes(addr=0, count=1), seq=3)[0] == Status.OK
    # ... and a repeat of seq 2 is answered by re-reading the stored region, not re-executing.
    again = exec_ok(emu, program, seq=2)
    assert first == bytes(4 * [1]) and again == bytes(4 * [5])
    assert emu.stats["resent"] == 1 and emu.stats["executed"] == 2


def test_repeated_exec_seq_resends_the_error(emu):
    bad = isa.Sync().encode() + bytes([0x0F]) + bytes(15)
    for _ in range(2):
        status, payload = request(emu, Kind.EXEC, bad, seq=4)
        assert status == Status.BAD_OPCODE
        assert error_record(payload) == (16, 15)
    assert emu.stats["executed"] == 1 and emu.stats["resent"] == 1


def test_repeated_exec_is_not_run_twice(emu):
    a = np.ones((2, 4), dtype=np.int8)
    program = _act_program(0, a) + load(Buffer.WGT, 0, np.ones((2, 4), np.int8), 4) + \
        isa.Gemm(0, 0, 2, clear=False, drain=False, m_rows=4, n_cols=4).encode()
    exec_ok(emu, program, seq=10)
    exec_ok(emu, program, seq=10)
    np.testing.assert_array_equal(emu.machine.acc, np.full((4, 4), 2))
    exec_ok(emu, program, seq=11)
    np.testing.assert_array_equal(emu.machine.acc, np.full((4, 4), 4))


def test_hello_clears_dedup_memory(emu):
    program = isa.Gemm(0, 0, 1, clear=False, drain=False, m_rows=1, n_cols=1).encode()
    emu.machine.act[0] = 1
    emu.machine.wgt[0] = 1
    exec_ok(emu, program, seq=3)
    assert request(emu, Kind.HELLO, seq=4)[0] == Status.OK
    exec_ok(emu, program, seq=3)
    assert emu.stats["executed"] == 2 and emu.stats["resent"] == 0
    np.testing.assert_array_equal(emu.machine.acc, np.full((4, 4), 2))


def test_bad_crc_does_not_clear_dedup_memory(emu):
    program = isa.Gemm(0, 0, 1, clear=False, drain=False).encode()
    exec_ok(emu, program, seq=3)
    frame = bytearray(encode_frame(Kind.EXEC, 3, program))
    frame[-1] ^= 1
    emu.feed(bytes(frame))
    assert FrameParser().feed(emu.read(100))[0].kind == Status.BAD_CRC
    exec_ok(emu, program, seq=3)
    assert emu.stats["executed"] == 1


def test_rx_and_tx_byte_counters_count_every_byte(emu):
    emu.feed(b"\x00\x01\x02")
    request(emu, Kind.HELLO, seq=1)
    counters = decode_counters(request(emu, Kind.COUNTERS, seq=2)[1])
    hello_response = FRAME_OVERHEAD + len(encode_id(CFG))
    assert counters["rx_bytes"] == 3 + 2 * FRAME_OVERHEAD
    assert counters["tx_bytes"] == hello_response
    # One cycle per byte each way, plus the executor's states around the HELLO and before the
    # COUNTERS snapshot (spec.timing).
    assert counters["cycles"] == counters["rx_bytes"] + counters["tx_bytes"] + \
        2 * REQUEST_HEAD_CYCLES + HELLO_CYCLES + RESPONSE_TAIL_CYCLES


def test_counters_wrap_at_counter_bits():
    emu = Emulator(CFG.replace(counter_bits=16))
    hello = encode_frame(Kind.HELLO, 0)
    for _ in range(2000):
        emu.feed(hello)
    emu.read(1 << 20)
    counters = decode_counters(request(emu, Kind.COUNTERS, seq=1)[1])
    per_hello = (2 * FRAME_OVERHEAD + len(encode_id(CFG)) + REQUEST_HEAD_CYCLES + HELLO_CYCLES +
                 RESPONSE_TAIL_CYCLES)
    total = 2000 * per_hello + FRAME_OVERHEAD + REQUEST_HEAD_CYCLES
    assert total > 1 << 16
    assert counters["cycles"] == total % (1 << 16)
