"""Mode "tflite" element-wise activations: TFLite Micro's int8 kernels, bit for bit.

Each function is the arithmetic of one TFLite Micro kernel (``tensorflow/lite/micro/kernels/``:
``activations_common.cc`` for RELU and RELU6, ``leaky_relu_common.cc``, ``quantize_common.cc``
with ``reference_ops::Requantize``, ``logistic_common.cc`` and ``tanh.cc`` with
``reference_integer_ops::Logistic``/``Tanh`` on gemmlowp's fixed point, ``hard_swish_common.cc``
with ``reference_ops::HardSwish`` on int16 fixed point) including its
``Prepare``'s float/double rounding of the multipliers. The importers tabulate them over all
256 int8 inputs (:mod:`tessera.quantize.tflite_tables`); ``tests/test_tflite_tables.py``
compares them with the ``tflite-micro`` wheel on one-operator models.

They differ from "dequantize, apply, quantize" where TFLite Micro does: RELU6 clamps the raw
input between its zero point and ``round(6 / sx) + zx`` and ignores the output quantization.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_scale, check_zero_point
from .fixedpoint import exp_on_negative_values, one_over_one_plus_x, reciprocal_of_half_sum
from .fixedpoint import saturating_shift_left
from .requant_tflite import multiply_by_quantized_multiplier as _mbqm
from .requant_tflite import quantize_multiplier, round_tflite
from .rounding import INT32_MAX, rdbpot, wrap_int32

__all__ = ["relu", "relu6", "leaky_relu", "requantize_int8", "logistic", "tanh", "hard_swish"]

#: Integer bits of LOGISTIC's and TANH's rescaled input (``kInputIntegerBits``, Q4.27).
_INPUT_INTEGER_BITS = 4


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


def _rescaled_input(x, x_scale, x_zero_point):
    """Return ``(d, radius, q4)`` of LOGISTIC/TANH: ``d = x - zx``, the saturation radius and
    ``d`` in Q4.27 (``MBQM(d, m, shift)`` with ``m, shift`` from ``frexp(sx * 2^27)``)."""
    sx = check_scale("x_scale", x_scale)
    zx = check_zero_point("x_zero_point", x_zero_point)
    q, shift = np.frexp(np.float64(sx) * float(1 << (31 - _INPUT_INTEGER_BITS)))
    multiplier = int(round_tflite(q * float(1 << 31)))
    # CalculateInputRadius(4, shift, 31): floor(15 * 2^27 / 2^shift).
    radius = int(np.floor(((1 << _INPUT_INTEGER_BITS) - 1) *
                          float(1 << (31 - _INPUT_INTEGER_BITS)) / np.ldexp(1.0, int(shift))))
    d = x - zx
    inside = np.abs(d) < radius
    q4 = np.where(inside, _mbqm(np.where(inside, d, 0), multiplier, int(shift)), 0)
    return d, radius, q4


def _one_minus_x_over_one_plus_x(a):
    """gemmlowp's ``one_minus_x_over_one_plus_x_for_x_in_0_1`` (Q0.31 in and out)."""
    return saturating_shift_left(wrap_int32(reciprocal_of_half_sum(a) - (1 << 29)), 2)


