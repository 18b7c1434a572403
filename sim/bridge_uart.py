"""cocotb test module: the UART simulation top behind a pseudo-terminal.

The RTL here includes the UART gateware (``hw/uart.py``; top :mod:`uart_top`), so the host talks
to it with its real ``serial://`` transport (pyserial) through a pseudo-terminal, exactly as to a
board, and every byte crosses the RTL's receiver and transmitter as 8N1 bits on the pins.

- Host → device: bytes read from the pty master are sent bit by bit on ``rx`` (start bit, eight
  data bits LSB first, stop bit), ``divisor`` clock cycles per bit.
- Device → host: a falling edge on ``tx`` starts a character; each bit is sampled in its middle,
  the stop bit is checked, and the byte is written to the pty master.

The clock stops while the design is idle and the host sends nothing. A control socket
(``$TESSERA_BRIDGE``) carries the pty's path to the host and ends the session when it closes.
``$TESSERA_UART_DIVISOR`` is the clock cycles per bit the top was built with.
"""

import os
import select
import socket
import tty

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

CLOCK_NS = 10
#: While the design works, the bridge looks at the pty and the control socket this often.
POLL_CYCLES = 4096


class UartLineMonitor:
    """Decode 8N1 characters on the ``tx`` pin and hand each byte to ``sink(byte)``."""

    def __init__(self, tx, divisor, sink):
        self.tx = tx
        self.bit_ns = divisor * CLOCK_NS
        self.sink = sink
        self.active = False
        self.received = 0

    async def run(self):
        while True:
            await FallingEdge(self.tx)
            self.active = True
            await Timer(self.bit_ns * 3 // 2, unit="ns")   # middle of data bit 0
            value = 0
            for bit in range(8):
                value |= int(self.tx.value) << bit
                await Timer(self.bit_ns, unit="ns")
            assert int(self.tx.value) == 1, "framing error: the RTL's stop bit is 0"
            self.sink(value)
            self.received += 1
            self.active = False


async def send_byte(rx, byte, bit_ns):
    """Send one 8N1 character on the ``rx`` pin (called mid-cycle)."""
    for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        rx.value = level
        await Timer(bit_ns, unit="ns")


@cocotb.test()
async def serve_uart(dut):
    """Serve the pty until the host closes the control socket."""
    host, port = os.environ["TESSERA_BRIDGE"].rsplit(":", 1)
    divisor = int(os.environ["TESSERA_UART_DIVISOR"])
    control = socket.create_connection((host, int(port)), timeout=30)
    master, slave = os.openpty()
    tty.setraw(slave)          # no echo or line editing before the host configures the port
    control.sendall(os.ttyname(slave).encode() + b"\n")

    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.rx.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)   # from here on every timer ends mid-cycle
    monitor = UartLineMonitor(dut.tx, divisor, lambda value: os.write(master, bytes([value])))
    cocotb.start_soon(monitor.run())
    bit_ns = divisor * CLOCK_NS
    try:
        while True:
            ready, _, _ = select.select([master, control], [], [], 0)
            if control in ready and not control.recv(1):
                break   # the host ended the session
            if master in ready:
                for byte in os.read(master, 4096):
                    await send_byte(dut.rx, byte, bit_ns)
                continue
            await ReadOnly()
            if str(dut.busy.value) == "1" or monitor.active:
                await First(FallingEdge(dut.busy), Timer(POLL_CYCLES * CLOCK_NS, unit="ns"))
                await FallingEdge(dut.clk)
                continue
            # Idle: stop the clock until the host writes or leaves.
            select.select([master, control], [], [])
            await FallingEdge(dut.clk)
    finally:
        control.close()
        os.close(master)
        os.close(slave)
