"""A shift-add multiplier: an unsigned product two multiplier bits per cycle, no multiplier cell.

The iCE40UP5K's eight SB_MAC16 all serve the MAC array, and Yosys maps any other ``*`` to a
Booth multiplier in logic (hw/build.py's ``booth`` pass), hundreds of cells for a product of
two window fields. Sizes that are computed once per ``WINDOW`` have cycles to spare
(:class:`~tessera.hw.conv_checks.WindowChecks`), so :class:`ShiftAddMultiplier` forms
``a * b`` over ``ceil(b_width / 2)`` cycles with one adder of ``a_width + 2`` bits: each cycle
adds ``a`` times the multiplier's next two bits (``0 … 3``) to the high part of the product
register and shifts it two bits right, the product's low bits taking the place of the
multiplier's consumed ones.

Timing: operands taken in cycle *T* (``start``) give ``product`` from cycle *T +*
:attr:`ShiftAddMultiplier.cycles` *+ 1* on, held until the next ``start``.

:func:`narrow_product` is the combinational form for a multiplier of a few bits (the GEMM
engine's ``m_rows * n_cols``): one shifted copy of ``a`` per bit of ``b``, added. A ``*`` there
takes a whole MULT18X18D on the ECP5 (the ``booth`` pass leaves such narrow products alone).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ShiftAddMultiplier", "narrow_product"]


def narrow_product(a, b):
    """Return the unsigned ``a * b`` as ``len(b)`` shifted, gated copies of ``a``, added.

    Parameters
    ----------
    a, b : amaranth value
        Unsigned operands; ``b`` should be a few bits wide (one adder per bit after the first).
    """
    terms = [Mux(b[bit], a << bit, 0) for bit in range(len(b))]
    result = terms[0] if terms else Const(0, 1)
    for term in terms[1:]:
        result = result + term
    return result


class ShiftAddMultiplier(wiring.Component):
    """Unsigned ``a * b`` in ``ceil(b_width / 2)`` cycles, radix 4.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths (``b`` is the multiplier: its width sets the cycles).
    short_b_width : int or None
        With it, a product whose ``b`` fits this many bits can be started ``short``: it takes
        :attr:`short_cycles` cycles and is read on ``short_product``.

    Members
    -------
    start : In(1)
        Take ``a`` and ``b`` this cycle (restarts a product under way).
    a : In(a_width)
    b : In(b_width)
    product : Out(a_width + 2 * cycles)
        ``a * b`` (a register) from :attr:`cycles` + 1 cycles after ``start``.
    short : In(1)
        ``short_b_width`` only: the product started this cycle is short.
    short_product : Out(a_width + 2 * short_cycles)
        ``short_b_width`` only: ``a * b`` of a short product (the same register, its low bits
        left out) from :attr:`short_cycles` + 1 cycles after ``start``.
    """

    def __init__(self, a_width, b_width, *, short_b_width=None):
        for name, value in (("a_width", a_width), ("b_width", b_width)):
            if not isinstance(value, int) or value < 1:
                self._MustUse__silence = True
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if short_b_width is not None and (not isinstance(short_b_width, int) or
                                          not 0 < short_b_width < b_width):
            self._MustUse__silence = True
            raise ValueError(f"short_b_width must be a positive integer below b_width "
                             f"({b_width}), not {short_b_width!r}")
        self._a_width = a_width
        self._cycles = (b_width + 1) // 2
        self._short_cycles = None if short_b_width is None else (short_b_width + 1) // 2
        short = {} if short_b_width is None else {
            "short": In(1), "short_product": Out(a_width + 2 * self._short_cycles)}
        super().__init__({"start": In(1), "a": In(a_width), "b": In(b_width),
                          "product": Out(a_width + 2 * self._cycles), **short})

    @property
    def cycles(self) -> int:
        """Cycles of one product after its ``start``."""
        return self._cycles

    @property
    def short_cycles(self):
        """Cycles of one short product after its ``start`` (None without ``short_b_width``)."""
        return self._short_cycles

    def elaborate(self, platform):
        m = Module()
        low = 2 * self._cycles
        acc = Signal(self._a_width + low)       # {partial sum, multiplier bits not yet used}
        a = Signal(self._a_width)
        left = Signal(range(self._cycles + 1))
        high = acc[low:]
        digit = acc[:2]
        total = Signal(unsigned(self._a_width + 2))
        m.d.comb += total.eq(high + Mux(digit[0], a, 0) + Mux(digit[1], a << 1, 0))
        with m.If(self.start):
            m.d.sync += [acc.eq(self.b), a.eq(self.a), left.eq(self._cycles)]
            if self._short_cycles is not None:
                with m.If(self.short):
                    m.d.sync += left.eq(self._short_cycles)
        with m.Elif(left != 0):
            m.d.sync += [acc.eq(Cat(acc[2:low], total)), left.eq(left - 1)]
        m.d.comb += self.product.eq(acc)
        if self._short_cycles is not None:
            # after s of the steps, {a * b, b's unused (zero) bits}: a * b is 2 (cycles - s)
            # bits up
            m.d.comb += self.short_product.eq(acc[2 * (self._cycles - self._short_cycles):])
        return m
