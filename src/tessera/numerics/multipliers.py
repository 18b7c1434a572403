"""Requantization multipliers from scales, in the hardware encoding of ``docs/isa.md``.

Each mode's rule lives with the mode (:mod:`.requant_onnx`, :mod:`.requant_tflite`, registered
in :mod:`.modes`):

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

from .modes import get_mode
from .requant_onnx import onnx_multiplier
from .requant_tflite import quantize_multiplier

__all__ = ["onnx_multiplier", "quantize_multiplier", "requant_multipliers"]


def requant_multipliers(x_scale, w_scale, y_scale, mode):
    """Return the hardware requantization parameters ``(multiplier, shift)`` per channel.

    Parameters
    ----------
    x_scale, y_scale : float
        Input and output scale (per tensor).
    w_scale : float or array_like [N]
        Weight scale, per tensor or per output channel.
    mode : str or RequantMode
        A name in ``tessera.numerics.modes.MODES``.

    Returns
    -------
    multiplier : numpy.ndarray of uint32, shape [N]
        onnx: the float32 bits of ``M``; tflite: ``m0``.
    shift : numpy.ndarray of int8, shape [N]
        onnx: 0; tflite: the exponent ``e``.

    Raises
    ------
    ValueError
        ``mode`` is unknown, a scale is not finite and positive, or ``M`` is outside what the
        hardware supports (onnx: a normal float32 below 2^24; tflite: ``e <= 30``, i.e.
        ``M < 2^30``).
    """
    return get_mode(mode).multipliers(x_scale, w_scale, y_scale)
