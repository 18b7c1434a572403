"""The design space of a sweep: boards × array shapes × operand widths.

A :class:`DesignPoint` is one accelerator to evaluate: a board, an array shape, an operand width
and the target clock. Its :class:`~tessera.spec.AcceleratorConfig` is the board's preset with
``rows``/``cols`` and the operand widths replaced, so buffer depths, requant modes and the frame
size stay what the board was sized for.

``--bits`` maps to ``AcceleratorConfig.input_bits``/``weight_bits`` and to the quantizer's
width. This version of the hardware and of the quantizer implements 8-bit operands only;
:func:`check_bits` rejects other widths with a message that says so, and lets them through as
soon as both the configuration and :func:`tessera.quantize` accept them.
"""

from __future__ import annotations

import inspect
import itertools
from dataclasses import asdict, dataclass

__all__ = ["DesignPoint", "make_grid", "parse_int_list", "check_bits", "SUPPORTED_BITS",
           "quantizer_width_parameter"]

#: Operand widths the sweep knows how to ask for (hardware and quantizer must both accept them).
SUPPORTED_BITS = (4, 8, 16)

#: Configuration fields derived from the operand widths when unset (``None``).
_DERIVED_FIELDS = ("acc_bits", "lut")

#: Names the quantizer may give its operand-width parameter once it has one.
_WIDTH_PARAMETERS = ("bits", "weight_bits")


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
    """

    board: str
    rows: int
    cols: int
    bits: int
    clock_mhz: float

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
        import dataclasses

        from tessera.hw.boards import get_board
        base = get_board(self.board).config
        changes = {"rows": self.rows, "cols": self.cols, "input_bits": self.bits,
                   "weight_bits": self.bits}
        if self.bits != base.input_bits:
            # Fields the configuration derives from the operand widths when left unset (the
            # accumulator width, the lookup table) are derived again for the new width.
            changes.update({f.name: None for f in dataclasses.fields(base)
                            if f.name in _DERIVED_FIELDS and f.default is None})
        try:
            return base.replace(**changes)
        except ValueError as e:
            raise ValueError(f"{self.label}: {e}") from None

    def to_dict(self) -> dict:
        """Return the point as a JSON-compatible dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DesignPoint":
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


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


def quantizer_width_parameter():
    """Return the name of :func:`tessera.quantize`'s operand-width parameter, or ``None``."""
    from tessera.quantize import quantize
    parameters = inspect.signature(quantize).parameters
    return next((name for name in _WIDTH_PARAMETERS if name in parameters), None)


def check_bits(bits):
    """Raise ``ValueError`` unless every width in ``bits`` is implemented end to end.

    A width must be accepted by :class:`~tessera.spec.AcceleratorConfig` (``input_bits`` and
    ``weight_bits``) and by the quantizer; until both implement 4- and 16-bit operands, only 8
    passes.
    """
    from tessera.spec import AcceleratorConfig
    for width in bits:
        if width not in SUPPORTED_BITS:
            raise ValueError(f"--bits {width}: operand widths are "
                             f"{', '.join(map(str, SUPPORTED_BITS))}")
        if width == 8:
            continue
        try:
            AcceleratorConfig(input_bits=width, weight_bits=width)
        except ValueError as e:
            raise ValueError(f"--bits {width}: {width}-bit operands are not implemented yet "
                             f"(the accelerator configuration says: {e}); sweep --bits 8 for "
                             "now") from None
        if quantizer_width_parameter() is None:
            raise ValueError(f"--bits {width}: the quantizer has no operand-width option yet "
                             "(tessera.quantize makes int8 only); sweep --bits 8 for now")


def make_grid(boards, rows, cols, bits, clock_mhz=None):
    """Return every :class:`DesignPoint` of ``boards × rows × cols × bits``.

    Parameters
    ----------
    boards : list of str
        Board names.
    rows, cols, bits : list of int
    clock_mhz : float, optional
        Target clock for every board; each board's default if omitted.

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
        point = DesignPoint(board=board.name, rows=r, cols=c, bits=b, clock_mhz=clock)
        point.config()      # validate now, not in a worker
        points.append(point)
    return list(dict.fromkeys(points))
