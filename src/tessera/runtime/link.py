"""Stop-and-wait request/response over an unreliable byte pipe (``docs/protocol.md``).

:class:`HostLink` frames each request with :func:`tessera.spec.protocol.encode_frame`, waits for
the response whose ``seq`` matches, and resends the same request with the same ``seq`` when the
device reports ``BAD_CRC``, when the response is corrupted, missing or late, or when the device
reports a link status (``BAD_LENGTH``, ``BAD_KIND``) for a request the host knows to be well
formed (its header was corrupted on the way in a way the header CRC missed). Because the device
answers a repeated ``EXEC`` without running it again, a resend never executes a program twice.
Responses with another ``seq`` are stale (answers to earlier attempts) and are ignored. A
"response" that is the request frame itself, twice in a row, means the port echoes what it is
sent (the loopback self-test bitstream is still on the board): :class:`LinkError` says so.
"""

from __future__ import annotations

import math
import numbers
import time

from tessera.spec.protocol import ERROR_LAYOUT, FrameParser, Kind, Status, encode_frame

from .errors import DeviceError, DeviceTimeout, LinkError

__all__ = ["HostLink"]

#: Statuses that say the request did not arrive intact: the host resends.
_RESEND = (Status.BAD_CRC, Status.BAD_LENGTH, Status.BAD_KIND)

#: Raised when the device sends every request back unchanged.
_ECHO = ("The device echoes what it is sent (the answer to {kind} was the request frame itself, "
         "on {times} attempts): probably the UART loopback bitstream (tessera build --design "
         "loopback) is still loaded; flash the accelerator bitstream (tessera build --board "
         "BOARD, then program the board as docs/boards.md shows) and connect again")


class HostLink:
    """Send requests to a device over a :class:`~tessera.runtime.transport.Transport`.

    Parameters
    ----------
    transport : Transport
    max_payload : int
        The device's largest frame payload; longer requests are refused before sending.
    timeout_s : float
        How long to wait for each response before resending.
    retries : int
        Resends after the first attempt before giving up with :class:`DeviceTimeout`.

    Attributes
    ----------
    stats : dict
        ``requests``, ``resends``, ``timeouts``, ``bad_responses`` (corrupted responses),
        ``stale`` (responses to earlier attempts) and ``device_link_errors``.
    """

    def __init__(self, transport, *, max_payload, timeout_s=1.0, retries=5):
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real) or \
                not 0 < timeout_s < math.inf:
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        self.transport = transport
        self.max_payload = max_payload
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self._parser = FrameParser(max_payload=max(max_payload, ERROR_LAYOUT.nbytes))
        self._seq = 0
        self._last_exec_seq = None
        self.stats = dict.fromkeys(("requests", "resends", "timeouts", "bad_responses", "stale",
                                    "device_link_errors"), 0)

    def _next_seq(self, kind) -> int:
        seq = self._seq
        if kind == Kind.HELLO:
            self._last_exec_seq = None
        elif kind == Kind.EXEC and seq == self._last_exec_seq:
            # The device would take a new EXEC with the old seq for a resend of the last one.
            seq = (seq + 1) & 0xFF
        self._seq = (seq + 1) & 0xFF
        if kind == Kind.EXEC:
            self._last_exec_seq = seq
        return seq

    def request(self, kind, payload=b"") -> bytes:
        """Send one request and return the payload of its ``OK`` response.

        Raises
        ------
        DeviceError
            The device answered with an execution error (or a link status after all retries).
        DeviceTimeout
            No valid response after ``1 + retries`` attempts.
        """
        kind = Kind(kind)
        payload = bytes(payload)
        if len(payload) > self.max_payload:
            raise ValueError(f"{kind.name} payload of {len(payload)} bytes exceeds the device's "
                             f"max_payload of {self.max_payload}; split it into several frames")
        seq = self._next_seq(kind)
        frame = encode_frame(kind, seq, payload)
        self.stats["requests"] += 1
        last_problem = "no response"
        echoes = 0
        for attempt in range(1 + self.retries):
            if attempt:
                self.stats["resends"] += 1
            self.transport.write(frame)
            response, problem = self._await(seq)
            if response is None:
                last_problem = problem
                continue
            status = response.kind
            if status == kind and response.payload == payload:   # our own frame came back
                echoes += 1
                if echoes == 2 or attempt == self.retries:
                    raise LinkError(_ECHO.format(kind=kind.name, times=echoes))
                last_problem = "the request frame came back unchanged"
                continue
            echoes = 0
            if status == Status.OK:
                return response.payload
            record = None
            if len(response.payload) == ERROR_LAYOUT.nbytes:
                record = ERROR_LAYOUT.from_bytes(response.payload)
                record.pop("_pad", None)
            if status in _RESEND:
                self.stats["device_link_errors"] += 1
                last_problem = f"the device answered {Status(status).name}"
                if attempt == self.retries:
                    raise DeviceError(status, record, kind.name)
                continue
            try:
                Status(status)
            except ValueError:
                raise LinkError(f"Device answered {kind.name} with unknown status "
                                f"0x{status:02x}: the device speaks another protocol version; "
                                f"update tessera or the bitstream") from None
            raise DeviceError(status, record, kind.name)
        raise DeviceTimeout(
            f"No valid response to {kind.name} (seq {seq}, {len(payload)}-byte payload) after "
            f"{1 + self.retries} attempts of {self.timeout_s:g} s each (last: {last_problem}): "
            f"check that the device is powered and running the Tessera bitstream, the port and "
            f"baud rate, and the cable; raise timeout_s if the device is just slow (e.g. an RTL "
            f"simulation)")

    def _await(self, seq):
        """Wait for the response to ``seq``; return ``(frame, None)`` or ``(None, why)``."""
        deadline = time.monotonic() + self.timeout_s
        parser = self._parser
        while True:
            remaining = deadline - time.monotonic()
            data = self.transport.read(4096, max(remaining, 0.0)) if remaining > 0 else b""
            if not data:
                self.stats["timeouts"] += 1
                parser.reset()   # a partial frame will never complete now
                return None, f"timed out after {self.timeout_s:g} s"
            found = None
            for frame in parser.feed(data):
                if frame.seq == seq and found is None:
                    found = frame
                else:   # an answer to an earlier attempt or request, or a duplicate
                    self.stats["stale"] += 1
            if found is not None:
                parser.bad_frames.clear()
                return found, None
            if parser.bad_frames:
                bad = [f for f in parser.bad_frames if f.seq == seq]
                parser.bad_frames.clear()
                if bad:
                    self.stats["bad_responses"] += 1
                    return None, "a corrupted response"
