"""Exact int4/int8/int16 matrix products, zero-point folding and accumulator bounds.

NumPy's integer ``@`` does not use BLAS and is about two orders of magnitude slower than a float
GEMM, so :func:`integer_matmul` runs on float BLAS wherever the result is *provably* exact: every
product ``x*w`` and every partial sum is an integer bounded by ``K * max|x| * max|w|``, and every
integer of magnitude up to 2^24 (float32) or 2^53 (float64) is representable, so no rounding can
occur whatever order or blocking the BLAS kernel uses (fused multiply-adds included).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_bits, check_int_array, check_operands, check_zero_point, int_range
from .rounding import INT32_MAX, INT32_MIN

__all__ = ["integer_matmul", "fold_input_zero_point", "accumulator_bound"]

_FLOAT32_EXACT = 1 << 24
_FLOAT64_EXACT = 1 << 53


def _check_operands(x, w):
    for name, a in (("x", x), ("w", w)):
        if not isinstance(a, np.ndarray) or a.dtype not in (np.int8, np.int16):
            shown = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"{name} must be a numpy array of int8 or int16, not {shown}")
        check_int_array(name, a, a.dtype, ndim=2)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"w must have shape ({x.shape[1]}, N) to match x of shape {x.shape}, "
                         f"not {w.shape}")


def _max_abs(a) -> int:
    if a.size == 0:
        return 0
    return max(-int(a.min()), int(a.max()))


def integer_matmul(x, w) -> np.ndarray:
    """Return the exact product ``x @ w`` of int8/int16 matrices as int64.

    Parameters
    ----------
    x : numpy.ndarray of int8 or int16, shape [M, K]
    w : numpy.ndarray of int8 or int16, shape [K, N]

    Returns
    -------
    numpy.ndarray of int64, shape [M, N]

    Notes
    -----
    With ``bound = max|x| * max|w|``, K is cut into chunks of ``floor(2^24 / bound)`` rows
    (at least 1024 for int8) that run as float32 GEMMs, exact because no partial sum exceeds 2^24.
    Chunk results are summed in float64 while the total bound stays below 2^53 (always, for any
    K that fits in memory), else in int64. When one product alone exceeds 2^24 (16-bit operands)
    the chunks are float64 GEMMs of ``floor(2^53 / bound)`` rows summed in int64.
    """
    _check_operands(x, w)
    m, k = x.shape
    n = w.shape[1]
    bound = _max_abs(x) * _max_abs(w)
    if k == 0 or bound == 0:
        return np.zeros((m, n), dtype=np.int64)
    chunk = _FLOAT32_EXACT // bound
    if chunk == 0:
        chunk = _FLOAT64_EXACT // bound
        total = np.zeros((m, n), dtype=np.int64)
        for k0 in range(0, k, chunk):
            part = x[:, k0:k0 + chunk].astype(np.float64) @ w[k0:k0 + chunk].astype(np.float64)
            total += part.astype(np.int64)
        return total
    if k <= chunk:
        return (x.astype(np.float32) @ w.astype(np.float32)).astype(np.int64)
    exact_in_float64 = k * bound < _FLOAT64_EXACT
    total = np.zeros((m, n), dtype=np.float64 if exact_in_float64 else np.int64)
    for k0 in range(0, k, chunk):
        part = x[:, k0:k0 + chunk].astype(np.float32) @ w[k0:k0 + chunk].astype(np.float32)
        total += part if exact_in_float64 else part.astype(np.int64)
    return total.astype(np.int64)


def fold_input_zero_point(w_q, bias_q, x_zero_point, *, input_bits=8,
                          weight_bits=8) -> np.ndarray:
    """Return the effective bias ``b - zx * colsum(w)`` that absorbs the input zero point.

    Parameters
    ----------
    w_q : numpy.ndarray of int8 (int16 for 16-bit weights), shape [K, N]
    bias_q : numpy.ndarray of int32, shape [N], or None
        Bias at scale ``x_scale * w_scale``; ``None`` means zero.
    x_zero_point : int
        Input zero point (``input_bits`` wide).
    input_bits, weight_bits : int
        Operand widths (4, 8 or 16).

    Returns
    -------
    numpy.ndarray of int32, shape [N]

    Raises
    ------
    OverflowError
        The folded bias of some channel does not fit int32 (the message names the channel).
    """
    check_bits("input_bits", input_bits)
    check_operands("w_q", w_q, check_bits("weight_bits", weight_bits), ndim=2)
    n = w_q.shape[1]
    zx = check_zero_point("x_zero_point", x_zero_point, input_bits)
    if bias_q is None:
        bias = np.zeros(n, dtype=np.int64)
    else:
        bias = check_int_array("bias_q", bias_q, np.int32, shape=(n,)).astype(np.int64)
    folded = bias - zx * w_q.sum(axis=0, dtype=np.int64)
    bad = (folded < INT32_MIN) | (folded > INT32_MAX)
    if np.any(bad):
        c = int(np.flatnonzero(bad)[0])
        raise OverflowError(f"Folded bias b - zx*colsum(w) = {int(folded[c])} of output channel "
                            f"{c} does not fit int32; reduce the bias or the input zero point")
    return folded.astype(np.int32)


def accumulator_bound(w_q, bias_eff, *, input_bits=8, weight_bits=8) -> int:
    """Return ``max |sum_k x[k] * w[k, n] + bias_eff[n]|`` over all ``x`` and channels ``n``.

    ``x`` ranges over every ``input_bits``-wide signed vector.

    Parameters
    ----------
    w_q : numpy.ndarray of int8 (int16 for 16-bit weights), shape [K, N]
    bias_eff : numpy.ndarray of int32 or int64, shape [N], or None
        Effective (zero-point folded) bias.

    Returns
    -------
    int
        The layer is safe on ``acc_bits`` accumulators iff the bound is below
        ``2^(acc_bits-1)``.
    """
    lo, hi = int_range(check_bits("input_bits", input_bits))
    check_operands("w_q", w_q, check_bits("weight_bits", weight_bits), ndim=2)
    n = w_q.shape[1]
    if bias_eff is None:
        bias = np.zeros(n, dtype=np.int64)
    else:
        if not isinstance(bias_eff, np.ndarray) or bias_eff.dtype not in (np.int32, np.int64):
            raise TypeError("bias_eff must be a numpy array of int32 or int64")
        bias = check_int_array("bias_eff", bias_eff, bias_eff.dtype, shape=(n,))
        bias = bias.astype(np.int64)
    w = w_q.astype(np.int64)
    # x = hi where w > 0 and lo where w < 0 maximises the sum; the opposite minimises it.
    top = np.where(w > 0, hi * w, lo * w).sum(axis=0) + bias
    bottom = np.where(w > 0, lo * w, hi * w).sum(axis=0) + bias
    if n == 0:
        return 0
    return int(max(np.abs(top).max(), np.abs(bottom).max()))
