"""Mode "tflite" element-wise activations: TFLite Micro's int8 kernels, bit for bit.

Each function is the arithmetic of one TFLite Micro kernel (``tensorflow/lite/micro/kernels/``:
``activations_common.cc`` for RELU and RELU6, ``leaky_relu_common.cc``, ``quantize_common.cc``
with ``reference_ops::Requantize``) including its ``Prepare``'s float/double rounding of the
multipliers. The importers tabulate them over all 256 int8 inputs
(:mod:`tessera.quantize.tflite_tables`); ``tests/test_tflite_tables.py`` compares every table with
the ``tflite-micro`` wheel on one-operator models.

They differ from "dequantize, apply, quantize" where TFLite Micro does: RELU6 clamps the raw
input between its zero point and ``round(6 / sx) + zx`` and ignores the output quantization.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_scale, check_zero_point
from .requant_tflite import multiply_by_quantized_multiplier as _mbqm
from .requant_tflite import quantize_multiplier, round_tflite

__all__ = ["relu", "relu6", "leaky_relu", "requantize_int8"]


def _check_int8(x_q):
    if not isinstance(x_q, np.ndarray) or x_q.dtype != np.int8:
        shown = x_q.dtype if isinstance(x_q, np.ndarray) else type(x_q).__name__
        raise TypeError(f"x_q must be a numpy array of int8, not {shown}")
    return x_q.astype(np.int64)


def _ratio(numerator, y_scale):
    """Return ``QuantizeMultiplier(double(float32(numerator / sy)))`` (float32 division)."""
    m0, e = quantize_multiplier(np.float64(np.float32(numerator) / np.float32(y_scale)))
    return int(m0), int(e)


def relu(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 RELU (``ReluQuantized``).

    ``(m0, e) = QuantizeMultiplier(double(float32(sx / sy)))``;
    ``y = clamp(zy + MBQM(x - zx, m0, e), zy, 127)``.
    """
    x = _check_int8(x_q)
    zx = check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    m0, e = _ratio(check_scale("x_scale", x_scale), check_scale("y_scale", y_scale))
    return np.clip(zy + _mbqm(x - zx, m0, e), zy, 127).astype(np.int8)


def relu6(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 RELU6 (``Relu6Quantized``): a clamp in the INPUT's domain.

    ``six = clamp(round(float32(6) / sx) + zx, -128, 127)`` (``FloatToQuantizedType``);
    ``y = clamp(x, zx, six)``. The output quantization is not used (TFLite Micro ignores it;
    LiteRT rescales to it, so the two differ when the quantizations differ).
    """
    x = _check_int8(x_q)
    sx = check_scale("x_scale", x_scale)
    check_scale("y_scale", y_scale)
    check_zero_point("y_zero_point", y_zero_point)
    zx = check_zero_point("x_zero_point", x_zero_point)
    six = int(np.clip(int(round_tflite(np.float32(6) / np.float32(sx))) + zx, -128, 127))
    return np.clip(x, zx, six).astype(np.int8)


def leaky_relu(x_q, *, alpha, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 LEAKY_RELU (``reference_ops::QuantizeLeakyRelu``).

    Identity multiplier from ``double(float32(sx / sy))``, alpha multiplier from
    ``double(float32(sx * alpha / sy))``; ``d = x - zx``;
    ``y = clamp(zy + MBQM(d, identity if d >= 0 else alpha), -128, 127)``.

    Raises
    ------
    ValueError
        ``alpha`` is negative or not finite (TFLite's multipliers are positive).
    """
    x = _check_int8(x_q)
    alpha = np.float32(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, not {float(alpha)!r}")
    sx, sy = check_scale("x_scale", x_scale), check_scale("y_scale", y_scale)
    zx = check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    mi, ei = _ratio(sx, sy)
    ma, ea = _ratio(np.float32(sx) * alpha, sy)
    d = x - zx
    v = np.where(d >= 0, _mbqm(d, mi, ei), _mbqm(d, ma, ea))
    return np.clip(zy + v, -128, 127).astype(np.int8)


def requantize_int8(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 -> int8 QUANTIZE (``reference_ops::Requantize``).

    ``(m0, e) = QuantizeMultiplier(double(sx) / double(sy))``;
    ``y = clamp(MBQM(x - zx, m0, e) + zy, -128, 127)``.
    """
    x = _check_int8(x_q)
    sx, sy = check_scale("x_scale", x_scale), check_scale("y_scale", y_scale)
    zx = check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    m0, e = (int(v) for v in quantize_multiplier(np.float64(sx) / np.float64(sy)))
    return np.clip(_mbqm(x - zx, m0, e) + zy, -128, 127).astype(np.int8)
