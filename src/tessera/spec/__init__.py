"""Contracts shared by every part of Tessera: configuration, instruction set, host-link protocol.

No dependencies beyond the standard library: the gateware, the compiler, the emulator and the
host driver all import from here, and nothing here imports them. The exception is
:mod:`tessera.spec.packing`, the vectorised NumPy form of :func:`pack_operands`, which is not
imported by ``import tessera.spec``.
"""

from .config import (ACC_BITS, OPERAND_BITS, PARAM_ENTRY_BYTES, REQUANT_MODES, AcceleratorConfig,
                     check_operand_bits, operand_range, pack_operands, unpack_operands)
from .layout import BitLayout, Field
from . import isa, protocol, timing

__all__ = [
    "AcceleratorConfig", "REQUANT_MODES", "PARAM_ENTRY_BYTES", "OPERAND_BITS", "ACC_BITS",
    "check_operand_bits", "operand_range", "pack_operands", "unpack_operands",
    "BitLayout", "Field", "isa", "protocol", "timing",
]
