"""Contracts shared by every part of Tessera: configuration, instruction set, host-link protocol.

No dependencies beyond the standard library: the gateware, the compiler, the emulator and the
host driver all import from here, and nothing here imports them.
"""

from .config import AcceleratorConfig, REQUANT_MODES, PARAM_ENTRY_BYTES
from .layout import BitLayout, Field
from . import isa, protocol, timing

__all__ = [
    "AcceleratorConfig", "REQUANT_MODES", "PARAM_ENTRY_BYTES",
    "BitLayout", "Field", "isa", "protocol", "timing",
]
