"""Byte-stream driver and monitor for cocotb: ready/valid with idle gaps and backpressure.

The accelerator's host port is two ``lib.stream`` byte streams (``i_rx`` in, ``o_tx`` out). The
:class:`ByteDriver` plays the host side of ``i_rx`` and inserts random idle cycles between
bytes; the :class:`ByteMonitor` plays the host side of ``o_tx`` with random ``ready``
backpressure and parses what it receives into frames with the host's own
:class:`~tessera.spec.protocol.FrameParser`. Both obey Amaranth's stream rules: ``valid`` is never
withdrawn before its transfer, ``ready`` may change every cycle.

Neither touches the simulator every cycle when there is nothing to do: the driver sleeps on an
event while its queue is empty and on edges of ``ready`` while the design refuses bytes, the
monitor sleeps on edges of ``valid``. Long GEMMs therefore cost no Python time.
"""

from __future__ import annotations

import collections
import random

from cocotb.triggers import Event, ReadOnly, RisingEdge

from tessera.spec.protocol import FrameParser

__all__ = ["ByteDriver", "ByteMonitor", "stream_signals", "is_high"]


def is_high(handle) -> bool:
    """Return whether a 1-bit signal is 1; X/Z read as 0.

    Icarus 11 does not run Yosys's combinational ``always @*`` blocks at time zero, so an
    output whose inputs have not changed since (``o_tx.valid`` before the first response)
    reads X there although it is 0 in the design.
    """
    return str(handle.value) == "1"


def stream_signals(dut, name):
    """Return ``(valid, payload, ready)`` handles of the flattened stream port ``name``."""
    return (getattr(dut, f"{name}__valid"), getattr(dut, f"{name}__payload"),
            getattr(dut, f"{name}__ready"))


class ByteDriver:
    """Send bytes on a ready/valid byte stream, with random idle gaps between transfers.

    Parameters
    ----------
    clk : cocotb handle
    signals : tuple
        ``(valid, payload, ready)`` of the stream (see :func:`stream_signals`).
    rng : random.Random
    gap_probability : float
        Probability of inserting an idle gap before a byte.
    max_gap : int
        Longest gap, in cycles (each gap is uniform in ``1 .. max_gap``).
    """

    def __init__(self, clk, signals, *, rng: random.Random, gap_probability=0.0, max_gap=4):
        if not 0.0 <= gap_probability < 1.0:
            raise ValueError(f"gap_probability must be in [0, 1), not {gap_probability!r}")
        self.clk = clk
        self.valid, self.payload, self.ready = signals
        self.rng = rng
        self.gap_probability = gap_probability
        self.max_gap = max_gap
        self.sent = 0                      # bytes transferred so far
        self.last_transfer_ns = 0.0        # simulation time of the last transfer
        self._queue = collections.deque()
        self._wake = Event()
        self._drained = Event()
        self._drained.set()
        self.valid.value = 0
        self.payload.value = 0

    def send(self, data):
        """Queue ``data`` for sending (returns at once)."""
        if data:
            self._queue.extend(bytes(data))
            self._drained.clear()
            self._wake.set()

    @property
    def pending(self) -> int:
        """Bytes queued and not yet transferred."""
        return len(self._queue)

    async def wait_sent(self):
        """Wait until every queued byte has been transferred."""
        await self._drained.wait()

    async def run(self):
        """The driver process (start it with ``cocotb.start_soon``)."""
        from cocotb.utils import get_sim_time
        clk, valid, payload, ready = self.clk, self.valid, self.payload, self.ready
        while True:
            if not self._queue:
                valid.value = 0
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                await RisingEdge(clk)
            if self.rng.random() < self.gap_probability:
                valid.value = 0
                for _ in range(self.rng.randint(1, self.max_gap)):
                    await RisingEdge(clk)
            valid.value = 1
            payload.value = self._queue[0]
            await ReadOnly()
            while not is_high(ready):
                # The design refuses bytes (it holds a frame it is executing): sleep until it
                # raises ready instead of polling every cycle.
                await RisingEdge(ready)
                await ReadOnly()
            await RisingEdge(clk)
            self._queue.popleft()
            self.sent += 1
            self.last_transfer_ns = get_sim_time("ns")


class ByteMonitor:
    """Receive bytes from a ready/valid byte stream with random backpressure; parse frames.

    Parameters
    ----------
    clk : cocotb handle
    signals : tuple
        ``(valid, payload, ready)`` of the stream.
    rng : random.Random
    ready_probability : float
        Probability that ``ready`` is high in a cycle (1.0: never any backpressure).
    max_payload : int
        Largest payload the parser accepts (the configuration's ``max_payload``).

    Attributes
    ----------
    data : bytearray
        Every byte received, in order.
    frames : collections.deque of Frame
        Complete frames with a good CRC not yet taken by the testbench.
    parser : FrameParser
        Its ``skipped_bytes`` and ``bad_frames`` reveal junk on the line.
    """

    def __init__(self, clk, signals, *, rng: random.Random, ready_probability=1.0,
                 max_payload=0xFFFF):
        if not 0.0 < ready_probability <= 1.0:
            raise ValueError(f"ready_probability must be in (0, 1], not {ready_probability!r}")
        self.clk = clk
        self.valid, self.payload, self.ready = signals
        self.rng = rng
        self.ready_probability = ready_probability
        self.data = bytearray()
        self.frames = collections.deque()
        self.parser = FrameParser(max_payload=max_payload)
        self.new_frame = Event()
        self.ready.value = 0

    def _choose_ready(self):
        self.ready.value = 1 if self.ready_probability >= 1.0 or \
            self.rng.random() < self.ready_probability else 0

    async def run(self):
        """The monitor process (start it with ``cocotb.start_soon``)."""
        clk, valid, payload, ready = self.clk, self.valid, self.payload, self.ready
        self._choose_ready()
        while True:
            await ReadOnly()
            if is_high(valid):
                if is_high(ready):
                    byte = payload.value.to_unsigned()
                    self.data.append(byte)
                    frames = self.parser.feed(bytes([byte]))
                    if frames:
                        self.frames.extend(frames)
                        self.new_frame.set()
                await RisingEdge(clk)
            else:
                # Nothing offered: sleep until valid rises (that happens right after a clock
                # edge, so ready chosen now applies to the coming edge).
                await RisingEdge(valid)
            self._choose_ready()
