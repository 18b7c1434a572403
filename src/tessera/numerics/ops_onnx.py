"""Mode "onnx" CNN kernels: ONNX Runtime's int8 CPU kernels, bit for bit (``docs/numerics.md``).

Each function is the NumPy twin of one ORT kernel, on NHWC int8 arrays, batch first:

``conv2d`` / ``depthwise_conv2d``
    ``QLinearConv`` (a depthwise conv is ORT's group conv): exact integer accumulators
    (:mod:`tessera.numerics.cnn`), then MLAS's requantization ``rint(float32(acc) * M)`` with
    ``M = float32(sx * sw[c]) / sy`` per output channel, the zero point and a clamp.
``add``
    ``com.microsoft.QLinearAdd`` (what ORT fuses a QDQ ``Add`` into), MLAS's AVX2 kernel:
    ``rint(fma(a, ra, fma(b, rb, f)))`` with ``ra = sa / sc``, ``rb = sb / sc`` and
    ``f = zc - fma(ra, za, rb * zb)``, every step rounded to float32 once (fused multiply-adds).
``average_pool2d``
    ``com.microsoft.QLinearAveragePool``: inputs dequantized to float32, summed in float32 tap
    by tap (rows, then columns), divided by the tap count (in-bounds taps, or the whole window
    with ``count_include_pad``), then ``rint(y / sy + zy)``. A window covering the whole
    unpadded image takes ORT's global average pool path instead (below).
``mean_hw``
    ``com.microsoft.QLinearGlobalAveragePool``: the exact integer sum minus ``zx * N``, times
    ``float32(sx / (sy * N))``, rounded to nearest even.
``max_pool2d``
    ``MaxPool`` on int8 (padded taps ignored); a ``QuantizeLinear`` of the dequantized maximum
    when input and output quantization differ.
``softmax``
    ``com.microsoft.QLinearSoftmax`` (what ORT fuses a QDQ ``Softmax`` into): a float32 table of
    ``exp`` over the 256 distances to the row maximum, a float32 sum, and
    ``rint(e * floor(1 / sy) / sum) + zy`` (the quotient in double).
``concatenate``, ``pad``
    ``com.microsoft.QLinearConcat``: inputs whose quantization differs from the output's are
    requantized through ``QuantizeLinear(DequantizeLinear(x))``; ``Pad`` with the zero point.

The AVX2 ``QLinearAdd`` kernel is the one ORT runs on x86-64 CPUs with AVX2 (measured in
``tests/test_numerics_onnx_cnn.py``); its SSE2/NEON fallbacks round differently. ``add`` and
``average_pool2d`` take ``unsigned=True`` for models whose tensors are uint8 (held as int8 minus
128): ORT rounds those two on the uint8 values; every other kernel computes the same either way.
"""

from __future__ import annotations

import math

import numpy as np

from . import cnn
from ._checks import check_int_array, check_scale, check_zero_point, int_range
from .multipliers import requant_multipliers
from .requant import activation_bounds, postprocess
from .tensor import dequantize_tensor, quantize_tensor

__all__ = ["conv2d", "depthwise_conv2d", "average_pool2d", "max_pool2d", "mean_hw", "add",
           "softmax", "pad", "concatenate", "fma_float32"]

_F32 = np.float32


def fma_float32(a, b, c) -> np.ndarray:
    """Return ``a * b + c`` rounded once to float32 (a fused multiply-add, as ``vfmadd``).

    ``a * b`` of two float32 values is exact in float64; the float64 sum is corrected with its
    exact error (TwoSum) where it lands on a float32 rounding tie, so the result is the
    correctly rounded float32 of the exact ``a * b + c``.
    """
    a = np.asarray(a, dtype=_F32).astype(np.float64)
    b = np.asarray(b, dtype=_F32).astype(np.float64)
    c = np.asarray(c, dtype=_F32).astype(np.float64)
    p = a * b
    s = p + c
    virtual = s - p
    err = (p - (s - virtual)) + (c - virtual)
    r = s.astype(_F32)
    toward = np.where(s > r, _F32(np.inf), _F32(-np.inf)).astype(_F32)
    other = np.nextafter(r, toward)
    tie = (s != r) & (s == (r.astype(np.float64) + other.astype(np.float64)) / 2) & (err != 0)
    upper, lower = np.maximum(r, other), np.minimum(r, other)
    return np.where(tie, np.where(err > 0, upper, lower), r).astype(_F32)


def _clamp(y, activation, y_scale, y_zero_point):
    lo, hi = activation_bounds(activation, y_scale, y_zero_point)
    return np.clip(y, lo, hi).astype(np.int8)


