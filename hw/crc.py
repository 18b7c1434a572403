"""Combinational byte-wise CRC updates for the host link.

Both CRCs of the frame protocol (:mod:`tessera.spec.protocol`) are MSB-first, unreflected and have
no final XOR, so one byte step is a linear map over GF(2): every next-state bit is the XOR of a
fixed set of state bits and data bits. That set is derived here by running the bit-serial
definition symbolically in Python, and the hardware is one XOR tree per bit -- no loop of eight
dependent shift stages for the synthesis tool to untangle.
"""

from functools import reduce
import operator

from amaranth.hdl import Cat, Const, Value

__all__ = [
    "CRC8_POLY", "CRC8_INIT", "CRC16_POLY", "CRC16_INIT",
    "crc_update", "crc8_update", "crc16_update",
]

CRC8_POLY, CRC8_INIT = 0x07, 0x00
CRC16_POLY, CRC16_INIT = 0x1021, 0xFFFF


def _symbolic_step(width, poly, data_bits):
    # Each bit is a frozenset of input terms ("c", i) / ("d", j); XOR is symmetric difference.
    state = [frozenset({("c", i)}) for i in range(width)]
    for j in range(data_bits):
        state[width - data_bits + j] = state[width - data_bits + j] ^ {("d", j)}
    for _ in range(data_bits):
        msb = state[width - 1]
        state = [frozenset()] + state[:-1]
        for i in range(width):
            if (poly >> i) & 1:
                state[i] = state[i] ^ msb
    return state


def crc_update(crc, data, *, width, poly, data_bits=8) -> Value:
    """Return the CRC after shifting in ``data`` (MSB first), as an Amaranth expression.

    Parameters
    ----------
    crc : Value-like
        The current CRC, ``width`` bits.
    data : Value-like
        The next ``data_bits`` bits of the message (a byte; a multi-byte value is shifted in as a
        big-endian bit string, so pass one byte at a time for a little-endian byte stream).
    width, poly : int
        CRC width and generator polynomial (without the leading term).
    data_bits : int
        Width of ``data``; at most ``width``.
    """
    if not 1 <= data_bits <= width:
        raise ValueError(f"Data width must be from 1 to the CRC width {width}, not {data_bits}")
    crc, data = Value.cast(crc), Value.cast(data)
    terms = _symbolic_step(width, poly, data_bits)
    bits = []
    for term in terms:
        inputs = [crc[i] if kind == "c" else data[i] for kind, i in sorted(term)]
        bits.append(reduce(operator.xor, inputs) if inputs else Const(0, 1))
    return Cat(*bits)


def crc8_update(crc, byte) -> Value:
    """Return CRC-8 (poly 0x07) after one more ``byte``; start from :data:`CRC8_INIT`."""
    return crc_update(crc, byte, width=8, poly=CRC8_POLY)


def crc16_update(crc, byte) -> Value:
    """Return CRC-16/CCITT-FALSE after one more ``byte``; start from :data:`CRC16_INIT`."""
    return crc_update(crc, byte, width=16, poly=CRC16_POLY)
