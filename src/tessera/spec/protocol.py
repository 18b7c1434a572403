"""The host-link frame protocol: framing, CRCs, request kinds, status codes and records.

Both directions use the same frame::

    offset  size  field
    0       1     SYNC (0xA5)
    1       1     kind: request kind (host -> device) or status (device -> host)
    2       1     seq: request sequence number, echoed in the response
    3       2     length of the payload, little-endian, at most ``config.max_payload``
    5       1     header CRC-8 (poly 0x07, init 0x00) over bytes 0..4
    6       N     payload
    6+N     2     payload CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), little-endian

The link is stop-and-wait: one request in flight, one response per request. ``EXEC`` is the only
request with side effects; the device remembers the sequence number of the last ``EXEC`` it ran
and answers a repeat of it (a host retry after a lost response) by resending the response
without running the program again. ``HELLO`` forgets that number. See ``docs/protocol.md``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .layout import BitLayout, Field

__all__ = [
    "SYNC", "HEADER_BYTES", "TRAILER_BYTES", "FRAME_OVERHEAD", "Kind", "Status",
    "crc8", "crc16", "Frame", "FrameParser", "encode_frame",
    "ID_MAGIC", "ID_LAYOUT", "COUNTER_NAMES", "READ_LAYOUT", "ERROR_LAYOUT",
    "encode_id", "decode_id", "decode_counters", "encode_counters",
]

SYNC = 0xA5
HEADER_BYTES = 6
TRAILER_BYTES = 2
FRAME_OVERHEAD = HEADER_BYTES + TRAILER_BYTES


class Kind(enum.IntEnum):
    """Request kinds (host -> device)."""

    HELLO = 0x01          # -> ID record; forgets the last EXEC sequence number
    EXEC = 0x02           # payload: whole instructions -> STORE data (if the last is a STORE)
    READ = 0x03           # payload: READ_LAYOUT -> activation entries
    COUNTERS = 0x04       # -> COUNTER_NAMES as u64 little-endian
    CLEAR_COUNTERS = 0x05  # -> empty


class Status(enum.IntEnum):
    """Response status (device -> host)."""

    OK = 0x00
    BAD_CRC = 0x01         # payload CRC mismatch: nothing was executed, resend
    BAD_LENGTH = 0x02      # length above max_payload: frame skipped
    BAD_KIND = 0x03        # unknown request kind
    BAD_OPCODE = 0x10      # unknown opcode; the rest of the frame was not executed
    BAD_ADDRESS = 0x11     # a buffer range outside its depth
    BAD_FIELD = 0x12       # a field out of range (unknown buffer, m_rows > rows, k = 0, mode ...)
    TRUNCATED = 0x13       # instruction or LOAD payload runs past the end of the frame
    STORE_NOT_LAST = 0x14  # STORE must be the last instruction of its frame

    @property
    def is_error(self) -> bool:
        return self != Status.OK


#: Payload of an error response: where in the request it happened.
ERROR_LAYOUT = BitLayout("ErrorRecord", (
    Field("offset", 16),   # byte offset of the failing instruction within the EXEC payload
    Field("opcode", 8),
    Field("_pad", 8),
))

#: Payload of a READ request.
READ_LAYOUT = BitLayout("ReadRequest", (Field("addr", 16), Field("count", 16)))

ID_MAGIC = int.from_bytes(b"TSRA", "little")

#: Payload of the HELLO response.
ID_LAYOUT = BitLayout("IdRecord", (
    Field("magic", 32),
    Field("isa_version", 16),
    Field("config_hash", 64),
    Field("rows", 8),
    Field("cols", 8),
    Field("max_payload", 16),
))

#: Performance counters, in the order of the COUNTERS response (each u64 little-endian).
COUNTER_NAMES = ("cycles", "compute_cycles", "macs", "stall_cycles", "rx_bytes", "tx_bytes")


def _crc8_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


def _crc16_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC8 = _crc8_table()
_CRC16 = _crc16_table()


def crc8(data, crc=0x00) -> int:
    """CRC-8 (poly 0x07, init 0x00, no reflection, no final xor): "123456789" -> 0xF4."""
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def crc16(data, crc=0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): "123456789" -> 0x29B1."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ b) & 0xFF]
    return crc


@dataclass(frozen=True)
class Frame:
    kind: int      # a Kind for requests, a Status for responses
    seq: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return encode_frame(self.kind, self.seq, self.payload)


def encode_frame(kind: int, seq: int, payload: bytes = b"") -> bytes:
    """Return the bytes of one frame."""
    payload = bytes(payload)
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"Sequence number must be in [0, 255], not {seq}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"Frame payload must be at most 65535 bytes, not {len(payload)}")
    header = bytes([SYNC, int(kind) & 0xFF, seq]) + len(payload).to_bytes(2, "little")
    return header + bytes([crc8(header)]) + payload + crc16(payload).to_bytes(2, "little")


class FrameParser:
    """Incremental frame decoder for a byte stream with possible corruption.

    Feed bytes with :meth:`feed`; it returns the frames completed so far. Bytes before a valid
    header (SYNC and a matching header CRC) are skipped and counted in :attr:`skipped_bytes`.
    A frame whose payload CRC fails is returned in :attr:`bad_frames` (its header was valid), so
    the caller can react; it is never returned as a good frame.

    Parameters
    ----------
    max_payload : int
        Headers announcing a longer payload are treated as noise.
    """

    def __init__(self, max_payload=0xFFFF):
        self.max_payload = max_payload
        self._buf = bytearray()
        self.skipped_bytes = 0
        self.bad_frames = []

    def reset(self):
        self._buf.clear()

    def feed(self, data) -> list:
        self._buf += data
        frames = []
        buf = self._buf
        while True:
            start = buf.find(SYNC)
            if start < 0:
                self.skipped_bytes += len(buf)
                buf.clear()
                break
            if start:
                self.skipped_bytes += start
                del buf[:start]
            if len(buf) < HEADER_BYTES:
                break
            length = int.from_bytes(buf[3:5], "little")
            if crc8(buf[:5]) != buf[5] or length > self.max_payload:
                self.skipped_bytes += 1
                del buf[:1]
                continue
            total = HEADER_BYTES + length + TRAILER_BYTES
            if len(buf) < total:
                break
            payload = bytes(buf[HEADER_BYTES:HEADER_BYTES + length])
            crc = int.from_bytes(buf[HEADER_BYTES + length:total], "little")
            frame = Frame(buf[1], buf[2], payload)
            del buf[:total]
            if crc16(payload) == crc:
                frames.append(frame)
            else:
                self.bad_frames.append(frame)
        return frames


def encode_id(config) -> bytes:
    """Return the HELLO response payload the gateware built from ``config`` sends."""
    return ID_LAYOUT.to_bytes(magic=ID_MAGIC, isa_version=config.isa_version,
                              config_hash=config.hash,
                              rows=config.rows, cols=config.cols, max_payload=config.max_payload)


def decode_id(payload: bytes) -> dict:
    """Decode a HELLO response payload; raises ``ValueError`` if it is not a Tessera ID record."""
    if len(payload) != ID_LAYOUT.nbytes:
        raise ValueError(f"ID record is {ID_LAYOUT.nbytes} bytes, got {len(payload)}: "
                         f"this is not a Tessera accelerator (or a different protocol version)")
    record = ID_LAYOUT.from_bytes(payload)
    if record["magic"] != ID_MAGIC:
        raise ValueError(f"ID record magic is {record['magic']:#010x}, expected {ID_MAGIC:#010x}: "
                         f"this is not a Tessera accelerator")
    return record


def encode_counters(values: dict) -> bytes:
    return b"".join(int(values[name]).to_bytes(8, "little") for name in COUNTER_NAMES)


def decode_counters(payload: bytes) -> dict:
    if len(payload) != 8 * len(COUNTER_NAMES):
        raise ValueError(f"Counter record is {8 * len(COUNTER_NAMES)} bytes, got {len(payload)}")
    return {name: int.from_bytes(payload[8 * i:8 * i + 8], "little")
            for i, name in enumerate(COUNTER_NAMES)}
