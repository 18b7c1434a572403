"""hw/crc.py: the combinational CRC steps equal the protocol's CRC-8 and CRC-16."""

import random

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from tessera.hw.crc import CRC8_INIT, CRC16_INIT, crc8_update, crc16_update
from tessera.spec.protocol import crc8, crc16


def _evaluate(update, width, cases):
    """Return ``update(crc, byte)`` for each ``(crc, byte)`` case, computed by the simulator."""
    crc_in, byte_in, out = Signal(width), Signal(8), Signal(width)
    m = Module()
    m.d.comb += out.eq(update(crc_in, byte_in))
    results = []

    async def testbench(ctx):
        for crc, byte in cases:
            ctx.set(crc_in, crc)
            ctx.set(byte_in, byte)
            results.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return results


def test_crc8_every_byte_from_many_states():
    rng = random.Random(8)
    cases = [(crc, byte) for crc in [CRC8_INIT, 0xFF] + rng.sample(range(256), 6)
             for byte in range(256)]
    expected = [crc8(bytes([byte]), crc) for crc, byte in cases]
    assert _evaluate(crc8_update, 8, cases) == expected


def test_crc16_every_byte_from_many_states():
    rng = random.Random(16)
    cases = [(crc, byte) for crc in [CRC16_INIT, 0, 0x8000] + rng.sample(range(65536), 5)
             for byte in range(256)]
    expected = [crc16(bytes([byte]), crc) for crc, byte in cases]
    assert _evaluate(crc16_update, 16, cases) == expected


def test_check_values_by_chaining():
    # "123456789" through the hardware step, byte after byte.
    message = b"123456789"
    crc = CRC8_INIT
    for byte in message:
        crc = _evaluate(crc8_update, 8, [(crc, byte)])[0]
    assert crc == 0xF4
    crc = CRC16_INIT
    for byte in message:
        crc = _evaluate(crc16_update, 16, [(crc, byte)])[0]
    assert crc == 0x29B1


def test_multi_byte_update_is_one_flat_expression():
    # Five bytes at once (the receiver's header check) equal the protocol CRC over them.
    rng = random.Random(5)
    messages = [bytes(rng.randrange(256) for _ in range(5)) for _ in range(50)]
    bytes_in = [Signal(8) for _ in range(5)]
    out8, out16 = Signal(8), Signal(16)
    m = Module()
    m.d.comb += [out8.eq(crc8_update(CRC8_INIT, bytes_in)),
                 out16.eq(crc16_update(CRC16_INIT, bytes_in))]
    got = []

    async def testbench(ctx):
        for message in messages:
            for sig, byte in zip(bytes_in, message):
                ctx.set(sig, byte)
            got.append((ctx.get(out8), ctx.get(out16)))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [(crc8(msg), crc16(msg)) for msg in messages]
