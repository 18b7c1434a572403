"""The window gather of ISA version 3: what a ``CONV`` reads, computes and costs (docs/isa.md).

A feature map of ``H x W`` pixels and ``C`` channels occupies ``ceil(H*W/rows) * C`` ACT entries:
entry ``t*C + c`` holds channel *c* of pixels ``t*rows ... t*rows+rows-1``. :class:`Window` is the
state a ``WINDOW`` instruction sets; :func:`gather_plan` gives, for every output pixel and tap,
the input pixel it reads (or padding) and the cycles each gathered step costs with the ACT built
as banks of ``act_bank_lanes`` lanes (docs/architecture.md). :func:`run_conv` and
:func:`run_add` compute a whole ``CONV`` / ``ADD`` on unpacked buffers with NumPy, bit for bit
what the sequence of gathered GEMMs and drains produces.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tessera import numerics
from tessera.numerics.requant_tflite import multiply_by_quantized_multiplier
from tessera.numerics.rounding import wrap_int32
from tessera.spec.isa import ConvKind

__all__ = ["Window", "GatherPlan", "gather_plan", "map_entries", "to_entries", "from_entries",
           "run_conv", "run_add", "conv_groups", "pool_average", "pool_taps",
           "ADD_LEFT_SHIFT"]

#: TFLite's int8 ADD scales both inputs by 2^20 before their multipliers (``add.cc``).
ADD_LEFT_SHIFT = 20


@dataclass(frozen=True)
class Window:
    """The window state of ISA version 3 (the fields of ``WINDOW``; all zero at reset)."""

    in_h: int = 0
    in_w: int = 0
    in_c: int = 0
    out_h: int = 0
    out_w: int = 0
    out_c: int = 0
    kernel_h: int = 0
    kernel_w: int = 0
    stride_h: int = 0
    stride_w: int = 0
    dilation_h: int = 0
    dilation_w: int = 0
    pad_top: int = 0
    pad_left: int = 0
    pad_value: int = 0

    @classmethod
    def from_fields(cls, fields) -> "Window":
        return cls(**{name: fields[name] for name in cls.__dataclass_fields__})

    @property
    def valid(self) -> bool:
        """Whether every size, kernel, stride and dilation is non-zero (else ``BAD_FIELD``)."""
        return all((self.in_h, self.in_w, self.in_c, self.out_h, self.out_w, self.out_c,
                    self.kernel_h, self.kernel_w, self.stride_h, self.stride_w,
                    self.dilation_h, self.dilation_w))

    @property
    def taps(self) -> int:
        return self.kernel_h * self.kernel_w


def map_entries(pixels, channels, rows) -> int:
    """Return the ACT entries of a map of ``pixels`` pixels and ``channels`` channels."""
    return -(-pixels // rows) * channels


def conv_groups(kind, window, cols) -> tuple[int, int]:
    """Return ``(groups, K)`` of a ``CONV``: channel groups and gathered steps per command."""
    if kind == ConvKind.CONV:
        return -(-window.out_c // cols), window.taps * window.in_c
    return window.out_c, window.taps


def to_entries(x, rows) -> np.ndarray:
    """Return the ACT entries ``[T*C, rows]`` of a map given pixel-major as ``[P, C]``."""
    p, c = x.shape
    t = -(-p // rows)
    padded = np.zeros((t * rows, c), dtype=x.dtype)
    padded[:p] = x
    return np.ascontiguousarray(padded.reshape(t, rows, c).transpose(0, 2, 1)).reshape(t * c, rows)


def from_entries(entries, pixels, channels, rows) -> np.ndarray:
    """Return the pixel-major map ``[P, C]`` held by ACT entries ``[T*C, rows]``."""
    t = -(-pixels // rows)
    x = entries.reshape(t, channels, rows).transpose(0, 2, 1).reshape(t * rows, channels)
    return x[:pixels]


@dataclass(frozen=True, eq=False)
class GatherPlan:
    """What the gather of one window reads and what each of its steps costs.

    Attributes
    ----------
    source : numpy.ndarray of int64, shape [P, taps]
        The input pixel of output pixel *p* and tap ``i*kernel_w + j``; ``in_h*in_w`` (one past
        the last pixel) for a padded tap.
    step_cycles : numpy.ndarray of int64, shape [T, taps]
        Cycles of one gathered step of tile *t* at each tap (the same for every channel).
    """

    source: np.ndarray
    step_cycles: np.ndarray


@functools.lru_cache(maxsize=256)
def gather_plan(window: Window, rows: int, bank_lanes: int) -> GatherPlan:
    """Return the :class:`GatherPlan` of ``window`` on ``rows`` lanes in banks of ``bank_lanes``."""
    w = window
    p_out, p_in = w.out_h * w.out_w, w.in_h * w.in_w
    tiles = -(-p_out // rows)
    p = np.arange(tiles * rows)
    oh, ow = p // w.out_w, p % w.out_w
    ti, tj = np.divmod(np.arange(w.taps), w.kernel_w)
    ih = oh[:, None] * w.stride_h + ti[None, :] * w.dilation_h - w.pad_top
    iw = ow[:, None] * w.stride_w + tj[None, :] * w.dilation_w - w.pad_left
    inside = (ih >= 0) & (ih < w.in_h) & (iw >= 0) & (iw < w.in_w) & (p < p_out)[:, None]
    q = np.where(inside, ih * w.in_w + iw, p_in)
    # Step cost: the busiest bank's distinct entries (at least one cycle).
    entry = np.where(inside, q // rows, -1).reshape(tiles, rows, w.taps).transpose(0, 2, 1)
    bank = np.where(inside, (q % rows) // bank_lanes, -1).reshape(tiles, rows, w.taps)
    bank = bank.transpose(0, 2, 1)
    cycles = np.ones((tiles, w.taps), dtype=np.int64)
    for b in range(rows // bank_lanes):
        vals = np.sort(np.where(bank == b, entry, -1), axis=-1)
        distinct = (vals[..., 0] >= 0).astype(np.int64) + \
            ((vals[..., 1:] != vals[..., :-1]) & (vals[..., 1:] >= 0)).sum(axis=-1)
        cycles = np.maximum(cycles, distinct)
    source = q[:p_out]
    source.setflags(write=False)
    cycles.setflags(write=False)
    return GatherPlan(source, cycles)


def _gathered(act, src, window, rows):
    """Return the gathered operands ``[P, taps, in_c]`` (int8) of a window over ``act``."""
    w = window
    p_in = w.in_h * w.in_w
    count = map_entries(p_in, w.in_c, rows)
    x = from_entries(act[src:src + count], p_in, w.in_c, rows)
    x = np.concatenate([x, np.full((1, w.in_c), w.pad_value, dtype=x.dtype)])
    return x[gather_plan(w, rows, 1).source]


def run_conv(kind, window, act, wgt, src, w_addr, rows, cols) -> np.ndarray:
    """Return the int64 accumulators ``[P, out_c]`` of a ``CONV`` (before bias and drain): sums
    of products, of the taps (average pool) or their maximum (max pool)."""
    a = _gathered(act, src, window, rows)
    groups, k = conv_groups(kind, window, cols)
    if kind == ConvKind.CONV:
        w = wgt[w_addr:w_addr + groups * k].reshape(groups, k, cols).transpose(1, 0, 2)
        w = np.ascontiguousarray(w.reshape(k, groups * cols)[:, :window.out_c])
        return numerics.integer_matmul(np.ascontiguousarray(a.reshape(len(a), k)), w)
    if kind == ConvKind.DEPTHWISE:
        w = wgt[w_addr:w_addr + groups * k, 0].reshape(groups, k).T.astype(np.int64)
        a = a[:, :, np.arange(window.out_c) // (window.out_c // window.in_c)]
        return np.einsum("ptc,tc->pc", a.astype(np.int64), w)
    if kind == ConvKind.MAX_POOL:
        return a.astype(np.int64).max(axis=1)
    return a.astype(np.int64).sum(axis=1)


def pool_taps(window, rows) -> np.ndarray:
    """Return the in-bounds taps of each output pixel ``[P, 1]`` (an average pool's divisor)."""
    p_in = window.in_h * window.in_w
    return (gather_plan(window, rows, 1).source != p_in).sum(axis=1, keepdims=True)


def pool_average(acc, taps) -> np.ndarray:
    """Return ``acc / taps`` rounded half away from zero (TFLite's AVERAGE_POOL_2D)."""
    half = taps // 2
    return np.where(acc > 0, (acc + half) // taps, -((half - acc) // taps))


def run_add(a, b, params, zero_point, lo, hi) -> np.ndarray:
    """Return TFLite's int8 ADD of operand arrays ``a``, ``b`` with three PARAM entries."""
    pa, pb, py = params
    sa = multiply_by_quantized_multiplier(
        (a.astype(np.int64) + int(pa["bias"])) << ADD_LEFT_SHIFT, int(pa["multiplier"]),
        int(pa["shift"]))
    sb = multiply_by_quantized_multiplier(
        (b.astype(np.int64) + int(pb["bias"])) << ADD_LEFT_SHIFT, int(pb["multiplier"]),
        int(pb["shift"]))
    v = multiply_by_quantized_multiplier(wrap_int32(sa + sb), int(py["multiplier"]),
                                         int(py["shift"]))
    return np.clip(v + zero_point, lo, hi).astype(np.int8)
