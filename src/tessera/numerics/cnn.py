"""Mode-independent integer CNN kernels: accumulators, padding, max pooling, reshape, concat.

Activations are NHWC integer arrays with the batch first (int8; int16 storage for wider
operands). Every kernel is vectorised over the batch and the pixels; only the ``KH * KW``
kernel taps are a Python loop. The accumulators are exact (int64): a tap in the padding
contributes nothing, which is what TFLite Micro does by skipping it and what ONNX Runtime does
by padding with the input zero point. Requantizing them is the mode's business
(``tessera.numerics.ops_tflite``, ``ops_onnx``).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._checks import check_int_array, check_zero_point
from .matmul import integer_matmul

__all__ = ["check_nhwc", "int_pair", "same_padding", "resolve_padding", "output_size",
           "window_taps", "conv2d_accumulators", "depthwise_accumulators", "pad", "max_pool2d",
           "pool_tap_counts", "pool_sums", "reshape", "concatenate"]

#: Bytes of the float32 patch matrix of one chunk of the batch (bounds the memory of a convolution).
_CHUNK_BYTES = 32 << 20


def int_pair(name, value) -> tuple[int, int]:
    """Return ``value`` (a positive integer or a pair of them) as ``(int, int)``.

    Raises
    ------
    ValueError
        Anything else, the message naming ``name`` (``"stride"``, ``"pool"``, ...).
    """
    pair = ()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            pass
    if len(pair) != 2 or any(v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them, not {value!r}")
    return pair


def same_padding(in_size, kernel, stride, dilation=1) -> tuple[int, int]:
    """Return TensorFlow's SAME padding ``(before, after)`` of one spatial axis.

    ``out = ceil(in / stride)``; the total ``max((out - 1) * stride + (kernel - 1) * dilation
    + 1 - in, 0)`` is split with the extra row or column at the end (bottom/right).
    """
    out = -(-in_size // stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, kernel, stride, dilation=(1, 1)):
    """Return explicit padding ``((top, bottom), (left, right))``.

    Parameters
    ----------
    padding : {"same", "valid"} or ((int, int), (int, int))
        TensorFlow's SAME (asymmetric, extra at the end), VALID (none), or explicit amounts.
    in_hw, kernel, stride, dilation : (int, int)
        Input height/width, kernel, stride and dilation.
    """
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return (0, 0), (0, 0)
        if padding.lower() == "same":
            return tuple(same_padding(i, k, s, d)
                         for i, k, s, d in zip(in_hw, kernel, stride, dilation))
        raise ValueError(f"padding must be 'same', 'valid' or ((top, bottom), (left, right)), "
                         f"not {padding!r}")
    try:
        (top, bottom), (left, right) = padding
        explicit = tuple((int(a), int(b)) for a, b in ((top, bottom), (left, right)))
    except (TypeError, ValueError):
        explicit = None
    if explicit is None or min(min(p) for p in explicit) < 0:
        raise ValueError(f"padding must be 'same', 'valid' or ((top, bottom), (left, right)) "
                         f"of non-negative integers, not {padding!r}")
    return explicit


def output_size(in_size, kernel, stride, dilation, before, after) -> int:
    """Return the output length of one spatial axis (``ValueError`` if the window never fits)."""
    effective = (kernel - 1) * dilation + 1
    span = in_size + before + after - effective
    if span < 0:
        raise ValueError(f"The kernel ({kernel} taps, dilation {dilation}) does not fit an input "
                         f"of {in_size} with padding ({before}, {after})")
    return span // stride + 1


def check_nhwc(name, x_q) -> np.ndarray:
    """Return ``x_q`` after checking it is a 4-D int8 (int16) NHWC array."""
    if not isinstance(x_q, np.ndarray) or x_q.dtype not in (np.int8, np.int16):
        shown = x_q.dtype if isinstance(x_q, np.ndarray) else type(x_q).__name__
        raise TypeError(f"{name} must be a numpy array of int8 (int16 for wider operands), "
                        f"not {shown}")
    if x_q.ndim != 4:
        raise ValueError(f"{name} must be 4-D NHWC [batch, height, width, channels], "
                         f"not shape {x_q.shape}")
    return x_q


def _geometry(x_shape, kernel, stride, dilation, padding):
    stride, dilation = int_pair("stride", stride), int_pair("dilation", dilation)
    pads = resolve_padding(padding, x_shape[1:3], kernel, stride, dilation)
    out = tuple(output_size(x_shape[1 + a], kernel[a], stride[a], dilation[a], *pads[a])
                for a in range(2))
    return stride, dilation, pads, out


def window_taps(xp, kernel, stride, dilation, out):
    """Yield ``(ky, kx, view)`` per kernel tap: the padded input ``xp`` each output pixel sees.

    ``view`` [B, OH, OW, C] is a strided view of ``xp`` (no copy); ``out`` is ``(OH, OW)``.
    """
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def _zero_point(x_q, x_zero_point) -> int:
    return check_zero_point("x_zero_point", x_zero_point, 8 if x_q.dtype == np.int8 else 16)


def _bias(bias, channels):
    if bias is None:
        return np.zeros(channels, np.int64)
    check_int_array("bias", bias, np.int32, shape=(channels,))
    return bias.astype(np.int64)


def conv2d_accumulators(x_q, w_q, bias, *, x_zero_point, stride=(1, 1), dilation=(1, 1),
                        padding=((0, 0), (0, 0))) -> np.ndarray:
    """Return the exact accumulators of a 2-D convolution, ``sum (x - zx) * w + b``.

    Parameters
    ----------
    x_q : numpy.ndarray of int8 (int16), shape [B, H, W, IC]
    w_q : numpy.ndarray of int8 (int16), shape [OC, KH, KW, IC] (TFLite OHWI), zero point 0
    bias : numpy.ndarray of int32, shape [OC], or None
    x_zero_point : int
    stride, dilation : int or (int, int)
    padding : {"same", "valid"} or ((top, bottom), (left, right))
        Taps in the padding contribute nothing (the same as padding with ``x_zero_point``).

    Returns
    -------
    numpy.ndarray of int64, shape [B, OH, OW, OC]
    """
    check_nhwc("x_q", x_q)
    check_nhwc("w_q", w_q)
    oc, kh, kw, ic = w_q.shape
    if ic != x_q.shape[3]:
        raise ValueError(f"w_q must have {x_q.shape[3]} input channels (shape [OC, KH, KW, "
                         f"{x_q.shape[3]}]) to match x_q of shape {x_q.shape}, not {w_q.shape}")
    stride, dilation, pads, out = _geometry(x_q.shape, (kh, kw), stride, dilation, padding)
    b = _bias(bias, oc)
    # Pad the raw operands with zx: sum x_pad * w - zx * sum w is exact and a padded tap adds
    # (zx - zx) * w = 0. The patches stay int8 (int16) and integer_matmul runs exact float GEMMs.
    zx = _zero_point(x_q, x_zero_point)
    xp = np.pad(x_q, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=zx)
    weights = np.ascontiguousarray(w_q.transpose(1, 2, 3, 0).reshape(kh * kw * ic, oc))
    b = b - zx * weights.sum(axis=0, dtype=np.int64)
    batch, rows = x_q.shape[0], out[0] * out[1]
    chunk = max(1, _CHUNK_BYTES // max(1, rows * kh * kw * ic * 4))
    acc = np.empty((batch, out[0], out[1], oc), np.int64)
    for start in range(0, batch, chunk):
        part = xp[start:start + chunk]
        views = [view for _, _, view in window_taps(part, (kh, kw), stride, dilation, out)]
        cols = views[0] if len(views) == 1 else np.concatenate(views, axis=-1)
        acc[start:start + chunk] = integer_matmul(
            np.ascontiguousarray(cols).reshape(-1, kh * kw * ic), weights).reshape(
                -1, out[0], out[1], oc)
    acc += b
    return acc


def depthwise_accumulators(x_q, w_q, bias, *, x_zero_point, depth_multiplier=1, stride=(1, 1),
                           dilation=(1, 1), padding=((0, 0), (0, 0))) -> np.ndarray:
    """Return the exact accumulators of a depthwise convolution.

    Output channel ``c * depth_multiplier + m`` sees input channel ``c``.

    Parameters
    ----------
    x_q : numpy.ndarray of int8 (int16), shape [B, H, W, IC]
    w_q : numpy.ndarray of int8 (int16), shape [1, KH, KW, IC * depth_multiplier] (TFLite)
    bias : numpy.ndarray of int32, shape [IC * depth_multiplier], or None
    x_zero_point, stride, dilation, padding
        As for :func:`conv2d_accumulators`.

    Returns
    -------
    numpy.ndarray of int64, shape [B, OH, OW, IC * depth_multiplier]
    """
    check_nhwc("x_q", x_q)
    check_nhwc("w_q", w_q)
    mult = depth_multiplier
    if isinstance(mult, bool) or not isinstance(mult, numbers.Integral) or mult < 1:
        raise ValueError(f"depth_multiplier must be a positive integer, not {mult!r}")
    channels = x_q.shape[3] * mult
    if w_q.shape[0] != 1 or w_q.shape[3] != channels:
        raise ValueError(f"w_q must have shape [1, KH, KW, {channels}] (input channels x "
                         f"depth_multiplier {mult}), not {w_q.shape}")
    kh, kw = w_q.shape[1:3]
    stride, dilation, pads, out = _geometry(x_q.shape, (kh, kw), stride, dilation, padding)
    b = _bias(bias, channels)
    # Raw operands padded with zx, as for conv2d_accumulators; |x| * |w| <= 2^14 per tap
    # (int8): int32 sums are exact below 2^17 taps, int64 otherwise.
    zx = _zero_point(x_q, x_zero_point)
    dtype = np.int32 if x_q.dtype == np.int8 and w_q.dtype == np.int8 and kh * kw < (1 << 17) \
        else np.int64
    xp = np.pad(x_q, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=zx)
    if mult > 1:
        xp = np.repeat(xp, mult, axis=3)
    w = w_q[0].astype(dtype)
    b = b - zx * w.sum(axis=(0, 1), dtype=np.int64)
    acc = np.zeros((x_q.shape[0], out[0], out[1], channels), dtype)
    product = np.empty_like(acc)
    for ky, kx, view in window_taps(xp, (kh, kw), stride, dilation, out):
        np.multiply(view, w[ky, kx], out=product)
        acc += product
    return acc.astype(np.int64) + b


def pad(x_q, paddings, *, value) -> np.ndarray:
    """Return ``x_q`` padded with the constant ``value`` (PAD with the input zero point).

    Parameters
    ----------
    x_q : numpy.ndarray of int8 (int16)
    paddings : sequence of (before, after) per axis, batch first
    value : int
        In the range of ``x_q``'s dtype.
    """
    if not isinstance(x_q, np.ndarray) or x_q.dtype not in (np.int8, np.int16):
        raise TypeError("x_q must be a numpy array of int8 or int16")
    value = check_zero_point("value", value, 8 if x_q.dtype == np.int8 else 16)
    widths = [tuple(int(v) for v in p) for p in paddings]
    if len(widths) != x_q.ndim or any(len(p) != 2 or min(p) < 0 for p in widths):
        raise ValueError(f"paddings must be {x_q.ndim} pairs (before, after) of non-negative "
                         f"integers, not {paddings!r}")
    return np.pad(x_q, widths, constant_values=value)


def max_pool2d(x_q, *, pool, stride, padding) -> np.ndarray:
    """Return the maximum over each window's in-bounds taps (padded taps are ignored).

    Parameters
    ----------
    x_q : numpy.ndarray of int8 (int16), shape [B, H, W, C]
    pool, stride : int or (int, int)
    padding : {"same", "valid"} or ((top, bottom), (left, right))

    Returns
    -------
    numpy.ndarray, same dtype as ``x_q``, shape [B, OH, OW, C]
    """
    check_nhwc("x_q", x_q)
    pool = int_pair("pool", pool)
    stride, dilation, pads, out = _geometry(x_q.shape, pool, stride, 1, padding)
    lowest = np.iinfo(x_q.dtype).min
    xp = np.pad(x_q, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=lowest)
    result = None
    for _, _, view in window_taps(xp, pool, stride, dilation, out):
        result = view.copy() if result is None else np.maximum(result, view, out=result)
    return result


def pool_tap_counts(in_hw, *, pool, stride, padding) -> np.ndarray:
    """Return the number of in-bounds taps of each output pixel, int64 [OH, OW]."""
    pool = int_pair("pool", pool)
    ones = np.ones((1, in_hw[0], in_hw[1], 1), np.int64)
    stride, dilation, pads, out = _geometry(ones.shape, pool, stride, 1, padding)
    xp = np.pad(ones, ((0, 0), pads[0], pads[1], (0, 0)))
    count = np.zeros((1, out[0], out[1], 1), np.int64)
    for _, _, view in window_taps(xp, pool, stride, dilation, out):
        count += view
    return count[0, :, :, 0]


def pool_sums(x_q, *, pool, stride, padding) -> np.ndarray:
    """Return the int64 sum of each window's in-bounds raw values, [B, OH, OW, C]."""
    check_nhwc("x_q", x_q)
    pool = int_pair("pool", pool)
    stride, dilation, pads, out = _geometry(x_q.shape, pool, stride, 1, padding)
    xp = np.pad(x_q.astype(np.int64), ((0, 0), pads[0], pads[1], (0, 0)))
    total = np.zeros((x_q.shape[0], out[0], out[1], x_q.shape[3]), np.int64)
    for _, _, view in window_taps(xp, pool, stride, dilation, out):
        total += view
    return total


def reshape(x_q, shape) -> np.ndarray:
    """Return ``x_q`` with each sample reshaped to ``shape`` (the batch axis is kept)."""
    shape = tuple(int(s) for s in shape)
    return x_q.reshape((x_q.shape[0],) + shape)


def concatenate(xs, *, axis=-1) -> np.ndarray:
    """Return the arrays ``xs`` (same dtype) joined along ``axis`` (channels by default)."""
    xs = list(xs)
    if not xs or len({x.dtype for x in xs}) != 1:
        raise ValueError("concatenate needs one or more arrays of one integer dtype, not "
                         f"{[x.dtype for x in xs]}")
    return np.concatenate(xs, axis=axis)
