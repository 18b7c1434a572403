"""Requantization of int32/int48 accumulators to intN outputs: the drain step of the accelerator.

``requantize`` takes the hardware encoding produced by
:func:`~tessera.numerics.multipliers.requant_multipliers` (the same bits the ``PARAM`` buffer
holds), so the emulator and the RTL tests can call it with exactly what the device sees.
"""

from __future__ import annotations

import numpy as np

from ._checks import ACC_BITS, BITS, check_bits, check_mode, check_scale, check_zero_point, \
    int_range, storage_dtype
from .rounding import INT32_MAX, INT32_MIN, rdbpot, round_half_away, shift_left_int32, srdhm

__all__ = ["requantize", "activation_bounds", "postprocess", "ACTIVATIONS"]

#: Named activations fused as clamps; an int8 [256] array is a lookup table instead.
ACTIVATIONS = ("none", "relu", "relu6", "lut")


#: Saturation of the onnx path before the integer conversion (the RTL saturates the same way);
#: far outside every output range, so the clamp that follows is unaffected.
_ONNX_SATURATION = float(1 << 62)


def _check_acc(acc, acc_bits=32) -> np.ndarray:
    acc = np.asarray(acc)
    if not np.issubdtype(acc.dtype, np.integer):
        raise TypeError(f"acc must be an integer array (int{acc_bits} accumulators), "
                        f"not {acc.dtype}")
    acc = acc.astype(np.int64, copy=False)
    lo, hi = int_range(acc_bits)
    if acc.size and (acc.min() < lo or acc.max() > hi):
        bad = tuple(int(i) for i in np.unravel_index(
            np.flatnonzero((acc < lo) | (acc > hi))[0], acc.shape))
        raise OverflowError(f"acc{list(bad)} = {int(acc[bad])} does not fit int{acc_bits}")
    return acc


def requantize(acc, multiplier, shift, mode, *, acc_bits=32) -> np.ndarray:
    """Return ``requant(acc)`` of NUMERICS.md, before the zero point and the clamp.

    Parameters
    ----------
    acc : array_like of int, shape [..., N]
        ``acc_bits``-wide accumulators (bias already added).
    multiplier : array_like of uint32, broadcast along the last axis
        onnx: float32 bits of ``M``; tflite: ``m0``.
    shift : array_like of int8, broadcast along the last axis
        onnx: must be 0; tflite: exponent ``e`` in ``[-31, 30]``.
    mode : {"onnx", "tflite"}
    acc_bits : {32, 48}
        Accumulator width. Mode "tflite" takes 32-bit accumulators only (gemmlowp's
        ``MultiplyByQuantizedMultiplier`` is an int32 operation; TFLite's int64 variant for
        int16x8 kernels rounds differently and is not implemented).

    Returns
    -------
    numpy.ndarray of int64, same shape as ``acc``
        In mode "onnx" values can be far outside the output range (about 2^55 in magnitude
        with 32-bit accumulators; saturated to ``±2^62`` for 48-bit ones); the clamp in
        :func:`postprocess` brings them back.

    Notes
    -----
    onnx: ``rint(float32(acc) * M)`` — ``float32(acc)`` rounds to nearest even for
    ``|acc| > 2^24``, the product is rounded to float32, then to an integer with ties to even.

    tflite: ``RDBPOT(SRDHM(acc << max(e, 0), m0), max(-e, 0))``. The left shift is done on int32
    with two's complement wrap-around, as TFLite's C code (``x * (1 << left_shift)``) does in
    practice; real layers never get there (``e > 0`` needs ``M >= 1``).
    """
    check_mode(mode)
    check_bits("acc_bits", acc_bits, ACC_BITS)
    if mode == "tflite" and acc_bits != 32:
        raise ValueError(f"Requant mode 'tflite' takes 32-bit accumulators, not acc_bits="
                         f"{acc_bits}; use mode 'onnx' for {acc_bits}-bit accumulators")
    acc = _check_acc(acc, acc_bits)
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
        # float32(acc) * M is below 2^47 * 2^24 = 2^71: finite in float32; saturate before the
        # conversion so that the result is exact in int64 (with int32 it is below 2^55 anyway).
        y = np.rint(acc.astype(np.float32) * m)
        return np.clip(y, -_ONNX_SATURATION, _ONNX_SATURATION).astype(np.int64)
    m0 = multiplier.astype(np.int64)
    if np.any((m0 != 0) & ((m0 < 1 << 30) | (m0 > INT32_MAX))):
        raise ValueError("multiplier must be 0 or in [2**30, 2**31) in mode 'tflite'; "
                         "build it with requant_multipliers")
    if np.any((shift < -31) | (shift > 30)):
        raise ValueError(f"shift must be in [-31, 30] in mode 'tflite', not {shift}")
    shifted = shift_left_int32(acc, np.maximum(shift, 0))
    return rdbpot(srdhm(shifted, m0), np.maximum(-shift, 0))


