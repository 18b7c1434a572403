"""Requantization multipliers from scales, in the hardware encoding of ``docs/isa.md``.

mode "onnx"
    ``M = float32(float32(sx) * float32(sw)) / float32(sy)`` in float32 arithmetic, this order
    (ONNX Runtime's ``QGemm``/``QLinearMatMul``). Encoded as ``multiplier`` = the IEEE-754 bits
    of ``M`` and ``shift = 0``. The hardware supports ``M`` positive, normal and below 2^24.
mode "tflite"
    ``M = float64(sx) * float64(sw) / float64(sy)``, then TFLite's ``QuantizeMultiplier``:
    ``q, e = frexp(M)``, ``m0 = round_half_away(q * 2^31)``, ``m0 == 2^31`` becomes
    ``(2^30, e + 1)``, and ``e < -31`` becomes ``(0, 0)`` (every bit would be shifted out).
    Encoded as ``multiplier = m0`` (0 or in ``[2^30, 2^31)``) and ``shift = e`` in ``[-31, 30]``.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_mode, check_scale
from .rounding import round_half_away

__all__ = ["onnx_multiplier", "quantize_multiplier", "requant_multipliers"]

#: Largest float32 multiplier the onnx-mode hardware accepts (exclusive).
ONNX_MULTIPLIER_LIMIT = float(1 << 24)
#: Exponent range of the tflite-mode hardware (left shift up to 30, right shift up to 31).
TFLITE_SHIFT_MIN, TFLITE_SHIFT_MAX = -31, 30


def _scales(x_scale, w_scale, y_scale):
    sw = np.asarray(w_scale)
    length = sw.shape[0] if sw.ndim == 1 else None
    sx = check_scale("x_scale", x_scale)
    sw = check_scale("w_scale", w_scale, length=length)
    sy = check_scale("y_scale", y_scale)
    return sx, np.atleast_1d(sw), sy


def onnx_multiplier(x_scale, w_scale, y_scale) -> np.ndarray:
    """Return ONNX Runtime's float32 multiplier ``float32(sx * sw) / sy`` per channel.

    Parameters
    ----------
    x_scale, y_scale : float
        Per-tensor scales (rounded to float32 first, as stored in model files).
    w_scale : float or array_like [N]
        Per-tensor or per-output-channel weight scale.

    Returns
    -------
    numpy.ndarray of float32, shape [N] (N = 1 for a per-tensor ``w_scale``)
    """
    sx, sw, sy = _scales(x_scale, w_scale, y_scale)
    with np.errstate(over="ignore", under="ignore"):
        return (sx * sw) / sy     # float32 * float32 and float32 / float32, each IEEE-rounded


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


def requant_multipliers(x_scale, w_scale, y_scale, mode):
    """Return the hardware requantization parameters ``(multiplier, shift)`` per channel.

    Parameters
    ----------
    x_scale, y_scale : float
        Input and output scale (per tensor).
    w_scale : float or array_like [N]
        Weight scale, per tensor or per output channel.
    mode : {"onnx", "tflite"}

    Returns
    -------
    multiplier : numpy.ndarray of uint32, shape [N]
        onnx: the float32 bits of ``M``; tflite: ``m0``.
    shift : numpy.ndarray of int8, shape [N]
        onnx: 0; tflite: the exponent ``e``.

    Raises
    ------
    ValueError
        A scale is not finite and positive, or ``M`` is outside what the hardware supports
        (onnx: a normal float32 below 2^24; tflite: ``e <= 30``, i.e. ``M < 2^30``).
    """
    check_mode(mode)
    if mode == "onnx":
        m = onnx_multiplier(x_scale, w_scale, y_scale)
        tiny = np.finfo(np.float32).tiny
        bad = ~(m >= tiny) | ~(m < ONNX_MULTIPLIER_LIMIT)
        if np.any(bad):
            n = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Requant multiplier x_scale*w_scale/y_scale = {float(m[n])!r} at channel {n} "
                "is outside the onnx-mode hardware range (a normal float32 in "
                f"[{float(tiny)!r}, 2**24)); rescale the layer's y_scale")
        return m.view(np.uint32).copy(), np.zeros(m.shape, dtype=np.int8)
    sx, sw, sy = _scales(x_scale, w_scale, y_scale)
    m = sx.astype(np.float64) * sw.astype(np.float64) / sy.astype(np.float64)
    m0, e = quantize_multiplier(m)
    bad = e > TFLITE_SHIFT_MAX
    if np.any(bad):
        n = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"Requant multiplier x_scale*w_scale/y_scale = {float(m[n])!r} at channel {n} is "
            "too large for the tflite-mode hardware (must be below 2**30); "
            "rescale the layer's y_scale")
    return m0.astype(np.uint32), e.astype(np.int8)
