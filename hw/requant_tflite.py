"""Requantization mode "tflite": gemmlowp fixed point with double rounding.

``requant(a) = RDBPOT(SRDHM(a << max(e, 0), m0), max(-e, 0))`` with the C semantics of
docs/numerics.md, in six registered stages (one result per enabled cycle):

1. Left shift with int32 wrap-around; the right-shift amount ``k = max(-e, 0)``.
2. Four partial products of the signed 32×32 → 64-bit product ``p = x * m0`` (16-bit halves,
   one 18×18 hardware multiplier each, registered in its output register on ECP5), and the
   rounding addend ``r`` (below).
3. The partial products again, in fabric registers: the route out of the multiplier blocks is
   the whole of this stage (on the ULX3S-85F it took 5.4 ns of the 11.9 ns path through the sum).
4. ``b = floor((p + r) / 2^31)``, one sum of the partial products and ``r``, which is SRDHM and
   RDBPOT's rounding addend at once. SRDHM: C computes ``(p + nudge) / 2^31`` truncating toward
   zero, with ``nudge = 2^30`` for ``p >= 0`` and ``1 - 2^30`` otherwise. For ``p >= 0`` that is
   ``s = floor((p + 2^30) / 2^31)``. For ``p < 0`` the dividend ``t = p + 1 - 2^30`` is negative,
   and truncation of a negative ``t`` equals ``floor((t + 2^31 - 1) / 2^31) = floor((p + 2^30) /
   2^31)``: both branches are the same expression. RDBPOT, ties away from zero: ``(s >> k) +
   ((s & mask) > (mask >> 1) + (s < 0))`` equals ``(s + 2^(k-1) - (s < 0)) >> k`` for ``k >= 1``
   (the remainder test is ``rem >= half`` for ``s >= 0`` and ``rem >= half + 1`` for ``s < 0``;
   adding that threshold's complement before the floor shift carries exactly when the test
   holds), and ``s`` for ``k = 0``. Adding a multiple of 2^31 commutes with the floor, so
   ``b = s + 2^(k-1) - n`` with ``r = 2^30 + (2^(k-1) - n) * 2^31``. ``n`` is ``s < 0`` (for
   ``k >= 1``), taken early as "the operands' sign bits differ": that differs from ``s < 0``
   only when ``s = 0`` (``-2^30 <= p <= 0``), where ``b`` is ``2^(k-1)`` or ``2^(k-1) - 1``
   and both shift to 0.
   ``x == m0 == INT32_MIN`` (the only product that does not fit) must give ``s = INT32_MAX`` as
   in gemmlowp, one less than the sum: ``n = 1`` there.
5. RDBPOT's floor shift ``b >> k``.
6. Saturation to int16, or ``result_bits`` for 16-bit outputs (exact after the zero point and
   clamp, see :mod:`tessera.hw.requant_onnx`).

The multiplier bits are read as a C ``int32_t`` (in-contract ``m0`` is 0 or in
``[2^30, 2^31)``). Shifts outside the contract's ``[-31, 30]`` still give the exact value of the
formula with unbounded integers (a left shift by 32 or more wraps to 0, a right shift by 33 or
more rounds every int32 to 0).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .mac_ecp5 import is_ecp5, registered_product
from .requant_onnx import REQUANT_BITS

__all__ = ["TfliteRequant"]

_INT32_MIN = -(1 << 31)
#: The widest ``result``: MultiplyByQuantizedMultiplier's whole int32 (an ``ADD``'s input passes,
#: hw/add.py, must not saturate).
_MAX_RESULT_BITS = 32
_MAX_RIGHT = 33   # RDBPOT by 33 or more is 0 for every int32 (and by 32 only -2^31 -> -1)


class TfliteRequant(wiring.Component):
    """Pipelined ``RDBPOT(SRDHM(a << max(e, 0), m0), max(-e, 0))``, saturated to int16.

    Parameters
    ----------
    result_bits : int, optional
        Saturation width of ``result``: 16 (default) or more
        (:func:`tessera.hw.requant_onnx.requant_bits`), up to 32 (no saturation: an ``ADD``'s
        input passes, hw/add.py).

    Members
    -------
    en : In(1)
        Pipeline enable: all stages advance in a cycle with ``en`` set, hold otherwise.
    a : In(signed(32))
        Accumulator (bias already added).
    multiplier : In(32)
        ``m0`` (read as a two's complement int32).
    shift : In(signed(8))
        Exponent ``e``.
    result : Out(signed(result_bits))
        The saturated result for the operands presented :attr:`latency` enabled cycles earlier
        (a register output).
    """

    #: Enabled cycles from operands to :attr:`result`.
    latency = 6

    def __init__(self, *, result_bits=REQUANT_BITS):
        if isinstance(result_bits, bool) or not isinstance(result_bits, int) \
                or not REQUANT_BITS <= result_bits <= _MAX_RESULT_BITS:
            self._MustUse__silence = True   # a rejected component is not an unused one
            raise ValueError(f"Result width must be an integer from {REQUANT_BITS} to "
                             f"{_MAX_RESULT_BITS}, not {result_bits!r}")
        self._result_bits = result_bits
        super().__init__({
            "en": In(1),
            "a": In(signed(32)),
            "multiplier": In(32),
            "shift": In(signed(8)),
            "result": Out(signed(result_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        en = self.en
        e = self.shift

        # ---- stage 1: wrapping left shift, right-shift amount -----------------------------
        # The shifter's levels take e's low bits straight from the input; the range cases
        # (no left shift for e <= 0, everything shifted out for e >= 32) are decided beside it
        # and chosen last.
        by_low = Signal(signed(32))
        shifted = Signal(signed(32))
        m.d.comb += [
            by_low.eq(self.a << e[0:5]),                 # keeps the low 32 bits: int32 wrap
            shifted.eq(Mux(e <= 0, self.a, Mux(e >= 32, 0, by_low))),
        ]
        s1_x = Signal(signed(32))
        s1_m0 = Signal(signed(32))
        s1_right = Signal(range(_MAX_RIGHT + 1))
        with m.If(en):
            m.d.sync += [
                s1_x.eq(shifted),
                s1_m0.eq(self.multiplier.as_signed()),
                s1_right.eq(Mux(e < -_MAX_RIGHT, _MAX_RIGHT, Mux(e < 0, -e, 0))),
            ]

        # ---- stage 2: partial products of the signed 32x32 product, rounding addend ------------
        # x = xh*2^16 + xl and m0 = mh*2^16 + ml with xh, mh signed and xl, ml unsigned 16-bit
        # halves: each partial product fits one 18x18 signed multiplier (ECP5 MULT18X18D).
        xl, xh = s1_x[:16], s1_x[16:].as_signed()
        ml, mh = s1_m0[:16], s1_m0[16:].as_signed()
        s2_ll = Signal(32)
        s2_hh = Signal(signed(32))
        s2_hl = Signal(signed(33))
        s2_lh = Signal(signed(33))
        # r = 2^30 + c * 2^31 with c = 2^(k-1) - n (see the module docstring): 2^(k-1) is 0
        # for k = 0, n is 1 for a negative product when k >= 1 and for INT32_MIN x INT32_MIN.
        # c is formed bit by bit from k without a subtractor: 2^(k-1) - 1 is the mask of the
        # k - 1 low bits for k >= 1, and -1 for k = 0 (n = 1 there only for INT32_MIN^2).
        k1 = s1_right
        n1 = Signal()
        half1 = Signal(_MAX_RIGHT)                     # 2^(k-1), 0 for k = 0
        mask1 = Signal(_MAX_RIGHT)                     # 2^(k-1) - 1 for k >= 1, 0 for k = 0
        m.d.comb += [
            n1.eq(((s1_x[31] ^ s1_m0[31]) & (k1 != 0))
                  | ((s1_x == _INT32_MIN) & (s1_m0 == _INT32_MIN))),
            half1.eq(Cat(*(k1 == i + 1 for i in range(_MAX_RIGHT)))),
            mask1.eq(Cat(*(k1 > i + 1 for i in range(_MAX_RIGHT)))),
        ]
        s2_addend = Signal(signed(_MAX_RIGHT + 1))     # c, from -1 to 2^32
        s2_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s2_addend.eq(Mux(n1, Mux(k1 == 0, -1, mask1), half1)),
                s2_right.eq(s1_right),
            ]
        if is_ecp5(platform):
            # MULT18X18D blocks whose output registers are the stage-2 products (an inferred,
            # unregistered block between fabric registers took 13.7 ns on the LFE5U-85F).
            m.d.comb += [
                s2_ll.eq(registered_product(m, "mul_ll", xl, ml, en)),
                s2_hh.eq(registered_product(m, "mul_hh", xh, mh, en)),
                s2_hl.eq(registered_product(m, "mul_hl", xh, ml, en)),
                s2_lh.eq(registered_product(m, "mul_lh", xl, mh, en)),
            ]
        else:
            with m.If(en):
                m.d.sync += [
                    s2_ll.eq(xl * ml),
                    s2_hh.eq(xh * mh),
                    s2_hl.eq(xh * ml),
                    s2_lh.eq(xl * mh),
                ]

        # ---- stage 3: the partial products in fabric registers ------------------------------
        s3_ll = Signal.like(s2_ll)
        s3_hh = Signal.like(s2_hh)
        s3_hl = Signal.like(s2_hl)
        s3_lh = Signal.like(s2_lh)
        s3_addend = Signal.like(s2_addend)
        s3_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s3_ll.eq(s2_ll), s3_hh.eq(s2_hh), s3_hl.eq(s2_hl), s3_lh.eq(s2_lh),
                s3_addend.eq(s2_addend),
                s3_right.eq(s2_right),
            ]

        # ---- stage 4: b = floor((p + r) / 2^31), SRDHM with RDBPOT's addend -----------------
        # r's low 31 bits are the constant 2^30; p + r stays below 2^65 in magnitude.
        total = Signal(signed(67))
        m.d.comb += total.eq(Cat(s3_ll, s3_hh).as_signed() + (s3_hl << 16) + (s3_lh << 16)
                             + Cat(Const(1 << 30, 31), s3_addend).as_signed())
        s4_biased = Signal(signed(36))
        s4_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s4_biased.eq(total[31:].as_signed()),
                s4_right.eq(s3_right),
            ]

        # ---- stage 5: RDBPOT's floor shift -----------------------------------------------------
        s5_rounded = Signal(signed(33))
        with m.If(en):
            m.d.sync += s5_rounded.eq(s4_biased >> s4_right)

        # ---- stage 6: saturation to int16 (result_bits) ----------------------------------------
        sat_max = (1 << (self._result_bits - 1)) - 1
        sat_min = -(1 << (self._result_bits - 1))
        rounded = s5_rounded
        with m.If(en):
            m.d.sync += self.result.eq(
                Mux(rounded > sat_max, sat_max, Mux(rounded < sat_min, sat_min, rounded)))
        return m
