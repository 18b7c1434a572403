"""Amaranth-simulator tests of the 8N1 UART (hw/uart.py)."""

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from tessera.hw import uart
from tessera.hw.uart import UARTReceiver, UARTStream, UARTTransmitter, uart_divisor


def _frame_bits(byte, *, stop=1):
    """Return the line levels of one 8N1 character (start, 8 data bits LSB first, stop)."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def _line_levels(bits, period):
    """Return one line level per clock cycle for ``bits`` sent at ``period`` cycles per bit.

    ``period`` may be fractional: bit ``i`` starts at cycle ``round(i * period)``, which models a
    far end whose baud rate differs from the receiver's.
    """
    levels = []
    for i, level in enumerate(bits):
        levels += [level] * (round((i + 1) * period) - round(i * period))
    return levels


def _run_receiver(levels, *, divisor, idle_cycles=40):
    """Drive ``levels`` into a receiver; return (bytes received, framing errors, overruns)."""
    dut = UARTReceiver(divisor=divisor)
    got, events = [], {"framing_error": 0, "overrun": 0}

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for level in [1] * 5 + levels + [1] * idle_cycles:
            ctx.set(dut.rx, level)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            for name in events:
                events[name] += ctx.get(getattr(dut, name))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got, events["framing_error"], events["overrun"]


def test_divisor_from_clock_and_baud():
    assert uart_divisor(12e6, 1_000_000) == 12
    assert uart_divisor(48e6, 3_000_000) == 16
    assert uart_divisor(25e6, 115200) == 217


@pytest.mark.parametrize("clock_hz, baud, message", [
    (12e6, 4_000_000, "Baud rate 4000000 is too fast for a 12 MHz clock: the UART needs at "
                      "least 4 clock cycles per bit; use at most 3000000 baud"),
    (12e6, 2_600_000, "Baud rate 2600000 cannot be made from a 12 MHz clock: the nearest divisor "
                      "5 gives 2400000 baud (7.7% off, at most 2% allowed); choose a baud rate "
                      "near 2400000 or 2000000"),
    (0, 9600, "Clock and baud rate must be positive, not clock_hz=0, baud=9600"),
])
def test_divisor_errors(clock_hz, baud, message):
    with pytest.raises(ValueError) as exc:
        uart_divisor(clock_hz, baud)
    assert str(exc.value) == message


def test_bad_divisor():
    with pytest.raises(ValueError) as exc:
        UARTReceiver(divisor=3)
    assert str(exc.value) == \
        "Divisor must be an integer of at least 4 (clock cycles per bit), not 3"
    with pytest.raises(ValueError):
        UARTTransmitter(divisor=8.0)


def test_transmitter_waveform():
    """The line carries start, data LSB first, stop, each exactly ``divisor`` cycles long."""
    divisor = 5
    dut = UARTTransmitter(divisor=divisor)
    line = []

    async def testbench(ctx):
        ctx.set(dut.i.payload, 0xA6)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(12 * divisor):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert line == _line_levels(_frame_bits(0xA6), divisor) + [1] * (2 * divisor)


def test_round_trip_back_to_back():
    """Every byte value, sent back to back through tx looped into rx, comes out unchanged."""
    divisor = 4
    dut = UARTStream(divisor=divisor)
    m = Module()
    m.submodules.dut = dut
    m.d.comb += dut.rx.eq(dut.tx)
    sent = list(range(256))
    got = []
    accepted_at = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        queue = list(sent)
        while len(got) < len(sent) and cycle < 11 * divisor * len(sent) + 100:
            if queue:
                ctx.set(dut.i.payload, queue[0])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_ready, o_valid, o_payload, ferr = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload, dut.framing_error)
            if queue and i_ready:
                queue.pop(0)
                accepted_at.append(cycle)
            if o_valid:
                got.append(o_payload)
            assert not ferr
            cycle += 1

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got == sent
    # Back to back: a new byte is taken one cycle after the previous stop bit ends.
    gaps = {b - a for a, b in zip(accepted_at, accepted_at[1:])}
    assert gaps == {10 * divisor + 1}


def test_receiver_back_to_back_with_minimal_stop_bits():
    """Characters with exactly one stop bit each, no idle time between them, are all received."""
    divisor = 8
    data = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80]
    levels = _line_levels([b for byte in data for b in _frame_bits(byte)], divisor)
    got, framing_errors, overruns = _run_receiver(levels, divisor=divisor)
    assert (got, framing_errors, overruns) == (data, 0, 0)


def test_framing_error_drops_byte_and_recovers():
    divisor = 8
    bits = _frame_bits(0x3C) + _frame_bits(0x5A, stop=0) + [0] * 20 + [1] * 3 + _frame_bits(0xC3)
    got, framing_errors, overruns = _run_receiver(_line_levels(bits, divisor), divisor=divisor)
    # The bad character and the following break cost one error, not a stream of zero bytes.
    assert (got, framing_errors, overruns) == ([0x3C, 0xC3], 1, 0)


def test_glitch_is_not_a_start_bit():
    divisor = 8
    levels = [0, 0, 1, 1, 1, 1, 1, 1] + _line_levels(_frame_bits(0x42), divisor)
    got, framing_errors, _ = _run_receiver(levels, divisor=divisor)
    assert (got, framing_errors) == ([0x42], 0)


def test_overrun_when_stream_not_drained():
    divisor = 4
    dut = UARTReceiver(divisor=divisor)
    levels = _line_levels(_frame_bits(0x11) + _frame_bits(0x22), divisor) + [1] * 10
    overruns = 0

    async def testbench(ctx):
        nonlocal overruns
        ctx.set(dut.o.ready, 0)
        for level in [1] * 3 + levels:
            ctx.set(dut.rx, level)
            await ctx.tick()
            overruns += ctx.get(dut.overrun)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x11

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert overruns == 1


@pytest.mark.parametrize("error", [-0.035, -0.02, 0.02, 0.035])
def test_baud_error_tolerance(error):
    """A far end up to 3.5 % off the nominal baud rate is still received correctly."""
    divisor = 16
    data = [0x00, 0xFF, 0x55, 0xAA, 0x0F, 0xF0]
    period = divisor * (1 + error)
    levels = _line_levels([b for byte in data for b in _frame_bits(byte)], period)
    got, framing_errors, overruns = _run_receiver(levels, divisor=divisor)
    assert (got, framing_errors, overruns) == (data, 0, 0)


def test_excessive_baud_error_is_detected():
    """12 % off is beyond mid-bit sampling: the stream must not come through intact."""
    divisor = 16
    data = [0x00, 0xFF, 0x55, 0xAA]
    levels = _line_levels([b for byte in data for b in _frame_bits(byte)], divisor * 0.88)
    got, framing_errors, _ = _run_receiver(levels, divisor=divisor)
    assert got != data and framing_errors > 0


def test_all_names_resolve():
    for name in uart.__all__:
        assert hasattr(uart, name), name

