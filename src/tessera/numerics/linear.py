"""The quantized fully-connected layer: the reference every other Tessera layer is checked against.

    acc[m, n] = sum_k (x[m, k] - zx) * w[k, n] + b[n]              (exact; must fit int32)
    y[m, n]   = clamp(requant(acc[m, n], n) + zy, lo, hi)          (int8), then an optional LUT
"""

from __future__ import annotations

import numpy as np

from ._checks import check_int_array, check_mode, check_zero_point
from .matmul import fold_input_zero_point, integer_matmul
from .multipliers import requant_multipliers
from .requant import activation_bounds, postprocess
from .rounding import INT32_MAX, INT32_MIN

__all__ = ["quantized_linear", "linear_accumulators"]


def linear_accumulators(x_q, w_q, bias_q, x_zero_point) -> np.ndarray:
    """Return the exact int32 accumulators ``(x - zx) @ w + b`` as int64.

    Parameters
    ----------
    x_q : numpy.ndarray of int8, shape [M, K]
    w_q : numpy.ndarray of int8, shape [K, N]
    bias_q : numpy.ndarray of int32, shape [N], or None
    x_zero_point : int

    Raises
    ------
    OverflowError
        An accumulator does not fit int32 (the message names the row and output channel).
    """
    check_int_array("x_q", x_q, np.int8, ndim=2)
    check_int_array("w_q", w_q, np.int8, ndim=2)
    if w_q.shape[0] != x_q.shape[1]:
        raise ValueError(f"w_q must have shape ({x_q.shape[1]}, N) to match x_q of shape "
                         f"{x_q.shape}, not {w_q.shape}")
    bias_eff = fold_input_zero_point(w_q, bias_q, x_zero_point)
    acc = integer_matmul(x_q, w_q)
    acc += bias_eff
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        bad = (acc < INT32_MIN) | (acc > INT32_MAX)
        m, n = (int(i) for i in np.unravel_index(np.flatnonzero(bad)[0], acc.shape))
        raise OverflowError(f"Accumulator of output channel {n} (row {m}) = {int(acc[m, n])} "
                            "does not fit int32; split K or reduce the weights")
    return acc


def quantized_linear(x_q, w_q, bias_q, *, x_scale, x_zero_point, w_scale, y_scale,
                     y_zero_point, mode="onnx", activation="none") -> np.ndarray:
    """Return the int8 output of a quantized fully-connected layer, exactly as NUMERICS.md.

    Parameters
    ----------
    x_q : numpy.ndarray of int8, shape [M, K]
        Quantized input.
    w_q : numpy.ndarray of int8, shape [K, N]
        Symmetric quantized weights (zero point 0).
    bias_q : numpy.ndarray of int32, shape [N], or None
        Bias at scale ``x_scale * w_scale`` (not folded with the input zero point).
    x_scale, y_scale : float
        Input and output scales (float32).
    x_zero_point, y_zero_point : int
        Input and output zero points (int8).
    w_scale : float or array_like [N]
        Weight scale, per tensor or per output channel.
    mode : {"onnx", "tflite"}
        Requantization rule (see ``docs/numerics.md``).
    activation : {"none", "relu", "relu6"} or numpy.ndarray of int8 [256]
        Fused activation: a clamp, or a lookup table ``y = lut[v + 128]``.

    Returns
    -------
    numpy.ndarray of int8, shape [M, N]

    Raises
    ------
    TypeError, ValueError
        An argument has the wrong dtype, shape or value (the message names it).
    OverflowError
        An accumulator or the folded bias does not fit int32.
    """
    check_mode(mode)
    check_int_array("x_q", x_q, np.int8, ndim=2)
    check_int_array("w_q", w_q, np.int8, ndim=2)
    n = w_q.shape[1]
    if w_q.shape[0] != x_q.shape[1]:
        raise ValueError(f"w_q must have shape ({x_q.shape[1]}, N) to match x_q of shape "
                         f"{x_q.shape}, not {w_q.shape}")
    if bias_q is not None:
        check_int_array("bias_q", bias_q, np.int32, shape=(n,))
    sw = np.asarray(w_scale)
    if sw.ndim == 1 and sw.shape != (n,):
        raise ValueError(f"w_scale must be a scalar or shape ({n},), not shape {sw.shape}")
    lut = None
    if isinstance(activation, np.ndarray):
        if activation.dtype != np.int8 or activation.shape != (256,):
            raise ValueError("activation lookup table must be an int8 array of shape (256,), "
                             f"not {activation.dtype} {activation.shape}")
        lut = activation
    elif activation == "lut":
        raise ValueError("activation='lut' needs the table itself: pass the int8 [256] array")
    zy = check_zero_point("y_zero_point", y_zero_point)
    lo, hi = activation_bounds(activation, y_scale, zy)
    multiplier, shift = requant_multipliers(x_scale, w_scale, y_scale, mode)
    acc = linear_accumulators(x_q, w_q, bias_q, x_zero_point)
    return postprocess(acc, multiplier, shift, mode=mode, zero_point=zy, lo=lo, hi=hi, lut=lut)
