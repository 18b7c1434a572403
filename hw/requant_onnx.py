"""Requantization mode "onnx" in integer logic: ``rint(float32(a) * M)``.

NUMERICS.md defines the mode with float32 arithmetic; this unit reproduces it bit for bit with
integers only, in four registered stages (one result per enabled cycle):

1. int32 → float32: sign, magnitude, leading-zero count and normalisation (one log-shifter that
   yields both), round-to-nearest-even of the 8 bits below the 24-bit mantissa, carry into the
   exponent.
2. 24×24-bit mantissa product (one 48-bit multiplier) and the exponent sum.
3. Normalisation of the product (it lies in [2^46, 2^48): at most one bit of shift) and
   round-to-nearest-even to a 24-bit mantissa, again with the carry into the exponent — this is
   the float32 rounding of the multiply.
4. Rounding of that float32 to an integer, ties to even, saturated to int16.

Why saturating to int16 loses nothing: the result only feeds ``clamp(v + zero_point, lo, hi)``
with ``zero_point``, ``lo``, ``hi`` in [-128, 127]. Any ``v >= 256`` gives ``v + zero_point >= 128
> hi`` and clamps to ``hi``; any ``v <= -256`` clamps to ``lo``. Saturating to
[-2^15, 2^15 - 1] keeps every such ``v`` on the same side, so the clamp returns exactly what the
unbounded reference returns, while ``|v| < 2^15`` passes unchanged.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["OnnxRequant", "REQUANT_BITS", "normalise_int"]

#: Width of the saturated requant result shared by both modes (see the module docstring).
REQUANT_BITS = 16

_SAT_MAX = (1 << (REQUANT_BITS - 1)) - 1
_SAT_MIN = -(1 << (REQUANT_BITS - 1))
_F32_BIAS = 127


def normalise_int(m, value):
    """Return ``(normalised, leading_zeros)`` of an unsigned value, built in ``m``.

    A logarithmic shifter: each level tests whether the top ``2^j`` bits are zero and, if so,
    shifts them out; the level decisions are the bits of the leading-zero count. The leading one
    of a non-zero ``value`` ends up in the most significant bit. For ``value == 0`` the result is
    0 and the count is ``width - 1`` (callers handle zero separately).
    """
    width = len(value)
    levels = []
    step = 1
    while step * 2 <= width - 1:
        step *= 2
    current = value
    while step >= 1:
        top_zero = Signal(name=f"norm_top{step}_zero")
        shifted = Signal(width, name=f"norm_after{step}")
        m.d.comb += [
            top_zero.eq(current[width - step:] == 0),
            shifted.eq(Mux(top_zero, current << step, current)),
        ]
        levels.append(top_zero)
        current = shifted
        step //= 2
    return current, Cat(*reversed(levels))


class OnnxRequant(wiring.Component):
    """Pipelined ``rint(float32(a) * M)``, saturated to int16.

    Exact for every int32 ``a`` and every finite float32 ``M`` of either sign: zero and
    subnormal ``M`` give 0 (``|a * M| < 2^31 * 2^-126`` rounds to 0), and since ``|a| >= 1``
    the float32 product of non-zero operands is never subnormal. Products at or beyond 2^15
    saturate, which also covers float32 overflow to infinity.

    Members
    -------
    en : In(1)
        Pipeline enable: all stages advance in a cycle with ``en`` set, hold otherwise.
    a : In(signed(32))
        Accumulator (bias already added).
    multiplier : In(32)
        IEEE-754 single-precision bits of ``M``.
    result : Out(signed(REQUANT_BITS))
        ``clamp(rint(float32(a) * M), -2^15, 2^15 - 1)`` of the operands presented
        :attr:`latency` enabled cycles earlier (a register output).
    """

    #: Enabled cycles from operands to :attr:`result`.
    latency = 4

    en: In(1)
    a: In(signed(32))
    multiplier: In(32)
    result: Out(signed(REQUANT_BITS))

    def elaborate(self, platform):
        m = Module()
        en = self.en

        # ---- stage 1: int32 -> float32 (round to nearest even) ---------------------------
        a_neg = self.a < 0
        # |a| in 32 unsigned bits; |INT32_MIN| = 2^31 fits.
        magnitude = Signal(32)
        m.d.comb += magnitude.eq(Mux(a_neg, -self.a, self.a))
        norm, lz = normalise_int(m, magnitude)
        # Keep norm[8:32] (24 bits with the leading one); round on norm[7] (guard) and
        # norm[0:7] (sticky), ties to the even mantissa.
        a_round = norm[7] & (norm[0:7].any() | norm[8])
        a_mant_sum = Signal(25)
        m.d.comb += a_mant_sum.eq(norm[8:32] + a_round)
        a_carry = a_mant_sum[24]   # mantissa overflowed to 2^24: renormalise to 2^23, exp + 1

        s1_sign = Signal()
        s1_zero = Signal()
        s1_mant_a = Signal(24)
        s1_exp_a = Signal(6)       # unbiased exponent of float32(a): 0 .. 31
        s1_mant_m = Signal(24)
        s1_exp_m = Signal(8)       # biased exponent field of M
        m_exp = self.multiplier[23:31]
        with m.If(en):
            m.d.sync += [
                s1_sign.eq(a_neg ^ self.multiplier[31]),
                # A zero or subnormal M gives rint(...) = 0 (see the class docstring).
                s1_zero.eq((magnitude == 0) | (m_exp == 0)),
                s1_mant_a.eq(Mux(a_carry, 1 << 23, a_mant_sum[0:24])),
                s1_exp_a.eq(31 - lz + a_carry),
                s1_mant_m.eq(Cat(self.multiplier[0:23], Const(1, 1))),
                s1_exp_m.eq(m_exp),
            ]

        # ---- stage 2: 24x24 mantissa product -----------------------------------------------
        s2_sign = Signal()
        s2_zero = Signal()
        s2_product = Signal(48)    # in [2^46, 2^48)
        s2_exp_sum = Signal(9)     # exp_a + biased exp_m
        with m.If(en):
            m.d.sync += [
                s2_sign.eq(s1_sign),
                s2_zero.eq(s1_zero),
                s2_product.eq(s1_mant_a * s1_mant_m),
                s2_exp_sum.eq(s1_exp_a + s1_exp_m),
            ]

        # ---- stage 3: normalise the product and round it to float32 (ties to even) --------
        # float32(a) * M = product * 2^(exp_a - 23 + exp_m - 127 - 23). With the product's
        # leading one at bit 47 the kept mantissa is product[24:48] and the value is
        # 1.f * 2^(exp_a + exp_m - 126); at bit 46 it is product[23:47] and 2^(... - 127).
        top = s2_product[47]
        p_mant = Mux(top, s2_product[24:48], s2_product[23:47])
        p_guard = Mux(top, s2_product[23], s2_product[22])
        p_sticky = Mux(top, s2_product[0:23].any(), s2_product[0:22].any())
        p_mant_sum = Signal(25)
        m.d.comb += p_mant_sum.eq(p_mant + (p_guard & (p_sticky | p_mant[0])))
        p_carry = p_mant_sum[24]

        s3_sign = Signal()
        s3_zero = Signal()
        s3_mant = Signal(24)
        s3_exp = Signal(signed(11))  # unbiased exponent x of the float32 product: -126 .. 162
        with m.If(en):
            m.d.sync += [
                s3_sign.eq(s2_sign),
                s3_zero.eq(s2_zero),
                s3_mant.eq(Mux(p_carry, 1 << 23, p_mant_sum[0:24])),
                s3_exp.eq(s2_exp_sum - _F32_BIAS + top + p_carry),
            ]

        # ---- stage 4: rint (ties to even) and saturation ------------------------------------
        # y = mant * 2^(x - 23). For -1 <= x <= 14 shift left by x + 1 (0..15): then
        # floor(2y) = L >> 23, so L[23] is the half bit (guard), L[0:23] the sticky bits and
        # L[24:39] = floor(|y|). x >= 15 means |y| >= 2^15 (saturate); x <= -2 means
        # |y| < 0.5 (rounds to 0).
        saturate = s3_exp >= REQUANT_BITS - 1
        underflow = s3_exp < -1
        left = Signal(4)
        shifted = Signal(24 + 15)
        m.d.comb += [
            left.eq(s3_exp + 1),
            shifted.eq(s3_mant << left),
        ]
        floor_mag = shifted[24:39]
        round_up = shifted[23] & (shifted[0:23].any() | floor_mag[0])
        rounded = Signal(REQUANT_BITS)    # 0 .. 2^15
        m.d.comb += rounded.eq(floor_mag + round_up)

        with m.If(en):
            with m.If(s3_zero | underflow):
                m.d.sync += self.result.eq(0)
            with m.Elif(saturate):
                m.d.sync += self.result.eq(Mux(s3_sign, _SAT_MIN, _SAT_MAX))
            with m.Elif(s3_sign):
                m.d.sync += self.result.eq(-rounded)   # -2^15 is representable
            with m.Else():
                m.d.sync += self.result.eq(Mux(rounded[REQUANT_BITS - 1], _SAT_MAX, rounded))
        return m
