"""Tensors of the graph and their quantization parameters (docs/graph.md).

Quantization parameters belong to tensors: the scale and zero point of an activation are stated
once, on the tensor, and every operation that reads or writes it uses the same values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ACTIVATION_DTYPES", "QuantParams", "Tensor"]

#: Storage of quantized activations: int8 up to 8 bits, int16 above.
ACTIVATION_DTYPES = ("int8", "int16")
_DTYPES = ("int8", "int16", "int32")


def _frozen(array):
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


class QuantParams:
    """Scale, zero point, width and per-channel axis of a quantized tensor.

    Parameters
    ----------
    scale : array_like
        float32; a scalar (per tensor) or one value per channel.
    zero_point : array_like
        Integers of the same shape as ``scale`` (a scalar is broadcast), in the signed ``bits``
        range.
    bits : int
        Width of the quantized values (8 for int8).
    axis : int or None
        The channel axis of the tensor for per-channel parameters; None per tensor.

    Raises
    ------
    ValueError
        Scales not positive and finite, zero points out of range, shapes inconsistent.
    """

    __slots__ = ("scale", "zero_point", "bits", "axis")

    def __init__(self, scale, zero_point=0, *, bits=8, axis=None):
        scale = np.asarray(scale, dtype=np.float32)
        zero_point = np.asarray(zero_point)
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) \
                or not 2 <= bits <= 32:
            raise ValueError(f"Quantization width must be an integer from 2 to 32, not {bits!r}")
        if scale.ndim > 1 or scale.size == 0:
            raise ValueError(f"Scale must be a scalar or a 1-D array, not shape {scale.shape}")
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError(f"Scale must be positive and finite, not {scale.tolist()}")
        if zero_point.dtype.kind not in "iu":
            raise ValueError(f"Zero point must be integer, not {zero_point.dtype}")
        if zero_point.ndim > 1 or zero_point.size not in (1, scale.size):
            raise ValueError(f"Zero point of shape {zero_point.shape} does not match scale of "
                             f"shape {scale.shape}")
        zero_point = np.broadcast_to(zero_point.astype(np.int64).reshape(-1)
                                     if scale.ndim else zero_point.astype(np.int64).reshape(()),
                                     scale.shape)
        lo, hi = -(1 << (int(bits) - 1)), (1 << (int(bits) - 1)) - 1
        if zero_point.size and (int(zero_point.min()) < lo or int(zero_point.max()) > hi):
            raise ValueError(f"Zero point {zero_point.tolist()} is outside the {bits}-bit range "
                             f"{lo}..{hi}")
        if scale.ndim == 1 and scale.size == 1 and axis is None:
            scale, zero_point = scale.reshape(()), zero_point.reshape(())
        if scale.ndim == 0 and axis is not None:
            raise ValueError(f"A per-tensor scale takes axis None, not {axis!r}")
        if scale.ndim == 1 and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
            raise ValueError(f"Per-channel scales ({scale.size}) need the channel axis, not "
                             f"{axis!r}")
        self.scale = _frozen(scale)
        self.zero_point = _frozen(zero_point)
        self.bits = int(bits)
        self.axis = None if axis is None else int(axis)

    @property
    def per_channel(self):
        """Whether the parameters are per channel (an array along :attr:`axis`)."""
        return self.axis is not None

    @property
    def scalar_scale(self):
        """The per-tensor scale as ``numpy.float32`` (``ValueError`` when per channel)."""
        if self.per_channel:
            raise ValueError("This tensor is quantized per channel; it has no single scale")
        return np.float32(self.scale)

    @property
    def scalar_zero_point(self):
        """The per-tensor zero point as int (``ValueError`` when per channel)."""
        if self.per_channel:
            raise ValueError("This tensor is quantized per channel; it has no single zero point")
        return int(self.zero_point)

    def __eq__(self, other):
        if not isinstance(other, QuantParams):
            return NotImplemented
        return (self.bits, self.axis) == (other.bits, other.axis) \
            and self.scale.shape == other.scale.shape \
            and np.array_equal(self.scale.view(np.uint32), other.scale.view(np.uint32)) \
            and np.array_equal(self.zero_point, other.zero_point)

    def __hash__(self):
        return hash((self.scale.tobytes(), self.zero_point.tobytes(), self.bits, self.axis))

    def __repr__(self):
        if self.per_channel:
            return (f"QuantParams(scale=[{self.scale.size} per channel], axis={self.axis}, "
                    f"bits={self.bits})")
        return f"QuantParams(scale={float(self.scale):.6g}, zero_point={int(self.zero_point)}, " \
               f"bits={self.bits})"


class Tensor:
    """A named tensor of the graph: an activation (``data`` None) or a constant.

    Parameters
    ----------
    name : str
    shape : tuple of int
        Per sample for activations (no batch axis); the full shape for constants.
    dtype : str
        ``"int8"``, ``"int16"`` or ``"int32"``.
    qparams : QuantParams or None
        Required for activations; optional for int32 biases.
    data : numpy.ndarray or None
        The constant's values (copied read-only), of ``dtype`` and ``shape``.
    """

    __slots__ = ("name", "shape", "dtype", "qparams", "data")

    def __init__(self, name, shape, dtype, qparams=None, data=None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"Tensor name must be a non-empty string, not {name!r}")
        try:
            shape = tuple(int(d) for d in shape)
        except TypeError:
            raise ValueError(f"Tensor {name!r}: shape must be a sequence of integers, not "
                             f"{shape!r}") from None
        if any(d <= 0 for d in shape):
            raise ValueError(f"Tensor {name!r}: every dimension must be positive, not {shape}")
        dtype = np.dtype(dtype).name
        if dtype not in _DTYPES:
            raise ValueError(f"Tensor {name!r}: dtype must be one of {_DTYPES}, not {dtype!r}")
        if qparams is not None and not isinstance(qparams, QuantParams):
            raise TypeError(f"Tensor {name!r}: qparams must be QuantParams, not "
                            f"{type(qparams).__name__}")
        if data is not None:
            data = np.asarray(data)
            if data.dtype.name != dtype or data.shape != shape:
                raise ValueError(f"Tensor {name!r}: data is {data.dtype} {data.shape}, not the "
                                 f"declared {dtype} {shape}")
            data = _frozen(data)
        elif qparams is None:
            raise ValueError(f"Tensor {name!r}: an activation tensor needs quantization "
                             "parameters")
        elif dtype not in ACTIVATION_DTYPES:
            raise ValueError(f"Tensor {name!r}: activations are stored as {ACTIVATION_DTYPES}, "
                             f"not {dtype!r}")
        if qparams is not None and qparams.per_channel:
            if not -len(shape) <= qparams.axis < len(shape) \
                    or shape[qparams.axis] != qparams.scale.size:
                raise ValueError(f"Tensor {name!r} of shape {shape}: {qparams.scale.size} "
                                 f"per-channel scales do not match axis {qparams.axis}")
        self.name, self.shape, self.dtype = name, shape, dtype
        self.qparams, self.data = qparams, data

    @property
    def is_constant(self):
        """Whether the tensor holds constant data (weights, biases, tables)."""
        return self.data is not None

    @property
    def nbytes(self):
        """Bytes of one sample (activations) or of the whole constant."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def __repr__(self):
        kind = "constant" if self.is_constant else "activation"
        return f"<Tensor {self.name!r} {self.dtype}{list(self.shape)} {kind} {self.qparams!r}>"
