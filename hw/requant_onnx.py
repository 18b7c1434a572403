"""Requantization mode "onnx" in integer logic: ``rint(float32(a) * M)``.

docs/numerics.md defines the mode with float32 arithmetic; this unit reproduces it bit for bit with
integers only, in six registered stages (one result per enabled cycle, or one per ``cycles``
cycles with the iterative multiplier):

1. Sign and magnitude ``|a|`` (``n`` unsigned bits for an ``n``-bit accumulator, 32 or 48;
   ``|-2^(n-1)|`` fits), and the first half of the levels of its normalisation; fields of ``M``.
   An iterative unit (``cycles > 1``) registers ``|a|`` alone and runs those levels in a stage
   of their own (1b).
2. Leading-zero normalisation of ``|a|`` (one log shifter, its levels split between stages 1
   (or 1b) and 2, yields the shifted value and the count): ``norm = |a| << lz`` has its leading
   one at bit ``n - 1``.
3. The mantissa product. ``float32(|a|) = (hi + r) * 2^(n - 24 - lz)`` with ``hi =
   norm[n-24:n]`` and the round-to-nearest-even increment ``r = guard & (sticky | hi[0])``
   (guard ``norm[n-25]``, sticky ``norm[0:n-25] != 0``): the int32 -> float32 conversion, and
   with ``n = 48`` the int48 -> float32 one, rounded as NumPy's ``astype(np.float32)`` does.
   The increment is never applied to ``hi``: the product is ``(hi + r) * mm = hi * mm + r *
   mm``, and a carry out (``hi + r = 2^24``) needs no renormalisation because ``2^24 * mm <
   2^48`` is still a valid product for stage 5. With
   ``cycles == 1`` this stage registers four partial products of at most 17x17 bits (one ECP5
   MULT18X18D each, registered inputs and outputs); with ``cycles > 1`` it is an iterative
   digit-serial multiplier that adds ``r * mm`` in its last step and registers ``P`` itself
   (see :class:`OnnxRequant`).
4. Sum of the partial products and ``r * mm``: the exact 48-bit product ``P`` (a wire in an
   iterative unit, whose stage 1b takes this stage's place: six registered stages either way).
5. Normalisation of ``P`` (it lies in [2^46, 2^48): at most one bit of shift) and
   round-to-nearest-even to a 24-bit mantissa, with the carry into the exponent — the float32
   rounding of the multiply.
6. Rounding of that float32 to an integer, ties to even, and the sign, saturated to
   ``result_bits`` (int16 up to 8-bit outputs, :func:`requant_bits`).

Why saturating to int16 loses nothing: the result only feeds ``clamp(v + zero_point, lo, hi)``
with ``zero_point``, ``lo``, ``hi`` in [-128, 127]. Any ``v >= 256`` gives ``v + zero_point >= 128
> hi`` and clamps to ``hi``; any ``v <= -256`` clamps to ``lo``. Saturating to
[-2^15, 2^15 - 1] keeps every such ``v`` on the same side, so the clamp returns exactly what the
unbounded reference returns, while ``|v| < 2^15`` passes unchanged. The same holds for
``b``-bit outputs with any saturation width of at least ``b + 2`` bits: 16-bit outputs use 24.
"""

from contextlib import contextmanager

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .mac_ecp5 import is_ecp5, registered_product

__all__ = ["OnnxRequant", "REQUANT_BITS", "normalise_int", "magnitude_decisions",
           "MANTISSA_BITS", "requant_bits"]

#: Width of the saturated requant result shared by both modes up to 8-bit outputs (see the
#: module docstring).
REQUANT_BITS = 16


def requant_bits(output_bits) -> int:
    """Return the saturation width of the requant result for ``output_bits``-wide outputs.

    16 for 4 and 8-bit outputs, ``output_bits + 8`` beyond: at least ``output_bits + 2``, which
    keeps the clamp exact (module docstring).
    """
    return max(REQUANT_BITS, output_bits + 8)

#: Bits of a float32 mantissa with its hidden one: the width of both product operands.
MANTISSA_BITS = 24

_F32_BIAS = 127
_SPLIT = 17   # partial products of at most 17x17 unsigned bits fit an 18x18 signed multiplier


def _shift_steps(width):
    # The log shifter's steps for a width-bit value, largest first: 16, 8, 4, 2, 1 for 32 bits.
    step = 1
    while step * 2 <= width - 1:
        step *= 2
    steps = []
    while step >= 1:
        steps.append(step)
        step //= 2
    return steps


