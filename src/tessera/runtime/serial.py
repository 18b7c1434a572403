"""The UART transport to a board: ``serial:///dev/ttyUSB1?baud=3000000``.

pyserial is imported when a port is opened, so the host library needs it only for boards
(``pip install 'tessera-fpga[serial]'``; in a checkout ``pip install -e '.[serial]'``).
"""

from __future__ import annotations

import numbers
from urllib.parse import parse_qs, urlsplit

from .errors import LinkError
from .transport import Transport

__all__ = ["SerialTransport", "parse_serial_url", "DEFAULT_BAUD"]

#: The baud rate the board tops use unless the URL says otherwise.
DEFAULT_BAUD = 3_000_000

_URL_FORM = "serial:///dev/ttyUSB1?baud=3000000 (or serial://COM3?baud=3000000)"


def parse_serial_url(url: str) -> dict:
    """Return ``{"port": str, "baud": int}`` for a ``serial://`` URL.

    Raises
    ------
    ValueError
        The URL is not of the form ``serial://PORT[?baud=N]`` or the baud rate is not a positive
        integer.
    """
    parts = urlsplit(url)
    if parts.scheme != "serial":
        raise ValueError(f"Not a serial URL: {url!r}; expected {_URL_FORM}")
    port = parts.netloc + parts.path
    if not port:
        raise ValueError(f"Serial URL {url!r} names no port; expected {_URL_FORM}")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - {"baud"})
    if unknown:
        raise ValueError(f"Unknown serial URL option(s) {', '.join(unknown)} in {url!r}; the "
                         f"only option is baud, e.g. {_URL_FORM}")
    baud = DEFAULT_BAUD
    if "baud" in query:
        text = query["baud"][-1]
        try:
            baud = int(text)
        except ValueError:
            baud = 0
        if baud <= 0:
            raise ValueError(f"Baud rate must be a positive integer, not {text!r} (in {url!r})")
    return {"port": port, "baud": baud}


def _import_pyserial():
    try:
        import serial
    except ImportError:
        from tessera.install import install_hint
        raise LinkError("Talking to a board needs pyserial, which is not installed: "
                        f"{install_hint('serial')}") from None
    return serial


class SerialTransport(Transport):
    """Byte pipe over a serial port (8N1, no flow control).

    Parameters
    ----------
    port : str
        Device path (``/dev/ttyUSB1``, ``COM3``).
    baud : int
        Baud rate; must match the bitstream's UART.
    """

    def __init__(self, port, baud=DEFAULT_BAUD):
        if isinstance(baud, bool) or not isinstance(baud, numbers.Integral) or baud <= 0:
            raise ValueError(f"Baud rate must be a positive integer, not {baud!r}")
        baud = int(baud)
        serial = _import_pyserial()
        self.port = port
        self.baud = baud
        try:
            self._serial = serial.Serial(port, baudrate=baud, timeout=0, write_timeout=10)
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"Cannot open serial port {port} at {baud} baud ({e}); "
                            f"{self._port_hint(serial)}") from None
        self._serial.reset_input_buffer()

    @classmethod
    def from_url(cls, url: str) -> "SerialTransport":
        """Open the port a ``serial://`` URL names."""
        return cls(**parse_serial_url(url))

    @staticmethod
    def _port_hint(serial) -> str:
        try:
            from serial.tools import list_ports
            ports = sorted(p.device for p in list_ports.comports())
        except Exception:   # listing is only a hint; never mask the real error
            ports = []
        if ports:
            return (f"check that the board is plugged in and the port is right; ports present: "
                    f"{', '.join(ports)}")
        return "check that the board is plugged in (no serial ports are present)"

    def write(self, data: bytes):
        try:
            self._serial.write(bytes(data))
        except Exception as e:
            raise LinkError(f"Writing to {self.port} failed ({e}); was the board unplugged?") \
                from None

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        try:
            self._serial.timeout = timeout_s
            first = self._serial.read(1)
            if not first:
                return b""
            self._serial.timeout = 0
            waiting = self._serial.in_waiting
            rest = self._serial.read(min(waiting, max_bytes - 1)) if waiting else b""
        except Exception as e:
            raise LinkError(f"Reading from {self.port} failed ({e}); was the board unplugged?") \
                from None
        return first + rest

    def close(self):
        serial_port = getattr(self, "_serial", None)
        if serial_port is not None and serial_port.is_open:
            serial_port.close()
