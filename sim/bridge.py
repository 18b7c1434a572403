"""cocotb test module: bridges a TCP socket to the accelerator's byte-stream host port.

The host driver runs unchanged in its own process and talks to the simulated RTL through a
socket, exactly as it would to a UART. The bridge moves at most one byte per cycle in each
direction (the port's width) and stops the clock whenever the design is idle and no byte is
waiting, so simulated cycle counts depend only on the traffic, never on host speed.

Environment: ``TESSERA_BRIDGE`` = ``host:port`` of the listening host.
"""

import os
import select
import socket

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

_IDLE_SAMPLES = 2  # consecutive idle cycles before the bridge may stop the clock


def _connect():
    host, port = os.environ["TESSERA_BRIDGE"].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


async def _reset(dut):
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
    sock = _connect()
    Clock(dut.clk, 10, unit="ns").start()
    await _reset(dut)
    rx, rx_pos, tx = bytearray(), 0, bytearray()
    idle = 0
    rx_valid, rx_payload, rx_ready = dut.i_rx__valid, dut.i_rx__payload, dut.i_rx__ready
    tx_valid, tx_payload, tx_ready = dut.o_tx__valid, dut.o_tx__payload, dut.o_tx__ready
    busy = dut.busy
    tx_ready.value = 1
    while True:
        if rx_pos >= len(rx) and idle >= _IDLE_SAMPLES:
            # Nothing to do until the host sends more: hand over the responses, then block
            # without advancing simulated time.
            if tx:
                sock.setblocking(True)
                sock.sendall(tx)
                sock.setblocking(False)
                tx.clear()
            select.select([sock], [], [])
        try:
            data = sock.recv(1 << 16)
            if not data:
                break  # the host closed the link: end of the session
            if rx_pos:
                del rx[:rx_pos]
                rx_pos = 0
            rx += data
        except BlockingIOError:
            pass
        pending = rx_pos < len(rx)
        rx_valid.value = 1 if pending else 0
        if pending:
            rx_payload.value = rx[rx_pos]
        await ReadOnly()
        if pending and rx_ready.value:
            rx_pos += 1
        sending = bool(tx_valid.value)
        if sending:
            tx.append(tx_payload.value.to_unsigned())
            if len(tx) >= 4096:
                sock.setblocking(True)
                sock.sendall(tx)
                sock.setblocking(False)
                tx.clear()
        idle = idle + 1 if not (pending or sending or busy.value) else 0
        await RisingEdge(dut.clk)
    if tx:
        sock.setblocking(True)
        sock.sendall(tx)
    sock.close()
