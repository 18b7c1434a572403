"""Requantization of int32 accumulators to int8: the drain step of the accelerator.

``requantize`` takes the hardware encoding produced by
:func:`~tessera.numerics.multipliers.requant_multipliers` (the same bits the ``PARAM`` buffer
holds), so the emulator and the RTL tests can call it with exactly what the device sees.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_mode, check_scale, check_zero_point
from .rounding import INT32_MAX, INT32_MIN, rdbpot, round_half_away, shift_left_int32, srdhm

__all__ = ["requantize", "activation_bounds", "postprocess", "ACTIVATIONS"]

#: Named activations fused as clamps; an int8 [256] array is a lookup table instead.
ACTIVATIONS = ("none", "relu", "relu6", "lut")


def _check_acc(acc) -> np.ndarray:
    acc = np.asarray(acc)
    if not np.issubdtype(acc.dtype, np.integer):
        raise TypeError(f"acc must be an integer array (int32 accumulators), not {acc.dtype}")
    acc = acc.astype(np.int64, copy=False)
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        bad = tuple(int(i) for i in np.unravel_index(
            np.flatnonzero((acc < INT32_MIN) | (acc > INT32_MAX))[0], acc.shape))
        raise OverflowError(f"acc{list(bad)} = {int(acc[bad])} does not fit int32")
    return acc


def requantize(acc, multiplier, shift, mode) -> np.ndarray:
    """Return ``requant(acc)`` of NUMERICS.md, before the zero point and the clamp.

    Parameters
    ----------
    acc : array_like of int, shape [..., N]
        int32 accumulators (bias already added).
    multiplier : array_like of uint32, broadcast along the last axis
        onnx: float32 bits of ``M``; tflite: ``m0``.
    shift : array_like of int8, broadcast along the last axis
        onnx: must be 0; tflite: exponent ``e`` in ``[-31, 30]``.
    mode : {"onnx", "tflite"}

    Returns
    -------
    numpy.ndarray of int64, same shape as ``acc``
        In mode "onnx" values can be far outside int8 (up to about 2^55 in magnitude); the clamp
        in :func:`postprocess` brings them back.

    Notes
    -----
    onnx: ``rint(float32(acc) * M)`` — ``float32(acc)`` rounds to nearest even for
    ``|acc| > 2^24``, the product is rounded to float32, then to an integer with ties to even.

    tflite: ``RDBPOT(SRDHM(acc << max(e, 0), m0), max(-e, 0))``. The left shift is done on int32
    with two's complement wrap-around, as TFLite's C code (``x * (1 << left_shift)``) does in
    practice; real layers never get there (``e > 0`` needs ``M >= 1``).
    """
    check_mode(mode)
    acc = _check_acc(acc)
    multiplier = np.asarray(multiplier)
    shift = np.asarray(shift)
    if multiplier.dtype != np.uint32:
        raise TypeError(f"multiplier must have dtype uint32 (the hardware encoding from "
                        f"requant_multipliers), not {multiplier.dtype}")
    if not np.issubdtype(shift.dtype, np.integer):
        raise TypeError(f"shift must be an integer array, not {shift.dtype}")
    shift = shift.astype(np.int64)
    if multiplier.ndim > 1 or shift.ndim > 1:
        raise ValueError("multiplier and shift must be scalars or 1-D per-channel arrays, "
                         f"not shapes {multiplier.shape} and {shift.shape}")
    if mode == "onnx":
        if np.any(shift != 0):
            raise ValueError("shift must be 0 in mode 'onnx' (the multiplier is a float32)")
        m = multiplier.view(np.float32)
        if np.any(~(m >= np.finfo(np.float32).tiny) | ~(m < 2.0 ** 24)):
            raise ValueError("multiplier must hold a normal positive float32 below 2**24 in "
                             "mode 'onnx'; build it with requant_multipliers")
        # float32(acc) * M is below 2^31 * 2^24 = 2^55: finite in float32 and exact in int64.
        return np.rint(acc.astype(np.float32) * m).astype(np.int64)
    m0 = multiplier.astype(np.int64)
    if np.any((m0 != 0) & ((m0 < 1 << 30) | (m0 > INT32_MAX))):
        raise ValueError("multiplier must be 0 or in [2**30, 2**31) in mode 'tflite'; "
                         "build it with requant_multipliers")
    if np.any((shift < -31) | (shift > 30)):
        raise ValueError(f"shift must be in [-31, 30] in mode 'tflite', not {shift}")
    shifted = shift_left_int32(acc, np.maximum(shift, 0))
    return rdbpot(srdhm(shifted, m0), np.maximum(-shift, 0))


def activation_bounds(activation, y_scale, y_zero_point) -> tuple[int, int]:
    """Return the fused activation's clamp ``(lo, hi)`` in the int8 output domain.

    Parameters
    ----------
    activation : {"none", "relu", "relu6", "lut"} or numpy.ndarray
        An int8 [256] lookup table (or ``"lut"``) clamps to the full int8 range.
    y_scale : float
        Output scale (float32).
    y_zero_point : int
        Output zero point (int8).

    Returns
    -------
    (int, int)
        none/lut: ``(-128, 127)``; relu: ``(max(-128, zy), 127)``; relu6: also
        ``hi = min(127, zy + round_half_away(float32(6) / float32(sy)))``, as TFLite's
        ``CalculateActivationRangeQuantized`` does.
    """
    zy = check_zero_point("y_zero_point", y_zero_point)
    sy = check_scale("y_scale", y_scale)
    if isinstance(activation, np.ndarray):
        return -128, 127
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS} or an int8 [256] lookup "
                         f"table, not {activation!r}")
    if activation in ("none", "lut"):
        return -128, 127
    lo = max(-128, zy)
    if activation == "relu":
        return lo, 127
    six = round_half_away(np.float32(6.0) / sy)
    return lo, int(min(127, zy + six))


def postprocess(acc, multiplier, shift, *, mode, zero_point, lo, hi, lut=None) -> np.ndarray:
    """Return ``clamp(requantize(acc) + zero_point, lo, hi)``, then ``lut[v + 128]`` if given.

    Parameters
    ----------
    acc, multiplier, shift, mode
        As for :func:`requantize`.
    zero_point : int
        Output zero point (int8).
    lo, hi : int
        Clamp bounds in the int8 range, ``lo <= hi`` (see :func:`activation_bounds`).
    lut : numpy.ndarray of int8, shape [256], optional
        Lookup table applied after the clamp.

    Returns
    -------
    numpy.ndarray of int8, same shape as ``acc``
    """
    zero_point = check_zero_point("zero_point", zero_point)
    lo = check_zero_point("lo", lo)
    hi = check_zero_point("hi", hi)
    if lo > hi:
        raise ValueError(f"lo must not exceed hi, not lo={lo} > hi={hi}")
    if lut is not None:
        if not isinstance(lut, np.ndarray) or lut.dtype != np.int8 or lut.shape != (256,):
            shown = (f"{lut.dtype} {lut.shape}" if isinstance(lut, np.ndarray)
                     else type(lut).__name__)
            raise ValueError(f"lut must be an int8 array of shape (256,), not {shown}")
    v = requantize(acc, multiplier, shift, mode)
    y = np.clip(v + zero_point, lo, hi).astype(np.int8)
    if lut is not None:
        y = lut[y.astype(np.int16) + 128]
    return y
