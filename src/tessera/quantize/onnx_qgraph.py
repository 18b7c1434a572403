"""Import ONNX CNNs quantized by ONNX Runtime (QDQ and QOperator) as a tensor graph, exactly.

The files ``onnxruntime.quantization.quantize_static`` writes, per tensor or per channel:

QOperator
    ``QLinearConv`` (a group conv with one group per input channel is a depthwise conv),
    ``com.microsoft`` ``QLinearAdd``, ``QLinearAveragePool``, ``QLinearGlobalAveragePool``,
    ``QLinearConcat``, ``QLinearSoftmax``, ``QGemm``, ``QLinearSigmoid``/``QLinearLeakyRelu``,
    ``QLinearMatMul``, and ``MaxPool``/``Flatten``/``Reshape`` on int8 tensors.
QDQ
    The same ops on ``DequantizeLinear`` inputs followed by a ``QuantizeLinear`` (the patterns
    ORT's graph optimizer fuses into those kernels), weights and int32 biases as
    ``DequantizeLinear`` of constants; ``Relu``/``Clip``/``Sigmoid``/``Tanh`` between DQ and Q
    become clamps or lookup tables (tabulated by running the nodes in ORT).

ONNX is NCHW; the graph is NHWC (``input_layout = "NCHW"`` records it): activations
``[C, H, W]`` become ``(H, W, C)``, conv weights OIHW become OHWI (depthwise ``[1, KH, KW, C*m]``),
and :meth:`~tessera.graph.QuantizedGraph.predict` transposes at the edges. Every scale, zero point
and weight is kept bit for bit; anything else is refused with the node named
(:class:`~tessera.quantize.errors.UnsupportedModelError`). Mode "onnx" reproduces ORT's kernels
(``docs/numerics.md``).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, QuantizedGraph
from .errors import UnsupportedModelError
from .onnx_qbuild import Builder, Deq, FloatInput, Pending, Q

__all__ = ["GRAPH_OPS", "CNN_MARKERS", "import_quantized_onnx_graph"]

#: ONNX operators (``domain.op`` outside the default domain) the graph importer reads.
GRAPH_OPS = ("QuantizeLinear", "DequantizeLinear", "Conv", "QLinearConv", "Add",
             "com.microsoft.QLinearAdd", "AveragePool", "com.microsoft.QLinearAveragePool",
             "GlobalAveragePool", "com.microsoft.QLinearGlobalAveragePool", "MaxPool", "Concat",
             "com.microsoft.QLinearConcat", "Softmax", "com.microsoft.QLinearSoftmax", "Gemm",
             "MatMul", "com.microsoft.QGemm", "QLinearMatMul", "Relu", "Clip", "Sigmoid", "Tanh",
             "LeakyRelu", "com.microsoft.QLinearSigmoid", "com.microsoft.QLinearLeakyRelu",
             "Flatten", "Reshape", "Pad", "Identity", "Dropout")
#: Operators that make a quantized ONNX model a graph rather than a chain of dense layers.
CNN_MARKERS = ("Conv", "QLinearConv", "AveragePool", "QLinearAveragePool", "GlobalAveragePool",
               "QLinearGlobalAveragePool", "MaxPool", "Concat", "QLinearConcat", "Softmax",
               "QLinearSoftmax")
_FLOAT_TABLES = ("Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu")
_HINTS = {"ReduceMean": ". ORT's quantizer leaves ReduceMean in float; for a mean over H and W "
                        "export a GlobalAveragePool (PyTorch nn.AdaptiveAvgPool2d(1)), which it "
                        "quantizes"}


class _Walker(Builder):
    """Walk the ONNX nodes in order, mapping each ONNX tensor name to a value."""

    def __init__(self, chain):
        super().__init__(chain)
        for node in chain.nodes:
            if node.op_type == "DequantizeLinear" and node.input[0] in chain.constants:
                self.qconst[node.output[0]] = node

    def input(self):
        c = self.c
        shape = c.nhwc_input_shape()
        from onnx import TensorProto
        elem = c.input.type.tensor_type.elem_type
        if elem == TensorProto.FLOAT:
            self.values[c.input.name] = FloatInput(c.input.name)
            self.input_shape = shape
        elif elem == TensorProto.INT8:
            raise UnsupportedModelError(
                f"{self.name}: input {c.input.name!r} is int8 without quantization parameters; "
                "Tessera imports models with a float input and its QuantizeLinear")
        else:
            raise UnsupportedModelError(f"{self.name}: input {c.input.name!r} has ONNX type "
                                        f"{elem}; Tessera imports a float input")

    def run(self):
        c = self.c
        self.input()
        for node in c.nodes:
            if node.output[0] in self.qconst:
                continue
            label = node.op_type if node.domain in ("", "ai.onnx") else \
                f"{node.domain}.{node.op_type}"
            if label not in GRAPH_OPS:
                hint = _HINTS.get(label, "")
                raise UnsupportedModelError(
                    f"{self.name}: unsupported operator in {c.describe(node)}; Tessera imports "
                    f"quantized ONNX graphs of: {', '.join(GRAPH_OPS)}{hint}")
            self.values[node.output[0]] = self.step(node, node.op_type)
        return self.finish()

    def out_params(self, node, index):
        return self.qparams(node, index, "output")

    def step(self, node, op):
        c, out = self.c, node.output[0]
        if op in ("Identity", "Dropout"):
            return self.values[node.input[0]]
        if op == "QuantizeLinear":
            return self.quantize(node, self.values.get(node.input[0]))
        if op == "DequantizeLinear":
            x = self.q(node, 0)
            self.check_same(node, x, self.qparams(node, 1, "input"), "input")
            return Deq(x, node)
        if op.startswith("QLinear") or op == "QGemm":
            self.fmt.add("QOperator")
            return self.qoperator(node, op, out)
        value = self.values.get(node.input[0])
        if op in ("MaxPool", "Flatten", "Reshape", "Pad") and isinstance(value, Q):
            same = self.tensors[value.name].qparams
            if op == "MaxPool":
                return self.pool(node, op, value, out, same)
            if op == "Pad":
                return self.pad(node, value, out, same)
            return self.reshape(node, value, out)
        self.fmt.add("QDQ")
        if op == "Add":
            if any(t in c.constants or t in self.qconst for t in node.input):
                raise self.fail(node, "adds a constant (a bias quantized separately rounds "
                                "twice); run onnxruntime.quantization.quant_pre_process on the "
                                "float model first so MatMul + Add becomes Gemm")
            return Pending(node, (self.deq(node, 0).q, self.deq(node, 1).q))
        if op == "Concat":
            return Pending(node, tuple(self.deq(node, i).q for i in range(len(node.input))))
        x = self.deq(node, 0)
        if op in ("Conv", "Gemm", "MatMul"):
            return Pending(node, (x.q,) + self.qdq_weights(node, op, x.q))
        if op in _FLOAT_TABLES:
            return Pending(node, (x.q, (x.node, node)))
        return Pending(node, (x.q,))

    def qdq_weights(self, node, op, x):
        w, params = self.weight(node, node.input[1])
        sx = self.tensors[x.name].qparams.scale
        if op == "Conv":
            if w.ndim != 4:
                raise self.fail(node, f"has a {w.ndim}-D weight; Tessera imports 2-D convs")
            return w, params, self.bias(node, node.input[2] if len(node.input) > 2 else "", sx,
                                        params.scale)
        w, params = self.linear_weight(node, op, w, params)
        bias = self.bias(node, node.input[2], sx, params.scale) \
            if op == "Gemm" and len(node.input) > 2 else None
        return w, params, bias

    def linear_weight(self, node, op, w, params):
        """Return the ``[K, N]`` weight of a Gemm/MatMul and its per-N quantization."""
        c = self.c
        trans_b = op in ("Gemm", "QGemm") and c.attribute(node, "transB", 0)
        if op in ("Gemm", "QGemm") and (c.attribute(node, "transA", 0)
                                        or c.attribute(node, "alpha", 1.0) != 1.0
                                        or c.attribute(node, "beta", 1.0) != 1.0):
            raise self.fail(node, "has transA/alpha/beta other than 0/1/1; not supported")
        if w.ndim != 2:
            raise self.fail(node, f"has a {w.ndim}-D weight; Tessera needs 2-D weights")
        if params.per_channel and params.axis % 2 != (0 if trans_b else 1):
            raise self.fail(node, "is quantized per channel along its input features; Tessera "
                            "needs per-output-channel scales")
        return (w.T if trans_b else w), params

    def quantize(self, node, value):
        out, params = node.output[0], self.out_params(node, 1)
        if isinstance(value, FloatInput):
            self.input_name = out
            return self.tensor(out, self.input_shape, params)
        if isinstance(value, Pending):
            return self.resolve(value, out, params)
        if isinstance(value, Deq) and self.tensors[value.q.name].qparams == params:
            return value.q
        raise self.fail(node, "re-quantizes a tensor that is not the result of a quantized op; "
                        "not supported")

    def resolve(self, pending, out, params):
        node, args, op = pending.node, pending.args, pending.node.op_type
        if op == "Conv":
            return self.conv(node, *args, out, params)
        if op in ("Gemm", "MatMul"):
            return self.gemm(node, *args, out, params)
        if op == "Add":
            return self.emit(node, "ADD", [a.name for a in args], out, params,
                             {"unsigned": bool(self.unsigned)})
        if op in ("AveragePool", "MaxPool"):
            return self.pool(node, op, args[0], out, params)
        if op == "GlobalAveragePool":
            self.spatial(node, args[0])
            return self.emit(node, "MEAN", [args[0].name], out, params, {"keepdims": True})
        if op == "Softmax":
            return self.softmax(node, args[0], out, params)
        if op == "Concat":
            return self.concat(node, list(args), out, params)
        if op in ("Flatten", "Reshape"):
            return self.reshape(node, args[0], out, params)
        if op == "Pad":
            return self.pad(node, args[0], out, params)
        return self.table(node, args[0], (*args[1], self.q_node(out)), out, params)

    def q_node(self, out):
        return next(n for n in self.c.nodes if n.output[0] == out)

    def reshape(self, node, x, out, params=None):
        """Return Flatten/Reshape of ``x`` to ``[batch, -1]`` (no operation if already flat)."""
        if params is not None and params != self.tensors[x.name].qparams:
            raise self.fail(node, "changes the quantization of the tensor it reshapes; "
                            "not supported")
        if node.op_type == "Reshape":
            shape = [int(v) for v in np.asarray(self.c.constant(node, 1, "shape")).ravel()]
            if len(shape) != 2 or shape[1] not in (-1, int(np.prod(self.shape(x)))):
                raise self.fail(node, f"reshapes to {shape}; Tessera imports reshapes to "
                                "[batch, -1] only")
        elif self.c.attribute(node, "axis", 1) != 1:
            raise self.fail(node, "flattens from an axis other than 1; not supported")
        return self.flat(node, x, out)

    def pad(self, node, x, out, params):
        """Return a constant Pad of the spatial axes with the zero point (0.0 in QDQ)."""
        c = self.c
        mode = c.attribute(node, "mode", b"constant")
        pads = [int(v) for v in np.asarray(c.constant(node, 1, "pads")).ravel()]
        value = c.constant(node, 2, "constant value")
        value = 0 if value is None else np.asarray(value).ravel()[0]
        if np.asarray(value).dtype == np.uint8:
            value = int(value) - 128           # uint8 models are held minus 128
        zero = self.tensors[x.name].qparams.scalar_zero_point
        fill = value if node.op_type == "Pad" and isinstance(self.values.get(node.input[0]), Q) \
            else None
        if mode not in (b"constant", "constant") or len(pads) != 8 or any(
                pads[i] for i in (0, 1, 4, 5)) or (fill is not None and fill != zero) or (
                fill is None and value != 0) or params != self.tensors[x.name].qparams:
            raise self.fail(node, f"pads {pads} ({mode}, value {value}); Tessera imports constant "
                            "padding of H and W with the zero point (0.0) that keeps the "
                            "quantization")
        return self.emit(node, "PAD", [x.name], out, params,
                         {"paddings": [(pads[2], pads[6]), (pads[3], pads[7]), (0, 0)]})

    def qoperator(self, node, op, out):
        c = self.c
        if op == "QLinearConcat":
            y = self.out_params(node, 0)
            xs = []
            for i in range(2, len(node.input), 3):
                x = self.q(node, i)
                self.check_same(node, x, self.qparams(node, i + 1, "input"), "input")
                xs.append(x)
            return self.concat(node, xs, out, y)
        x = self.q(node, 0)
        self.check_same(node, x, self.qparams(node, 1, "input"), "input")
        if op in ("QLinearConv", "QGemm", "QLinearMatMul"):
            raw = c.constant(node, 3, "weight")
            w, params = self.weight(node, node.input[3], (raw, self.qparams(
                node, 4, "weight", axis=0 if op == "QLinearConv" else (
                    0 if c.attribute(node, "transB", 0) else 1), per_channel=True)))
            y_index = {"QLinearConv": 6, "QGemm": 7, "QLinearMatMul": 6}[op]
            if op == "QGemm" and (len(node.input) < 9 or not node.input[7]):
                raise self.fail(node, "has a float output (no y_scale); Tessera needs int8")
            y = self.out_params(node, y_index)
            bias_index = {"QLinearConv": 8, "QGemm": 6}.get(op)
            bias = None
            if bias_index is not None and len(node.input) > bias_index:
                bias = self.bias(node, node.input[bias_index],
                                 self.tensors[x.name].qparams.scale, params.scale)
            if op == "QLinearConv":
                return self.conv(node, x, w, params, bias, out, y)
            w, params = self.linear_weight(node, op, w, params)
            return self.gemm(node, x, w, params, bias, out, y)
        if op == "QLinearAdd":
            b = self.q(node, 3)
            self.check_same(node, b, self.qparams(node, 4, "input B"), "input B")
            return self.emit(node, "ADD", [x.name, b.name], out, self.out_params(node, 6),
                             {"unsigned": bool(self.unsigned)})
        y = self.out_params(node, 3)
        if node.op_type != "QLinearSoftmax" and c.attribute(node, "channels_last", 0):
            raise self.fail(node, "is channels_last; Tessera imports NCHW ONNX models")
        if op == "QLinearAveragePool":
            return self.pool(node, "AveragePool", x, out, y)
        if op == "QLinearGlobalAveragePool":
            self.spatial(node, x)
            return self.emit(node, "MEAN", [x.name], out, y, {"keepdims": True})
        if op == "QLinearSoftmax":
            return self.softmax(node, x, out, y)
        return self.table(node, x, (node,), out, y)         # QLinearSigmoid / LeakyRelu

    def finish(self):
        c = self.c
        out = self.values.get(c.output_name)
        if isinstance(out, Deq):
            out = out.q
        if not isinstance(out, Q):
            raise UnsupportedModelError(
                f"{self.name}: the graph output {c.output_name!r} is not an int8 tensor nor a "
                "DequantizeLinear of one")
        if not hasattr(self, "input_name"):
            raise UnsupportedModelError(f"{self.name}: the float input is never quantized")
        try:
            graph = Graph(self.tensors.values(), self.ops, [self.input_name], [out.name],
                          mode="onnx", input_layout="NCHW", name=self.name)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        fmt = "QOperator" if "QOperator" in self.fmt else "QDQ"
        return QuantizedGraph(graph, info={
            "source": f"ONNX {fmt} ({self.name})",
            "matches": "ONNX Runtime CPU kernels (mode 'onnx', docs/numerics.md)"})


def import_quantized_onnx_graph(chain):
    """Return the :class:`~tessera.graph.QuantizedGraph` of a quantized ONNX CNN.

    Parameters
    ----------
    chain : tessera.quantize.onnx_graph.OnnxChain
        The parsed model (one float input, one output).

    Raises
    ------
    UnsupportedModelError
        An operator Tessera does not import (named with its node and the supported list),
        uint8 activations, grouped convs, parameters it cannot keep exactly.
    ValueError
        The graph is inconsistent (shapes, dangling tensors).
    """
    return _Walker(chain).run()
