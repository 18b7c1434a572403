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

With ``cycles = c > 1`` (``AcceleratorConfig.requant_cycles``, for parts whose multipliers all
serve the MAC array) the product is an iterative digit-serial one instead: ``m0`` read as the
unsigned ``u = m0 + 2^32 * m0[31]`` is split into ``c`` digits of ``d = ceil(32 / c)`` bits,
least significant first, and each cycle adds one digit times ``x`` (a ``32 x d`` product in
shift-add rows, never a hardware multiplier) to the high part of a product register whose low
part holds the digits not yet used (:class:`~tessera.hw.shift_add.ShiftAddMultiplier`'s
layout), so ``x * u`` is exact after ``c`` cycles. ``p = x * u - m0[31] * x * 2^32``: the
correction folds into the rounding addend, ``r' = r - m0[31] * 2x * 2^31``, and
``p + r = x * u + 2^30 + c' * 2^31`` needs only ``(x * u) >> 30`` from the product. The stages:
1 as above; 2 the addend ``c'``; 3 the product, which holds its element for ``c - 1`` extra
cycles (:attr:`hold`), as :class:`~tessera.hw.requant_onnx.OnnxRequant`'s iterative product does
(a configuration with an iterative product builds one mode); 4 ``b``, the sum; 5 and 6 as
above.

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
_MAX_CYCLES = 24  # tessera.spec.config.MAX_REQUANT_CYCLES


