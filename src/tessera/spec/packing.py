"""Buffer entries as NumPy arrays: :func:`tessera.spec.pack_operands` for whole blocks at once.

An activation entry holds ``rows`` operands of ``input_bits``, a weight entry ``cols`` operands
of ``weight_bits``, packed by THE rule of :func:`tessera.spec.pack_operands`: operand *i* at bits
``[i*bits, (i+1)*bits)`` of the little-endian entry, 4-bit operands two per byte (operand *2j* in
the low nibble of byte *j*), 16-bit operands low byte first, a final half-used byte padded with
zero bits. The spec packer works on one entry of Python ints; these functions pack and unpack a
``[entries, lanes]`` block with vectorised NumPy, for the compiler (weights, inputs), the
emulator (``LOAD``, ``STORE``, ``READ``) and the host (responses). The tests check them against
the spec packer bit for bit.

The one module of :mod:`tessera.spec` that needs NumPy; ``import tessera.spec`` does not import
it (import ``tessera.spec.packing``).
"""

from __future__ import annotations

import numpy as np

from .config import OPERAND_BITS, operand_range

__all__ = ["operand_dtype", "entry_bytes", "pack_entries", "unpack_entries", "check_operand_block"]


def operand_dtype(bits) -> np.dtype:
    """Return the NumPy dtype holding ``bits``-wide operands: int8 up to 8 bits, else int16."""
    return np.dtype(np.int8) if bits <= 8 else np.dtype(np.int16)


def entry_bytes(lanes, bits) -> int:
    """Return the bytes of one entry of ``lanes`` operands of ``bits`` (``ceil(lanes*bits/8)``)."""
    return (lanes * bits + 7) // 8


def _check_bits(bits):
    if isinstance(bits, bool) or bits not in OPERAND_BITS:
        raise ValueError(f"Operand width must be one of {OPERAND_BITS}, not {bits!r}")


def check_operand_block(name, values, bits) -> np.ndarray:
    """Return ``values`` after checking its dtype is :func:`operand_dtype` and it fits ``bits``.

    Raises
    ------
    ValueError
        Wrong dtype, or a value outside ``[-2**(bits-1), 2**(bits-1) - 1]`` (the message names
        the first one and the range).
    """
    _check_bits(bits)
    values = np.asarray(values)
    dtype = operand_dtype(bits)
    if values.dtype != dtype:
        raise ValueError(f"{name} must be a {dtype} array of {bits}-bit operands, not "
                         f"{values.dtype}")
    lo, hi = operand_range(bits)
    if bits == 4 and values.size and (values.min() < lo or values.max() > hi):
        bad = int(values.reshape(-1)[np.flatnonzero((values < lo) | (values > hi))[0]])
        raise ValueError(f"{name} holds {bad}, outside the 4-bit operand range [{lo}, {hi}]")
    return values


def pack_entries(values, bits) -> bytes:
    """Return the bytes of the entries ``values [entries, lanes]`` (each row one entry).

    ``values`` holds signed operands in :func:`operand_dtype` of ``bits`` that fit ``bits`` (4-bit
    operands are masked to their nibble; callers check the range with
    :func:`check_operand_block`).
    """
    _check_bits(bits)
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"Entries must be a 2-D [entries, lanes] array, not shape {values.shape}")
    if bits == 8:
        return values.astype(np.int8, copy=False).tobytes()
    if bits == 16:
        return values.astype("<i2", copy=False).tobytes()
    count, lanes = values.shape
    nibbles = np.zeros((count, lanes + (lanes & 1)), dtype=np.uint8)
    nibbles[:, :lanes] = values.astype(np.int8, copy=False).view(np.uint8) & 0xF
    return (nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)).tobytes()


def unpack_entries(data, count, lanes, bits) -> np.ndarray:
    """Return the ``[count, lanes]`` operands packed in ``data`` by :func:`pack_entries`.

    Raises
    ------
    ValueError
        ``data`` is not exactly ``count`` entries long.
    """
    _check_bits(bits)
    size = entry_bytes(lanes, bits)
    data = bytes(data)
    if len(data) != count * size:
        raise ValueError(f"{count} entries of {lanes} {bits}-bit operands are {count * size} "
                         f"bytes, not {len(data)}")
    if bits == 8:
        return np.frombuffer(data, np.int8).reshape(count, lanes).copy()
    if bits == 16:
        return np.frombuffer(data, "<i2").reshape(count, lanes).astype(np.int16)
    raw = np.frombuffer(data, np.uint8).reshape(count, size)
    nibbles = np.empty((count, 2 * size), dtype=np.uint8)
    nibbles[:, 0::2] = raw & 0xF
    nibbles[:, 1::2] = raw >> 4
    signed = nibbles[:, :lanes].astype(np.int8)
    return np.where(signed > 7, signed - 16, signed).astype(np.int8)