def normalise_int(m, value, *, levels=None, decisions=None):
    """Return ``(normalised, leading_zeros)`` of an unsigned value, built in ``m``.

    A logarithmic shifter: each level tests whether the top ``2^j`` bits are zero and, if so,
    shifts them out; the level decisions are the bits of the leading-zero count. The leading one
    of a non-zero ``value`` ends up in the most significant bit. For ``value == 0`` the result is
    0 and the count is all ones (callers handle zero separately).

    ``levels`` (a slice of the shift steps, largest first) builds only those levels: the
    levels can be split between pipeline stages, each call continuing on the previous one's
    shifted value, and the counts concatenate (``Cat(later, earlier)``). ``decisions`` (one
    per level built) replaces the levels' own zero tests with values formed elsewhere, e.g. by
    :func:`magnitude_decisions` in parallel with the negation that forms ``value``.
    """
    width = len(value)
    levels_built = []
    current = value
    steps = _shift_steps(width)[levels if levels is not None else slice(None)]
    for index, step in enumerate(steps):
        top_zero = Signal(name=f"norm_top{step}_zero")
        shifted = Signal(width, name=f"norm_after{step}")
        m.d.comb += [
            top_zero.eq(current[width - step:] == 0 if decisions is None else decisions[index]),
            shifted.eq(Mux(top_zero, current << step, current)),
        ]
        levels_built.append(top_zero)
        current = shifted
    return current, Cat(*reversed(levels_built))


def magnitude_decisions(a, count):
    """Return the first ``count`` decisions of :func:`normalise_int` on ``|a|``, from ``a``.

    The level with step ``s`` after a shift by ``sh`` tests ``|a| < 2^(n - sh - s)``, and
    ``|a| < 2^k`` reads straight off the two's complement bits: ``a[k:] == 0`` for ``a >= 0``,
    ``a[k:]`` all ones and ``a[:k] != 0`` for ``a < 0`` (``-2^k`` itself is not below). So the
    decisions need no negation: they form in parallel with the carry chain of ``-a``, and each
    level's multiplexer waits for the magnitude only (on the LFE5U-85F the negation followed by
    two levels' zero tests was a 10.4 ns path of the 10 ns clock).
    """
    n = len(a)
    negative = a[n - 1]

    def below(k):   # |a| < 2^k
        if k == 0:
            return a == 0
        return Mux(negative, a[k:].all() & a[:k].any(), a[k:] == 0)

    steps = _shift_steps(n)[:count]
    decisions = []

    def decide(j, index, shift):
        # decision j, given the decisions before `index` took `shift` so far
        if index == j:
            return below(n - shift - steps[j])
        return Mux(decisions[index], decide(j, index + 1, shift + steps[index]),
                   decide(j, index + 1, shift))

    for j in range(count):
        decisions.append(decide(j, 0, 0))
    return decisions