class TfliteRequant(wiring.Component):
    """``RDBPOT(SRDHM(a << max(e, 0), m0), max(-e, 0))`` in six stages, saturated to int16.

    Parameters
    ----------
    cycles : int, optional
        Cycles per element of the product (1 to 24, ``AcceleratorConfig.requant_cycles``).
        1 (default): fully pipelined, four 18x18 partial products. ``c > 1``: the iterative
        ``32 x ceil(32 / c)`` digit product of the module docstring; stage 3 then holds its
        element for ``c - 1`` extra cycles, :attr:`hold` is high in them and the caller must
        keep ``en`` low (the whole pipeline freezes), so every element costs exactly ``c``
        cycles.
    result_bits : int, optional
        Saturation width of ``result``: 16 (default) or more
        (:func:`tessera.hw.requant_onnx.requant_bits`), up to 32 (no saturation).
    unsaturated : bool, optional
        Also build :attr:`rounded`, the result before saturation (an ``ADD``'s input passes,
        hw/add.py, need the whole int32).

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
    valid : In(1)
        Only with ``cycles > 1``: the operands are an element (stage 3 works only on those).
    hold : Out(1)
        Only with ``cycles > 1``: stage 3 needs more cycles for its element; ``en`` must be low.
    rounded : Out(signed(32))
        Only with ``unsaturated``: the unsaturated result (every value of the formula is an
        int32) for the operands presented :attr:`rounded_latency` enabled cycles earlier.
    """

    #: Enabled cycles from operands to :attr:`result`.
    latency = 6
    #: Enabled cycles from operands to :attr:`rounded`.
    rounded_latency = 5

    def __init__(self, cycles=1, *, result_bits=REQUANT_BITS, unsaturated=False):
        if isinstance(cycles, bool) or not isinstance(cycles, int) \
                or not 1 <= cycles <= _MAX_CYCLES:
            self._MustUse__silence = True   # a rejected component is not an unused one
            raise ValueError(f"Requant cycles per element must be an integer from 1 to "
                             f"{_MAX_CYCLES}, not {cycles!r}")
        if isinstance(result_bits, bool) or not isinstance(result_bits, int) \
                or not REQUANT_BITS <= result_bits <= _MAX_RESULT_BITS:
            self._MustUse__silence = True
            raise ValueError(f"Result width must be an integer from {REQUANT_BITS} to "
                             f"{_MAX_RESULT_BITS}, not {result_bits!r}")
        if not isinstance(unsaturated, bool):
            self._MustUse__silence = True
            raise TypeError(f"unsaturated must be True or False, not {unsaturated!r}")
        self._cycles = cycles
        self._result_bits = result_bits
        self._unsaturated = unsaturated
        members = {
            "en": In(1),
            "a": In(signed(32)),
            "multiplier": In(32),
            "shift": In(signed(8)),
            "result": Out(signed(result_bits)),
        }
        if cycles > 1:
            members.update(valid=In(1), hold=Out(1))
        if unsaturated:
            members.update(rounded=Out(signed(32)))
        super().__init__(members)

    @property
    def cycles(self) -> int:
        """Cycles per element of the product."""
        return self._cycles

    def _left_shift(self, m):
        # Stage 1's wrapping left shift. The shifter's levels take e's low bits straight from
        # the input; the range cases (no left shift for e <= 0, everything shifted out for
        # e >= 32) are decided beside it and chosen last.
        e = self.shift
        by_low = Signal(signed(32))
        shifted = Signal(signed(32))
        m.d.comb += [
            by_low.eq(self.a << e[0:5]),                 # keeps the low 32 bits: int32 wrap
            shifted.eq(Mux(e <= 0, self.a, Mux(e >= 32, 0, by_low))),
        ]
        return shifted

    @staticmethod
    def _right_amount(e):
        return Mux(e < -_MAX_RIGHT, _MAX_RIGHT, Mux(e < 0, -e, 0))

    @staticmethod
    def _addend(m, k1, sign_differs, both_min):
        # r = 2^30 + c * 2^31 with c = 2^(k-1) - n (see the module docstring): 2^(k-1) is 0
        # for k = 0, n is 1 for a negative product when k >= 1 and for INT32_MIN x INT32_MIN.
        # c is formed bit by bit from k without a subtractor: 2^(k-1) - 1 is the mask of the
        # k - 1 low bits for k >= 1, and -1 for k = 0 (n = 1 there only for INT32_MIN^2).
        n1 = Signal()
        half1 = Signal(_MAX_RIGHT)                     # 2^(k-1), 0 for k = 0
        mask1 = Signal(_MAX_RIGHT)                     # 2^(k-1) - 1 for k >= 1, 0 for k = 0
        m.d.comb += [
            n1.eq((sign_differs & (k1 != 0)) | both_min),
            half1.eq(Cat(*(k1 == i + 1 for i in range(_MAX_RIGHT)))),
            mask1.eq(Cat(*(k1 > i + 1 for i in range(_MAX_RIGHT)))),
        ]
        return Mux(n1, Mux(k1 == 0, -1, mask1), half1)

    def _saturate(self, m, rounded):
        sat_max = (1 << (self._result_bits - 1)) - 1
        sat_min = -(1 << (self._result_bits - 1))
        with m.If(self.en):
            m.d.sync += self.result.eq(
                Mux(rounded > sat_max, sat_max, Mux(rounded < sat_min, sat_min, rounded)))
        if self._unsaturated:
            m.d.comb += self.rounded.eq(rounded)

    def elaborate(self, platform):
        if self._cycles > 1:
            return self._elaborate_iterative()
        m = Module()
        en = self.en
        e = self.shift

        # ---- stage 1: wrapping left shift, right-shift amount -----------------------------
        shifted = self._left_shift(m)
        s1_x = Signal(signed(32))
        s1_m0 = Signal(signed(32))
        s1_right = Signal(range(_MAX_RIGHT + 1))
        with m.If(en):
            m.d.sync += [
                s1_x.eq(shifted),
                s1_m0.eq(self.multiplier.as_signed()),
                s1_right.eq(self._right_amount(e)),
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
        k1 = s1_right
        addend = self._addend(m, k1, s1_x[31] ^ s1_m0[31],
                              (s1_x == _INT32_MIN) & (s1_m0 == _INT32_MIN))
        s2_addend = Signal(signed(_MAX_RIGHT + 1))     # c, from -1 to 2^32
        s2_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s2_addend.eq(addend),
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
        self._saturate(m, s5_rounded)
        return m

    def _elaborate_iterative(self):
        m = Module()
        en = self.en
        cycles = self._cycles
        digit_bits = -(-32 // cycles)
        width = digit_bits * cycles            # the multiplier's digits, zero-extended

        # ---- stage 1: wrapping left shift, right-shift amount ------------------------------
        shifted = self._left_shift(m)
        s1_valid = Signal()
        s1_x = Signal(signed(32))
        s1_m0 = Signal(32)
        s1_right = Signal(range(_MAX_RIGHT + 1))
        with m.If(en):
            m.d.sync += [
                s1_valid.eq(self.valid),
                s1_x.eq(shifted),
                s1_m0.eq(self.multiplier),
                s1_right.eq(self._right_amount(self.shift)),
            ]

        # ---- stage 2: the rounding addend with the unsigned multiplier's correction ---------
        # c' = c - m0[31] * 2x (module docstring); the product register takes the digits.
        m0_negative = s1_m0[31]
        addend = self._addend(m, s1_right, s1_x[31] ^ m0_negative,
                              (s1_x == _INT32_MIN) & (s1_m0 == 1 << 31))
        s2_valid = Signal()
        s2_x = Signal(signed(32))
        s2_addend = Signal(signed(_MAX_RIGHT + 3))     # c', from -2^32 to 2^33
        s2_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s2_valid.eq(s1_valid),
                s2_x.eq(s1_x),
                s2_addend.eq(addend - Mux(m0_negative, s1_x << 1, 0)),
                s2_right.eq(s1_right),
            ]

        # ---- stage 3: the digit-serial product x * u -------------------------------------------
        # `product` is {high part (an int32: |acc + digit * x| >> d stays in range), the digits
        # not yet used, below them the product's low bits}: each step adds digit * x to the
        # high part and shifts the register right by a digit (module docstring). The step in
        # which the pipeline advances is the last one: its sum goes straight to stage 3's
        # register, and the register takes the next element's digits.
        product = Signal(width + 32)
        high = product[width:].as_signed()
        digit = product[:digit_bits]
        # digit * x as explicit shift-and-add rows: logic by construction, so a small part
        # never spends a hardware multiplier on it; summed as a balanced tree with the high
        # part (a chain of d adders was 10 LUT levels between registers on the ECP5, 9 now).
        terms = [high, *(Mux(digit[b], s2_x, 0) << b for b in range(digit_bits))]
        while len(terms) > 1:
            terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                     for i in range(0, len(terms), 2)]
        step_sum = Signal(signed(32 + digit_bits))
        m.d.comb += step_sum.eq(terms[0])
        stepped = Cat(product[digit_bits:width], step_sum)     # x * u once the last digit is in
        step = Signal(range(cycles))
        # step == cycles - 1, kept as a register: `hold` reaches the drain's decisions through
        # the PostProcessor's i.ready
        last = Signal()
        working = Signal()
        m.d.comb += [working.eq(s2_valid & ~last), self.hold.eq(working)]
        with m.If(working):
            m.d.sync += [product.eq(stepped), step.eq(step + 1), last.eq(step == cycles - 2)]
        s3_high = Signal(signed(34))           # (x * u) >> 30
        s3_addend = Signal.like(s2_addend)
        s3_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                product.eq(s1_m0), step.eq(0), last.eq(0),
                s3_high.eq(stepped[30:64]),
                s3_addend.eq(s2_addend),
                s3_right.eq(s2_right),
            ]

        # ---- stage 4: b = floor((x * u + 2^30) / 2^31) + c' --------------------------------
        s4_biased = Signal(signed(36))
        s4_right = Signal.like(s1_right)
        with m.If(en):
            m.d.sync += [
                s4_biased.eq(s3_high[1:].as_signed() + s3_addend + s3_high[0]),
                s4_right.eq(s3_right),
            ]

        # ---- stage 5: RDBPOT's floor shift -----------------------------------------------------
        s5_rounded = Signal(signed(33))
        with m.If(en):
            m.d.sync += s5_rounded.eq(s4_biased >> s4_right)

        # ---- stage 6: saturation to int16 (result_bits) ----------------------------------------
        self._saturate(m, s5_rounded)
        return m
