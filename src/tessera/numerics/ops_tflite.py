"""Mode "tflite" CNN kernels: TFLite Micro's int8 reference kernels, bit for bit.

Each function is the arithmetic of one TFLite Micro kernel (``tensorflow/lite/kernels/internal/
reference/integer_ops/`` and ``tensorflow/lite/micro/kernels/``), vectorised over the batch and
the pixels; ``docs/numerics.md`` ("CNN operators") lists them and the tests compare them with the
``tflite-micro`` wheel. Activations are int8 NHWC with the batch first. ``ops_onnx`` has the same
names and signatures for mode "onnx" (``tessera.numerics.get_mode(mode).ops``).

Where TFLite Micro refuses a model (average or max pooling or CONCATENATION that would need a
rescale; a SOFTMAX output other than scale 1/256, zero point -128) these kernels raise
``ValueError`` with the reason instead of computing something TFLite Micro never does.
"""

from __future__ import annotations

import numpy as np

from . import cnn
from ._checks import check_requant_scales, check_scale, check_zero_point
from .fixedpoint import exp_on_negative_values, get_reciprocal
from .requant import activation_bounds
from .requant_tflite import multiply_by_quantized_multiplier as _mbqm
from .requant_tflite import quantize_multiplier
from .rounding import INT32_MAX, rdbpot, srdhm, wrap_int32

__all__ = ["conv2d", "depthwise_conv2d", "average_pool2d", "max_pool2d", "mean_hw", "add",
           "mul", "softmax", "pad", "concatenate", "softmax_parameters"]

#: ADD shifts its int8 inputs left by 20 bits before rescaling them (``add_common.cc``).
ADD_LEFT_SHIFT = 20
#: Integer bits of the scaled input differences and of the sum of exponentials in SOFTMAX.
_SOFTMAX_DIFF_BITS, _SOFTMAX_ACCUM_BITS = 5, 12


def _check_bits(bits):
    if bits != 8:
        raise ValueError(f"Mode 'tflite' CNN kernels take int8 activations (bits=8), not "
                         f"bits={bits!r}; TFLite Micro's int16 kernels use 64-bit accumulators "
                         "and another rounding, which Tessera does not implement")


def _per_channel_multipliers(x_scale, w_scale, y_scale, channels):
    sw = np.asarray(w_scale)
    if sw.ndim == 1 and sw.shape != (channels,):
        raise ValueError(f"w_scale must be a scalar or shape ({channels},), not shape "
                         f"{sw.shape}")
    sx, sw, sy = check_requant_scales(x_scale, w_scale, y_scale)
    # PopulateConvolutionQuantizationParams: double(sx) * double(sw[c]) / double(sy).
    m0, e = quantize_multiplier(sx.astype(np.float64) * sw.astype(np.float64)
                                / sy.astype(np.float64))
    return np.broadcast_to(m0, (channels,)), np.broadcast_to(e, (channels,))


def _int32(acc):
    """Return ``acc`` wrapped to int32 as the C kernels' ``int32_t`` sums (a no-op in range)."""
    if acc.size and (acc.min() < -INT32_MAX - 1 or acc.max() > INT32_MAX):
        return wrap_int32(acc)
    return acc


def _requant_conv(acc, x_scale, w_scale, y_scale, y_zero_point, activation):
    channels = acc.shape[-1]
    m0, e = _per_channel_multipliers(x_scale, w_scale, y_scale, channels)
    zy = check_zero_point("y_zero_point", y_zero_point)
    lo, hi = activation_bounds(activation, y_scale, zy)
    v = _mbqm(_int32(acc), m0, e)
    return np.clip(v + zy, lo, hi).astype(np.int8)


