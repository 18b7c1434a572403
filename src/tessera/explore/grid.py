"""The design space of a sweep: boards × array shapes × operand widths.

A :class:`DesignPoint` is one accelerator to evaluate: a board, an array shape, an operand width
and the target clock. Its :class:`~tessera.spec.AcceleratorConfig` is the board's preset with
``rows``/``cols`` and the operand widths replaced, so buffer depths, requant modes and the frame
size stay what the board was sized for.

``--bits`` maps to ``AcceleratorConfig.input_bits``/``weight_bits`` (with the width-dependent
fields derived again by :meth:`~tessera.spec.AcceleratorConfig.with_widths`) and to
``tessera.quantize(..., bits=...)``; every width of :data:`SUPPORTED_BITS` runs on the whole
stack.

A point with ``cnn=True`` (a model that is not a dense chain) starts from the board's CNN preset
(:func:`tessera.compiler.presets.get_preset`) instead: 8-bit operands,
mode ``tflite``, and each buffer keeps the preset's bytes (the chip's memories), its depth
rescaled to the entry width of the new shape.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

__all__ = ["DesignPoint", "make_grid", "parse_int_list", "check_bits", "cnn_config",
           "SUPPORTED_BITS"]

#: Operand widths a sweep may ask for (the quantizer and the device stack run each of them).
SUPPORTED_BITS = (4, 8, 16)

#: Deepest buffer a CNN point may get (buffer addresses are 16-bit fields of the ISA).
_MAX_DEPTH = 1 << 16

@dataclass(frozen=True)
class DesignPoint:
    """One point of the design space.

    Attributes
    ----------
    board : str
        Board name (see :data:`tessera.hw.boards.BOARDS`).
    rows, cols : int
        MAC array shape.
    bits : int
        Operand width of activations and weights.
    clock_mhz : float
        Target clock of the build (the board's default unless the user gave one).
    cnn : bool
        Start from the board's CNN preset (see the module docstring) instead of its preset.
    """

    board: str
    rows: int
    cols: int
    bits: int
    clock_mhz: float
    cnn: bool = False

    @property
    def label(self) -> str:
        """Short name, e.g. ``"icebreaker 2x4 int8"``."""
        return f"{self.board} {self.rows}x{self.cols} int{self.bits}"

    def config(self):
        """Return the :class:`~tessera.spec.AcceleratorConfig` of this point.

        Raises
        ------
        ValueError
            The configuration rejects the shape or the width (the message says why).
        """
        if self.cnn:
            return cnn_config(self.board, self.rows, self.cols)
        from tessera.hw.boards import get_board
        base = get_board(self.board).config
        try:
            # The width-dependent fields (accumulator width, requant modes the accumulator
            # allows, the lookup table) are derived again for the point's width.
            config = base if self.bits == base.input_bits == base.weight_bits else \
                base.with_widths(self.bits)
            return config.replace(rows=self.rows, cols=self.cols)
        except ValueError as e:
            raise ValueError(f"{self.label}: {e}") from None

    def to_dict(self) -> dict:
        """Return the point as a JSON-compatible dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DesignPoint":
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def cnn_config(board, rows, cols):
    """Return ``board``'s CNN preset with a ``rows x cols`` array and the same memory bytes.

    Raises
    ------
    ValueError
        ``board`` has no CNN preset (the message lists those that have one).
    """
    import math

    from tessera.compiler.presets import get_preset
    base = get_preset(board).config
    shaped = base.replace(rows=rows, cols=cols, drain_lanes=min(base.drain_lanes, rows),
                          act_bank_lanes=math.gcd(base.act_bank_lanes, rows))
    act_bytes = base.act_depth * base.act_entry_bytes
    weight_bytes = base.weight_depth * base.weight_entry_bytes
    return shaped.replace(
        act_depth=min(_MAX_DEPTH, act_bytes // shaped.act_entry_bytes),
        weight_depth=min(_MAX_DEPTH, weight_bytes // shaped.weight_entry_bytes))


def parse_int_list(text, what, *, lo=1, hi=None):
    """Return the integers of a comma-separated list such as ``"2,4,8"``, sorted, unique.

    Raises
    ------
    ValueError
        An item is not an integer in ``[lo, hi]``, or the list is empty.
    """
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise ValueError(f"{what} must be a comma-separated list of integers such as 2,4,8, "
                         f"not {text!r}")
    values = []
    for item in items:
        try:
            value = int(item)
        except ValueError:
            raise ValueError(f"{what}: {item!r} is not an integer (give a comma-separated list "
                             f"such as 2,4,8)") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
            raise ValueError(f"{what}: {value} is out of range; each value must be {bound}")
        values.append(value)
    return sorted(set(values))


def check_bits(bits):
    """Raise ``ValueError`` unless every width in ``bits`` is one of :data:`SUPPORTED_BITS`."""
    for width in bits:
        if width not in SUPPORTED_BITS:
            raise ValueError(f"--bits {width}: operand widths are "
                             f"{', '.join(map(str, SUPPORTED_BITS))}")


def make_grid(boards, rows, cols, bits, clock_mhz=None, *, cnn=False):
    """Return every :class:`DesignPoint` of ``boards × rows × cols × bits``.

    Parameters
    ----------
    boards : list of str
        Board names.
    rows, cols, bits : list of int
    clock_mhz : float, optional
        Target clock for every board; each board's default if omitted.
    cnn : bool
        Points on the boards' CNN presets (8-bit operands only).

    Raises
    ------
    ValueError
        Unknown board, unsupported width, or a shape the configuration rejects.
    """
    from tessera.hw.boards import get_board
    if not boards:
        raise ValueError("Give at least one --board")
    check_bits(bits)
    points = []
    for name, r, c, b in itertools.product(boards, rows, cols, bits):
        board = get_board(name)
        clock = float(clock_mhz) if clock_mhz is not None else float(board.clock_mhz)
        point = DesignPoint(board=board.name, rows=r, cols=c, bits=b, clock_mhz=clock, cnn=cnn)
        point.config()      # validate now, not in a worker
        points.append(point)
    return list(dict.fromkeys(points))
