"""Import pre-quantized ONNX models (QDQ and QOperator), keeping every parameter exactly.

Both formats written by ``onnxruntime.quantization.quantize_static`` are read:

QDQ
    ``QuantizeLinear -> DequantizeLinear -> MatMul | Gemm -> QuantizeLinear``, weights and int32
    biases as ``DequantizeLinear`` of constants (per tensor or per output channel). ONNX Runtime
    fuses these into ``QLinearMatMul`` / ``QGemm``, which is what Tessera matches.
QOperator
    ``QLinearMatMul`` and ``com.microsoft.QGemm`` (int32 bias).

Activations: ``DequantizeLinear -> Relu | Clip | Sigmoid | Tanh -> QuantizeLinear`` and
``com.microsoft.QLinearSigmoid`` / ``QLinearLeakyRelu`` after a layer become that layer's clamp or
lookup table, tabulated by running the very nodes in ONNX Runtime (see :mod:`.lut_tabulate`).
ORT's quantizer removes Relu/Clip that directly follow a layer (the output quantization saturates
instead), which imports as activation ``"none"`` with the same results.

``MatMul`` + ``Add`` quantized as two operators (``QLinearAdd``) is refused: ONNX Runtime rounds
twice there, which no single Tessera layer reproduces. Pre-process the float model with
``onnxruntime.quantization.quant_pre_process`` first, which fuses MatMul + Add into Gemm.

Models with convolutions, pools, concatenations or a softmax (CNNs, residual DAGs) are read by
:mod:`.onnx_qgraph` into a :class:`tessera.graph.QuantizedGraph` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedModelError
from .lut_tabulate import numpy_lut, tabulate_onnx
from .onnx_graph import NOOP_OPS
from .onnx_qgraph import CNN_MARKERS, import_quantized_onnx_graph
from .prequantized import LayerDrafts, QParams, symmetric_int8_weights

__all__ = ["QUANTIZED_OPS", "is_quantized_onnx", "import_quantized_onnx"]

#: Operators of pre-quantized ONNX graphs that Tessera imports.
QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "MatMul", "Gemm", "QLinearMatMul",
                 "com.microsoft.QGemm", "Relu", "Clip", "Sigmoid", "Tanh",
                 "com.microsoft.QLinearSigmoid", "com.microsoft.QLinearLeakyRelu", *NOOP_OPS)
_MARKERS = ("QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "QGemm", "QLinearConv")
_FLOAT_FUNCTIONS = {"Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Tanh": np.tanh,
                    "Relu": lambda x: np.maximum(x, 0)}


def is_quantized_onnx(chain):
    """Return whether the graph holds quantization operators."""
    return any(n.op_type in _MARKERS for n in chain.nodes)


@dataclass(frozen=True)
class _Q:          # an integer tensor: quantization and the layer that produced it
    params: QParams | None
    layer: int | None
    unsigned: bool


@dataclass(frozen=True)
class _Deq:        # float tensor = DequantizeLinear(q)
    q: _Q
    node: object


@dataclass(frozen=True)
class _Act:        # float tensor = activation(DequantizeLinear(q))
    q: _Q
    nodes: tuple


@dataclass(frozen=True)
class _Linear:     # float tensor = Gemm/MatMul of dequantized operands (QDQ)
    q: _Q
    node: object
    weight: np.ndarray
    weight_scale: np.ndarray
    bias: np.ndarray | None


class _Importer:
    def __init__(self, chain):
        self.chain, self.name = chain, chain.name
        self.drafts = LayerDrafts("onnx")
        self.qconst = {}           # DequantizeLinear of a constant: output -> node
        self.nodes = []
        for node in chain.nodes:
            if node.op_type == "DequantizeLinear" and node.input[0] in chain.constants:
                self.qconst[node.output[0]] = node
            else:
                self.nodes.append(node)

    def fail(self, node, message):
        return UnsupportedModelError(f"{self.name}: {self.chain.describe(node)} {message}")

    def params(self, node, scale_index, where):
        c = self.chain
        zp = c.constant(node, scale_index + 1, "zero point")
        if zp is None and node.op_type == "QuantizeLinear":
            zp = np.uint8(0)
        return QParams.from_file(c.constant(node, scale_index, "scale"), zp, where=where), \
            zp is not None and np.asarray(zp).dtype == np.uint8

    def same(self, node, q, params):
        if q.params is None:
            return _Q(params, q.layer, q.unsigned)
        if q.params != params:
            raise self.fail(node, f"expects input quantization {params} but the tensor was "
                            f"quantized with {q.params}; Tessera imports graphs where producer "
                            "and consumer agree (as ORT's quantizer writes them)")
        return q

    def weight(self, node, index, trans_b):
        c = self.chain
        tensor = node.input[index]
        where = f"{self.name}: weight of {c.describe(node)}"
        if tensor in self.qconst:
            dq = self.qconst[tensor]
            raw, scale = c.constants[dq.input[0]], c.constant(dq, 1, "scale")
            zp, axis = c.constant(dq, 2, "zero point"), c.attribute(dq, "axis", 1)
        elif node.op_type in ("QLinearMatMul", "QGemm"):
            raw, scale, zp, axis = c.constant(node, index, "weight"), \
                c.constant(node, index + 1, "weight scale"), \
                c.constant(node, index + 2, "weight zero point"), 0 if trans_b else 1
        else:
            raise UnsupportedModelError(
                f"{where} is not a quantized constant (DequantizeLinear of an "
                "int8 initializer); quantize the weights too")
        if raw.ndim != 2:
            raise UnsupportedModelError(f"{where} is {raw.ndim}-D; Tessera needs 2-D weights")
        w = symmetric_int8_weights(raw, zp, where=where)
        scale = np.asarray(scale, dtype=np.float32).ravel()
        out_axis = 0 if trans_b else 1
        if scale.size > 1 and axis % 2 != out_axis:
            raise UnsupportedModelError(
                f"{where} is quantized per channel along axis {axis}, not along "
                "its output channels; Tessera needs per-output-channel scales")
        return (w.T if trans_b else w), scale

    def bias(self, node, index, in_params, w_scale):
        c = self.chain
        if index >= len(node.input) or not node.input[index]:
            return None
        tensor = node.input[index]
        if tensor in self.qconst:
            dq = self.qconst[tensor]
            b = c.constants[dq.input[0]]
            scale = np.asarray(c.constant(dq, 1, "bias scale"), dtype=np.float32)
            expect = np.float32(in_params.scale) * w_scale
            if b.dtype != np.int32 or not np.allclose(scale, expect, rtol=1e-6, atol=0):
                raise self.fail(node, "has a bias that is not int32 at scale input_scale * "
                                "weight_scale; re-quantize the bias with ORT's quantizer")
            return b.ravel()
        b = c.constant(node, index, "bias")
        if b.dtype != np.int32:
            raise self.fail(node, f"has a {b.dtype} bias; quantized layers need an int32 bias "
                            "(quantize the model with onnxruntime.quantization)")
        return b.ravel()

    def linear_qdq(self, node, x):
        c = self.chain
        if node.op_type == "Gemm":
            if c.attribute(node, "transA", 0) or c.attribute(node, "alpha", 1.0) != 1.0 \
                    or c.attribute(node, "beta", 1.0) != 1.0:
                raise self.fail(node, "has transA/alpha/beta other than 0/1/1; not supported "
                                "for quantized Gemm")
        w, ws = self.weight(node, 1, node.op_type == "Gemm" and c.attribute(node, "transB", 0))
        bias = self.bias(node, 2, x.q.params, ws) if node.op_type == "Gemm" else None
        return _Linear(x.q, node, w, ws, bias)

    def linear_qop(self, node, x):
        c = self.chain
        qgemm = node.op_type == "QGemm"
        if qgemm and (c.attribute(node, "transA", 0) or c.attribute(node, "alpha", 1.0) != 1.0):
            raise self.fail(node, "has transA/alpha other than 0/1; not supported")
        if qgemm and (len(node.input) < 9 or not node.input[7]):
            raise self.fail(node, "has a float output (no y_scale); Tessera needs int8 outputs")
        in_params, _ = self.params(node, 1, f"{self.name}: input of {c.describe(node)}")
        x = self.same(node, x, in_params)
        w, ws = self.weight(node, 3, qgemm and c.attribute(node, "transB", 0))
        bias = self.bias(node, 6, in_params, ws) if qgemm else None
        out_index = 7 if qgemm else 6
        out, unsigned = self.params(node, out_index, f"{self.name}: output of {c.describe(node)}")
        index = self.drafts.add_linear(node.name or f"fc{len(self.drafts.drafts)}", w, bias,
                                       x.params, ws, out)
        return _Q(out, index, unsigned)

    def finish_linear(self, node, value, out, unsigned):
        index = self.drafts.add_linear(value.node.name or f"fc{len(self.drafts.drafts)}",
                                       value.weight, value.bias, value.q.params,
                                       value.weight_scale, out)
        return _Q(out, index, unsigned)

    def table(self, node, q, nodes, out, unsigned, fn):
        c = self.chain
        what = f"{self.name}: {c.describe(node)}"
        if q.layer is None:
            raise UnsupportedModelError(
                f"{what} is not preceded by a quantized MatMul/Gemm; Tessera fuses "
                "activations into the layer before them")
        lut = tabulate_onnx(nodes, c.constants, input_name=nodes[0].input[0],
                            output_name=nodes[-1].output[0], unsigned=q.unsigned,
                            opset_import=c.model.opset_import)
        source = "onnxruntime"
        if lut is None:
            if fn is None:
                raise ValueError(f"{what}: tabulating this activation needs onnxruntime "
                                 "(pip install onnxruntime)")
            lut, source = numpy_lut(fn, q.params.scale, q.params.zero_point, out.scale,
                                    out.zero_point, "onnx"), "numpy float32"
        self.drafts.attach_table(q.layer, lut, out, what=what, source=source)
        return _Q(out, q.layer, unsigned)

    def run(self):
        c = self.chain
        from onnx import TensorProto
        elem = c.input.type.tensor_type.elem_type
        if elem in (TensorProto.INT8, TensorProto.UINT8):
            value = _Q(None, None, elem == TensorProto.UINT8)
        else:
            value = "float"
        current = c.input.name
        for node in self.nodes:
            op = node.op_type
            label = op if node.domain in ("", "ai.onnx") else f"{node.domain}.{op}"
            if label not in QUANTIZED_OPS:
                if op == "QLinearAdd" or op == "Add":
                    raise self.fail(node, "is a quantized Add (MatMul and Add quantized "
                                    "separately round twice); run onnxruntime.quantization."
                                    "quant_pre_process on the float model first so MatMul + Add "
                                    "becomes Gemm, then quantize it")
                raise c.unsupported(node, QUANTIZED_OPS)
            live = [t for t in node.input if t and t not in c.constants and t not in self.qconst]
            if live != [current]:
                raise self.fail(node, f"does not consume the previous tensor {current!r} "
                                "(alone); Tessera imports chains only")
            value = self.step(node, op, value)
            current = node.output[0]
        if current != c.output_name:
            raise UnsupportedModelError(
                f"{self.name}: the graph output {c.output_name!r} is not the end of "
                f"the chain ({current!r})")
        last = value.q if isinstance(value, _Deq) else value
        if not isinstance(last, _Q) or last.layer != len(self.drafts.drafts) - 1 \
                or last.layer is None:
            raise UnsupportedModelError(
                f"{self.name}: the graph does not end with a quantized layer's "
                "output (int8, or DequantizeLinear of it)")
        c.check_input(self.drafts.drafts[0].weight.shape[0])
        fmt = "QOperator" if any(n.op_type in ("QLinearMatMul", "QGemm")
                                 for n in self.nodes) else "QDQ"
        return self.drafts.finish({"source": f"ONNX {fmt} ({self.name})",
                                   "runtime": "onnxruntime"})

    def step(self, node, op, value):
        c = self.chain
        if op in NOOP_OPS:
            c.check_noop(node, None)
            return value
        if op == "QuantizeLinear":
            out, unsigned = self.params(node, 1, f"{self.name}: {c.describe(node)}")
            if value == "float":
                return _Q(out, None, unsigned)
            if isinstance(value, _Linear):
                return self.finish_linear(node, value, out, unsigned)
            if isinstance(value, _Act):
                fn = _FLOAT_FUNCTIONS.get(value.nodes[1].op_type)
                return self.table(node, value.q, (*value.nodes, node), out, unsigned, fn)
            if isinstance(value, _Deq) and value.q.params == out:
                return value.q
            raise self.fail(node, "re-quantizes a tensor with other parameters; not supported")
        if op == "DequantizeLinear":
            if not isinstance(value, _Q):
                raise self.fail(node, "dequantizes a tensor that is not quantized")
            params, _ = self.params(node, 1, f"{self.name}: {c.describe(node)}")
            return _Deq(self.same(node, value, params), node)
        if op in ("MatMul", "Gemm"):
            if not isinstance(value, _Deq):
                raise self.fail(node, "multiplies a float tensor; its input must come from "
                                "DequantizeLinear (a QDQ model) — quantize the model first")
            return self.linear_qdq(node, value)
        if op in ("QLinearMatMul", "QGemm"):
            if not isinstance(value, _Q):
                raise self.fail(node, "takes a tensor that is not quantized")
            return self.linear_qop(node, value)
        if op in ("QLinearSigmoid", "QLinearLeakyRelu"):
            if not isinstance(value, _Q):
                raise self.fail(node, "takes a tensor that is not quantized")
            in_params, _ = self.params(node, 1, f"{self.name}: {c.describe(node)}")
            value = self.same(node, value, in_params)
            out, unsigned = self.params(node, 3, f"{self.name}: {c.describe(node)}")
            fn = _FLOAT_FUNCTIONS["Sigmoid"] if op == "QLinearSigmoid" else None
            return self.table(node, value, (node,), out, unsigned, fn)
        # Relu / Clip / Sigmoid / Tanh on floats: only DequantizeLinear -> act -> QuantizeLinear
        if not isinstance(value, _Deq):
            raise self.fail(node, "is applied to a float tensor that is not the output of "
                            "DequantizeLinear; Tessera needs DequantizeLinear -> activation -> "
                            "QuantizeLinear around it")
        return _Act(value.q, (value.node, node))


def import_quantized_onnx(chain):
    """Return the model of a QDQ or QOperator ONNX file (mode "onnx").

    A chain of dense layers gives a :class:`QuantizedModel`; a model with convolutions, pools,
    concatenations or a softmax (a CNN, a residual DAG) a :class:`tessera.graph.QuantizedGraph`
    (:mod:`.onnx_qgraph`).

    Raises
    ------
    UnsupportedModelError
        An operator is not supported (named with its node and the supported list), the graph is
        not a chain, parameters are not constant, weights are not symmetric, or
        producer/consumer quantization parameters disagree.
    """
    if any(n.op_type in CNN_MARKERS for n in chain.nodes):
        return import_quantized_onnx_graph(chain)
    return _Importer(chain).run()
