"""The requantization modes, one registry: each mode carries its own numerics.

A mode is the arithmetic of one runtime family (``docs/numerics.md``): how a layer's scales
become the hardware's ``(multiplier, shift)`` encoding, how an accumulator is requantized with
it, how floats are rounded when quantized, which accumulator widths it takes, its code in the
``POST`` instruction (``tessera.spec.isa.Mode``) and the module of its CNN kernels. Code that
depends on the mode asks the registry (``get_mode(name).requantize(...)``) instead of comparing
strings, so a third mode is one more entry here, not a silent fall-through elsewhere.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from ..spec import isa
from . import requant_onnx, requant_tflite

__all__ = ["RequantMode", "MODES", "get_mode"]


@dataclass(frozen=True)
class RequantMode:
    """One requantization mode and its numerics.

    Parameters
    ----------
    name : str
        Registry key (``"onnx"``, ``"tflite"``).
    isa_code : tessera.spec.isa.Mode
        Its encoding in the ``POST`` instruction.
    acc_bits : tuple of int
        Accumulator widths the mode's requantization takes.
    multipliers : callable
        ``(x_scale, w_scale, y_scale) -> (multiplier uint32 [N], shift int8 [N])``, the
        hardware encoding; raises ``ValueError`` outside the hardware's range.
    requantize : callable
        ``(acc int64, multiplier uint32, shift int64) -> int64``; validates the encoding.
    round : callable
        Float rounding of ``QuantizeLinear``/``QUANTIZE`` in this mode.
    runtime : str
        The runtime family it matches, for messages.
    ops_module : str
        Dotted name of the module of its CNN kernels (:attr:`ops`).
    """

    name: str
    isa_code: isa.Mode
    acc_bits: tuple
    multipliers: Callable
    requantize: Callable
    round: Callable
    runtime: str
    ops_module: str

    @property
    def ops(self) -> ModuleType:
        """Return the module of this mode's CNN kernels (``conv2d``, ``add``, ``softmax``...)."""
        return importlib.import_module(self.ops_module)

    def check_acc_bits(self, acc_bits) -> int:
        """Return ``acc_bits`` if this mode's requantization takes it, else raise ValueError."""
        if acc_bits not in self.acc_bits:
            other = [m.name for m in MODES.values() if acc_bits in m.acc_bits]
            hint = f"; use mode {other[0]!r} for {acc_bits}-bit accumulators" if other else ""
            widths = " or ".join(f"{b}-bit" for b in self.acc_bits)
            raise ValueError(f"Requant mode {self.name!r} takes {widths} accumulators, not "
                             f"acc_bits={acc_bits}{hint}")
        return acc_bits


#: Every requantization mode by name, in the order of their ISA codes.
MODES: dict[str, RequantMode] = {
    "onnx": RequantMode(
        name="onnx", isa_code=isa.Mode.ONNX, acc_bits=(32, 48),
        multipliers=requant_onnx.encode_multipliers, requantize=requant_onnx.requantize_onnx,
        round=requant_onnx.round_onnx, runtime="ONNX Runtime",
        ops_module="tessera.numerics.ops_onnx"),
    "tflite": RequantMode(
        name="tflite", isa_code=isa.Mode.TFLITE, acc_bits=(32,),
        multipliers=requant_tflite.encode_multipliers,
        requantize=requant_tflite.requantize_tflite, round=requant_tflite.round_tflite,
        runtime="TFLite Micro", ops_module="tessera.numerics.ops_tflite"),
}


def get_mode(mode) -> RequantMode:
    """Return the registered :class:`RequantMode` named ``mode`` (or ``mode`` itself).

    Raises
    ------
    ValueError
        ``mode`` is not a registered name.
    """
    if isinstance(mode, RequantMode):
        return mode
    if not isinstance(mode, str) or mode not in MODES:
        names = " or ".join(repr(name) for name in MODES)
        raise ValueError(f"Requant mode must be {names}, not {mode!r}")
    return MODES[mode]
