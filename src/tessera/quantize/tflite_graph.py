"""Import int8 TFLite graphs (CNNs, residual DAGs) as a :class:`tessera.graph.QuantizedGraph`.

Every parameter is kept exactly: per-channel weight scales, SAME padding turned into explicit
numbers with :func:`tessera.numerics.cnn.same_padding` (TensorFlow's extra row/column at the
bottom/right), VALID as zeros, strides, dilations, depth multipliers, fused activations. TFLite
weights keep their layout (CONV_2D OHWI, DEPTHWISE_CONV_2D ``[1, KH, KW, C*m]``);
FULLY_CONNECTED weights ``[N, K]`` are transposed to the graph's ``[K, N]``. A float input
followed by QUANTIZE and a DEQUANTIZE before a float output are the graph's edges.
Standalone element-wise operators (RELU, RELU6, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, an int8
-> int8 QUANTIZE) become lookup tables with TFLite Micro's arithmetic (:mod:`.tflite_tables`);
a RELU or RELU6 whose input and output share a quantization stays a clamp.
MUL of two activations (mode "tflite"), and ADD or MUL of an activation and one int8 constant
(a table; the converter's decomposed hard_swish) are read too.
Anything else — another operator, broadcasting ADD (but a squeezed ``[C]`` skip added to
``[1, 1, 1, C]``), other constant operands, fused activations other than NONE/RELU/RELU6,
a QUANTIZE between other types — is refused with the operator and tensor named.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Operation, QuantizedGraph, QuantParams, Tensor
from .errors import UnsupportedModelError
from .tflite_tables import constant_operand_table, tflite_table

__all__ = ["GRAPH_OPS", "import_tflite_graph"]

#: TFLite operators the graph importer reads.
GRAPH_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
             "MEAN", "ADD", "MUL", "PAD", "PADV2", "RESHAPE", "CONCATENATION", "SOFTMAX", "RELU",
             "RELU6", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH", "QUANTIZE", "DEQUANTIZE")


class _GraphReader:
    """Turn the operators of one subgraph into tensors and operations of a Graph."""

    def __init__(self, r, mode):
        self.r, self.mode, self.s = r, mode, r.schema
        self.tensors, self.ops, self.names = {}, [], {}
        self.alias = {}        # TFLite tensor index -> graph name (edges: QUANTIZE/DEQUANTIZE)

    # -- tensors -----------------------------------------------------------------------------
    def name(self, index):
        if index in self.alias:
            return self.alias[index]
        if index not in self.names:
            name = self.r.tname(index) or f"t{index}"
            if name in self.names.values():
                name = f"{name}#{index}"
            self.names[index] = name
        return self.names[index]

    def qparams(self, index, where, axis=None):
        q = self.r.tensor(index).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise UnsupportedModelError(f"{where}: tensor {self.r.tname(index)!r} is not quantized")
        scale = np.asarray(q.scale, np.float32)
        zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], np.int64)
        per_channel = scale.size > 1
        if per_channel and axis is not None and q.quantizedDimension != axis:
            raise UnsupportedModelError(f"{where}: tensor {self.r.tname(index)!r} is quantized per "
                             f"channel along axis {q.quantizedDimension}, not {axis}")
        try:
            return QuantParams(scale, zp, bits=8,
                               axis=(q.quantizedDimension if per_channel else None))
        except ValueError as exc:
            raise UnsupportedModelError(f"{where}: tensor {self.r.tname(index)!r}: {exc}") from None

    def activation(self, index, where, *, batchless=False):
        """Return the graph name of activation tensor ``index`` (per-sample shape, int8).

        ``batchless``: a RESHAPE output may lack the batch dimension (the converter squeezes
        ``[1, 1, 1, C]`` to ``[C]`` for a broadcasting ADD); its whole shape is one sample.
        """
        name = self.name(index)
        if name in self.tensors:
            return name
        if self.r.is_constant(index):
            raise UnsupportedModelError(
                f"{where}: tensor {self.r.tname(index)!r} is a constant; Tessera's operators "
                "take activation tensors here (an element-wise operation with a constant, e.g. "
                "a decomposed hard_swish, is not supported)")
        if self.r.type_of(index) != "INT8":
            raise UnsupportedModelError(f"{where}: tensor {self.r.tname(index)!r} is "
                             f"{self.r.type_of(index)}; Tessera imports full-integer int8 "
                             "models (not float, dynamic-range or 16x8 ones)")
        shape = [int(d) for d in self.r.tensor(index).shape]
        if batchless and shape and shape[0] != 1:
            shape = [1] + shape
        if not shape or shape[0] != 1:
            raise UnsupportedModelError(
                f"{where}: tensor {self.r.tname(index)!r} has shape {shape}; "
                "Tessera expects a leading batch dimension of 1")
        self.tensors[name] = Tensor(name, shape[1:], "int8", self.qparams(index, where))
        return name

    def constant(self, index, dtype, where, *, axis=None, quantized=True, data=None):
        name = self.name(index)
        if name not in self.tensors:
            values = self.r.constant(index, dtype, where) if data is None else data
            q = self.qparams(index, where, axis) if quantized else None
            if q is not None:
                self.r.check_symmetric_weight(index, where, name)
            self.tensors[name] = Tensor(name, values.shape, np.dtype(dtype).name, q, values)
        return name

    # -- operators ---------------------------------------------------------------------------
    def padding(self, opts, x, kernel, stride, dilation):
        if opts.padding == self.s.Padding.VALID:
            return ((0, 0), (0, 0))
        from ..numerics.cnn import same_padding
        h, w = self.tensors[x].shape[:2]
        return (tuple(same_padding(h, kernel[0], stride[0], dilation[0])),
                tuple(same_padding(w, kernel[1], stride[1], dilation[1])))

    def add(self, kind, inputs, output, attrs=None):
        self.ops.append(Operation(kind, inputs, [output], attrs))

    def bias(self, op, where):
        index = self.r.bias_index(op, where)
        return None if index is None else self.constant(index, np.int32, where, quantized=False)

    def weight(self, op, where, axis):
        self.r.check_int8_weight(op, where)
        return self.constant(op.inputs[1], np.int8, where, axis=axis)

    def conv(self, kind, op, where, x, y):
        o = op.builtinOptions
        w = self.weight(op, where, 0 if kind == "CONV_2D" else 3)
        kernel = self.tensors[w].shape[1:3]
        stride, dilation = (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor)
        attrs = {"stride": stride, "dilation": dilation,
                 "activation": self.r.fused_activation(o, where),
                 "padding": self.padding(o, x, kernel, stride, dilation)}
        if kind == "DEPTHWISE_CONV_2D":
            channels = self.tensors[x].shape[2]
            multiplier = self.tensors[w].shape[3] // channels
            if o.depthMultiplier not in (0, multiplier):
                raise UnsupportedModelError(
                    f"{where}: depth multiplier {o.depthMultiplier} disagrees "
                    f"with the weight shape {self.tensors[w].shape}")
            attrs["depth_multiplier"] = multiplier
        self.add(kind, [x, w, self.bias(op, where)], y, attrs)

    def pool(self, kind, op, where, x, y):
        o = op.builtinOptions
        pool, stride = (o.filterHeight, o.filterWidth), (o.strideH, o.strideW)
        self.add(kind, [x], y, {"pool": pool, "stride": stride,
                                "padding": self.padding(o, x, pool, stride, (1, 1)),
                                "activation": self.r.fused_activation(o, where)})

    def fully_connected(self, op, where, x, y):
        self.r.check_fully_connected_options(op, where, one_pixel=True)
        self.r.check_int8_weight(op, where)
        w_nk = self.r.constant(op.inputs[1], np.int8, where)
        q = self.qparams(op.inputs[1], where, axis=0)
        name = self.name(op.inputs[1])
        if name not in self.tensors:
            self.r.check_symmetric_weight(op.inputs[1], where, name)
            q = QuantParams(q.scale, 0, bits=8, axis=1 if q.per_channel else None)
            self.tensors[name] = Tensor(name, w_nk.shape[::-1], "int8", q,
                                        np.ascontiguousarray(w_nk.T))
        shape = self.tensors[x].shape
        if len(shape) != 1:      # TFLite flattens the input to [batch, K]: say so in the graph
            flat = f"{x}/flattened"
            self.tensors[flat] = Tensor(flat, (int(np.prod(shape)),), "int8",
                                        self.tensors[x].qparams)
            self.add("RESHAPE", [x], flat, {"shape": (int(np.prod(shape)),)})
            x = flat
        out = y
        if len(self.tensors[y].shape) != 1:       # keep_num_dims on one pixel: [1, 1, N]
            out = f"{y}/flat"
            self.tensors[out] = Tensor(out, self.tensors[y].shape[-1:], "int8",
                                       self.tensors[y].qparams)
        self.add("FULLY_CONNECTED", [x, name, self.bias(op, where)], out,
                 {"activation": self.r.fused_activation(op.builtinOptions, where)})
        if out != y:
            self.add("RESHAPE", [out], y, {"shape": tuple(self.tensors[y].shape)})

    def table(self, kind, op, where, x, y):
        xq, yq = self.tensors[x].qparams, self.tensors[y].qparams
        if kind in ("RELU", "RELU6") and xq == yq:     # a clamp on the shared quantization
            self.add(kind, [x], y)
            return
        r = self.r
        lut, _ = tflite_table(kind, op, r.model.operatorCodes[op.opcodeIndex],
                              r.tensor(op.inputs[0]).quantization,
                              r.tensor(op.outputs[0]).quantization, mode=self.mode, where=where)
        name = f"{y}/table"
        self.tensors[name] = Tensor(name, (256,), "int8", data=lut)
        self.add("LUT", [x, name], y, {"function": kind.lower()})

    def binary(self, kind, op, where, y):
        """ADD or MUL of two activations, or of one and a scalar constant (then a table)."""
        activation = self.r.fused_activation(op.builtinOptions, where)
        if kind == "MUL" and self.mode != "tflite":
            raise UnsupportedModelError(f"{where}: MUL is imported in mode 'tflite' only "
                                        f"(TFLite Micro's arithmetic), not {self.mode!r}")
        constants = [i for i in op.inputs if self.r.is_constant(i)]
        if len(constants) == 1 and self.mode == "tflite":
            index = constants[0]
            x = self.activation(next(i for i in op.inputs if i != index), where)
            if self.r.type_of(index) != "INT8" or int(np.prod(self.r.tensor(index).shape)) != 1:
                raise UnsupportedModelError(
                    f"{where}: its constant {self.r.tname(index)!r} is "
                    f"{self.r.type_of(index)} {[int(d) for d in self.r.tensor(index).shape]}; "
                    "Tessera reads an element-wise operation with a constant as a table: one "
                    "int8 value")
            c = self.qparams(index, where)
            value = int(self.r.constant(index, np.int8, where).ravel()[0])
            xq, yq = self.tensors[x].qparams, self.tensors[y].qparams
            lut = constant_operand_table(
                kind, (xq.scalar_scale, xq.scalar_zero_point),
                (value, c.scalar_scale, c.scalar_zero_point),
                (yq.scalar_scale, yq.scalar_zero_point), activation=activation, where=where)
            name = f"{y}/table"
            self.tensors[name] = Tensor(name, (256,), "int8", data=lut)
            self.add("LUT", [x, name], y, {"function": f"{kind.lower()}_constant"})
            return
        x, b = (self.activation(i, where) for i in op.inputs)
        self.add(kind, [self.as_shape(a, x, b, y, where, broadcast=kind == "MUL")
                        for a in (x, b)], y, {"activation": activation})

    def as_shape(self, name, x, b, y, where, *, broadcast=False):
        """Return ``name``, or a RESHAPE of it to output ``y``'s shape when it broadcasts to it
        without repeating a value (a squeezed ``[C]`` added to ``[1, 1, C]``). ``broadcast``
        (MUL): a ``[1, 1, C]`` operand of an ``[H, W, C]`` output stays as it is."""
        shape, out = tuple(self.tensors[name].shape), tuple(self.tensors[y].shape)
        if shape == out or (broadcast and len(shape) == len(out)
                            and np.broadcast_shapes(shape, out) == out):
            return name
        if np.prod(shape) != np.prod(out) or np.broadcast_shapes(shape, out) != out:
            raise UnsupportedModelError(f"{where} broadcasts {self.tensors[x].shape} and "
                                        f"{self.tensors[b].shape}; Tessera adds equal shapes only")
        view = f"{name}/as_{'x'.join(map(str, out))}"
        if view not in self.tensors:
            self.tensors[view] = Tensor(view, out, "int8", self.tensors[name].qparams)
            self.add("RESHAPE", [name], view, {"shape": out})
        return view

    def mean(self, op, where, x, y):
        axes = self.r.constant(op.inputs[1], np.int32, where).ravel()
        rank = len(self.tensors[x].shape) + 1
        if len(self.tensors[x].shape) != 3 or sorted(int(a) % rank for a in axes) != [1, 2]:
            raise UnsupportedModelError(
                f"{where} averages over axes {axes.tolist()}; Tessera's MEAN is "
                "over height and width (axes [1, 2]) of an NHWC tensor")
        keep = bool(op.builtinOptions.keepDims) if op.builtinOptions is not None else False
        self.add("MEAN", [x], y, {"keepdims": keep})

    def pad(self, kind, op, where, x, y):
        pads = self.r.constant(op.inputs[1], np.int32 if self.r.type_of(op.inputs[1]) == "INT32"
                               else np.int64, where).reshape(-1, 2)
        if pads.shape[0] != len(self.tensors[x].shape) + 1 or np.any(pads[0] != 0):
            raise UnsupportedModelError(
                f"{where} pads {pads.tolist()}; Tessera pads the per-sample axes "
                "only (the batch padding must be [0, 0])")
        if kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            value = int(self.r.constant(op.inputs[2], np.int8, where).ravel()[0])
            if value != self.tensors[x].qparams.scalar_zero_point:
                raise UnsupportedModelError(f"{where} pads with {value}, not the input zero point "
                                 f"{self.tensors[x].qparams.scalar_zero_point}; not supported")
        self.add("PAD", [x], y, {"paddings": [tuple(int(v) for v in p) for p in pads[1:]]})

    def concatenation(self, op, where, y):
        o = op.builtinOptions
        xs = [self.activation(i, where) for i in op.inputs]
        rank = len(self.tensors[y].shape) + 1
        axis = int(o.axis) % rank
        if axis == 0:
            raise UnsupportedModelError(f"{where} concatenates along the batch axis; not supported")
        if self.r.fused_activation(o, where) != "none":
            raise UnsupportedModelError(
                f"{where} has a fused activation; Tessera's CONCATENATION has none")
        self.add("CONCATENATION", xs, y, {"axis": axis - 1})

    def operator(self, i, op):
        r = self.r
        kind = r.op_names[op.opcodeIndex]
        where = f"{r.name}: {r.describe(i, op)}"
        if kind not in GRAPH_OPS:
            raise UnsupportedModelError(
                f"{r.name}: unsupported operator in {r.describe(i, op)}; Tessera "
                f"imports TFLite graphs of: {', '.join(GRAPH_OPS)}")
        if kind in ("QUANTIZE", "DEQUANTIZE"):
            return self.edge(kind, op, where)
        if kind == "CONCATENATION":
            return self.concatenation(op, where, self.activation(op.outputs[0], where))
        if kind in ("ADD", "MUL"):
            return self.binary(kind, op, where, self.activation(op.outputs[0], where))
        x = self.activation(op.inputs[0], where)
        y = self.activation(op.outputs[0], where, batchless=kind == "RESHAPE")
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            self.conv(kind, op, where, x, y)
        elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            self.pool(kind, op, where, x, y)
        elif kind == "FULLY_CONNECTED":
            self.fully_connected(op, where, x, y)
        elif kind == "MEAN":
            self.mean(op, where, x, y)
        elif kind in ("PAD", "PADV2"):
            self.pad(kind, op, where, x, y)
        elif kind == "RESHAPE":
            self.add("RESHAPE", [x], y, {"shape": self.tensors[y].shape})
        elif kind == "SOFTMAX":
            beta = op.builtinOptions.beta if op.builtinOptions is not None else 1.0
            self.add("SOFTMAX", [x], y, {"beta": float(beta)})
        else:
            self.table(kind, op, where, x, y)

    def edge(self, kind, op, where):
        r, g = self.r, self.r.graph
        src, dst = op.inputs[0], op.outputs[0]
        if kind == "QUANTIZE" and src in g.inputs and r.type_of(src) == "FLOAT32":
            self.alias[src] = self.activation(dst, where)
        elif kind == "QUANTIZE" and r.type_of(src) == "INT8" and r.type_of(dst) == "INT8":
            self.table(kind, op, where, self.activation(src, where), self.activation(dst, where))
        elif kind == "DEQUANTIZE" and dst in g.outputs and r.type_of(dst) == "FLOAT32":
            self.alias[dst] = self.activation(src, where)
        else:
            raise UnsupportedModelError(
                f"{where}: QUANTIZE and DEQUANTIZE are read only at the model's "
                "float input and output and as int8 -> int8 requantizations; this one converts "
                "tensor "
                f"{r.tname(src)!r} inside the graph (not supported)")


def import_tflite_graph(r, *, mode):
    """Return the :class:`~tessera.graph.QuantizedGraph` of a parsed TFLite model.

    Parameters
    ----------
    r : tessera.quantize.tflite_reader.TFLiteReader
        The parsed flatbuffer.
    mode : str
        Requantization mode of the graph (``"tflite"``: TFLite Micro's reference kernels).

    Raises
    ------
    UnsupportedModelError
        An operator Tessera does not import (named with its index and output tensor), float or
        hybrid tensors, broadcasting, parameters it cannot keep exactly.
    ValueError
        The file describes an inconsistent graph (shapes, dangling tensors).
    """
    reader = _GraphReader(r, mode)
    g = r.graph
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise ValueError(f"{r.name}: Tessera imports models with one input and one output, "
                         f"found {len(g.inputs)} and {len(g.outputs)}")
    if r.type_of(g.inputs[0]) == "INT8":
        reader.activation(g.inputs[0], f"{r.name}: model input")
    for i, op in enumerate(g.operators or []):
        if i not in getattr(r, "folded", ()):       # shape arithmetic folded by tflite_fold
            reader.operator(i, op)
    inputs, outputs = [reader.name(g.inputs[0])], [reader.name(g.outputs[0])]
    for what, name in (("input", inputs[0]), ("output", outputs[0])):
        if name not in reader.tensors:
            raise ValueError(f"{r.name}: the model {what} {name!r} is not an int8 tensor nor "
                             "quantized by a QUANTIZE/DEQUANTIZE at the edge")
    try:
        graph = Graph(reader.tensors.values(), reader.ops, inputs, outputs, mode=mode,
                      input_layout="NHWC", name=r.name)
    except ValueError as exc:
        raise ValueError(f"{r.name}: {exc}") from None
    matches = {"tflite": "TFLite Micro reference kernels (mode 'tflite')",
               "onnx": "mode 'onnx' (docs/numerics.md says which LiteRT kernels it matches)"}
    return QuantizedGraph(graph, info={"source": f"TFLite ({r.name})",
                                       "matches": matches.get(mode, mode)})