def _requant_conv(acc, *, x_scale, w_scale, y_scale, y_zero_point, activation, bits):
    multiplier, shift = requant_multipliers(x_scale, w_scale, y_scale, "onnx")
    lo, hi = activation_bounds(activation, y_scale, y_zero_point, bits=bits)
    return postprocess(acc, multiplier, shift, mode="onnx", zero_point=y_zero_point, lo=lo,
                       hi=hi, bits=bits)


def conv2d(x_q, w_q, bias, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point,
           stride=(1, 1), dilation=(1, 1), padding="valid", activation="none",
           bits=8) -> np.ndarray:
    """Return ORT ``QLinearConv`` of NHWC ``x_q`` [B, H, W, IC] with OHWI ``w_q``.

    Parameters
    ----------
    x_q : numpy.ndarray of int8, shape [B, H, W, IC]
    w_q : numpy.ndarray of int8, shape [OC, KH, KW, IC]
        Symmetric weights (zero point 0).
    bias : numpy.ndarray of int32, shape [OC], or None
        At scale ``x_scale * w_scale``.
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int
    w_scale : float or array_like of float, shape [OC]
        Per tensor or per output channel.
    stride, dilation : (int, int)
    padding : {"same", "valid"} or ((int, int), (int, int))
        ``((top, bottom), (left, right))`` (:func:`tessera.numerics.cnn.resolve_padding`);
        padded taps contribute nothing (ORT pads with the input zero point).
    activation : {"none", "relu", "relu6"}
        Clamp of a ``Relu``/``Clip`` folded into the output quantization.
    bits : int
        Output width (8 for ORT).

    Returns
    -------
    numpy.ndarray of int8, shape [B, OH, OW, OC]
    """
    acc = cnn.conv2d_accumulators(x_q, w_q, bias, x_zero_point=x_zero_point, stride=stride,
                                  dilation=dilation, padding=padding)
    return _requant_conv(acc, x_scale=x_scale, w_scale=w_scale, y_scale=y_scale,
                         y_zero_point=y_zero_point, activation=activation, bits=bits)


def depthwise_conv2d(x_q, w_q, bias, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point,
                     depth_multiplier=1, stride=(1, 1), dilation=(1, 1), padding="valid",
                     activation="none", bits=8) -> np.ndarray:
    """Return ORT ``QLinearConv`` with ``group = IC`` (a depthwise conv) of NHWC ``x_q``.

    ``w_q`` is ``[1, KH, KW, IC * depth_multiplier]`` (TFLite layout); output channel
    ``c * depth_multiplier + m`` reads input channel ``c``. Other parameters as :func:`conv2d`.
    """
    acc = cnn.depthwise_accumulators(x_q, w_q, bias, x_zero_point=x_zero_point,
                                     depth_multiplier=depth_multiplier, stride=stride,
                                     dilation=dilation, padding=padding)
    return _requant_conv(acc, x_scale=x_scale, w_scale=w_scale, y_scale=y_scale,
                         y_zero_point=y_zero_point, activation=activation, bits=bits)


def add(a_q, b_q, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
        activation="none", unsigned=False) -> np.ndarray:
    """Return ORT ``QLinearAdd`` of two int8 arrays of the same shape (AVX2 kernel).

    Parameters
    ----------
    unsigned : bool
        The model's tensors are uint8 (held here as int8, values and zero points minus 128):
        ORT then runs the kernel on the uint8 values, whose float roundings differ from the
        int8 ones now and then (measured: 89 of 19.7 million outputs).

    Returns
    -------
    numpy.ndarray of int8
        ``saturate(rint(fma(a, ra, fma(b, rb, f))))``, then the activation's clamp.
    """
    check_int_array("a_q", a_q, np.int8)
    check_int_array("b_q", b_q, np.int8, shape=a_q.shape)
    shift = 128 if unsigned else 0              # back to ORT's uint8 values
    ra = check_scale("a_scale", a_scale) / check_scale("y_scale", y_scale)
    rb = check_scale("b_scale", b_scale) / _F32(y_scale)
    za = _F32(check_zero_point("a_zero_point", a_zero_point) + shift)
    zb = _F32(check_zero_point("b_zero_point", b_zero_point) + shift)
    zc = _F32(check_zero_point("y_zero_point", y_zero_point) + shift)
    fixed = zc - fma_float32(ra, za, rb * zb)
    y = fma_float32(a_q.astype(np.int16) + shift, ra,
                    fma_float32(b_q.astype(np.int16) + shift, rb, fixed))
    y = np.clip(np.rint(y), -128 + shift, 127 + shift) - shift
    return _clamp(y, activation, y_scale, y_zero_point)


