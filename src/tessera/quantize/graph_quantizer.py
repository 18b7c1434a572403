"""Post-training int8 quantization of a float graph (CNNs) into a :class:`QuantizedGraph`.

The same rules as the dense quantizer (:mod:`.quantizer`), tensor by tensor: every activation
tensor is observed on the calibration batch (:func:`.calibrate.calibrate_graph`) and gets an
asymmetric int8 scale and zero point (ONNX Runtime's formula); weights are symmetric int8, one
scale per output channel (``per_channel=True``, the default) or per tensor (:mod:`.weights`);
biases are int32 at ``input_scale * weight_scale``. As TFLite's converter does, the output of
RESHAPE, PAD, MAX_POOL_2D, AVERAGE_POOL_2D and a standalone RELU/RELU6 has its input's
quantization (PAD fills with the zero point, i.e. 0.0),
and the inputs and output of a CONCATENATION share one (TFLite Micro requires both): such tensors
are quantized together on the union of their observed ranges. SOFTMAX outputs scale 1/256, zero
point -128. Table activations (sigmoid, tanh, ...) become a ``LUT`` operation after their
producer, calibrated on its pre-activation.
"""

from __future__ import annotations

import numpy as np

from .calibrate import TensorRange, activation_qparams, calibrate_graph
from .floatgraph import FloatGraph, FloatOp
from .floatmodel import LUT_ACTIVATIONS
from .overflow import prove_accumulator_fits
from .weights import quantize_bias, quantize_weights

__all__ = ["quantize_graph"]