def activation_bounds(activation, y_scale, y_zero_point, *, bits=8) -> tuple[int, int]:
    """Return the fused activation's clamp ``(lo, hi)`` in the ``bits``-wide output domain.

    Parameters
    ----------
    activation : {"none", "relu", "relu6", "lut"} or numpy.ndarray
        An int8 [256] lookup table (or ``"lut"``) clamps to the full int8 range.
    y_scale : float
        Output scale (float32).
    y_zero_point : int
        Output zero point (``bits`` wide).
    bits : {4, 8, 16}
        Output width; ``qmin, qmax`` below are its signed range (-128, 127 for int8).

    Returns
    -------
    (int, int)
        none/lut: ``(qmin, qmax)``; relu: ``(max(qmin, zy), qmax)``; relu6: also
        ``hi = min(qmax, zy + round_half_away(float32(6) / float32(sy)))``, as TFLite's
        ``CalculateActivationRangeQuantized`` does.
    """
    qmin, qmax = int_range(check_bits("bits", bits))
    zy = check_zero_point("y_zero_point", y_zero_point, bits)
    sy = check_scale("y_scale", y_scale)
    if isinstance(activation, np.ndarray):
        return qmin, qmax
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS} or an int8 [256] lookup "
                         f"table, not {activation!r}")
    if activation in ("none", "lut"):
        return qmin, qmax
    lo = max(qmin, zy)
    if activation == "relu":
        return lo, qmax
    six = round_half_away(np.float32(6.0) / sy)
    return lo, int(min(qmax, zy + six))


def postprocess(acc, multiplier, shift, *, mode, zero_point, lo, hi, lut=None, bits=8,
                acc_bits=32) -> np.ndarray:
    """Return ``clamp(requantize(acc) + zero_point, lo, hi)``, then ``lut[v + 128]`` if given.

    Parameters
    ----------
    acc, multiplier, shift, mode
        As for :func:`requantize`.
    zero_point : int
        Output zero point (``bits`` wide).
    lo, hi : int
        Clamp bounds in the ``bits``-wide range, ``lo <= hi`` (see :func:`activation_bounds`).
    lut : numpy.ndarray of int8, shape [256], optional
        Lookup table applied after the clamp (8-bit outputs only).
    bits : {4, 8, 16}
        Output width.
    acc_bits : {32, 48}
        Accumulator width (see :func:`requantize`).

    Returns
    -------
    numpy.ndarray of int8 (int16 for 16-bit outputs), same shape as ``acc``
    """
    check_bits("bits", bits, BITS)
    zero_point = check_zero_point("zero_point", zero_point, bits)
    lo = check_zero_point("lo", lo, bits)
    hi = check_zero_point("hi", hi, bits)
    if lut is not None and bits != 8:
        raise ValueError(f"A lookup table applies to 8-bit outputs only, not {bits}-bit ones; "
                         "use a clamp activation (none, relu, relu6)")
    if lo > hi:
        raise ValueError(f"lo must not exceed hi, not lo={lo} > hi={hi}")
    if lut is not None:
        if not isinstance(lut, np.ndarray) or lut.dtype != np.int8 or lut.shape != (256,):
            shown = (f"{lut.dtype} {lut.shape}" if isinstance(lut, np.ndarray)
                     else type(lut).__name__)
            raise ValueError(f"lut must be an int8 array of shape (256,), not {shown}")
    v = requantize(acc, multiplier, shift, mode, acc_bits=acc_bits)
    y = np.clip(v + zero_point, lo, hi).astype(storage_dtype(bits))
    if lut is not None:
        y = lut[y.astype(np.int16) + 128]
    return y
