"""Requant mode "onnx": ONNX Runtime's float32 multiplier, rounded to nearest even.

``M = float32(float32(sx) * float32(sw)) / float32(sy)`` in float32 arithmetic, this order
(ONNX Runtime's ``QGemm``/``QLinearMatMul``/``QLinearConv``), and
``requant(acc) = rint(float32(acc) * M)``. Hardware encoding (``docs/isa.md``): ``multiplier`` =
the IEEE-754 bits of ``M``, ``shift = 0``; the hardware supports ``M`` positive, normal and
below 2^24. The registry entry is ``tessera.numerics.modes.MODES["onnx"]``.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_requant_scales

__all__ = ["onnx_multiplier", "encode_multipliers", "requantize_onnx", "round_onnx",
           "MULTIPLIER_LIMIT"]

#: Largest float32 multiplier the onnx-mode hardware accepts (exclusive).
MULTIPLIER_LIMIT = float(1 << 24)

#: Saturation of the onnx path before the integer conversion (the RTL saturates the same way);
#: far outside every output range, so the clamp that follows is unaffected.
_SATURATION = float(1 << 62)

#: Quantization rounding of mode "onnx": ties to even (``QuantizeLinear``).
round_onnx = np.rint


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
    sx, sw, sy = check_requant_scales(x_scale, w_scale, y_scale)
    with np.errstate(over="ignore", under="ignore"):
        return (sx * sw) / sy     # float32 * float32 and float32 / float32, each IEEE-rounded


def encode_multipliers(x_scale, w_scale, y_scale):
    """Return the onnx-mode hardware encoding ``(float32 bits of M as uint32, zeros int8)``.

    Raises
    ------
    ValueError
        ``M`` is not a normal float32 below 2^24 (the message names the channel).
    """
    m = onnx_multiplier(x_scale, w_scale, y_scale)
    tiny = np.finfo(np.float32).tiny
    bad = ~(m >= tiny) | ~(m < MULTIPLIER_LIMIT)
    if np.any(bad):
        n = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"Requant multiplier x_scale*w_scale/y_scale = {float(m[n])!r} at channel {n} "
            "is outside the onnx-mode hardware range (a normal float32 in "
            f"[{float(tiny)!r}, 2**24)); rescale the layer's y_scale")
    return m.view(np.uint32).copy(), np.zeros(m.shape, dtype=np.int8)


def requantize_onnx(acc, multiplier, shift) -> np.ndarray:
    """Return ``rint(float32(acc) * M)`` for checked int64 ``acc`` and the onnx encoding.

    ``float32(acc)`` rounds to nearest even for ``|acc| > 2^24``, the product is rounded to
    float32, then to an integer with ties to even; the result is saturated to ``±2^62``.
    """
    if np.any(shift != 0):
        raise ValueError("shift must be 0 in mode 'onnx' (the multiplier is a float32)")
    m = multiplier.view(np.float32)
    if np.any(~(m >= np.finfo(np.float32).tiny) | ~(m < MULTIPLIER_LIMIT)):
        raise ValueError("multiplier must hold a normal positive float32 below 2**24 in "
                         "mode 'onnx'; build it with requant_multipliers")
    # float32(acc) * M is below 2^47 * 2^24 = 2^71: finite in float32; saturate before the
    # conversion so that the result is exact in int64 (with int32 it is below 2^55 anyway).
    y = np.rint(acc.astype(np.float32) * m)
    return np.clip(y, -_SATURATION, _SATURATION).astype(np.int64)