class OnnxRequant(wiring.Component):
    """Pipelined ``rint(float32(a) * M)``, saturated to ``result_bits`` (int16 by default).

    Exact for every ``acc_bits``-wide ``a`` and every finite float32 ``M`` of either sign: zero
    and subnormal ``M`` give 0 (``|a * M| < 2^47 * 2^-126`` rounds to 0), and since ``|a| >= 1``
    the float32 product of non-zero operands is never subnormal. Products at or beyond
    ``2^(result_bits - 1)`` saturate, which also covers float32 overflow to infinity.

    Parameters
    ----------
    cycles : int
        Cycles per element of the mantissa product (1 to 24). 1: a fully pipelined product
        (four hardware multipliers). ``c > 1``: an iterative multiplier that adds one
        ``ceil(24 / c)``-bit digit of ``float32(|a|)``'s truncated mantissa ``hi`` per cycle,
        most significant first (Horner: ``P = (P << d) + digit * mm``, the last digit plus the
        rounding increment ``r``), so only a ``d x 24`` product is built. Stage 3
        then holds its element for ``c - 1`` extra cycles: :attr:`hold` is high in them and the
        caller must keep ``en`` low (the whole pipeline freezes), so every element costs exactly
        ``c - 1`` frozen cycles.
    acc_bits : int, optional
        Width of ``a``: 32 (default) or 48.
    result_bits : int, optional
        Saturation width of ``result``: 16 (default) or more (:func:`requant_bits`).

    Members
    -------
    en : In(1)
        Pipeline enable: all stages advance in a cycle with ``en`` set, hold otherwise.
    valid : In(1)
        The operands are an element (only used with ``cycles > 1``, to know when stage 3 works).
    hold : Out(1)
        Stage 3 needs more cycles for its element; ``en`` must be low (always 0 if
        ``cycles == 1``).
    a : In(signed(acc_bits))
        Accumulator (bias already added).
    multiplier : In(32)
        IEEE-754 single-precision bits of ``M``.
    result : Out(signed(result_bits))
        ``clamp(rint(float32(a) * M), -2^(r-1), 2^(r-1) - 1)`` of the operands presented
        :attr:`latency` enabled cycles earlier (a register output).
    """

    #: Enabled cycles from operands to :attr:`result`, with either multiplier: an iterative
    #: unit registers its product as ``P`` itself (stage 4 is a wire there) and spends that
    #: stage on the normaliser instead (stage 1b), so the negation, the shifter's first levels
    #: and the product sum each have a cycle of their own (the negation and two levels in one
    #: stage was a 38.5 ns path on the iCEBreaker, against its 33.3 ns clock).
    latency = 6

    def __init__(self, cycles=1, *, acc_bits=32, result_bits=REQUANT_BITS):
        if isinstance(cycles, bool) or not isinstance(cycles, int) \
                or not 1 <= cycles <= MANTISSA_BITS:
            self._MustUse__silence = True   # a rejected component is not an unused one
            raise ValueError(f"Requant cycles per element must be an integer from 1 to "
                             f"{MANTISSA_BITS}, not {cycles!r}")
        if acc_bits not in (32, 48):
            self._MustUse__silence = True
            raise ValueError(f"Accumulator width must be 32 or 48, not {acc_bits!r}")
        if isinstance(result_bits, bool) or not isinstance(result_bits, int) \
                or not REQUANT_BITS <= result_bits <= MANTISSA_BITS:
            self._MustUse__silence = True
            raise ValueError(f"Result width must be an integer from {REQUANT_BITS} to "
                             f"{MANTISSA_BITS}, not {result_bits!r}")
        self._cycles = cycles
        self._acc_bits = acc_bits
        self._result_bits = result_bits
        self._iterative = cycles > 1
        super().__init__({
            "en": In(1),
            "valid": In(1),
            "hold": Out(1),
            "a": In(signed(acc_bits)),
            "multiplier": In(32),
            "result": Out(signed(result_bits)),
        })

    @property
    def cycles(self) -> int:
        """Cycles per element of the mantissa product."""
        return self._cycles

    def elaborate(self, platform):
        m = Module()
        en = self.en
        n = self._acc_bits             # accumulator width
        low_bits = n - MANTISSA_BITS   # bits of |a| below the float32 mantissa
        r_bits = self._result_bits
        sat_max, sat_min = (1 << (r_bits - 1)) - 1, -(1 << (r_bits - 1))

        # ---- stage 1: sign, magnitude, fields of M -----------------------------------------
        a_neg = self.a < 0
        m_exp = self.multiplier[23:31]
        s1_valid = Signal()
        s1_sign = Signal()
        s1_zero = Signal()
        s1_mag = Signal(n)         # |a| (|-2^(n-1)| = 2^(n-1) fits), after the first levels
                                   # of the normaliser unless the unit is iterative
        # The normalising shifter's first half of the levels runs in stage 1 (after the
        # negation) or, in an iterative unit, in a stage of its own; the rest in stage 2 (all
        # of them after the negation was 12 LUT levels on the iCEBreaker).
        split = (n - 1).bit_length() // 2
        mag = Signal(n)
        m.d.comb += mag.eq(Mux(a_neg, -self.a, self.a))
        s1_mant_m = Signal(MANTISSA_BITS)
        s1_exp_m = Signal(8)       # biased exponent field of M
        if self._iterative:
            stage1_mag, lz_high = mag, Const(0, 0)
        else:
            stage1_mag, lz_high = normalise_int(m, mag, levels=slice(0, split),
                                                decisions=magnitude_decisions(self.a, split))
        s1_lz_high = Signal(len(lz_high))
        with m.If(en):
            m.d.sync += [
                s1_valid.eq(self.valid),
                s1_sign.eq(a_neg ^ self.multiplier[31]),
                # A zero or subnormal M gives rint(...) = 0 (see the class docstring).
                s1_zero.eq((self.a == 0) | (m_exp == 0)),
                s1_mag.eq(stage1_mag),
                s1_lz_high.eq(lz_high),
                s1_mant_m.eq(Cat(self.multiplier[0:23], Const(1, 1))),
                s1_exp_m.eq(m_exp),
            ]
        if self._iterative:
            # ---- stage 1b (iterative units): the first half of the normaliser's levels ----
            late_mag, lz_high = normalise_int(m, s1_mag, levels=slice(0, split))
            s1_lz_high = Signal(len(lz_high))
            late = [Signal.like(s, name=f"s1b_{s.name[3:]}")
                    for s in (s1_valid, s1_sign, s1_zero, s1_mag, s1_mant_m, s1_exp_m)]
            with m.If(en):
                m.d.sync += [s.eq(v) for s, v in zip(
                    late, (s1_valid, s1_sign, s1_zero, late_mag, s1_mant_m, s1_exp_m))]
                m.d.sync += s1_lz_high.eq(lz_high)
            s1_valid, s1_sign, s1_zero, s1_mag, s1_mant_m, s1_exp_m = late

        # ---- stage 2: leading-zero normalisation -------------------------------------------
        norm, lz_low = normalise_int(m, s1_mag, levels=slice(split, None))
        lz = Cat(lz_low, s1_lz_high)
        s2_valid = Signal()
        s2_sign = Signal()
        s2_zero = Signal()
        s2_hi = Signal(MANTISSA_BITS)   # norm[n-24:n]: float32(|a|) truncated
        s2_low = Signal(low_bits)       # norm[0:n-24]: guard and sticky bits
        s2_lz = Signal(range(n))        # leading zeros of |a|
        s2_exp_m = Signal(8)
        s2_mant_m = Signal(MANTISSA_BITS)
        with m.If(en):
            m.d.sync += [
                s2_valid.eq(s1_valid),
                s2_sign.eq(s1_sign),
                s2_zero.eq(s1_zero),
                s2_hi.eq(norm[low_bits:n]),
                s2_low.eq(norm[0:low_bits]),
                s2_lz.eq(lz),
                s2_exp_m.eq(s1_exp_m),
                s2_mant_m.eq(s1_mant_m),
            ]

        # ---- stage 3: mantissa product terms ------------------------------------------------
        # Round-to-nearest-even increment of float32(|a|), applied as + r * mm (docstring).
        a_round = s2_low[-1] & (s2_low[:-1].any() | s2_hi[0])
        s3_sign = Signal()
        s3_zero = Signal()
        s3_exp_sum = Signal(9)
        with m.If(en):
            m.d.sync += [
                s3_sign.eq(s2_sign),
                s3_zero.eq(s2_zero),
                # unbiased exponent of |a| (n - 1 - lz) + biased exponent of M
                s3_exp_sum.eq((n - 1 - s2_lz) + s2_exp_m),
            ]
        if self._iterative:
            # The iterative multiplier adds r * mm in its last step: no stage-4 sum.
            terms = self._iterative_terms(m, s2_valid, norm[low_bits:n], s2_mant_m, a_round)
        else:
            s3_round_term = Signal(MANTISSA_BITS)
            with m.If(en):
                m.d.sync += s3_round_term.eq(Mux(a_round, s2_mant_m, 0))
            if is_ecp5(platform):
                terms = self._pipelined_terms_ecp5(m, s2_hi, s2_mant_m)
            else:
                terms = self._pipelined_terms(m, s2_hi, s2_mant_m)
            terms = [s3_round_term, *terms]

        # ---- stage 4: the exact product P = (hi + r) * mm in [2^46, 2^48) -------------------
        # (an iterative unit's product register is already P: the stage is a wire there)
        s4_sign = Signal()
        s4_zero = Signal()
        s4_exp_sum = Signal(9)
        s4_product = Signal(48)
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        with self._stage(m, 4) as domain:
            domain += [
                s4_sign.eq(s3_sign),
                s4_zero.eq(s3_zero),
                s4_exp_sum.eq(s3_exp_sum),
                s4_product.eq(total[0:48]),
            ]

        # ---- stage 5: normalise the product and round it to float32 (ties to even) --------
        # float32(a) * M = P * 2^(exp_a - 23 + exp_m - 127 - 23). With P's leading one at bit
        # 47 the kept mantissa is P[24:48] and the value is 1.f * 2^(exp_a + exp_m - 126); at
        # bit 46 it is P[23:47] and 2^(... - 127).
        top = s4_product[47]
        p_mant = Mux(top, s4_product[24:48], s4_product[23:47])
        p_guard = Mux(top, s4_product[23], s4_product[22])
        p_sticky = Mux(top, s4_product[0:23].any(), s4_product[0:22].any())
        p_round = p_guard & (p_sticky | p_mant[0])
        # The unbiased exponent of the float32 product is x = exp_sum - 127 + top + carry.
        x0 = Signal(signed(11))
        m.d.comb += x0.eq(s4_exp_sum - _F32_BIAS + top)
        s5_sign = Signal()
        s5_zero = Signal()
        with m.If(en):
            m.d.sync += [s5_sign.eq(s4_sign), s5_zero.eq(s4_zero)]
        # ---- and stage 6: rint (ties to even), sign and saturation -------------------------
        # Written for r = 16 (r = result_bits; every 15 and 16 below follows it).
        # y = mant * 2^(x - 23). For -1 <= x <= 14, with L = mant << (x + 1): floor(2y) =
        # L >> 23, so L[23] is the half bit (guard), L[0:23] the sticky bits and L[24:39] =
        # floor(|y|). x >= 15 means |y| >= 2^15 (saturate); x <= -2 means |y| < 0.5 (0).
        # Two forms with the same results: the compact one (iterative units, few cells) and the
        # split one (pipelined units, short paths at 100 MHz).
        round_stages = self._round_compact if self._iterative else self._round_split
        floor_mag, round_up, s5_saturate, s5_underflow = round_stages(
            m, p_mant, p_round, x0, r_bits)
        # The sign is applied in the rounding adder: -(f + u) = ~f + ~u, so the value is
        # (f ^ s) + (u ^ s) with s the sign: either f ^ s or (f ^ s) + 1, both formed from the
        # shifter while the rounding bit is still being decided, which then only selects (its
        # mask/OR tree rippling through the adder was a 34 ns path on the iCEBreaker).
        # Only a positive f + u = 2^15 (f all ones, rounded up) leaves int16, and its saturated
        # value 2^15 - 1 is f itself: such an element keeps f ^ s (no bump) instead of being
        # flagged, so the special cases below are registers only and the late rounding bit
        # meets one multiplexer (as a flag beside them it was the iCEBreaker's critical path,
        # 34.6 ns against 33.3).
        signs = s5_sign.replicate(r_bits + 1)
        plain = Signal(signed(r_bits + 1))         # f ^ s
        bumped = Signal(signed(r_bits + 1))        # (f ^ s) + 1
        bump = Signal()                            # (u ^ s), but not past 2^(r-1) - 1
        signed_value = Signal(signed(r_bits))      # -2^(r-1) .. 2^(r-1) - 1
        m.d.comb += [
            plain.eq((Cat(floor_mag, Const(0, 2)) ^ signs).as_signed()),
            bumped.eq(plain + 1),
            bump.eq(Mux(s5_sign, ~round_up, round_up & ~floor_mag.all())),
            signed_value.eq(Mux(bump, bumped, plain)),
        ]

        special = Signal()
        special_value = Signal(signed(r_bits))
        m.d.comb += [
            special.eq(s5_zero | s5_underflow | s5_saturate),
            special_value.eq(Mux(s5_zero | s5_underflow, 0,
                                 Mux(s5_saturate & s5_sign, sat_min, sat_max))),
        ]
        with m.If(en):
            m.d.sync += self.result.eq(Mux(special, special_value, signed_value))
        return m

    def _round_compact(self, m, p_mant, p_round, x0, r_bits):
        # Stage 5: the rounding add with the carry into the exponent; stage 6: one shifter,
        # with the rounding bits read from the mantissa through masks decoded from the shift
        # (each mask bit one 4-input function of it), in parallel with the shifter:
        # L[23] = mant[23 - left], L[0:23] = mant[0:23 - left], L[24] = mant[24 - left].
        # Returns (floor |y|, round-up bit, saturate, underflow).
        p_mant_sum = Signal(25)
        m.d.comb += p_mant_sum.eq(p_mant + p_round)
        p_carry = p_mant_sum[24]
        s5_mant = Signal(MANTISSA_BITS)
        s5_left = Signal(range(r_bits))   # x + 1, used when -1 <= x <= r_bits - 2
        s5_saturate = Signal()            # x >= r_bits - 1
        s5_underflow = Signal()           # x <= -2
        with m.If(self.en):
            m.d.sync += [
                s5_mant.eq(Mux(p_carry, 1 << 23, p_mant_sum[0:24])),
                s5_left.eq(Mux(p_carry, x0 + 2, x0 + 1)),
                s5_saturate.eq(Mux(p_carry, x0 >= r_bits - 2, x0 >= r_bits - 1)),
                s5_underflow.eq(Mux(p_carry, x0 < -2, x0 < -1)),
            ]
        shifted = Signal(24 + r_bits - 1)
        sticky_mask = Signal(23)
        half_mask = Signal(24)
        odd_mask = Signal(24)
        m.d.comb += [
            shifted.eq(s5_mant << s5_left),
            sticky_mask.eq(Const((1 << 23) - 1, 23) >> s5_left),
            half_mask.eq(Const(1 << 23, 24) >> s5_left),
            odd_mask.eq(Const(1 << 24, 25) >> s5_left),
        ]
        half = (s5_mant & half_mask).any()
        sticky = (s5_mant[0:23] & sticky_mask).any()
        odd = (s5_mant & odd_mask).any()
        return shifted[24:24 + r_bits - 1], half & (sticky | odd), s5_saturate, s5_underflow

    def _round_split(self, m, p_mant, p_round, x0, r_bits):
        # Stage 5: p_mant and p_mant + 1 both, the rounding bit (behind the sticky OR tree)
        # selecting, so it does not ripple through the carry chain. With the 25-bit sum M,
        # L = M << (x0 + 1) whether the rounding carried or not (a carry leaves M = 2^24 =
        # 2 * (1 << 23)), so the shift is known before the adder finishes: by
        # 4 * ((x0 + 1) >> 2) here, after the adder, and by the last two bits in stage 6, where
        # L[23] = coarse[23 - fine], L[24] = coarse[24 - fine] and the sticky bits
        # coarse[0:23 - fine] are coarse[0:20] and a masked part of coarse[20:23].
        # x0 <= -2 rounds to 0 (x <= -2; or x = -1 after a carry: exactly 0.5, a tie to 0).
        p_mant_up = Signal(25)
        p_mant_sum = Signal(25)
        m.d.comb += [p_mant_up.eq(p_mant + 1), p_mant_sum.eq(Mux(p_round, p_mant_up, p_mant))]
        p_carry = p_mant_sum[24]
        left = Signal(range(r_bits))      # x0 + 1, used when 0 <= x0 + 1 <= r_bits - 1
        m.d.comb += left.eq(x0 + 1)
        coarse_steps = ((r_bits - 1) >> 2) + 1
        s5_coarse = Signal(25 + 4 * (coarse_steps - 1))   # M << 4 * (left >> 2)
        s5_fine = Signal(2)                                # left & 3
        s5_saturate = Signal()            # x >= r_bits - 1
        s5_underflow = Signal()           # x0 <= -2
        coarse = Signal.like(s5_coarse)
        with m.Switch(left >> 2):
            for q in range(coarse_steps):
                with m.Case(q):
                    m.d.comb += coarse.eq(p_mant_sum << (4 * q))
        with m.If(self.en):
            m.d.sync += [
                s5_coarse.eq(coarse),
                s5_fine.eq(left[0:2]),
                s5_saturate.eq(Mux(p_carry, x0 >= r_bits - 2, x0 >= r_bits - 1)),
                s5_underflow.eq(x0 < -1),
            ]
        shifted = Signal(len(s5_coarse) + 3)
        m.d.comb += shifted.eq(s5_coarse << s5_fine)
        sticky_mask = Signal(3)
        m.d.comb += sticky_mask.eq(Const(0b111, 3) >> s5_fine)
        sticky = s5_coarse[0:20].any() | (s5_coarse[20:23] & sticky_mask).any()
        round_up = shifted[23] & (sticky | shifted[24])
        return shifted[24:24 + r_bits - 1], round_up, s5_saturate, s5_underflow

    @contextmanager
    def _stage(self, m, number):
        # The domain a stage's outputs are assigned in: registered under `en`, or
        # combinational for stage 4 of an iterative unit (its product register is P).
        if number == 4 and self._iterative:
            yield m.d.comb
        else:
            with m.If(self.en):
                yield m.d.sync

    def _pipelined_terms(self, m, hi, mm):
        # Four registered partial products, each at most 17x17 unsigned bits: hi = h1*2^17 + h0,
        # mm = m1*2^17 + m0. h1*m1 (bits 34..47) and h0*m0 (bits 0..33) do not overlap and are
        # concatenated; the cross products are shifted by 17.
        h0, h1 = hi[:_SPLIT], hi[_SPLIT:]
        m0, m1 = mm[:_SPLIT], mm[_SPLIT:]
        p00 = Signal(2 * _SPLIT)
        p11 = Signal(2 * (MANTISSA_BITS - _SPLIT))
        p01 = Signal(MANTISSA_BITS)
        p10 = Signal(MANTISSA_BITS)
        with m.If(self.en):
            m.d.sync += [p00.eq(h0 * m0), p11.eq(h1 * m1), p01.eq(h0 * m1), p10.eq(h1 * m0)]
        return [Cat(p00, p11), p01 << _SPLIT, p10 << _SPLIT]

    def _pipelined_terms_ecp5(self, m, hi, mm):
        # The partial products of _pipelined_terms on MULT18X18D blocks whose output registers
        # are the stage-3 registers: no route out of a block shares a cycle with the multiply
        # (on the LFE5U-85F the inferred, unregistered block between fabric registers was a
        # 13.7 ns path, 9.2 ns of it routing into and out of the block).
        h0, h1 = hi[:_SPLIT], hi[_SPLIT:]
        m0, m1 = mm[:_SPLIT], mm[_SPLIT:]
        p00 = registered_product(m, "p00", h0, m0, self.en)
        p11 = registered_product(m, "p11", h1, m1, self.en)
        p01 = registered_product(m, "p01", h0, m1, self.en)
        p10 = registered_product(m, "p10", h1, m0, self.en)
        return [Cat(p00, p11), p01 << _SPLIT, p10 << _SPLIT]

    def _iterative_terms(self, m, valid, hi_in, mm, round_up):
        # Horner over the digits of hi, most significant first: in the step-th cycle of an
        # element, partial <- (partial << d) + digit[c - 1 - step] * mm; the last step (which
        # is the cycle the pipeline may advance in) adds the rounding increment r * mm at the
        # weight of its digit (r * mm has weight 1) and registers the complete P = (hi + r) * mm.
        # Everything the adder's inputs need is a register: the digits come from a copy of hi
        # (``hi_in``, loaded with stage 2's register) shifted by a digit per step, ``partial``
        # is cleared as the element arrives, and ``r`` is registered for the last step only.
        cycles = self._cycles
        digit_bits = -(-MANTISSA_BITS // cycles)
        step = Signal(range(cycles))
        partial = Signal(48)
        # step == cycles - 1, kept as a register: `hold` reaches the drain's decisions through
        # the PostProcessor's i.ready (on the iCEBreaker a timing path)
        last = Signal()
        # r in the last step, 0 before it (cycles >= 2: it is set in the step before)
        r_now = Signal()
        rest = Signal(digit_bits * cycles)
        digit = rest[digit_bits * (cycles - 1):]
        working = Signal()
        m.d.comb += working.eq(valid & ~last)
        # digit * mm as explicit shift-and-add (d AND rows): logic by construction, so a small
        # part never spends a hardware multiplier on it. Row 0 also carries r in the last step:
        # digit[0] + r is 0, 1 or 2, one multiplexer (no extra adder row).
        digit_product = Mux(digit[0] & r_now, mm << 1, Mux(digit[0] | r_now, mm, 0))
        for b in range(1, digit_bits):
            digit_product = digit_product + (Mux(digit[b], mm, 0) << b)
        running = Signal(48 + digit_bits)
        m.d.comb += [
            running.eq((partial << digit_bits) + digit_product),
            self.hold.eq(working),
        ]
        with m.If(working):
            m.d.sync += [
                partial.eq(running),
                rest.eq(rest << digit_bits),
                step.eq(step + 1),
                last.eq(step == cycles - 2),
                r_now.eq((step == cycles - 2) & round_up),
            ]
        product = Signal(48)
        with m.If(self.en):
            m.d.sync += [product.eq(running), step.eq(0), last.eq(0), r_now.eq(0),
                         partial.eq(0), rest.eq(hi_in)]
        return [product]