def _pool_geometry(x_q, pool, stride, padding):
    """Return ``(pool, stride, padding, (OH, OW))`` with padding explicit."""
    check_int_array("x_q", x_q, np.int8, ndim=4)
    pool, stride = cnn.int_pair("pool", pool), cnn.int_pair("stride", stride)
    pads = cnn.resolve_padding(padding, x_q.shape[1:3], pool, stride)
    out = tuple(cnn.output_size(x_q.shape[1 + a], pool[a], stride[a], 1, *pads[a])
                for a in range(2))
    return pool, stride, pads, out


def average_pool2d(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, pool, stride,
                   padding="valid", activation="none", count_include_pad=False,
                   unsigned=False) -> np.ndarray:
    """Return ORT ``QLinearAveragePool`` of NHWC ``x_q`` [B, H, W, C].

    Parameters
    ----------
    pool, stride : int or (int, int)
    padding : {"same", "valid"} or ((int, int), (int, int))
    count_include_pad : bool
        Divide by the whole window (ONNX ``count_include_pad=1``) instead of the in-bounds taps.
    unsigned : bool
        The model's tensors are uint8 (held as int8 minus 128): ORT adds the uint8 output zero
        point in float32, which rounds otherwise than the int8 one (measured: 81 of 16,384).

    Returns
    -------
    numpy.ndarray of int8, shape [B, OH, OW, C]
    """
    pool, stride, pads, (oh, ow) = _pool_geometry(x_q, pool, stride, padding)
    (top, bottom), (left, right) = pads
    if pool == x_q.shape[1:3] and (top, bottom, left, right) == (0, 0, 0, 0):
        # ORT's QLinearAveragePool hands this case to its (integer) global average pool.
        y = mean_hw(x_q, x_scale=x_scale, x_zero_point=x_zero_point, y_scale=y_scale,
                    y_zero_point=y_zero_point, keepdims=True)
        return _clamp(y, activation, y_scale, y_zero_point)
    x = dequantize_tensor(x_q, x_scale, x_zero_point)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    total = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=_F32)
    for _, _, tap in cnn.window_taps(padded, pool, stride, (1, 1), (oh, ow)):
        total = total + tap            # float32, one tap at a time (rows, then columns) as ORT
    if count_include_pad:
        count = _F32(pool[0] * pool[1])
    else:
        count = cnn.pool_tap_counts(x_q.shape[1:3], pool=pool, stride=stride,
                                    padding=pads)[None, :, :, None].astype(_F32)
    mean = total / count
    shift = 128 if unsigned else 0
    q = np.rint(mean / check_scale("y_scale", y_scale) + _F32(y_zero_point + shift))
    return _clamp(np.clip(q, -128 + shift, 127 + shift) - shift, activation, y_scale,
                  y_zero_point)


def mean_hw(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, keepdims=True) -> np.ndarray:
    """Return ORT ``QLinearGlobalAveragePool`` of NHWC ``x_q`` [B, H, W, C].

    Returns
    -------
    numpy.ndarray of int8, shape [B, 1, 1, C] (``keepdims``) or [B, C]
        ``saturate(rint(float32(sum(x) - zx * H * W) * M) + zy)`` with
        ``M = float32(sx / float32(sy * float32(H * W)))`` (MLAS).
    """
    check_int_array("x_q", x_q, np.int8, ndim=4)
    n = x_q.shape[1] * x_q.shape[2]
    zx = check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    scale = check_scale("x_scale", x_scale) / (check_scale("y_scale", y_scale) * _F32(n))
    acc = x_q.astype(np.int64).sum(axis=(1, 2), keepdims=keepdims) - zx * n
    y = np.rint(acc.astype(_F32) * scale) + zy
    return np.clip(y, -128, 127).astype(np.int8)


def max_pool2d(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, pool, stride,
               padding="valid", activation="none") -> np.ndarray:
    """Return ORT ``MaxPool`` on int8 NHWC ``x_q``, requantized when the qparams differ.

    Padded taps are ignored. When ``(x_scale, x_zero_point) != (y_scale, y_zero_point)`` the
    maximum goes through ``QuantizeLinear(DequantizeLinear(max))`` (DQ -> MaxPool -> Q run
    in float, which commutes with the maximum).
    """
    check_int_array("x_q", x_q, np.int8, ndim=4)
    y = cnn.max_pool2d(x_q, pool=pool, stride=stride, padding=padding)
    y = _requantize(y, x_scale, x_zero_point, y_scale, y_zero_point)
    return _clamp(y, activation, y_scale, y_zero_point)


