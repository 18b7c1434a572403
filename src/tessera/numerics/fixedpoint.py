"""gemmlowp's fixed-point exponential and reciprocal, as TFLite's int8 SOFTMAX uses them.

Values are int64 NumPy arrays holding int32 raw values of ``FixedPoint<int32_t, I>`` (Q``I``.
``31-I``); a fixed-point product is :func:`~tessera.numerics.srdhm`, a sum wraps on int32 like
the C code. Constants and steps follow ``gemmlowp/fixedpoint/fixedpoint.h``
(``exp_on_negative_values``, ``one_over_one_plus_x_for_x_in_0_1``) and TFLite's
``GetReciprocal``; ``tests/test_numerics_cnn_tflite.py`` checks SOFTMAX against TFLite Micro.
"""

from __future__ import annotations

import numpy as np

from .rounding import INT32_MAX, INT32_MIN, rdbpot, srdhm, wrap_int32

__all__ = ["saturating_shift_left", "exp_on_negative_values", "rounding_half_sum",
           "reciprocal_of_half_sum", "one_over_one_plus_x", "get_reciprocal"]

#: ``exp(-2^k)`` in Q0.31 for k = -2..4: the barrel shifter of ``exp_on_negative_values``.
_EXP_OF_MINUS_POWERS = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                        (2, 39332535), (3, 720401), (4, 242))


def saturating_shift_left(x, exponent):
    """Return gemmlowp's ``SaturatingRoundingMultiplyByPOT<exponent>`` for ``exponent > 0``."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval(a):
    # exp(x) for x in [-1/4, 0), Q0.31: Taylor expansion around -1/8.
    constant_term, one_third = 1895147668, 715827883
    x = wrap_int32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbpot(wrap_int32(srdhm(wrap_int32(rdbpot(x4, 2) + x3), one_third) + x2), 1)
    return wrap_int32(constant_term + srdhm(constant_term, wrap_int32(x + poly)))


def exp_on_negative_values(a, integer_bits):
    """Return ``exp(a)`` in Q0.31 for ``a <= 0`` in Q``integer_bits``.``31-integer_bits``."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval(saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits)
                              if integer_bits else a_mod_quarter_minus_quarter)
    remainder = wrap_int32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in _EXP_OF_MINUS_POWERS:
        if integer_bits > exponent:
            bit = remainder & (1 << (fractional_bits + exponent))
            result = np.where(bit != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def rounding_half_sum(a, b):
    """Return gemmlowp's ``RoundingHalfSum``: ``(a + b + sign) / 2`` with C division."""
    nudged = a + b + np.where(a + b >= 0, 1, -1)
    return np.where(nudged >= 0, nudged >> 1, -((-nudged) >> 1))


def reciprocal_of_half_sum(a):
    """Return ``2 / (1 + a)`` in Q2.29 for ``a`` in [0, 1) (Q0.31): gemmlowp's three
    Newton-Raphson steps, shared by ``one_over_one_plus_x_for_x_in_0_1`` and
    ``one_minus_x_over_one_plus_x_for_x_in_0_1``."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = wrap_int32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap_int32((1 << 29) - srdhm(half_denominator, x))
        x = wrap_int32(x + saturating_shift_left(srdhm(x, one_minus), 2))
    return x


def one_over_one_plus_x(a):
    """Return ``1 / (1 + a)`` in Q0.31 for ``a`` in [0, 1) (Q0.31): Newton-Raphson in Q2.29."""
    return saturating_shift_left(reciprocal_of_half_sum(a), 1)


def get_reciprocal(x, integer_bits):
    """Return TFLite's ``GetReciprocal(x, integer_bits)``: ``(Q0.31 scale, num_bits_over_unit)``.

    ``x > 0`` in Q``integer_bits``; ``1 / x = scale * 2^-num_bits_over_unit`` (Q0.31).
    """
    headroom_plus_one = 32 - np.frexp(x.astype(np.float64))[1].astype(np.int64)
    num_bits_over_unit = integer_bits - headroom_plus_one
    shifted_minus_one = wrap_int32((x << headroom_plus_one) - (1 << 31))
    return one_over_one_plus_x(shifted_minus_one), num_bits_over_unit
