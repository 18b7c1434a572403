"""Crafted accumulators: realise any target int32 matrix ``acc`` with int8 ``x`` and ``w``.

Random data separates requantization rules only about once per 10^4..10^6 outputs, so the
bit-exactness tests choose accumulator values where candidate rules disagree and build int8
operands that produce exactly those values (the rules are in docs/numerics.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["realise_accumulators"]


def _split(values, pieces, lo, hi):
    """Split int64 ``values`` [M] into ``pieces`` summands each in ``[lo, hi]`` -> [M, pieces]."""
    rest = values.astype(np.int64).copy()
    out = np.zeros((values.shape[0], pieces), dtype=np.int64)
    for i in range(pieces):
        out[:, i] = np.clip(rest, lo, hi)
        rest -= out[:, i]
    assert not rest.any(), "not enough pieces"
    return out


def realise_accumulators(targets, *, x_zero_point=0, bias=None):
    """Return int8 ``x`` [M, K] and ``w`` [K, N] with ``(x - zx) @ w + bias == targets``.

    Channel ``n`` owns a block of K: weights 127 (enough of them for the largest target) and two
    weights 1; row ``m`` puts ``targets[m, n] - bias[n] = 127 a + b`` into that block as int8
    pieces of ``a`` and ``b``. Other blocks have zero weights, so channels do not interact.

    Parameters
    ----------
    targets : array_like of int, shape [M, N]
    x_zero_point : int
    bias : numpy.ndarray of int32, shape [N], optional

    Returns
    -------
    (numpy.ndarray of int8 [M, K], numpy.ndarray of int8 [K, N])
    """
    t = np.asarray(targets, dtype=np.int64)
    m, n = t.shape
    d = t - (0 if bias is None else np.asarray(bias, dtype=np.int64))
    lo, hi = -128 - x_zero_point, 127 - x_zero_point      # range of x - zx
    a = np.rint(d / 127).astype(np.int64)
    b = d - 127 * a                                         # |b| <= 64
    big = max(1, int(np.ceil(np.abs(a).max() / min(-lo, hi))) if a.size else 1)
    blocks_x, blocks_w = [], []
    for c in range(n):
        xs = np.concatenate([_split(a[:, c], big, lo, hi), _split(b[:, c], 2, lo, hi)], axis=1)
        w = np.zeros((big + 2, n), dtype=np.int8)
        w[:big, c] = 127
        w[big:, c] = 1
        blocks_x.append(xs + x_zero_point)
        blocks_w.append(w)
    x = np.concatenate(blocks_x, axis=1).astype(np.int8)
    w = np.concatenate(blocks_w, axis=0)
    # float64 is exact here (every partial sum is an integer below 2^53) and uses BLAS.
    check = ((x.astype(np.float64) - x_zero_point) @ w.astype(np.float64)).astype(np.int64) + (
        0 if bias is None else np.asarray(bias, dtype=np.int64))
    np.testing.assert_array_equal(check, t)
    return x, w
