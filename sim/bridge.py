"""cocotb test module: bridges a TCP socket to the accelerator's byte-stream host port.

The host driver runs unchanged in its own process and talks to the simulated RTL through a
socket, exactly as it would to a UART (:func:`tessera.sim.backend.connect_sim`). The bridge
moves at most one byte per cycle in each direction (the port's width, ``o_tx.ready`` always
high) and never lets simulated time run while it waits for the host: when the design is idle
and no byte is pending, the clock stops until the host sends more. Simulated cycle counts
therefore depend only on the traffic, never on the host's speed.

Three regimes keep Python out of the per-cycle path when it is not needed:

- **streaming** (request bytes pending, or a response byte on ``o_tx``): one step per cycle;
- **working** (the design is busy with nothing to move): sleep on a rising ``o_tx.valid``, a
  falling ``busy`` or a timer of :data:`POLL_CYCLES` cycles (to notice host bytes and EOF);
- **idle** (not busy for :data:`IDLE_SAMPLES` cycles): hand the response to the host and block
  on the socket with the clock stopped.

Environment: ``TESSERA_BRIDGE`` = ``host:port`` of the listening host.
"""

import os
import select
import socket

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from tessera.spec.protocol import HEADER_BYTES, SYNC, TRAILER_BYTES, crc8

CLOCK_NS = 10
#: Consecutive idle cycles before the bridge may stop the clock.
IDLE_SAMPLES = 2
#: While the design works on its own, the bridge looks at the socket this often (cycles).
POLL_CYCLES = 4096
#: How long (wall-clock) the bridge waits for the rest of a frame the host is still sending
#: before it lets the design run on without it (a host writes a frame in one go, so the wait is
#: short; it ends early only when the host lost bytes, and then the rx timeout must run).
REST_OF_FRAME_S = 0.5


class FrameBoundary:
    """Track whether the host's byte stream so far ends inside a frame.

    Hunts headers like the receiver does (``SYNC`` and a valid CRC-8), then skips the payload
    and CRC-16. Used only to decide whether to wait for more host bytes before letting simulated
    time run, so that the cycles counted never depend on how the OS delivered a frame.
    """

    def __init__(self):
        self.need = 0              # bytes still to come of the current frame
        self.header = bytearray()  # bytes of a header being collected

    @property
    def inside(self) -> bool:
        return bool(self.need or self.header)

    def feed(self, data):
        pos = 0
        while pos < len(data):
            if self.need:
                step = min(self.need, len(data) - pos)
                self.need -= step
                pos += step
                continue
            self.header.append(data[pos])
            pos += 1
            if self.header[0] != SYNC:
                self.header.clear()
            elif len(self.header) == HEADER_BYTES:
                if crc8(self.header[:5]) == self.header[5]:
                    self.need = int.from_bytes(self.header[3:5], "little") + TRAILER_BYTES
                    self.header.clear()
                else:
                    del self.header[0]
                    while self.header and self.header[0] != SYNC:
                        del self.header[0]


def is_high(handle) -> bool:
    """Whether a 1-bit signal is 1 (X reads 0: Icarus 11 leaves some outputs X until used)."""
    return str(handle.value) == "1"


class HostSocket:
    """The bridge's end of the host connection: buffered bytes both ways."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.rx = bytearray()
        self.rx_pos = 0
        self.tx = bytearray()
        self.closed = False
        self.frames = FrameBoundary()

    @property
    def rx_pending(self) -> bool:
        return self.rx_pos < len(self.rx)

    def poll(self, timeout_s=0.0) -> bool:
        """Receive what the host sent (waiting up to ``timeout_s``, ``None``: forever)."""
        if self.closed:
            return False
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return False
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.closed = True   # the host closed the link: end of the session
            return False
        if self.rx_pos:
            del self.rx[:self.rx_pos]
            self.rx_pos = 0
        self.rx += data
        self.frames.feed(data)
        return True

    def flush(self):
        """Send the collected response bytes to the host."""
        if self.tx and not self.closed:
            self.sock.setblocking(True)
            try:
                self.sock.sendall(self.tx)
            except OSError:
                self.closed = True
            finally:
                self.sock.setblocking(False)
        self.tx.clear()

    def close(self):
        self.flush()
        self.sock.close()


async def reset(dut):
    """Start the clock and reset the design."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.i_rx__valid.value = 0
    dut.i_rx__payload.value = 0
    dut.o_tx__ready.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


@cocotb.test()
async def serve(dut):
    """Serve the host link until the host closes the socket."""
    host = HostSocket(os.environ["TESSERA_BRIDGE"])
    await reset(dut)
    clk = dut.clk
    rx_valid, rx_payload, rx_ready = dut.i_rx__valid, dut.i_rx__payload, dut.i_rx__ready
    tx_valid, tx_payload = dut.o_tx__valid, dut.o_tx__payload
    busy = dut.busy
    dut.o_tx__ready.value = 1
    idle = 0
    while not host.closed:
        # Drive phase (just after a rising edge).
        pending = host.rx_pending
        rx_valid.value = 1 if pending else 0
        if pending:
            rx_payload.value = host.rx[host.rx_pos]
        await ReadOnly()
        if pending and is_high(rx_ready):
            host.rx_pos += 1
        sending = is_high(tx_valid)
        if sending:
            host.tx.append(tx_payload.value.to_unsigned())
        if pending or sending:
            idle = 0
        elif is_high(busy):
            idle = 0
            # Working: nothing to move. If the host is in the middle of sending a frame, wait
            # for the rest; else sleep until the design has something to say or stops.
            if not host.poll(REST_OF_FRAME_S if host.frames.inside else 0.0):
                host.flush()
                await First(RisingEdge(tx_valid), FallingEdge(busy),
                            Timer(POLL_CYCLES * CLOCK_NS, unit="ns"))
                await ReadOnly()
                if is_high(tx_valid):
                    host.tx.append(tx_payload.value.to_unsigned())
                host.poll(0.0)
        else:
            idle += 1
            if idle >= IDLE_SAMPLES and not host.poll(0.0):
                # Idle: hand over the responses, then stop the clock until the host writes.
                host.flush()
                host.poll(None)
                idle = 0
        if len(host.tx) >= 4096:
            host.flush()
        await RisingEdge(clk)
    host.close()