def conv2d(x_q, w_q, bias, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point,
           stride=(1, 1), dilation=(1, 1), padding="valid", activation="none",
           bits=8) -> np.ndarray:
    """Return TFLite Micro's int8 CONV_2D (``reference_integer_ops::ConvPerChannel``).

    Parameters
    ----------
    x_q : numpy.ndarray of int8, shape [B, H, W, IC]
    w_q : numpy.ndarray of int8, shape [OC, KH, KW, IC] (zero point 0)
    bias : numpy.ndarray of int32, shape [OC], or None
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int
    w_scale : float or array_like of float, shape [OC]
        Per-tensor or per-output-channel weight scale.
    stride, dilation : int or (int, int)
    padding : {"same", "valid"} or ((top, bottom), (left, right))
        "same" is TensorFlow's (the extra row/column at the bottom/right); padded taps are
        skipped.
    activation : {"none", "relu", "relu6"}
        Fused activation (a clamp, :func:`~tessera.numerics.activation_bounds`).
    bits : {8}

    Returns
    -------
    numpy.ndarray of int8, shape [B, OH, OW, OC]

    Notes
    -----
    ``acc = sum (x - zx) * w + b`` over in-bounds taps on int32;
    ``y = clamp(MultiplyByQuantizedMultiplier(acc, m0[c], e[c]) + zy)`` with ``(m0, e)`` =
    ``QuantizeMultiplier(double(sx) * double(sw[c]) / double(sy))``.
    """
    _check_bits(bits)
    acc = cnn.conv2d_accumulators(x_q, w_q, bias, x_zero_point=x_zero_point, stride=stride,
                                  dilation=dilation, padding=padding)
    return _requant_conv(acc, x_scale, w_scale, y_scale, y_zero_point, activation)


def depthwise_conv2d(x_q, w_q, bias, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point,
                     depth_multiplier=1, stride=(1, 1), dilation=(1, 1), padding="valid",
                     activation="none", bits=8) -> np.ndarray:
    """Return TFLite Micro's int8 DEPTHWISE_CONV_2D (``DepthwiseConvPerChannel``).

    ``w_q`` has shape [1, KH, KW, IC * depth_multiplier]; output channel ``c * mult + m``
    reads input channel ``c``. The other parameters and the arithmetic are those of
    :func:`conv2d`.
    """
    _check_bits(bits)
    acc = cnn.depthwise_accumulators(x_q, w_q, bias, x_zero_point=x_zero_point,
                                     depth_multiplier=depth_multiplier, stride=stride,
                                     dilation=dilation, padding=padding)
    return _requant_conv(acc, x_scale, w_scale, y_scale, y_zero_point, activation)


def _same_quantization(op, x_scale, x_zero_point, y_scale, y_zero_point, tolerance=1e-6):
    sx, sy = check_scale("x_scale", x_scale), check_scale("y_scale", y_scale)
    zx = check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    if abs(float(sx - sy)) > tolerance or zx != zy:
        raise ValueError(f"TFLite Micro's {op} needs the same input and output quantization, "
                         f"not x ({float(sx)!r}, {zx}) and y ({float(sy)!r}, {zy}); "
                         "requantize before or after it")
    return zy


