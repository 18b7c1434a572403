"""cocotb test module: the host socket on the UART pins of a board's gate-level netlist.

The netlist (:mod:`tessera.sim.gates`) is what goes into the bitstream, UART included, so the
host's bytes cross its pins as 8N1 characters at the bitstream's own divisor
(``$TESSERA_UART_DIVISOR`` clock cycles per bit), as from a board's USB-UART:

- host -> device: each byte from the socket is sent on ``rx`` (:func:`bridge_uart.send_byte`);
- device -> host: characters on ``tx`` are decoded (:class:`bridge_uart.UartLineMonitor`) and
  sent back on the socket.

The design first runs ``$TESSERA_RESET_CYCLES`` cycles out of power-on reset. Then the clock runs
while bytes move or ``busy`` (the board's LED) is high, and stops while the design is idle and
the host sends nothing; a frame the host is still writing is awaited, so that the receive
timeout never runs on the host's wall-clock time (:class:`bridge.FrameBoundary`).
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, Timer

from bridge import CLOCK_NS, POLL_CYCLES, REST_OF_FRAME_S, HostSocket, is_high
from bridge_uart import UartLineMonitor, send_byte


@cocotb.test()
async def serve_gates(dut):
    """Serve the host link on the netlist's UART pins until the host closes the socket."""
    host = HostSocket(os.environ["TESSERA_BRIDGE"])
    divisor = int(os.environ["TESSERA_UART_DIVISOR"])
    bit_ns = divisor * CLOCK_NS
    dut.rx.value = 1
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    await ClockCycles(dut.clk, int(os.environ["TESSERA_RESET_CYCLES"]))
    await FallingEdge(dut.clk)   # from here on every timer ends mid-cycle
    monitor = UartLineMonitor(dut.tx, divisor, host.tx.append)
    cocotb.start_soon(monitor.run())
    while not host.closed:
        if host.rx_pending:
            byte = host.rx[host.rx_pos]
            host.rx_pos += 1
            await send_byte(dut.rx, byte, bit_ns)
            continue
        if host.poll(REST_OF_FRAME_S if host.frames.inside else 0.0):
            continue
        await ReadOnly()
        if is_high(dut.busy) or monitor.active:
            host.flush()
            await First(FallingEdge(dut.busy), Timer(POLL_CYCLES * CLOCK_NS, unit="ns"))
            await FallingEdge(dut.clk)
            continue
        # Idle: hand over the responses, then stop the clock until the host writes or leaves.
        host.flush()
        host.poll(None)
        await FallingEdge(dut.clk)
    host.close()
