"""Input validation shared by the numerics modules; messages say what was wrong and what to do."""

from __future__ import annotations

import numbers

import numpy as np

from ..spec import ACC_BITS
from ..spec import OPERAND_BITS as BITS
from ..spec.packing import operand_dtype as storage_dtype

__all__ = ["check_scale", "check_requant_scales", "check_zero_point", "check_int_array",
           "check_bits", "check_operands", "storage_dtype", "int_range"]


def check_bits(name, bits, allowed=BITS) -> int:
    """Return ``bits`` if it is one of ``allowed`` widths, else raise ``ValueError``."""
    if isinstance(bits, bool) or bits not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, not {bits!r}")
    return int(bits)


def int_range(bits) -> tuple[int, int]:
    """Return ``(lo, hi)`` of a signed ``bits``-wide integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def check_operands(name, value, bits, ndim=None, shape=None) -> np.ndarray:
    """Check ``value`` is an array of ``storage_dtype(bits)`` whose values fit ``bits`` bits."""
    check_int_array(name, value, storage_dtype(bits), ndim=ndim, shape=shape)
    if bits not in (8, 16) and value.size:
        lo, hi = int_range(bits)
        if value.min() < lo or value.max() > hi:
            bad = int(value.reshape(-1)[np.flatnonzero((value < lo) | (value > hi))[0]])
            raise ValueError(f"{name} holds {bad}, outside the {bits}-bit range [{lo}, {hi}]")
    return value

def check_scale(name, value, *, length=None) -> np.ndarray:
    """Return ``value`` as a float32 array after checking it is finite and positive.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : float or array_like
        A scalar, or (when ``length`` is not ``None``) a scalar or a 1-D array of ``length``.
    length : int, optional
        Allowed per-channel length; ``None`` means only a scalar is allowed.
    """
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a float scale, not {value!r}")
    if arr.ndim != 0 and (length is None or arr.shape != (length,)):
        expected = "a scalar" if length is None else f"a scalar or shape ({length},)"
        raise ValueError(f"{name} must be {expected}, not shape {arr.shape}")
    arr32 = arr.astype(np.float32)
    bad = ~np.isfinite(arr32) | ~(arr32 > 0)
    if np.any(bad):
        where = "" if arr.ndim == 0 else f" at channel {int(np.flatnonzero(bad)[0])}"
        shown = float(arr.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
        raise ValueError(f"{name} must be a finite positive float32, not {shown!r}{where}")
    return arr32


def check_requant_scales(x_scale, w_scale, y_scale):
    """Return ``(sx, sw, sy)`` as float32 arrays, ``sw`` 1-D (per channel or one element)."""
    sw = np.asarray(w_scale)
    length = sw.shape[0] if sw.ndim == 1 else None
    sx = check_scale("x_scale", x_scale)
    sw = check_scale("w_scale", w_scale, length=length)
    sy = check_scale("y_scale", y_scale)
    return sx, np.atleast_1d(sw), sy


def check_zero_point(name, value, bits=8) -> int:
    """Return ``value`` as int after checking it is an integer in the ``bits``-bit range."""
    lo, hi = int_range(bits)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        if bits == 8:
            raise ValueError(f"{name} must be in the int8 range [-128, 127], not {value}; "
                             "map uint8 zero points to int8 with z - 128")
        raise ValueError(f"{name} must be in the int{bits} range [{lo}, {hi}], not {value}")
    return value


def check_int_array(name, value, dtype, ndim=None, shape=None) -> np.ndarray:
    """Return ``value`` as an ndarray after checking its dtype and shape.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    dtype : numpy dtype
        Required dtype (no silent casting: a float or int64 array is refused).
    ndim : int, optional
        Required number of dimensions.
    shape : tuple, optional
        Required shape; ``None`` entries match any length.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {np.dtype(dtype)}, "
                        f"not {type(value).__name__}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, not {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, not shape {value.shape}")
    if shape is not None:
        if value.ndim != len(shape) or any(s is not None and s != v
                                           for s, v in zip(shape, value.shape)):
            shown = "(" + ", ".join("?" if s is None else str(s) for s in shape) + \
                ("," if len(shape) == 1 else "") + ")"
            raise ValueError(f"{name} must have shape {shown}, not {value.shape}")
    return value
