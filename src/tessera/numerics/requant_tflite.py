"""Requant mode "tflite": TFLite's gemmlowp fixed-point multiplier with double rounding.

``M = float64(sx) * float64(sw) / float64(sy)``, then TFLite's ``QuantizeMultiplier``:
``q, e = frexp(M)``, ``m0 = round_half_away(q * 2^31)``, ``m0 == 2^31`` becomes
``(2^30, e + 1)``, and ``e < -31`` becomes ``(0, 0)`` (every bit would be shifted out).
``requant(acc) = RDBPOT(SRDHM(acc << max(e, 0), m0), max(-e, 0))``
(``MultiplyByQuantizedMultiplier``).
Hardware encoding (``docs/isa.md``): ``multiplier = m0`` (0 or in ``[2^30, 2^31)``) and
``shift = e`` in ``[-31, 30]``. The registry entry is ``tessera.numerics.modes.MODES["tflite"]``.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_requant_scales
from .rounding import INT32_MAX, rdbpot, round_half_away, shift_left_int32, srdhm

__all__ = ["quantize_multiplier", "encode_multipliers", "requantize_tflite",
           "multiply_by_quantized_multiplier", "round_tflite", "SHIFT_MIN", "SHIFT_MAX"]

#: Exponent range of the tflite-mode hardware (left shift up to 30, right shift up to 31).
SHIFT_MIN, SHIFT_MAX = -31, 30

#: Quantization rounding of mode "tflite": ties away from zero (``AffineQuantize``).
round_tflite = round_half_away


def quantize_multiplier(multiplier):
    """Return TFLite's ``QuantizeMultiplier(double)`` as ``(m0, e)`` int64 arrays.

    Parameters
    ----------
    multiplier : float or array_like of float
        Positive float64 multipliers.

    Returns
    -------
    (numpy.ndarray of int64, numpy.ndarray of int64)
        ``m0`` (0 or in ``[2^30, 2^31)``) and exponent ``e`` with ``M ~= m0 * 2^(e - 31)``.
    """
    m = np.asarray(multiplier, dtype=np.float64)
    q, e = np.frexp(m)                                  # m = q * 2^e, 0.5 <= q < 1
    m0 = round_half_away(q * float(1 << 31)).astype(np.int64)
    e = e.astype(np.int64)
    carry = m0 == (1 << 31)
    m0 = np.where(carry, m0 // 2, m0)
    e = np.where(carry, e + 1, e)
    tiny = e < -31
    m0 = np.where(tiny, 0, m0)
    e = np.where(tiny, 0, e)
    return m0, e


def multiply_by_quantized_multiplier(x, m0, e):
    """Return TFLite's ``MultiplyByQuantizedMultiplier(x, m0, e)`` on int32 values (int64 out).

    ``RDBPOT(SRDHM(x << max(e, 0), m0), max(-e, 0))``; the left shift wraps on int32 as the C
    code does in practice. Arguments broadcast together; no range checks.
    """
    e = np.asarray(e, dtype=np.int64)
    if np.any(e > 0):
        x = shift_left_int32(x, np.maximum(e, 0))
    return rdbpot(srdhm(x, m0), np.maximum(-e, 0))


def encode_multipliers(x_scale, w_scale, y_scale):
    """Return the tflite-mode hardware encoding ``(m0 as uint32, e as int8)`` per channel.

    Raises
    ------
    ValueError
        ``e > 30`` (``M >= 2^30``) at some channel (the message names it).
    """
    sx, sw, sy = check_requant_scales(x_scale, w_scale, y_scale)
    m = sx.astype(np.float64) * sw.astype(np.float64) / sy.astype(np.float64)
    m0, e = quantize_multiplier(m)
    bad = e > SHIFT_MAX
    if np.any(bad):
        n = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"Requant multiplier x_scale*w_scale/y_scale = {float(m[n])!r} at channel {n} is "
            "too large for the tflite-mode hardware (must be below 2**30); "
            "rescale the layer's y_scale")
    return m0.astype(np.uint32), e.astype(np.int8)


def requantize_tflite(acc, multiplier, shift) -> np.ndarray:
    """Return ``MultiplyByQuantizedMultiplier(acc, m0, e)`` for checked int32 ``acc``."""
    m0 = multiplier.astype(np.int64)
    if np.any((m0 != 0) & ((m0 < 1 << 30) | (m0 > INT32_MAX))):
        raise ValueError("multiplier must be 0 or in [2**30, 2**31) in mode 'tflite'; "
                         "build it with requant_multipliers")
    if np.any((shift < SHIFT_MIN) | (shift > SHIFT_MAX)):
        raise ValueError(f"shift must be in [-31, 30] in mode 'tflite', not {shift}")
    return multiply_by_quantized_multiplier(acc, m0, shift)
