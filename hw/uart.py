"""8N1 UART receiver and transmitter exposing byte streams.

The host link of a real board is a plain asynchronous serial line: one start bit (0), eight data
bits LSB first, one stop bit (1), no parity. The receiver synchronises the pin with two
flip-flops, finds the falling edge of the start bit, re-checks it half a bit later and then
samples every following bit in its middle, which tolerates a few percent of baud-rate mismatch
(about +-4 % at 16 clocks per bit). A zero where the stop bit should be is a framing error: the
byte is dropped, ``framing_error`` pulses, and the receiver waits for the line to return high
(so a held-low "break" produces one error, not a stream of zero bytes).

Both sides are :mod:`amaranth.lib.stream` endpoints (``o`` for received bytes, ``i`` for bytes
to send), so a board top joins them to the accelerator with :func:`amaranth.lib.wiring.connect`.
"""

from amaranth.hdl import Module, Signal, Cat, Const
from amaranth.lib import wiring, stream
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["uart_divisor", "check_rx_timeout", "UARTReceiver", "UARTTransmitter", "UARTStream",
           "MIN_DIVISOR", "CHARACTER_BITS"]

#: Fewest clock cycles per bit the receiver supports (it needs a half-bit re-check of the start
#: bit and room for the two-flip-flop synchroniser delay).
MIN_DIVISOR = 4

#: Largest baud-rate error accepted by :func:`uart_divisor` (the receiver tolerates about twice
#: this, the rest is left for the far end's own clock error).
MAX_BAUD_ERROR = 0.02

#: Bit times in one 8N1 character (start, eight data bits, stop).
CHARACTER_BITS = 10


def uart_divisor(clock_hz, baud):
    """Return the clock cycles per bit for ``baud`` at ``clock_hz``.

    Raises
    ------
    ValueError
        If either rate is not positive, if the clock is too slow for the baud rate (fewer than
        :data:`MIN_DIVISOR` cycles per bit), or if the nearest integer divisor misses the baud
        rate by more than 2 %.
    """
    if not clock_hz > 0 or not baud > 0:
        raise ValueError(f"Clock and baud rate must be positive, not clock_hz={clock_hz!r}, "
                         f"baud={baud!r}")
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"Baud rate {baud} is too fast for a {clock_hz / 1e6:g} MHz clock: the "
                         f"UART needs at least {MIN_DIVISOR} clock cycles per bit; use at most "
                         f"{int(clock_hz // MIN_DIVISOR)} baud")
    error = abs(clock_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"Baud rate {baud} cannot be made from a {clock_hz / 1e6:g} MHz clock: "
                         f"the nearest divisor {divisor} gives {clock_hz / divisor:.0f} baud "
                         f"({error:.1%} off, at most {MAX_BAUD_ERROR:.0%} allowed); choose a baud "
                         f"rate near {clock_hz / divisor:.0f} or {clock_hz / (divisor + 1):.0f}")
    return divisor


def check_rx_timeout(rx_timeout_cycles, divisor):
    """Check that a frame receiver's timeout outlasts one UART character.

    Raises
    ------
    ValueError
        If ``rx_timeout_cycles`` is not longer than one 8N1 character (``CHARACTER_BITS *
        divisor`` cycles): the frame receiver would drop every partial header between two bytes,
        and the device would never answer.
    """
    char_cycles = CHARACTER_BITS * divisor
    if rx_timeout_cycles <= char_cycles:
        raise ValueError(
            f"rx_timeout_cycles={rx_timeout_cycles} is too short for a UART with divisor "
            f"{divisor}: one 8N1 character takes {char_cycles} cycles, so the frame receiver "
            f"would time out between every two bytes; use a configuration with "
            f"rx_timeout_cycles well above {char_cycles} (e.g. the default {1 << 20}) or a "
            f"faster baud rate")


def _check_divisor(component, divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        component._MustUse__silence = True  # a rejected component is not an unused one
        raise ValueError(f"Divisor must be an integer of at least {MIN_DIVISOR} (clock cycles per "
                         f"bit), not {divisor!r}")
    return divisor


class _UARTComponent(wiring.Component):
    """Shared constructor of the UART components: a validated, read-only bit divisor."""

    def __init__(self, *, divisor):
        self._divisor = _check_divisor(self, divisor)
        super().__init__()

    @property
    def divisor(self):
        """Clock cycles per bit."""
        return self._divisor


class UARTReceiver(_UARTComponent):
    """8N1 receiver: serial pin in, byte stream out.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`).

    Members
    -------
    rx : In(1)
        The serial input pin (idle high). Asynchronous: synchronised inside.
    o : Out(stream.Signature(8))
        Received bytes. A byte completed while the previous one is still waiting is dropped and
        ``overrun`` pulses.
    framing_error : Out(1)
        Pulses for one cycle when a stop bit is read as 0; the byte is dropped.
    overrun : Out(1)
        Pulses for one cycle when a byte is dropped because ``o`` was not drained in time.
    busy : Out(1)
        A character is being received.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor

        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(divisor))
        bit = Signal(range(8))
        shreg = Signal(8)

        def deliver(value):
            with m.If(self.o.valid & ~self.o.ready):
                m.d.comb += self.overrun.eq(1)
            with m.Else():
                m.d.sync += [self.o.payload.eq(value), self.o.valid.eq(1)]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "IDLE"  # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    deliver(shreg)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                m.d.comb += self.busy.eq(1)
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(_UARTComponent):
    """8N1 transmitter: byte stream in, serial pin out.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; accepted when the transmitter is idle, so back-to-back bytes follow each
        other with one extra clock cycle of stop bit.
    tx : Out(1)
        The serial output pin (idle high).
    busy : Out(1)
        A character is being sent.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor

        timer = Signal(range(divisor))
        bits_left = Signal(range(11))
        shreg = Signal(10, init=0x3FF)  # stop bit, 8 data bits, start bit; LSB goes first

        m.d.comb += [
            self.tx.eq(shreg[0]),
            self.busy.eq(bits_left != 0),
            self.i.ready.eq(bits_left == 0),
        ]
        with m.If(bits_left == 0):
            with m.If(self.i.valid):
                m.d.sync += [
                    shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                    bits_left.eq(10),
                    timer.eq(divisor - 1),
                ]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [
                shreg.eq(Cat(shreg[1:], Const(1, 1))),
                bits_left.eq(bits_left - 1),
                timer.eq(divisor - 1),
            ]
        return m


class UARTStream(_UARTComponent):
    """A full-duplex 8N1 UART: a :class:`UARTReceiver` and a :class:`UARTTransmitter`.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`).

    Members
    -------
    rx : In(1)
        Serial input pin.
    tx : Out(1)
        Serial output pin.
    o : Out(stream.Signature(8))
        Received bytes.
    i : In(stream.Signature(8))
        Bytes to send.
    framing_error, overrun : Out(1)
        Receiver error pulses (see :class:`UARTReceiver`).
    busy : Out(1)
        Either direction is mid-character.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    o: Out(stream.Signature(8))
    i: In(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = receiver = UARTReceiver(divisor=self._divisor)
        m.submodules.tx = transmitter = UARTTransmitter(divisor=self._divisor)
        m.d.comb += [
            receiver.rx.eq(self.rx),
            self.tx.eq(transmitter.tx),
            self.framing_error.eq(receiver.framing_error),
            self.overrun.eq(receiver.overrun),
            self.busy.eq(receiver.busy | transmitter.busy),
        ]
        wiring.connect(m, receiver=receiver.o, output=wiring.flipped(self.o))
        wiring.connect(m, input=wiring.flipped(self.i), transmitter=transmitter.i)
        return m
