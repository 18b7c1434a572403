"""MEAN over height and width on the device, only where it is TFLite Micro's MEAN bit for bit.

TFLite Micro's int8 MEAN (``numerics.ops_tflite.mean_hw``) is
``y = clamp(MBQM(S - zx*n, m, e) + zy)`` with ``S`` the sum of the ``n = H*W`` inputs of a
channel and ``(m, e)`` the multiplier ``QuantizeMultiplier(sx/sy)`` divided by ``n``
(``(m0 << k) / n``). The device computes the same sum two ways:

- an average pool over the whole map (``CONV`` kind 2): ``y = clamp(round(S / n))``, rounding
  half away from zero, no requant and no ``WGT``;
- a depthwise convolution over the whole map (``CONV`` kind 1) with every weight 1 and the
  bias ``-zx*n``, whose drain is ``clamp(MBQM(S - zx*n, m, e) + zy)``: the MEAN itself when
  TFLM's ``m`` is a valid hardware multiplier (0 or in ``[2^30, 2^31)``: every ``n`` that is a
  power of two, and other ``n`` when the mantissa of ``sx/sy`` is at least ``n / 2^(k+1)``).
  A denormalised ``m`` has no exact encoding: ``(2m + d, e - 1)`` and weights of 2 round
  differently for every model we tried.

The sum takes every integer of ``[n*-128, n*127]`` (any int8 values), so the average pool is
compared with TFLM's formula over that whole range: a proof, not a sample. Otherwise (and when
the map is wider than the window's 5-bit kernel fields) the MEAN runs on the host
(docs/compiler.md, "Host fallback").
"""

from __future__ import annotations

import numpy as np

from ..numerics.requant_tflite import multiply_by_quantized_multiplier as mbqm
from ..numerics.requant_tflite import SHIFT_MAX, SHIFT_MIN, quantize_multiplier
from ..numerics.rounding import wrap_int32
from ..spec import isa

__all__ = ["MeanPlan", "plan_mean", "tflite_mean_multiplier"]

#: Largest kernel side a ``WINDOW`` encodes (``kernel_h``/``kernel_w`` are u5).
MAX_KERNEL = 31


class MeanPlan:
    """How the device computes one MEAN.

    Attributes
    ----------
    kind : isa.ConvKind
        ``AVERAGE_POOL`` or ``DEPTHWISE``.
    bias, multiplier, shift : int
        The ``PARAM`` entry of every channel (depthwise only).
    """

    def __init__(self, kind, bias=0, multiplier=0, shift=0):
        self.kind, self.bias, self.multiplier, self.shift = kind, bias, multiplier, shift

    def __repr__(self):
        return (f"MeanPlan({self.kind.name}, bias={self.bias}, multiplier={self.multiplier}, "
                f"shift={self.shift})")


def tflite_mean_multiplier(x_scale, y_scale, n) -> tuple[int, int]:
    """Return TFLite Micro's MEAN multiplier ``(m, e)`` for ``n`` averaged values."""
    m0, e = (int(v) for v in quantize_multiplier(np.float64(x_scale) / np.float64(y_scale)))
    k = min(n.bit_length() - 1, 32, 31 + e)
    return ((m0 << k) // n, e - k) if n else (m0, e)


def _valid(multiplier, shift) -> bool:
    """Return whether ``(multiplier, shift)`` is a mode "tflite" PARAM encoding."""
    return (multiplier == 0 or (1 << 30) <= multiplier < (1 << 31)) and \
        SHIFT_MIN <= shift <= SHIFT_MAX


def plan_mean(x_scale, x_zero_point, y_scale, y_zero_point, n) -> MeanPlan | None:
    """Return the device's :class:`MeanPlan` of a MEAN over ``n`` pixels, or None.

    None when neither mapping equals TFLite Micro's MEAN for every possible input.
    """
    zx, zy = int(x_zero_point), int(y_zero_point)
    sums = np.arange(-128 * n, 127 * n + 1, dtype=np.int64)
    m, e = tflite_mean_multiplier(x_scale, y_scale, n)
    want = np.clip(mbqm(wrap_int32(sums - zx * n), m, e) + zy, -128, 127)
    half = n // 2
    pooled = np.where(sums > 0, (sums + half) // n, -((half - sums) // n))
    if np.array_equal(np.clip(pooled, -128, 127), want):
        return MeanPlan(isa.ConvKind.AVERAGE_POOL)
    if _valid(m, e):       # the drain's formula is TFLM's: equal by construction
        return MeanPlan(isa.ConvKind.DEPTHWISE, -zx * n, m, e)
    return None
