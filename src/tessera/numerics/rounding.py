"""Integer and float32 rounding primitives shared by both requantization modes.

Everything here is exact: integer helpers work on ``int64`` arrays holding int32 values, float
helpers on IEEE-754 ``float32``/``float64`` values with NumPy's correctly rounded arithmetic. The
gemmlowp primitives reproduce the C reference code of TFLite (``SaturatingRoundingDoublingHighMul``
and ``RoundingDivideByPOT``) including its truncating division and its one saturating case.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX",
    "round_half_away", "round_half_even", "wrap_int32", "wrap_signed", "shift_left_int32",
    "srdhm", "rdbpot", "float32_bits", "float32_from_bits",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def round_half_away(x):
    """Round to the nearest integer, ties away from zero (C ``round``, ``TfLiteRound``).

    Exact for every finite float: ``floor(|x| + 0.5)`` is *not* used, because the addition itself
    rounds (``0.49999999999999994 + 0.5 == 1.0``).

    Parameters
    ----------
    x : float or array_like of float

    Returns
    -------
    numpy.ndarray or numpy.floating
        Same dtype as ``x`` (float64 for Python numbers), integral values.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    whole = np.trunc(x)
    with np.errstate(invalid="ignore"):   # inf - inf; infinities and NaN pass through below
        frac = x - whole                  # exact: |frac| < 1 and no bits are lost
    step = np.where(np.abs(frac) >= 0.5, np.sign(x), 0).astype(x.dtype)
    return np.where(np.isfinite(x), whole + step, x)


def round_half_even(x):
    """Round to the nearest integer, ties to even (``rint``, the IEEE default)."""
    return np.rint(x)


def wrap_int32(x):
    """Wrap integers to int32 two's complement, as C arithmetic on ``int32_t`` does in practice.

    Parameters
    ----------
    x : array_like of int
        Values within the int64 range.

    Returns
    -------
    numpy.ndarray of int64
        ``x`` reduced modulo 2^32 into ``[-2^31, 2^31)``.
    """
    return wrap_signed(x, 32)


def wrap_signed(x, bits):
    """Wrap integers to ``bits``-wide two's complement (an accumulator of ``bits`` bits).

    Parameters
    ----------
    x : array_like of int
        Values within the int64 range.
    bits : int
        Width, 2 to 63.

    Returns
    -------
    numpy.ndarray of int64
        ``x`` reduced modulo ``2**bits`` into ``[-2**(bits-1), 2**(bits-1))``.
    """
    half = np.int64(1) << np.int64(bits - 1)
    return ((np.asarray(x, dtype=np.int64) + half) & (2 * half - 1)) - half


def shift_left_int32(x, e):
    """Return ``x * (1 << e)`` computed on int32 with two's complement wrap-around.

    This is what TFLite's ``MultiplyByQuantizedMultiplier`` does for a positive exponent
    (``x * (1 << left_shift)`` on ``int32_t``): formally undefined behaviour in C, in practice a
    wrap-around on every compiler and on our hardware. Tessera's hardware keeps the low 32 bits.

    Parameters
    ----------
    x : array_like of int
        int32 values.
    e : array_like of int
        Shift amounts in ``[0, 31]``, broadcast against ``x``.
    """
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    return wrap_int32(x << e)


def srdhm(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values.

    ``(a*b + nudge) / 2^31`` with ``nudge = 2^30`` if ``a*b >= 0`` else ``1 - 2^30`` and C
    division (truncation toward zero); ``a == b == INT32_MIN`` saturates to ``INT32_MAX``.
    Computed as ``floor((a*b + 2^30) / 2^31)``, the same value for both signs (for ``a*b < 0``
    truncating ``n`` equals flooring ``n + 2^31 - 1``, and ``1 - 2^30 + 2^31 - 1 = 2^30``):
    round half up.

    Parameters
    ----------
    a, b : array_like of int
        int32 values, broadcast together.

    Returns
    -------
    numpy.ndarray of int64
        int32 values.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b                                   # |ab| <= 2^62: exact in int64
    ab += 1 << 30
    ab >>= 31
    if np.any(a == INT32_MIN) and np.any(b == INT32_MIN):
        ab = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, ab)
    return ab


def rdbpot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2^exponent`` rounded to nearest, ties away from 0.

    gemmlowp adds ``remainder > threshold`` to ``x >> exponent`` with ``mask = 2^e - 1``,
    ``threshold = (mask >> 1) + (x < 0)``; the same value is ``(x + 2^(e-1) - (x < 0)) >> e``
    for ``e >= 1`` and ``x`` for ``e = 0``.

    Parameters
    ----------
    x : array_like of int
        int32 values.
    exponent : array_like of int
        Shift amounts in ``[0, 31]``, broadcast against ``x``.

    Returns
    -------
    numpy.ndarray of int64
    """
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if exponent.size and (exponent == exponent.flat[0]).all():
        # One shift for every element: a scalar is faster than a broadcast array.
        if x.shape != np.broadcast_shapes(x.shape, exponent.shape):
            x = np.broadcast_to(x, np.broadcast_shapes(x.shape, exponent.shape))
        exponent = exponent.flat[0]
        if exponent == 0:
            return x.copy()
    if np.all(exponent > 0):
        y = x + ((np.int64(1) << (exponent - 1)) - 1)
        y += x >= 0
    else:
        positive = (exponent > 0).astype(np.int64)
        y = x + ((positive << np.maximum(exponent - 1, 0)) - positive)   # 2^(e-1) - 1, or 0
        y += (x >= 0) * positive
    y >>= exponent
    return y


def float32_bits(value):
    """Return the IEEE-754 bit pattern of float32 ``value`` as ``uint32``."""
    return np.asarray(value, dtype=np.float32).view(np.uint32)


def float32_from_bits(bits):
    """Return the float32 whose IEEE-754 bit pattern is ``bits`` (uint32)."""
    return np.asarray(bits, dtype=np.uint32).view(np.float32)
