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


def _symbolic_steps(width, poly, n_bytes):
    # Each bit is a frozenset of input terms ("c", i) / ("d", 8*byte + bit); XOR is symmetric
    # difference. Bytes are shifted in MSB first, byte 0 first.
    state = [frozenset({("c", i)}) for i in range(width)]
    for k in range(n_bytes):
        for j in range(8):
            state[width - 8 + j] = state[width - 8 + j] ^ {("d", 8 * k + j)}
        for _ in range(8):
            msb = state[width - 1]
            state = [frozenset()] + state[:-1]
            for i in range(width):
                if (poly >> i) & 1:
                    state[i] = state[i] ^ msb
    return state


def crc_update(crc, data, *, width, poly) -> Value:
    """Return the CRC after the bytes of ``data``, as a flat Amaranth XOR expression per bit.

    Parameters
    ----------
    crc : Value-like
        The current CRC, ``width`` bits.
    data : Value-like or sequence of Value-like
        One byte, or a sequence of bytes processed first to last (each MSB first).
    width, poly : int
        CRC width (at least 8) and generator polynomial (without the leading term).
    """
    if width < 8:
        raise ValueError(f"CRC width must be at least 8 bits for a byte-wise update, not {width}")
    byte_values = [data] if not isinstance(data, (list, tuple)) else list(data)
    crc = Const(crc, width) if isinstance(crc, int) else Value.cast(crc)
    data_bits = Cat(*(Value.cast(byte)[0:8] for byte in byte_values))
    bits = []
    for term in _symbolic_steps(width, poly, len(byte_values)):
        inputs = [crc[i] if kind == "c" else data_bits[i] for kind, i in sorted(term)]
        bits.append(reduce(operator.xor, inputs) if inputs else Const(0, 1))
    return Cat(*bits)


def crc8_update(crc, data) -> Value:
    """Return CRC-8 (poly 0x07) after ``data`` (a byte or a sequence of bytes).

    Start from :data:`CRC8_INIT`.
    """
    return crc_update(crc, data, width=8, poly=CRC8_POLY)


def crc16_update(crc, data) -> Value:
    """Return CRC-16/CCITT-FALSE after ``data`` (a byte or a sequence of bytes).

    Start from :data:`CRC16_INIT`.
    """
    return crc_update(crc, data, width=16, poly=CRC16_POLY)