def logistic(x_q, *, x_scale, x_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 LOGISTIC (``reference_integer_ops::Logistic``).

    The output is scale 1/256, zero point -128 (TFLite Micro checks the zero point and assumes
    the scale). ``d = x - zx``; ``|d| >= radius`` saturates; else ``d`` in Q4.27 goes through
    gemmlowp's ``logistic`` (``1 / (1 + exp(-|a|))``, ``1 - that`` for ``a < 0``, 1/2 at 0)
    and ``RDBPOT(., 23) - 128``.
    """
    d, radius, a = _rescaled_input(_check_int8(x_q), x_scale, x_zero_point)
    positive = one_over_one_plus_x(exp_on_negative_values(-np.abs(a), _INPUT_INTEGER_BITS))
    result = np.where(a == 0, 1 << 30, np.where(a > 0, positive, wrap_int32(INT32_MAX - positive)))
    y = np.clip(rdbpot(result, 31 - 8) - 128, -128, 127)
    y = np.where(d <= -radius, -128, np.where(d >= radius, 127, y))
    return y.astype(np.int8)


def tanh(x_q, *, x_scale, x_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 TANH (``reference_integer_ops::Tanh``).

    The output is scale 1/128, zero point 0 (assumed, not checked, by TFLite Micro).
    ``d = x - zx``; ``|d| >= radius`` saturates; else ``d`` in Q4.27 goes through gemmlowp's
    ``tanh`` (``(1 - e) / (1 + e)`` with ``e = exp(-2|a|)``, the sign of ``a``) and
    ``RDBPOT(., 24)``.
    """
    d, radius, a = _rescaled_input(_check_int8(x_q), x_scale, x_zero_point)
    # ExactMulByPot<1>: the same raw value read with 5 integer bits.
    t = _one_minus_x_over_one_plus_x(exp_on_negative_values(-np.abs(a), 5))
    result = np.where(a == 0, 0, np.where(a < 0, -t, t))
    y = np.clip(rdbpot(result, 31 - 7), -128, 127)
    y = np.where(d <= -radius, -128, np.where(d >= radius, 127, y))
    return y.astype(np.int8)


def _int16_multiplier(real):
    """Return ``(int16 multiplier, exponent)``: ``QuantizeMultiplier`` then
    ``DownScaleInt32ToInt16Multiplier`` (``(m + 2^15) >> 16``, 32767 at the top)."""
    m0, e = (int(v) for v in quantize_multiplier(np.float64(real)))
    return (32767 if m0 >= INT32_MAX - (1 << 15) else (m0 + (1 << 15)) >> 16), e


def _srdhm16(a, b):
    """gemmlowp's int16 ``SaturatingRoundingDoublingHighMul`` (C division by 2^15)."""
    ab = a * b
    nudged = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(nudged >= 0, nudged >> 15, -((-nudged) >> 15))
    return np.where((a == b) & (a == -32768), 32767, q)


def _rdbpot16(x, exponent):
    """gemmlowp's ``RoundingDivideByPOT`` on int16: for ``exponent >= 16`` its mask
    ``int16((1 << exponent) - 1)`` is -1, so the result is 1 for ``x >= 0`` and -1 below."""
    if exponent >= 16:
        return np.where(x >= 0, 1, -1)
    return rdbpot(x, exponent)


def _saturating_left_shift16(x, amount):
    return np.clip(x * (1 << amount), -32768, 32767)


def hard_swish(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 HARD_SWISH (``reference_ops::HardSwish``, int16 fixed point).

    ``hires = (x - zx) * 2^7``; the output multiplier from ``float32(sx / 128 / sy)`` and the
    "relu-ish" one from ``float32(sx / 128 / (3 / 32768))``, both ``QuantizeMultiplier`` then
    rounded to 16 bits; ``reluish`` is ``hires`` rescaled (saturating left shift, int16
    ``SRDHM``, ``RDBPOT``) to [-1, 1] in Q0.15, then ``(reluish + 2^15) >> 1``;
    ``y = clamp(RDBPOT(SaturatingDoublingHighMul(reluish, SRDHM(hires, m_out)), -e_out) + zy)``.

    Raises
    ------
    ValueError
        The output multiplier's exponent is positive (TFLite Micro refuses the model).
    """
    x = _check_int8(x_q)
    sx, sy = check_scale("x_scale", x_scale), check_scale("y_scale", y_scale)
    zx = check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    hires_scale = np.float32(1 / 128) * np.float32(sx)
    m_out, e_out = _int16_multiplier(np.float32(hires_scale / np.float32(sy)))
    m_relu, e_relu = _int16_multiplier(np.float32(hires_scale / np.float32(3 / 32768)))
    if e_out > 0:
        raise ValueError(f"HARD_SWISH's output multiplier sx / (128 * sy) = "
                         f"{float(hires_scale / np.float32(sy))!r} has exponent {e_out}; TFLite "
                         "Micro needs it <= 0 (an output scale at least sx / 128)")
    hires = (x - zx) * (1 << 7)
    preshift = _srdhm16(hires, m_out)
    reluish = hires
    if e_relu > 0:
        reluish = _saturating_left_shift16(reluish, e_relu - 1)
    reluish = _srdhm16(reluish, m_relu)
    if e_relu > 0:
        reluish = _saturating_left_shift16(reluish, 1)
    if e_relu < 0:
        reluish = _rdbpot16(reluish, -e_relu)
    reluish = (reluish + (1 << 15)) >> 1
    product = reluish * preshift                           # SaturatingDoublingHighMul
    product = np.where(product >= 0, product >> 15, -((-product) >> 15))
    y = _rdbpot16(product, -e_out) + zy
    return np.clip(y, -128, 127).astype(np.int8)
