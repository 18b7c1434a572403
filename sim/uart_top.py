"""The simulation top with the UART in the loop: :class:`~tessera.hw.uart.UARTStream` + accelerator.

What a board runs minus the PLL and the I/O buffers: the serial pins go straight to the UART
gateware (``hw/uart.py``), whose byte streams feed the :class:`~tessera.hw.top.Accelerator`.
A small ``divisor`` (clock cycles per bit) keeps the simulation short; the UART's logic is the
same at any divisor. :mod:`bridge_uart` connects its pins to a pseudo-terminal, so the host's
``serial://`` transport (pyserial) talks to it exactly as to a board.
"""


from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.hw.top import Accelerator
from tessera.hw.uart import CHARACTER_BITS, UARTStream, check_rx_timeout

__all__ = ["UART_TOPLEVEL", "DEFAULT_DIVISOR", "CHARACTER_BITS", "UartSimTop",
           "generate_uart_verilog"]

#: Verilog module name of the UART simulation top.
UART_TOPLEVEL = "tessera_uart_top"

#: Clock cycles per bit used by the UART-in-the-loop tests.
DEFAULT_DIVISOR = 8


class UartSimTop(wiring.Component):
    """UART + accelerator, with the serial pins as ports.

    Parameters
    ----------
    config : AcceleratorConfig
    divisor : int
        Clock cycles per UART bit.

    Members
    -------
    rx : In(1)
        Serial input (idle high).
    tx : Out(1)
        Serial output (idle high).
    busy : Out(1)
        The accelerator or either UART direction is busy.

    Raises
    ------
    ValueError
        If ``config.rx_timeout_cycles`` is not longer than one 8N1 character (``10 * divisor``
        cycles): the frame receiver would drop every partial header between two bytes, and the
        device would never answer.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, config, *, divisor=DEFAULT_DIVISOR):
        try:
            check_rx_timeout(config.rx_timeout_cycles, divisor)
        except ValueError:
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise
        self.config = config
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = UARTStream(divisor=self.divisor)
        m.submodules.accelerator = accel = Accelerator(self.config)
        m.d.comb += [
            uart.rx.eq(self.rx),
            self.tx.eq(uart.tx),
            self.busy.eq(accel.busy | uart.busy),
        ]
        wiring.connect(m, uart.o, accel.i_rx)
        wiring.connect(m, accel.o_tx, uart.i)
        return m


def generate_uart_verilog(config, path, *, divisor=DEFAULT_DIVISOR) -> Path:
    """Write the Verilog of :class:`UartSimTop` to ``path`` and return the path."""
    path = Path(path)
    top = UartSimTop(config, divisor=divisor)
    path.write_text(verilog.convert(top, name=UART_TOPLEVEL, emit_src=False))
    return path
