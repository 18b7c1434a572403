"""Tiling: how a ``[M, K] x [K, N]`` layer is cut to fit the ``rows x cols`` array.

* **M** is cut in tiles of ``config.rows`` rows: one tile is one ACT entry per *k* (byte *r* =
  row *r*); the last tile of a batch may have fewer valid rows (``m_rows``), its padding rows
  compute values that are never stored.
* **N** is cut in tiles of ``tile_n`` columns (``config.cols``, fewer only when the parameter
  buffer is smaller than the array); weights are padded with zero columns to ``cols`` bytes.
* **K** is kept whole in one GEMM whenever the weights of a tile fit, because a GEMM costs
  ``k + GEMM_OVERHEAD_CYCLES``: a long *k* keeps utilisation near 1. Only when a tile's *k*
  exceeds the weight space is it split into balanced parts, accumulated by GEMMs with
  ``clear`` on the first and ``drain`` on the last.
"""

from __future__ import annotations

__all__ = ["split_even", "split_fixed", "row_tiles"]


def split_fixed(total: int, size: int) -> list:
    """Return ``[(start, length), ...]`` covering ``range(total)`` in pieces of ``size``.

    The last piece may be shorter.
    """
    if size < 1:
        raise ValueError(f"Tile size must be a positive integer, not {size}")
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def split_even(total: int, max_size: int) -> list:
    """Return the fewest pieces of at most ``max_size`` covering ``range(total)``, balanced.

    Balanced parts (lengths differ by at most one) keep every GEMM of a split K equally long.
    """
    if max_size < 1:
        raise ValueError(f"Tile size must be a positive integer, not {max_size}")
    parts = -(-total // max_size)
    base, extra = divmod(total, parts)
    out, start = [], 0
    for i in range(parts):
        length = base + (1 if i < extra else 0)
        out.append((start, length))
        start += length
    return out


def row_tiles(m: int, rows: int) -> list:
    """Return ``[(m_start, m_rows), ...]``: row tiles of a batch of ``m`` rows."""
    return split_fixed(m, rows)
