"""The operation registry: per kind its operands, attributes, shape inference and MAC count.

:data:`OPS` maps each kind of docs/graph.md to an :class:`OpSpec`. The reference kernel call of
each kind is in :mod:`.kernels`; the graph (:mod:`.graph`) validates operations against these
specs, the executor runs them and the report counts them, so a new kind is added here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import attrs as A
from . import kernels

__all__ = ["OPS", "OpSpec", "conv_output_size"]


@dataclass(frozen=True)
class OpSpec:
    """What the graph knows about one kind of operation.

    Attributes
    ----------
    kind : str
    operands : tuple of str
        Names of the inputs in order; the last may be variadic (``variadic``).
    optional : tuple of str
        Operands that may be absent (None), such as a bias.
    attrs : dict
        Attribute name -> ``(default, checker)``; ``default`` None means required.
    infer : callable
        ``infer(attrs, inputs, output) -> shape``: the per-sample output shape; raises
        ValueError on inconsistent operands (inputs are :class:`Tensor` or None).
    macs : callable
        ``macs(attrs, inputs, output_shape) -> int`` multiply-accumulates per sample.
    run : callable
        ``run(mode, attrs, arrays, inputs, output) -> numpy.ndarray`` (see :mod:`.kernels`).
    constants : tuple of str
        Operands that must be constant tensors (weights, biases, tables).
    weight_axis : int or None
        The output-channel axis of the weight (per-channel scales lie along it).
    """

    kind: str
    operands: tuple
    infer: object
    run: object
    attrs: dict = field(default_factory=dict)
    optional: tuple = ()
    variadic: bool = False
    macs: object = None
    constants: tuple = ()
    weight_axis: int | None = None

    def check_attrs(self, attrs, where):
        """Return the attributes with defaults filled in, each checked (ValueError if not)."""
        attrs = dict(attrs or {})
        unknown = sorted(set(attrs) - set(self.attrs))
        if unknown:
            raise ValueError(f"{where}: unknown attribute(s) {unknown} for {self.kind}; it "
                             f"takes {sorted(self.attrs) or 'none'}")
        out = {}
        for name, (default, checker) in self.attrs.items():
            if name not in attrs and default is None:
                raise ValueError(f"{where}: {self.kind} needs attribute {name!r}")
            out[name] = checker(attrs.get(name, default), f"{where}: attribute {name!r}")
        return out


def conv_output_size(size, kernel, stride, dilation, before, after):
    """Return the output length of a convolution or pool along one axis (TensorFlow rule)."""
    span = dilation * (kernel - 1) + 1
    return (size + before + after - span) // stride + 1


def _rank(t, rank, what):
    if len(t.shape) != rank:
        raise ValueError(f"{what} {t.name!r} must have {rank} per-sample dimensions, "
                         f"not shape {t.shape}")


def _spatial(attrs, x, kh, kw, channels, dilation=(1, 1)):
    (top, bottom), (left, right) = attrs["padding"]
    h = conv_output_size(x.shape[0], kh, attrs["stride"][0], dilation[0], top, bottom)
    w = conv_output_size(x.shape[1], kw, attrs["stride"][1], dilation[1], left, right)
    if h < 1 or w < 1:
        raise ValueError(f"the {kh}x{kw} window does not fit the {x.shape[0]}x{x.shape[1]} "
                         f"input with padding {attrs['padding']}")
    return (h, w, channels)


def _fc(attrs, ins, out):
    x, w, b = ins
    _rank(x, 1, "input")
    _rank(w, 2, "weight")
    if x.shape[0] != w.shape[0]:
        raise ValueError(f"input has {x.shape[0]} features but weight {w.name!r} is {w.shape} "
                         "[K, N]")
    _bias(b, w.shape[1])
    return (w.shape[1],)


def _bias(b, n):
    if b is not None and (b.shape != (n,) or b.dtype != "int32"):
        raise ValueError(f"bias {b.name!r} must be int32 of shape ({n},), not {b.dtype} "
                         f"{b.shape}")


def _conv(attrs, ins, out):
    x, w, b = ins
    _rank(x, 3, "input")
    _rank(w, 4, "weight")
    if w.shape[3] != x.shape[2]:
        raise ValueError(f"weight {w.name!r} {w.shape} [OC, KH, KW, IC] takes {w.shape[3]} "
                         f"input channels, the input has {x.shape[2]}")
    _bias(b, w.shape[0])
    return _spatial(attrs, x, w.shape[1], w.shape[2], w.shape[0], attrs["dilation"])


def _depthwise(attrs, ins, out):
    x, w, b = ins
    _rank(x, 3, "input")
    _rank(w, 4, "weight")
    channels = x.shape[2] * attrs["depth_multiplier"]
    if w.shape[0] != 1 or w.shape[3] != channels:
        raise ValueError(f"weight {w.name!r} must be [1, KH, KW, {channels}] (input channels x "
                         f"depth multiplier {attrs['depth_multiplier']}), not {w.shape}")
    _bias(b, channels)
    return _spatial(attrs, x, w.shape[1], w.shape[2], channels, attrs["dilation"])


def _pool(attrs, ins, out):
    x, = ins
    _rank(x, 3, "input")
    return _spatial(attrs, x, *attrs["pool"], x.shape[2])


def _mean(attrs, ins, out):
    x, = ins
    _rank(x, 3, "input")
    return (1, 1, x.shape[2]) if attrs["keepdims"] else (x.shape[2],)


def _same(attrs, ins, out):
    shapes = {t.shape for t in ins}
    if len(shapes) != 1:
        raise ValueError(f"inputs must have the same shape (no broadcasting), not "
                         f"{[t.shape for t in ins]}")
    return ins[0].shape


def _broadcast(attrs, ins, out):
    a, b = (tuple(t.shape) for t in ins)
    try:
        shape = np.broadcast_shapes(a, b)
    except ValueError:
        shape = None
    if len(a) != len(b) or shape not in (a, b):
        raise ValueError(f"inputs {[a, b]} must have the same rank and one must broadcast to "
                         "the other (a [1, 1, C] scale of an [H, W, C] map)")
    return shape


def _same_qparams(attrs, ins, out):
    if out is not None and out.qparams != ins[0].qparams:
        raise ValueError(f"output {out.name!r} must have the input's quantization "
                         f"{ins[0].qparams}, not {out.qparams}")
    return ins[0].shape


def _pad(attrs, ins, out):
    x, = ins
    pads = A.paddings(attrs["paddings"], "attribute 'paddings'", rank=len(x.shape))
    _same_qparams(attrs, ins, out)
    return tuple(d + a + b for d, (a, b) in zip(x.shape, pads))


def _reshape(attrs, ins, out):
    x, = ins
    if np.prod(attrs["shape"], dtype=np.int64) != np.prod(x.shape, dtype=np.int64):
        raise ValueError(f"cannot reshape {x.shape} to {attrs['shape']}")
    _same_qparams(attrs, ins, out)
    return attrs["shape"]


def _concat(attrs, ins, out):
    rank = len(ins[0].shape)
    axis = attrs["axis"]
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for {rank}-D inputs")
    axis %= rank
    rest = {t.shape[:axis] + t.shape[axis + 1:] for t in ins}
    if len(rest) != 1 or any(len(t.shape) != rank for t in ins):
        raise ValueError(f"inputs {[t.shape for t in ins]} differ outside axis {axis}")
    shape = list(ins[0].shape)
    shape[axis] = sum(t.shape[axis] for t in ins)
    return tuple(shape)


def _clamp(attrs, ins, out):
    return _same_qparams(attrs, ins, out)


def _lut(attrs, ins, out):
    x, table = ins
    if x.qparams.bits != 8 or table.shape != (256,) or table.dtype != "int8":
        raise ValueError(f"a table activation maps 8-bit inputs through an int8 [256] table; "
                         f"input {x.name!r} has {x.qparams.bits} bits, table {table.name!r} is "
                         f"{table.dtype} {table.shape}")
    return x.shape


def _conv_macs(attrs, ins, shape):
    w = ins[1]
    return int(np.prod(shape)) * w.shape[1] * w.shape[2] * w.shape[3]


def _depthwise_macs(attrs, ins, shape):
    w = ins[1]
    return int(np.prod(shape)) * w.shape[1] * w.shape[2]


_WINDOW = {"stride": ((1, 1), A.pair), "padding": (((0, 0), (0, 0)), A.padding2d),
           "activation": ("none", A.activation)}
_CONV = dict(_WINDOW, dilation=((1, 1), A.pair))

OPS = {spec.kind: spec for spec in [
    OpSpec("FULLY_CONNECTED", ("x", "weight", "bias"), _fc, kernels.fully_connected,
           attrs={"activation": ("none", A.activation)}, optional=("bias",),
           macs=lambda attrs, ins, shape: ins[1].shape[0] * ins[1].shape[1],
           constants=("weight", "bias"), weight_axis=1),
    OpSpec("CONV_2D", ("x", "weight", "bias"), _conv, kernels.conv2d, attrs=_CONV,
           optional=("bias",), macs=_conv_macs, constants=("weight", "bias"), weight_axis=0),
    OpSpec("DEPTHWISE_CONV_2D", ("x", "weight", "bias"), _depthwise, kernels.depthwise_conv2d,
           attrs=dict(_CONV, depth_multiplier=(1, A.positive)), optional=("bias",),
           macs=_depthwise_macs, constants=("weight", "bias"), weight_axis=3),
    OpSpec("AVERAGE_POOL_2D", ("x",), _pool, kernels.average_pool2d,
           attrs=dict(_WINDOW, pool=(None, A.pair), unsigned=(False, A.boolean))),
    OpSpec("MAX_POOL_2D", ("x",), _pool, kernels.max_pool2d,
           attrs=dict(_WINDOW, pool=(None, A.pair))),
    OpSpec("MEAN", ("x",), _mean, kernels.mean, attrs={"keepdims": (False, A.boolean)}),
    OpSpec("ADD", ("a", "b"), _same, kernels.add, attrs={"activation": ("none", A.activation),
                                                         "unsigned": (False, A.boolean)}),
    OpSpec("MUL", ("a", "b"), _broadcast, kernels.mul,
           attrs={"activation": ("none", A.activation)}),
    OpSpec("PAD", ("x",), _pad, kernels.pad, attrs={"paddings": (None, A.paddings)}),
    OpSpec("RESHAPE", ("x",), _reshape, kernels.reshape, attrs={"shape": (None, A.shape)}),
    OpSpec("CONCATENATION", ("x",), _concat, kernels.concatenate, variadic=True,
           attrs={"axis": (-1, A.integer)}),
    OpSpec("SOFTMAX", ("x",), _same, kernels.softmax, attrs={"beta": (1.0, A.number)}),
    OpSpec("RELU", ("x",), _clamp, kernels.relu),
    OpSpec("RELU6", ("x",), _clamp, kernels.relu6),
    OpSpec("LUT", ("x", "table"), _lut, kernels.lut, attrs={"function": ("table", A.text)},
           constants=("table",)),
]}
