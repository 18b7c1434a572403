"""Exceptions raised by the host runtime, the link and the emulator.

Every message says what went wrong and what to do about it. :class:`DeviceError` carries the
status and the ``ErrorRecord`` the device sent (``docs/protocol.md``), so a caller can react to a
specific status without parsing text.
"""

from __future__ import annotations

from tessera.spec import isa, protocol

__all__ = [
    "TesseraError", "DeviceError", "DeviceTimeout", "ConfigMismatch", "LinkError",
    "HazardError", "ParameterError",
]

Status = protocol.Status

#: What each error status means, and what to do about it.
_ADVICE = {
    Status.BAD_CRC: ("the device received a corrupted frame and executed nothing",
                     "check the cable, the baud rate and the link's noise; the host already "
                     "resent the request"),
    Status.BAD_LENGTH: ("the request was longer than the device's max_payload (or the payload "
                        "length did not suit the request kind)",
                        "split the request, or connect with the configuration the device was "
                        "built with"),
    Status.BAD_KIND: ("the device does not know this request kind",
                      "update the host library or the bitstream so that both speak the same "
                      "protocol version"),
    Status.BAD_OPCODE: ("the program holds an unknown opcode",
                        "recompile the model with this version of tessera.compiler (ISA "
                        f"version {isa.ISA_VERSION})"),
    Status.BAD_ADDRESS: ("an instruction addresses a buffer range beyond the buffer's depth",
                         "compile for the configuration the device was built with "
                         "(AcceleratorConfig buffer depths)"),
    Status.BAD_FIELD: ("an instruction field is out of range (buffer, count, k, m_rows, n_cols, "
                       "a requant mode or LUT this configuration lacks, or non-zero padding)",
                       "compile for the configuration the device was built with"),
    Status.TRUNCATED: ("an instruction or a LOAD payload runs past the end of the frame",
                       "send whole instructions per EXEC frame (the compiler does)"),
    Status.STORE_NOT_LAST: ("a STORE is not the last instruction of its frame, or its response "
                            "would exceed max_payload",
                            "end each frame at its STORE and keep count * rows <= max_payload"),
}


class TesseraError(Exception):
    """Base class of all Tessera runtime errors."""


class LinkError(TesseraError):
    """The byte link itself failed: port missing, peer gone, malformed or unexpected response."""


class DeviceTimeout(TesseraError, TimeoutError):
    """No valid response arrived after all retries."""


class ConfigMismatch(TesseraError):
    """The device was built from a different configuration or ISA version than the host's."""


class HazardError(TesseraError):
    """The emulator found an unsynchronised data hazard in a program (a compiler bug).

    The hardware does not check hazards; a racing program would give timing-dependent results on
    it. The emulator refuses such programs so that the bug surfaces in tests.
    """


class ParameterError(TesseraError):
    """The emulator met a ``PARAM`` entry whose requant encoding is invalid for its mode.

    The hardware's result for such an entry is undefined, so the emulator refuses to guess.
    """


class DeviceError(TesseraError):
    """The device answered a request with an error status.

    Parameters
    ----------
    status : tessera.spec.protocol.Status
        The status byte of the response.
    record : dict or None
        The decoded ``ErrorRecord`` (``offset``, ``opcode``) for execution errors.
    request : str
        Name of the request kind (``"EXEC"``, ``"READ"``, ...), for the message.
    """

    def __init__(self, status, record=None, request="request"):
        self.status = Status(status)
        self.record = dict(record) if record is not None else None
        self.request = request
        super().__init__(self._message())

    @property
    def offset(self):
        """Byte offset of the failing instruction in the EXEC payload (None if not known)."""
        return None if self.record is None else self.record["offset"]

    @property
    def opcode(self):
        """Opcode of the failing instruction (None if not known)."""
        return None if self.record is None else self.record["opcode"]

    def _message(self) -> str:
        what, todo = _ADVICE.get(self.status, ("unknown error status", "update tessera"))
        where = ""
        if self.request == "EXEC" and self.record is not None and self.status >= 0x10:
            try:
                name = isa.Opcode(self.record["opcode"]).name
            except ValueError:
                name = "unknown"
            where = (f" at byte {self.record['offset']} of the program frame "
                     f"(opcode {self.record['opcode']} = {name})")
        return (f"Device answered {self.request} with {self.status.name} "
                f"(0x{int(self.status):02x}){where}: {what}; {todo}")

    def __reduce__(self):
        return (type(self), (self.status, self.record, self.request))
