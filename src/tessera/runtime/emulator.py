"""The bit-exact device model: speaks the host-link byte protocol exactly as the gateware does.

:class:`Emulator` consumes the byte stream a host sends (``docs/protocol.md``): it hunts for
frames, checks both CRCs, skips oversized frames, answers every request kind, deduplicates a
repeated ``EXEC``, executes programs on a :class:`~tessera.runtime.machine.Machine` and counts
cycles with a :class:`~tessera.runtime.cycles.CycleModel`. It knows nothing about Python-side
callers: :class:`~tessera.runtime.transport.EmulatorTransport` connects it to the host driver.

Protocol details the gateware shares with it:

- Every error response carries a 4-byte ``ErrorRecord``; it is all zero except for execution
  errors of an ``EXEC`` (offset and opcode of the failing instruction).
- ``HELLO``, ``COUNTERS`` and ``CLEAR_COUNTERS`` take an empty payload and ``READ`` exactly 4
  bytes; any other length is ``BAD_LENGTH``. A ``READ`` of 0 entries or of more than
  ``max_payload`` bytes is ``BAD_FIELD``; beyond the buffer, ``BAD_ADDRESS``.
- The response to an ``EXEC`` is sent once the device is idle (see :mod:`.cycles`).
- The device remembers the ``seq`` of the last ``EXEC`` it answered, error or not, and answers a
  repeat with the same status (re-reading the ``STORE`` region) without executing it again.
- The ``COUNTERS`` response reports the counters once its request has been received; the bytes
  of that response count towards the next report. ``CLEAR_COUNTERS`` clears before answering.
"""

from __future__ import annotations

from tessera.spec import AcceleratorConfig, timing
from tessera.spec.protocol import (ERROR_LAYOUT, HEADER_BYTES, READ_LAYOUT, SYNC, TRAILER_BYTES,
                                   Kind, Status, crc8, crc16, encode_counters, encode_frame,
                                   encode_id)

from .cycles import CycleModel
from .machine import ExecResult, Machine

__all__ = ["Emulator"]

_NO_PAYLOAD_KINDS = (Kind.HELLO, Kind.COUNTERS, Kind.CLEAR_COUNTERS)
_KINDS = frozenset(int(k) for k in Kind)


