"""hw/executor.py + hw/top.py: request handling against the emulator, byte for byte."""

from tessera.spec.protocol import (ERROR_LAYOUT, Kind, Status, crc8, decode_counters, decode_id,
                                   encode_frame, encode_id)

from hw_exec_helpers import CONFIG, exact_counters, parse, run_emulator, run_rtl


def test_requests_without_compute_equal_the_emulator():
    read = (3).to_bytes(2, "little") + (4).to_bytes(2, "little")
    header = bytes([0xA5, Kind.EXEC, 40]) + (CONFIG.max_payload + 1).to_bytes(2, "little")
    oversized = header + bytes([crc8(header)]) + bytes(CONFIG.max_payload + 3)
    corrupted = bytearray(encode_frame(Kind.READ, 41, read))
    corrupted[-3] ^= 0x10
    requests = [
        encode_frame(Kind.HELLO, 1),
        encode_frame(Kind.READ, 2, read),
        encode_frame(Kind.COUNTERS, 3),
        encode_frame(0x07, 4),                                    # unknown kind
        encode_frame(Kind.HELLO, 5, b"\x00"),                     # payload where none belongs
        encode_frame(Kind.READ, 6, read[:3]),                     # READ needs 4 bytes
        encode_frame(Kind.READ, 7, (0).to_bytes(4, "little")),    # count 0
        encode_frame(Kind.READ, 8, (30).to_bytes(2, "little") + (3).to_bytes(2, "little")),
        encode_frame(Kind.READ, 9, (0).to_bytes(2, "little") + (33).to_bytes(2, "little")),
        oversized,
        bytes(corrupted),
        b"\x00\xA5\x13" + encode_frame(Kind.CLEAR_COUNTERS, 10),  # noise first
        encode_frame(Kind.COUNTERS, 11),
    ]
    rtl = run_rtl(requests)
    emu = run_emulator(requests)
    for request, got, want in zip(requests, rtl, emu):
        if parse(want).kind == Status.OK and parse(want).seq in (3, 11):
            # COUNTERS: `cycles` depends on the executor's exact timing; the rest is exact.
            assert parse(got).kind == Status.OK
            assert exact_counters(parse(got).payload) == exact_counters(parse(want).payload)
        else:
            assert got == want, (request.hex(), parse(got), parse(want))
    assert decode_id(parse(rtl[0]).payload)["config_hash"] == CONFIG.hash
    assert parse(rtl[0]).payload == encode_id(CONFIG)
    statuses = [parse(r).kind for r in rtl]
    assert statuses == [Status.OK, Status.OK, Status.OK, Status.BAD_KIND, Status.BAD_LENGTH,
                        Status.BAD_LENGTH, Status.BAD_FIELD, Status.BAD_ADDRESS,
                        Status.BAD_FIELD, Status.BAD_LENGTH, Status.BAD_CRC, Status.OK, Status.OK]
    assert parse(rtl[3]).payload == ERROR_LAYOUT.to_bytes()
    # After CLEAR_COUNTERS: only the clear's response and the COUNTERS request were counted.
    after_clear = decode_counters(parse(rtl[-1]).payload)
    assert after_clear["rx_bytes"] == len(requests[-1])
    assert after_clear["tx_bytes"] == len(rtl[-2])
    assert after_clear["macs"] == 0 and after_clear["cycles"] > 0
