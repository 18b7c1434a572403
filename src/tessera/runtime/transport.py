"""Byte pipes between the host driver and a device.

The driver (:class:`~tessera.runtime.link.HostLink`, :class:`~tessera.runtime.device.Device`)
talks only to a :class:`Transport`, so the same code drives the emulator, the RTL simulation
(``tessera.sim.backend.SocketTransport``), a board over a serial port
(:class:`~tessera.runtime.serial.SerialTransport`) and a recorded session
(:class:`ReplayTransport`). :class:`FaultyTransport` injects link faults for tests.
"""

from __future__ import annotations

import abc
import json

import numpy as np

from .errors import LinkError

__all__ = ["Transport", "EmulatorTransport", "FaultyTransport", "RecordingTransport",
           "ReplayTransport"]


class Transport(abc.ABC):
    """An unreliable, ordered byte pipe to a device.

    Subclasses implement three methods; they may lose, corrupt or duplicate bytes (the link layer
    copes with that) but must not reorder them.
    """

    @abc.abstractmethod
    def write(self, data: bytes):
        """Send ``data`` to the device."""

    @abc.abstractmethod
    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Return 1 to ``max_bytes`` received bytes, or ``b""`` if none arrived in ``timeout_s``."""

    def close(self):
        """Release the pipe (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EmulatorTransport(Transport):
    """Connect a host driver to an in-process :class:`~tessera.runtime.emulator.Emulator`.

    The emulator answers as soon as a request is complete, so a read finding nothing can return
    at once: nothing would ever arrive. It then lets the device's receive timeout expire, as a
    waiting host does on a real link (a partially received frame is dropped).

    Parameters
    ----------
    emulator : Emulator
    """

    def __init__(self, emulator):
        self.emulator = emulator
        self._closed = False

    def write(self, data: bytes):
        if self._closed:
            raise LinkError("The emulator transport is closed; connect again")
        self.emulator.feed(bytes(data))

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self._closed:
            raise LinkError("The emulator transport is closed; connect again")
        if not self.emulator.pending:
            self.emulator.rx_timeout()
        return self.emulator.read(max_bytes)

    def close(self):
        self._closed = True


class FaultyTransport(Transport):
    """Wrap a transport and inject seeded link faults in both directions (for tests).

    Each byte is independently corrupted (XOR with a random non-zero value), dropped or
    duplicated with the given probabilities; a whole write or read chunk is lost with probability
    ``lose``. :attr:`faults` counts what was injected, so a test can check that faults happened.

    Parameters
    ----------
    inner : Transport
    corrupt, drop, duplicate, lose : float
        Probabilities in [0, 1).
    seed : int
        Seed of the ``numpy.random.Generator``; the same seed gives the same faults.
    directions : str
        ``"both"`` (default), ``"write"`` (host to device) or ``"read"`` (device to host).
    """

    def __init__(self, inner, *, corrupt=0.0, drop=0.0, duplicate=0.0, lose=0.0, seed=0,
                 directions="both"):
        for name, p in (("corrupt", corrupt), ("drop", drop), ("duplicate", duplicate),
                        ("lose", lose)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} probability must be in [0, 1), not {p!r}")
        if directions not in ("both", "write", "read"):
            raise ValueError(f"directions must be 'both', 'write' or 'read', not {directions!r}")
        self.inner = inner
        self._p = (corrupt, drop, duplicate, lose)
        self._dirs = directions
        self._rng = np.random.default_rng(seed)
        self.faults = dict.fromkeys(("corrupted", "dropped", "duplicated", "lost"), 0)

    def _mangle(self, data: bytes) -> bytes:
        corrupt, drop, duplicate, lose = self._p
        if not data:
            return data
        if lose and self._rng.random() < lose:
            self.faults["lost"] += 1
            return b""
        u = self._rng.random((len(data), 3))
        if not ((u[:, 0] < corrupt).any() or (u[:, 1] < drop).any() or
                (u[:, 2] < duplicate).any()):
            return data
        out = bytearray()
        for byte, (uc, ud, uu) in zip(data, u):
            if ud < drop:
                self.faults["dropped"] += 1
                continue
            if uc < corrupt:
                byte ^= int(self._rng.integers(1, 256))
                self.faults["corrupted"] += 1
            out.append(byte)
            if uu < duplicate:
                out.append(byte)
                self.faults["duplicated"] += 1
        return bytes(out)

    def write(self, data: bytes):
        if self._dirs in ("both", "write"):
            data = self._mangle(bytes(data))
        if data:
            self.inner.write(data)

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        data = self.inner.read(max_bytes, timeout_s)
        if self._dirs in ("both", "read"):
            data = self._mangle(data)
        return data

    def close(self):
        self.inner.close()


class RecordingTransport(Transport):
    """Wrap a transport and record every write and read to a file for :class:`ReplayTransport`.

    The file is JSON lines: a header ``{"tessera_link_recording": 1}``, then one
    ``{"w": hex}`` or ``{"r": hex}`` per call (``{"r": ""}`` is a read that timed out).
    """

    def __init__(self, inner, path):
        self.inner = inner
        self.path = path
        self._file = open(path, "w", encoding="ascii")
        self._file.write(json.dumps({"tessera_link_recording": 1}) + "\n")

    def _log(self, direction, data):
        self._file.write(json.dumps({direction: bytes(data).hex()}) + "\n")

    def write(self, data: bytes):
        self._log("w", data)
        self.inner.write(data)

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        data = self.inner.read(max_bytes, timeout_s)
        self._log("r", data)
        return data

    def close(self):
        if not self._file.closed:
            self._file.close()
        self.inner.close()


class ReplayTransport(Transport):
    """Play back a :class:`RecordingTransport` file: check the writes, return the reads.

    A write that differs from the recording raises :class:`LinkError` naming the first differing
    byte, so a replayed test fails where the host's behaviour changed.
    """

    def __init__(self, path):
        self.path = path
        self._events = []
        with open(path, encoding="ascii") as f:
            header = f.readline()
            try:
                ok = json.loads(header) == {"tessera_link_recording": 1}
            except json.JSONDecodeError:
                ok = False
            if not ok:
                raise ValueError(f"{path} is not a Tessera link recording (bad header line); "
                                 f"record one with RecordingTransport")
            for number, line in enumerate(f, start=2):
                (direction, hexdata), = json.loads(line).items()
                if direction not in ("w", "r"):
                    raise ValueError(f"{path}:{number}: unknown event {direction!r}")
                self._events.append((direction, bytes.fromhex(hexdata)))
        self._pos = 0
        self._pending = b""   # rest of a recorded read not yet returned

    def _next(self, direction):
        if self._pos >= len(self._events):
            raise LinkError(f"Replay of {self.path} ran past the end of the recording "
                            f"(the host now makes more requests than when it was recorded)")
        got, data = self._events[self._pos]
        if got != direction:
            what = {"w": "a write", "r": "a read"}
            raise LinkError(f"Replay of {self.path} diverged at event {self._pos + 1}: the host "
                            f"did {what[direction]} where the recording has {what[got]}")
        self._pos += 1
        return data

    def write(self, data: bytes):
        data = bytes(data)
        expected = self._next("w")
        if data != expected:
            first = next((i for i, (a, b) in enumerate(zip(data, expected)) if a != b),
                         min(len(data), len(expected)))
            raise LinkError(f"Replay of {self.path} diverged at event {self._pos}: the host "
                            f"wrote {len(data)} bytes differing from the recorded "
                            f"{len(expected)} at byte {first}")

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if not self._pending:
            self._pending = self._next("r")
            if not self._pending:
                return b""
        out, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return out

    @property
    def finished(self) -> bool:
        """Whether every recorded event has been replayed."""
        return self._pos == len(self._events) and not self._pending