class Emulator:
    """A Tessera accelerator in NumPy, driven through its byte protocol.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig, optional
        The configuration to model (default ``AcceleratorConfig()``).

    Attributes
    ----------
    machine : Machine
        Buffers and accumulators (tests may inspect them).
    cycles : CycleModel
        The performance counters.
    stats : dict
        Link events seen so far: ``frames``, ``bad_crc``, ``bad_length``, ``bad_kind``,
        ``skipped_bytes``, ``rx_timeouts``, ``resent`` (deduplicated EXECs), ``executed``.
    """

    def __init__(self, config=None):
        self.config = config if config is not None else AcceleratorConfig()
        self.machine = Machine(self.config)
        self.cycles = CycleModel(self.config.counter_bits, self.config.requant_cycles,
                                 self.config.drain_lanes)
        self.stats = dict.fromkeys(("frames", "bad_crc", "bad_length", "bad_kind",
                                    "skipped_bytes", "rx_timeouts", "resent", "executed"), 0)
        self._rx = bytearray()
        self._tx = bytearray()
        self._skip = 0              # bytes of an oversized frame still to be skipped
        self._skip_seq = 0
        self._last_exec = None      # (seq, ExecResult) of the last EXEC answered

    # -- byte interface ----------------------------------------------------------------------

    def feed(self, data):
        """Receive bytes from the host and process every request they complete."""
        self._rx += data
        self._process()

    @property
    def pending(self) -> int:
        """Number of response bytes waiting to be read."""
        return len(self._tx)

    def read(self, max_bytes: int) -> bytes:
        """Return (and remove) up to ``max_bytes`` response bytes."""
        out = bytes(self._tx[:max_bytes])
        del self._tx[:max_bytes]
        return out

    @property
    def receiving(self) -> bool:
        """Whether part of a frame is held or being skipped (:meth:`rx_timeout` would drop it)."""
        return bool(self._rx or self._skip)

    @property
    def last_exec_seq(self):
        """The ``seq`` of the last ``EXEC`` answered, repeated without running; None if none."""
        return self._last_exec[0] if self._last_exec is not None else None

    def rx_timeout(self):
        """Let the receive timeout expire: a partially received frame is dropped."""
        if self.receiving:
            self.stats["rx_timeouts"] += 1
            self.stats["skipped_bytes"] += len(self._rx)
            self._consume(len(self._rx))
            self._skip = 0
            self.cycles.wait(self.config.rx_timeout_cycles)

    # -- receiver --------------------------------------------------------------------------

    def _consume(self, n):
        del self._rx[:n]
        self.cycles.receive(n)

    def _process(self):
        rx = self._rx
        while rx:
            if self._skip:
                n = min(self._skip, len(rx))
                self._consume(n)
                self._skip -= n
                if self._skip:
                    return
                self.stats["bad_length"] += 1
                self.cycles.request_head()
                self._error(Status.BAD_LENGTH, self._skip_seq)
                continue
            start = rx.find(SYNC)
            if start < 0:
                start = len(rx)
            if start:
                self.stats["skipped_bytes"] += start
                self._consume(start)
                continue
            if len(rx) < HEADER_BYTES:
                return
            if crc8(rx[:5]) != rx[5]:
                self.stats["skipped_bytes"] += 1
                self._consume(1)
                continue
            kind, seq, length = rx[1], rx[2], int.from_bytes(rx[3:5], "little")
            if length > self.config.max_payload:
                self._consume(HEADER_BYTES)
                self._skip, self._skip_seq = length + TRAILER_BYTES, seq
                continue
            total = HEADER_BYTES + length + TRAILER_BYTES
            if len(rx) < total:
                return
            payload = bytes(rx[HEADER_BYTES:HEADER_BYTES + length])
            good = crc16(payload) == int.from_bytes(rx[total - TRAILER_BYTES:total], "little")
            self._consume(total)
            self.stats["frames"] += 1
            if good:
                self._handle(kind, seq, payload)
            else:
                self.stats["bad_crc"] += 1
                self.cycles.request_head()
                self._error(Status.BAD_CRC, seq)

    # -- requests ----------------------------------------------------------------------------

    def _respond(self, status, seq, payload=b""):
        frame = encode_frame(status, seq, payload)
        self._tx += frame
        self.cycles.transmit(len(frame))
        self.cycles.response_tail()

    def _error(self, status, seq, offset=0, opcode=0):
        self._respond(status, seq, ERROR_LAYOUT.to_bytes(offset=offset, opcode=opcode))

    def _handle(self, kind, seq, payload):
        self.cycles.request_head()
        if kind not in _KINDS:
            self.stats["bad_kind"] += 1
            return self._error(Status.BAD_KIND, seq)
        kind = Kind(kind)
        if (kind in _NO_PAYLOAD_KINDS and payload) or \
                (kind == Kind.READ and len(payload) != READ_LAYOUT.nbytes):
            self.stats["bad_length"] += 1
            return self._error(Status.BAD_LENGTH, seq)
        if kind == Kind.HELLO:
            self._last_exec = None
            self.cycles.wait(timing.HELLO_CYCLES)
            self._respond(Status.OK, seq, encode_id(self.config))
        elif kind == Kind.EXEC:
            self._exec(seq, payload)
        elif kind == Kind.READ:
            self._read(seq, READ_LAYOUT.from_bytes(payload))
        elif kind == Kind.COUNTERS:
            self._respond(Status.OK, seq, encode_counters(self.cycles.counters()))
        else:
            self.cycles.clear()
            self._respond(Status.OK, seq)

    def _exec(self, seq, payload):
        if self._last_exec is not None and self._last_exec[0] == seq:
            self.stats["resent"] += 1
            result = self._last_exec[1]
            self.cycles.wait(timing.EXEC_RESENT_CYCLES)
        else:
            self._last_exec = None   # if execution raises, nothing is remembered
            result = self.machine.execute(payload, self.cycles)
            self.stats["executed"] += 1
            self._last_exec = (seq, result)
        self._answer_exec(seq, result)

    def _answer_exec(self, seq, result: ExecResult):
        if result.status != Status.OK:
            return self._error(result.status, seq, result.offset, result.opcode)
        data = b""
        if result.store is not None:
            data = self.machine.read_act(*result.store)
            self.cycles.response_entries(result.store[1])
        self._respond(Status.OK, seq, data)

    def _read(self, seq, request):
        addr, count = request["addr"], request["count"]
        self.cycles.wait(timing.READ_CYCLES)
        if count == 0 or count * self.config.act_entry_bytes > self.config.max_payload:
            return self._error(Status.BAD_FIELD, seq)
        if addr + count > self.config.act_depth:
            return self._error(Status.BAD_ADDRESS, seq)
        self.cycles.response_entries(count)
        self._respond(Status.OK, seq, self.machine.read_act(addr, count))