_SHARED = ("RESHAPE", "PAD", "MAX_POOL_2D", "AVERAGE_POOL_2D")
_WEIGHT_AXIS = {"FULLY_CONNECTED": 1, "CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}
_ATTRS = {
    "FULLY_CONNECTED": ("activation",),
    "CONV_2D": ("stride", "dilation", "padding", "activation"),
    "DEPTHWISE_CONV_2D": ("stride", "dilation", "padding", "activation", "depth_multiplier"),
    "AVERAGE_POOL_2D": ("pool", "stride", "padding", "activation"),
    "MAX_POOL_2D": ("pool", "stride", "padding", "activation"),
    "MEAN": ("keepdims",), "ADD": ("activation",), "PAD": ("paddings",), "RESHAPE": ("shape",),
    "CONCATENATION": ("axis",), "SOFTMAX": (),
}


def _split_tables(graph):
    """Return ``graph`` with every fused table activation as its own ACTIVATION operation."""
    ops = []
    for op in graph.ops:
        if op.activation in LUT_ACTIVATIONS:
            pre = f"{op.output}:pre"
            ops.append(FloatOp(op.kind, op.name, op.inputs, pre,
                               dict(op.attrs, activation="none"), op.weight, op.bias))
            op = FloatOp("ACTIVATION", op.name, (pre,), op.output,
                         {"function": op.activation})
        ops.append(op)
    return FloatGraph(tuple(ops), graph.input, graph.input_shape, graph.output,
                      graph.input_layout, graph.name)


def _shared_ranges(graph, ranges):
    """Return ``ranges`` with every group of tensors that must share quantization given the
    union of the group's ranges (union-find over the sharing operations)."""
    parent = {name: name for name in ranges}

    def root(name):
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for op in graph.ops:
        if op.kind in _SHARED or op.kind == "CONCATENATION" \
                or op.attrs.get("function") in ("relu", "relu6"):
            for name in op.inputs:
                parent[root(name)] = root(op.output)
    groups = {}
    for name, r in ranges.items():
        lo, hi = groups.get(root(name), (r.rmin, r.rmax))
        groups[root(name)] = (min(lo, r.rmin), max(hi, r.rmax))
    return {name: TensorRange(*groups[root(name)]) for name in ranges}


def _as_kn(kind, weight):
    """Return the weight as ``[K, N]`` (N the output channels) and the inverse reshape."""
    if kind == "FULLY_CONNECTED":
        return weight, lambda w: w
    if kind == "CONV_2D":                       # [OC, KH, KW, IC]
        return weight.reshape(weight.shape[0], -1).T, lambda w: w.T.reshape(weight.shape)
    return weight.reshape(-1, weight.shape[3]), lambda w: w.reshape(weight.shape)


class _Builder:
    def __init__(self, graph, ranges, mode, per_channel):
        from ..graph import QuantParams
        self.QuantParams = QuantParams
        self.graph, self.ranges, self.mode, self.per_channel = graph, ranges, mode, per_channel
        self.shapes = graph.shapes()
        self.qparams, self.tensors, self.ops = {}, [], []

    def activation(self, name, qparams):
        from ..graph import Tensor
        self.qparams[name] = qparams
        self.tensors.append(Tensor(name, self.shapes[name], "int8", qparams))

    def observed(self, name):
        r = self.ranges[name]
        return self.QuantParams(*activation_qparams(r.rmin, r.rmax))

    def constants(self, op, x_q, y_q):
        from ..graph import Tensor
        from .quantizer import _check_requant
        w_kn, back = _as_kn(op.kind, op.weight)
        w_q, w_scale = quantize_weights(w_kn, per_channel=self.per_channel)
        x_scale, x_zp = x_q.scalar_scale, x_q.scalar_zero_point
        bias = np.zeros(w_kn.shape[1]) if op.bias is None else op.bias
        b_q = quantize_bias(bias, x_scale, w_scale, layer_name=op.name)
        prove_accumulator_fits(op.name, w_q, b_q, x_zp)
        _check_requant(op.name, x_scale, w_scale, y_q.scalar_scale, self.mode)
        w_qp = self.QuantParams(w_scale, 0, axis=_WEIGHT_AXIS[op.kind]) if self.per_channel \
            else self.QuantParams(w_scale[0])
        w_full = back(w_q)
        weight = Tensor(f"{op.output}:weight", w_full.shape, "int8", w_qp, w_full)
        bias_t = Tensor(f"{op.output}:bias", b_q.shape, "int32", data=b_q)
        self.tensors += [weight, bias_t]
        return [weight.name, bias_t.name]

    def add(self, op):
        from ..graph import Operation, Tensor
        from .. import numerics
        x_q = self.qparams[op.inputs[0]]
        fn = op.attrs.get("function")
        if op.kind == "SOFTMAX":
            out = self.QuantParams(np.float32(1.0 / 256.0), -128)
        elif op.kind in _SHARED or fn in ("relu", "relu6"):
            out = x_q             # the same group's range; also when x_q is a softmax output
        else:
            out = self.observed(op.output)
        inputs = list(op.inputs)
        if op.kind == "ACTIVATION" and fn in ("relu", "relu6"):
            kind, attrs = fn.upper(), {}
        elif op.kind == "ACTIVATION":
            kind, attrs = "LUT", {"function": fn}
            table = numerics.make_lut(
                lambda v: LUT_ACTIVATIONS[fn](v.astype(np.float64)), x_q.scalar_scale,
                x_q.scalar_zero_point, out.scalar_scale, out.scalar_zero_point, mode=self.mode)
            self.tensors.append(Tensor(f"{op.output}:table", (256,), "int8", data=table))
            inputs.append(f"{op.output}:table")
        else:
            kind, attrs = op.kind, {k: op.attrs[k] for k in _ATTRS[op.kind] if k in op.attrs}
            if kind in _WEIGHT_AXIS:
                inputs += self.constants(op, x_q, out)
        self.activation(op.output, out)
        self.ops.append(Operation(kind, inputs, [op.output], attrs, name=op.name))


def quantize_graph(graph, x, *, mode, per_channel=True, calibration_method="minmax",
                   percentile=99.99, info=None):
    """Return the int8 :class:`~tessera.graph.QuantizedGraph` of the float ``graph``.

    Parameters
    ----------
    graph : FloatGraph
    x : numpy.ndarray
        Calibration batch, float64 NHWC ``[M, *graph.input_shape]`` (already checked).
    mode : str
        Requantization mode of every operation.
    per_channel : bool
        One weight scale per output channel or one per tensor.
    calibration_method, percentile
        The range observer (:func:`.calibrate.observe_range`).
    info : dict, optional
        Facts stored in the model's ``info``.

    Raises
    ------
    OverflowError
        A bias or an accumulator cannot fit int32 (the message names the operation).
    ValueError
        A requantization multiplier the mode cannot encode, or non-finite float values.
    """
    from ..graph import Graph, QuantizedGraph
    graph = _split_tables(graph)
    ranges = _shared_ranges(graph, calibrate_graph(graph, x, calibration_method, percentile))
    builder = _Builder(graph, ranges, mode, bool(per_channel))
    builder.activation(graph.input, builder.observed(graph.input))
    for op in graph.ops:
        builder.add(op)
    qgraph = Graph(builder.tensors, builder.ops, [graph.input], [graph.output], mode=mode,
                   input_layout=graph.input_layout, name=graph.name)
    return QuantizedGraph(qgraph, info=info)
