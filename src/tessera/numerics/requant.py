"""Requantization of int32/int48 accumulators to intN outputs: the drain step of the accelerator.

``requantize`` takes the hardware encoding produced by
:func:`~tessera.numerics.multipliers.requant_multipliers` (the same bits the ``PARAM`` buffer
holds), so the emulator and the RTL tests can call it with exactly what the device sees.
"""

from __future__ import annotations

import numpy as np

from ._checks import ACC_BITS, BITS, check_bits, check_scale, check_zero_point, int_range, \
    storage_dtype
from .modes import get_mode
from .rounding import round_half_away

__all__ = ["requantize", "activation_bounds", "postprocess", "ACTIVATIONS"]

#: Named activations fused as clamps; an int8 [256] array is a lookup table instead.
ACTIVATIONS = ("none", "relu", "relu6", "lut")


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
    """Return ``requant(acc)`` of docs/numerics.md, before the zero point and the clamp.

    Parameters
    ----------
    acc : array_like of int, shape [..., N]
        ``acc_bits``-wide accumulators (bias already added).
    multiplier : array_like of uint32, broadcast along the last axis
        onnx: float32 bits of ``M``; tflite: ``m0``.
    shift : array_like of int8, broadcast along the last axis
        onnx: must be 0; tflite: exponent ``e`` in ``[-31, 30]``.
    mode : str or RequantMode
        A name in ``tessera.numerics.modes.MODES`` (its ``requantize`` does the arithmetic).
    acc_bits : {32, 48}
        Accumulator width, one the mode takes (``RequantMode.acc_bits``). Mode "tflite" takes
        32-bit accumulators only (gemmlowp's ``MultiplyByQuantizedMultiplier`` is an int32
        operation; TFLite's int64 variant for int16x8 kernels rounds differently and is not
        implemented).

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
    requant_mode = get_mode(mode)
    check_bits("acc_bits", acc_bits, ACC_BITS)
    requant_mode.check_acc_bits(acc_bits)
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
    return requant_mode.requantize(acc, multiplier, shift)


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