def average_pool2d(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, pool, stride,
                   padding="valid", activation="none") -> np.ndarray:
    """Return TFLite Micro's int8 AVERAGE_POOL_2D.

    The sum of the raw int8 values over the in-bounds taps, divided by their count ``n`` and
    rounded half away from zero (``(s + n/2) / n`` for ``s > 0``, else ``(s - n/2) / n``, C
    division), then clamped to the activation's range. Input and output quantization must be
    the same (TFLite Micro checks it).
    """
    zy = _same_quantization("AVERAGE_POOL_2D", x_scale, x_zero_point, y_scale, y_zero_point)
    lo, hi = activation_bounds(activation, y_scale, zy)
    sums = cnn.pool_sums(x_q, pool=pool, stride=stride, padding=padding)
    n = cnn.pool_tap_counts(x_q.shape[1:3], pool=pool, stride=stride, padding=padding)
    n = n[None, :, :, None]
    half = n // 2
    average = np.where(sums > 0, (sums + half) // n, -((half - sums) // n))
    return np.clip(average, lo, hi).astype(np.int8)


def max_pool2d(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, pool, stride,
               padding="valid", activation="none") -> np.ndarray:
    """Return TFLite Micro's int8 MAX_POOL_2D: the maximum of the in-bounds taps, clamped.

    Input and output quantization must be the same (TFLite Micro checks it).
    """
    zy = _same_quantization("MAX_POOL_2D", x_scale, x_zero_point, y_scale, y_zero_point)
    lo, hi = activation_bounds(activation, y_scale, zy)
    return np.clip(cnn.max_pool2d(x_q, pool=pool, stride=stride, padding=padding), lo, hi)


def mean_hw(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, keepdims=True) -> np.ndarray:
    """Return TFLite Micro's int8 MEAN over height and width (``QuantizedMeanOrSum``).

    ``(m0, e) = QuantizeMultiplier(double(sx) / double(sy))``; with ``n = H * W`` and
    ``k = min(floor(log2 n), 32, 31 + e)`` the multiplier becomes ``(m0 << k) / n`` (C
    division) and the exponent ``e - k``; ``y = clamp(MBQM(sum x - zx * n) + zy)``.

    Returns
    -------
    numpy.ndarray of int8, shape [B, 1, 1, C] (``keepdims``) or [B, C]
    """
    cnn.check_nhwc("x_q", x_q)
    sx, sy = check_scale("x_scale", x_scale), check_scale("y_scale", y_scale)
    zx = check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    m0, e = (int(v) for v in quantize_multiplier(np.float64(sx) / np.float64(sy)))
    n = x_q.shape[1] * x_q.shape[2]
    k = min(n.bit_length() - 1, 32, 31 + e)
    m0, e = ((m0 << k) // n, e - k) if n else (m0, e)
    total = x_q.astype(np.int64).sum(axis=(1, 2), keepdims=keepdims) - zx * n
    v = _mbqm(_int32(total), m0, e)
    return np.clip(v + zy, -128, 127).astype(np.int8)


def _binary_quantization(a_q, b_q, a_scale, a_zero_point, b_scale, b_zero_point, y_scale,
                         y_zero_point, activation):
    """Check ADD's/MUL's operands; return ``(sa, za), (sb, zb), (sy, zy), (lo, hi)``."""
    for name, value in (("a_q", a_q), ("b_q", b_q)):
        if not isinstance(value, np.ndarray) or value.dtype != np.int8:
            shown = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise TypeError(f"{name} must be a numpy array of int8, not {shown}")
    sa, sb = check_scale("a_scale", a_scale), check_scale("b_scale", b_scale)
    sy = check_scale("y_scale", y_scale)
    za = check_zero_point("a_zero_point", a_zero_point)
    zb = check_zero_point("b_zero_point", b_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    lo, hi = activation_bounds(activation, y_scale, zy)
    return (sa, za), (sb, zb), (sy, zy), (lo, hi)


def add(a_q, b_q, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
        activation="none") -> np.ndarray:
    """Return TFLite Micro's int8 ADD (``add_common.cc``, ``integer_ops/add.h``), broadcasting.

    ``twice_max = 2 * max(sa, sb)``; ``(ma, ea)``, ``(mb, eb)`` from ``sa / twice_max``,
    ``sb / twice_max`` and ``(my, ey)`` from ``twice_max / (2^20 * sy)`` (double, then
    ``QuantizeMultiplier``); ``s = MBQM((a - za) << 20, ma, ea) + MBQM((b - zb) << 20, mb, eb)``;
    ``y = clamp(MBQM(s, my, ey) + zy)`` to the activation's range.
    """
    (sa, za), (sb, zb), (sy, zy), (lo, hi) = _binary_quantization(
        a_q, b_q, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point, activation)
    twice_max = 2 * np.float64(max(sa, sb))
    ma, ea = quantize_multiplier(np.float64(sa) / twice_max)
    mb, eb = quantize_multiplier(np.float64(sb) / twice_max)
    my, ey = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * np.float64(sy)))
    scaled_a = _mbqm((a_q.astype(np.int64) - za) << ADD_LEFT_SHIFT, ma, ea)
    scaled_b = _mbqm((b_q.astype(np.int64) - zb) << ADD_LEFT_SHIFT, mb, eb)
    v = _mbqm(wrap_int32(scaled_a + scaled_b), my, ey)
    return np.clip(v + zy, lo, hi).astype(np.int8)


def mul(a_q, b_q, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
        activation="none") -> np.ndarray:
    """Return TFLite Micro's int8 MUL (``mul_common.cc``, ``integer_ops/mul.h``), broadcasting.

    ``(m, e) = QuantizeMultiplier(double(sa) * double(sb) / double(sy))``;
    ``y = clamp(zy + MBQM((a - za) * (b - zb), m, e))`` to the activation's range.
    """
    (sa, za), (sb, zb), (sy, zy), (lo, hi) = _binary_quantization(
        a_q, b_q, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point, activation)
    m, e = quantize_multiplier(np.float64(sa) * np.float64(sb) / np.float64(sy))
    product = (a_q.astype(np.int64) - za) * (b_q.astype(np.int64) - zb)
    return np.clip(zy + _mbqm(product, m, e), lo, hi).astype(np.int8)


def softmax_parameters(x_scale, beta=1.0):
    """Return TFLite Micro's int8 SOFTMAX ``(input_multiplier, input_left_shift, diff_min)``.

    ``PreprocessSoftmaxScaling(beta, sx, 5)``: ``QuantizeMultiplier(min(beta * sx * 2^26,
    2^31 - 1))`` in double; ``diff_min = -floor(31 * 2^26 / 2^left_shift)``
    (``CalculateInputRadius``).
    """
    sx = check_scale("x_scale", x_scale)
    real = min(float(np.float32(beta)) * float(sx) * float(1 << (31 - _SOFTMAX_DIFF_BITS)),
               float((1 << 31) - 1))
    multiplier, left_shift = (int(v) for v in quantize_multiplier(real))
    radius = ((1 << _SOFTMAX_DIFF_BITS) - 1) * (1 << (31 - _SOFTMAX_DIFF_BITS)) / \
        float(1 << left_shift)
    return multiplier, left_shift, -int(np.floor(radius))


def softmax(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, beta=1.0) -> np.ndarray:
    """Return TFLite Micro's int8 SOFTMAX over the last axis (``reference_ops::Softmax``).

    Per row: differences to the row maximum at or above ``diff_min`` are rescaled by
    ``input_multiplier`` (:func:`softmax_parameters`), exponentiated with gemmlowp's
    ``exp_on_negative_values`` (Q5.26 in, Q0.31 out), summed in Q12.19; ``GetReciprocal`` of
    the sum times each exponential, rounded by ``2^(num_bits_over_unit + 23)``, minus 128.
    Differences below ``diff_min`` give -128. The output quantization must be scale 1/256,
    zero point -128 (TFLite Micro checks it); the input zero point cancels out.
    """
    if not isinstance(x_q, np.ndarray) or x_q.dtype != np.int8 or x_q.ndim < 1:
        shown = x_q.dtype if isinstance(x_q, np.ndarray) else type(x_q).__name__
        raise TypeError(f"x_q must be a numpy array of int8 with at least one axis, not {shown}")
    check_zero_point("x_zero_point", x_zero_point)
    if check_scale("y_scale", y_scale) != np.float32(1 / 256) or \
            check_zero_point("y_zero_point", y_zero_point) != -128:
        raise ValueError(f"TFLite Micro's int8 SOFTMAX needs output scale 1/256 and zero point "
                         f"-128, not {float(np.float32(y_scale))!r} and {y_zero_point}")
    multiplier, left_shift, diff_min = softmax_parameters(x_scale, beta)
    x = x_q.astype(np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    inside = diff >= diff_min
    rescaled = srdhm(wrap_int32(diff << left_shift), multiplier)
    exps = exp_on_negative_values(rescaled, _SOFTMAX_DIFF_BITS)
    total = np.where(inside, rdbpot(exps, _SOFTMAX_ACCUM_BITS), 0)
    total = wrap_int32(total.sum(axis=-1, keepdims=True))
    scale, bits_over_unit = get_reciprocal(total, _SOFTMAX_ACCUM_BITS)
    exponent = bits_over_unit + 31 - 8
    out = rdbpot(srdhm(scale, exps), exponent) - 128
    return np.where(inside, np.clip(out, -128, 127), -128).astype(np.int8)


def pad(x_q, paddings, *, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """Return TFLite Micro's int8 PAD: ``x_q`` padded with the output zero point.

    ``paddings`` is one ``(before, after)`` pair per axis, batch first. The input values are
    copied unchanged (no rescale: converters give both tensors the same quantization).
    """
    check_scale("x_scale", x_scale)
    check_scale("y_scale", y_scale)
    check_zero_point("x_zero_point", x_zero_point)
    return cnn.pad(x_q, paddings, value=check_zero_point("y_zero_point", y_zero_point))


def concatenate(xs, *, x_scales, x_zero_points, y_scale, y_zero_point, axis=-1) -> np.ndarray:
    """Return TFLite Micro's int8 CONCATENATION along ``axis`` (channels by default).

    Every input must have the output's quantization (TFLite Micro checks it).
    """
    xs = list(xs)
    if len(x_scales) != len(xs) or len(x_zero_points) != len(xs):
        raise ValueError(f"x_scales and x_zero_points need one entry per input ({len(xs)})")
    for sx, zx in zip(x_scales, x_zero_points):
        _same_quantization("CONCATENATION", sx, zx, y_scale, y_zero_point, tolerance=0.0)
    return cnn.concatenate(xs, axis=axis)
