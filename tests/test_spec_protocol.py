"""Host-link framing: CRC check values, frame encoding, resynchronising parser."""

import random

import pytest

from tessera.spec import AcceleratorConfig
from tessera.spec.protocol import (COUNTER_NAMES, FrameParser, Kind, crc8, crc16, decode_counters,
                                   decode_id, encode_counters, encode_frame, encode_id, Frame)


def test_crc_check_values():
    # The published check values of CRC-8 (poly 0x07) and CRC-16/CCITT-FALSE.
    assert crc8(b"123456789") == 0xF4
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_frame_layout():
    f = encode_frame(Kind.EXEC, 7, b"\x01\x02\x03")
    assert f[0] == 0xA5 and f[1] == Kind.EXEC and f[2] == 7
    assert f[3:5] == (3).to_bytes(2, "little") and f[5] == crc8(f[:5])
    assert f[6:9] == b"\x01\x02\x03" and f[9:] == crc16(b"\x01\x02\x03").to_bytes(2, "little")


def test_parser_resynchronises_through_noise_and_splits():
    rng = random.Random(0)
    frames = [Frame(Kind.EXEC, i, bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
              for i in range(20)]
    stream = b""
    for f in frames:
        # Noise, including SYNC bytes, between frames.
        stream += bytes([0xA5, 0x00, 0x13]) + f.encode()
    parser, got = FrameParser(max_payload=64), []
    pos = 0
    while pos < len(stream):
        n = rng.randrange(1, 17)
        got += parser.feed(stream[pos:pos + n])
        pos += n
    assert got == frames
    assert parser.skipped_bytes == 3 * len(frames)


def test_parser_reports_payload_corruption_separately():
    good = encode_frame(Kind.READ, 1, b"abcd")
    bad = bytearray(good)
    bad[7] ^= 0x40
    parser = FrameParser()
    assert parser.feed(bytes(bad) + good) == [Frame(Kind.READ, 1, b"abcd")]
    assert parser.bad_frames == [Frame(Kind.READ, 1, b'a"cd')]


def test_id_and_counter_records():
    cfg = AcceleratorConfig(rows=2, cols=4)
    rec = decode_id(encode_id(cfg))
    assert rec["config_hash"] == cfg.hash and (rec["rows"], rec["cols"]) == (2, 4)
    with pytest.raises(ValueError, match="this is not a Tessera accelerator"):
        decode_id(b"XXXX" + encode_id(cfg)[4:])
    values = {name: (i + 1) << 40 for i, name in enumerate(COUNTER_NAMES)}
    assert decode_counters(encode_counters(values)) == values
