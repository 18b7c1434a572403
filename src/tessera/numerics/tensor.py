"""Tensor quantization, dequantization and activation lookup tables (float <-> int8 boundary)."""

from __future__ import annotations

import numpy as np

from ._checks import check_bits, check_scale, check_zero_point, int_range, storage_dtype
from .modes import get_mode

__all__ = ["quantize_tensor", "dequantize_tensor", "make_lut"]


def quantize_tensor(x, scale, zero_point, mode="onnx", *, bits=8) -> np.ndarray:
    """Quantize floats to ``bits``-wide integers as ``QuantizeLinear``/``QUANTIZE`` does.

    Parameters
    ----------
    x : array_like of float
        Values to quantize (rounded to float32 first). ``inf`` saturates; NaN is refused.
    scale : float
        Per-tensor scale (float32).
    zero_point : int
        Zero point (``bits`` wide).
    mode : str or RequantMode
        A name in ``tessera.numerics.modes.MODES``; its ``round`` rounds ``x / scale``.
        onnx: ``saturate(rint(float32(x) / scale) + zp)`` (ties to even, ONNX Runtime);
        tflite: ``saturate(round_half_away(float32(x) / scale) + zp)`` (TFLite reference
        ``AffineQuantize``).
    bits : {4, 8, 16}
        Width of the result; ``saturate`` clamps to its signed range.

    Returns
    -------
    numpy.ndarray of int8 (int16 for 16 bits), same shape as ``x``
    """
    requant_mode = get_mode(mode)
    lo, hi = int_range(check_bits("bits", bits))
    s = check_scale("scale", scale)
    zp = check_zero_point("zero_point", zero_point, bits)
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"x must be a float array, not {x.dtype}")
    x = x.astype(np.float32)
    if np.any(np.isnan(x)):
        raise ValueError("x must not contain NaN (it has no quantized value)")
    with np.errstate(over="ignore"):
        q = x / s
    q = requant_mode.round(q)
    # Clamp in float before converting: q may be +-inf or far outside int64.
    return np.clip(q + np.float32(zp), lo, hi).astype(storage_dtype(bits))


def dequantize_tensor(q, scale, zero_point) -> np.ndarray:
    """Return ``float32(q - zero_point) * float32(scale)`` (``DequantizeLinear``/``DEQUANTIZE``).

    Parameters
    ----------
    q : numpy.ndarray of int8 or int16 (4-, 8- or 16-bit values)
    scale : float
    zero_point : int
        In the range of ``q``'s dtype.

    Returns
    -------
    numpy.ndarray of float32, same shape as ``q``
    """
    s = check_scale("scale", scale)
    if not isinstance(q, np.ndarray) or q.dtype not in (np.int8, np.int16):
        shown = q.dtype if isinstance(q, np.ndarray) else type(q).__name__
        raise TypeError(f"q must be a numpy array of int8 or int16, not {shown}")
    zp = check_zero_point("zero_point", zero_point, 8 if q.dtype == np.int8 else 16)
    return (q.astype(np.int32) - zp).astype(np.float32) * s


def make_lut(fn, in_scale, in_zero_point, out_scale, out_zero_point, *, mode="onnx"):
    """Tabulate a float activation as an int8 [256] lookup table, ``y = lut[v + 128]``.

    Parameters
    ----------
    fn : callable
        Vectorised float function (e.g. ``np.tanh``); it receives a float32 array of the 256
        dequantized inputs and must return 256 finite values.
    in_scale, in_zero_point : float, int
        Quantization of the table's input (the layer's requantized output).
    out_scale, out_zero_point : float, int
        Quantization of the table's output.
    mode : str or RequantMode
        A name in ``tessera.numerics.modes.MODES``.
        Rounding used to quantize ``fn``'s outputs (see :func:`quantize_tensor`).

    Returns
    -------
    numpy.ndarray of int8, shape [256]
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable float function, not {fn!r}")
    v = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    x = dequantize_tensor(v, in_scale, in_zero_point)
    y = np.asarray(fn(x))
    if y.shape != (256,):
        raise ValueError(f"fn must return 256 values for 256 inputs, not shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating) and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"fn must return floats, not {y.dtype}")
    if not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError("fn returned a non-finite value; the table needs finite outputs")
    return quantize_tensor(y, out_scale, out_zero_point, mode=mode)