def _requantize(x_q, x_scale, x_zero_point, y_scale, y_zero_point):
    if _F32(x_scale) == _F32(y_scale) and int(x_zero_point) == int(y_zero_point):
        return x_q
    return quantize_tensor(dequantize_tensor(x_q, x_scale, x_zero_point), y_scale,
                           y_zero_point, mode="onnx")


def pad(x_q, paddings, *, x_scale, x_zero_point, y_scale, y_zero_point) -> np.ndarray:
    """Return ONNX ``Pad`` (constant mode) on int8 ``x_q``: padded with the zero point.

    ``paddings`` is one ``(before, after)`` pair per axis, batch first. A QDQ ``Pad`` keeps its
    input's quantization; if the output's differs, the input is requantized first.
    """
    x_q = _requantize(check_int_array("x_q", x_q, np.int8), x_scale, x_zero_point, y_scale,
                      y_zero_point)
    return cnn.pad(x_q, paddings, value=check_zero_point("y_zero_point", y_zero_point))


def concatenate(xs, *, x_scales, x_zero_points, y_scale, y_zero_point, axis=-1) -> np.ndarray:
    """Return ORT ``com.microsoft.QLinearConcat`` of int8 arrays along ``axis``.

    Parameters
    ----------
    xs : sequence of numpy.ndarray of int8
    x_scales, x_zero_points : sequences of float, int
        Quantization of each input; an input that differs from ``(y_scale, y_zero_point)`` is
        requantized through ``QuantizeLinear(DequantizeLinear(x))`` (ORT's lookup table).
    """
    xs = list(xs)
    if len(x_scales) != len(xs) or len(x_zero_points) != len(xs) or not xs:
        raise ValueError(f"x_scales and x_zero_points need one entry per input ({len(xs)})")
    parts = [_requantize(check_int_array(f"xs[{i}]", x, np.int8), s, z, y_scale, y_zero_point)
             for i, (x, s, z) in enumerate(zip(xs, x_scales, x_zero_points))]
    return cnn.concatenate(parts, axis=axis)


def _softmax_table(x_scale, length):
    # ORT: shift = max(0, logf(FLT_MAX / length) - 5) / sx keeps the sum of a row below FLT_MAX;
    # table[i] = float32(exp((i - 255 + shift) * sx)) in double with the C library's exp (which
    # math.exp calls; NumPy's vectorised exp differs in the last bit now and then). The float
    # logarithm is taken correctly rounded; glibc's logf differs from it for three lengths
    # below 200000 (60594, 96962, 141948).
    quotient = float(_F32(np.finfo(_F32).max / _F32(length)))
    shift = max(0.0, float(_F32(math.log(quotient))) - 5.0) / float(x_scale)
    return np.array([math.exp((i - 255 + shift) * float(x_scale)) for i in range(256)],
                    dtype=np.float64).astype(_F32)


def softmax(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, beta=1.0) -> np.ndarray:
    """Return ORT ``com.microsoft.QLinearSoftmax`` of int8 ``x_q`` over its last axis.

    ``e = table[x - max(x) + 255]`` (float32), their float32 sum left to right, and
    ``y = saturate(rint(e * floor(1 / sy) / sum) + zy)`` with the quotient in double (measured:
    every output of 3.9 million on rows of 1 to 129 elements; a float32 quotient misses a few
    ties). Only the input scale enters the table; the input zero point cancels out.

    Raises
    ------
    ValueError
        ``beta`` is not 1 (ONNX ``Softmax`` has no beta; fold it into the input scale).
    """
    check_int_array("x_q", x_q, np.int8)
    check_zero_point("x_zero_point", x_zero_point)
    zy = check_zero_point("y_zero_point", y_zero_point)
    if float(beta) != 1.0:
        raise ValueError(f"ONNX Runtime's softmax has no beta (got {beta}); multiply the input "
                         "scale by beta instead")
    sx, sy = check_scale("x_scale", x_scale), check_scale("y_scale", y_scale)
    length = x_q.shape[-1]
    table = _softmax_table(sx, length)
    e = table[x_q.astype(np.int64) - x_q.max(axis=-1, keepdims=True) + 255]
    total = np.zeros(x_q.shape[:-1] + (1,), dtype=_F32)
    for k in range(length):
        total = total + e[..., k:k + 1]
    quotient = e.astype(np.float64) * float(np.floor(_F32(1.0) / sy)) / total
    lo, hi = int_range(8)
    return np.clip(np.rint(quotient) + zy, lo, hi).astype(np.int8)
