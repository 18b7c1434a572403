"""Build a tensor graph from the nodes of a quantized ONNX model (used by :mod:`.onnx_qgraph`).

:class:`Builder` holds the graph's tensors and operations while the importer walks the ONNX
nodes: it reads quantization parameters and quantized constants exactly, converts NCHW/OIHW to
the graph's NHWC/OHWI, and appends one graph operation per ONNX op, its output shape inferred by
the operation registry (:data:`tessera.graph.OPS`). QOperator nodes and resolved QDQ patterns
share these builders, so both formats give the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import OPS, Operation, QuantParams, Tensor
from .errors import UnsupportedModelError
from .lut_tabulate import tabulate_onnx

__all__ = ["Builder", "Q", "Deq", "FloatInput", "Pending"]


@dataclass(frozen=True)
class Q:            # an int8 graph tensor
    name: str


@dataclass(frozen=True)
class Deq:          # float = DequantizeLinear(q)
    q: Q
    node: object


@dataclass(frozen=True)
class FloatInput:   # the model's float input, before its QuantizeLinear
    name: str


@dataclass(frozen=True)
class Pending:      # float result of a QDQ op: becomes operations once quantized
    node: object
    args: tuple


class Builder:
    """Tensors and operations of a graph being built from ONNX nodes (see :mod:`.onnx_qgraph`)."""

    def __init__(self, chain):
        self.c, self.name = chain, chain.name
        self.tensors, self.ops, self.values, self.qconst = {}, [], {}, {}
        self.fmt, self.nchw_order = set(), {}
        self.unsigned = None         # whether the model's activations are uint8

    # -- helpers ------------------------------------------------------------------------------
    def fail(self, node, message):
        return UnsupportedModelError(f"{self.name}: {self.c.describe(node)} {message}")

    def qparams(self, node, index, where, *, axis=None, per_channel=False):
        scale = np.asarray(self.c.constant(node, index, f"{where} scale"), np.float32)
        zp = self.c.constant(node, index + 1, f"{where} zero point")
        zp = np.zeros(scale.shape, np.int8) if zp is None else np.asarray(zp)
        unsigned = zp.dtype == np.uint8
        if unsigned and where == "weight":
            raise self.fail(node, "has uint8 weights; Tessera needs symmetric int8 weights "
                            "(quantize_static with weight_type=QuantType.QInt8)")
        if where != "weight":           # activations: all int8, or all uint8 (held minus 128)
            if self.unsigned is None:
                self.unsigned = unsigned
            elif self.unsigned != unsigned:
                raise self.fail(node, f"has a {zp.dtype} {where} in a model whose other "
                                "activations are not; Tessera imports all-int8 or all-uint8 "
                                "activations")
        if unsigned:
            zp = zp.astype(np.int64) - 128
        if scale.size > 1 and not per_channel:
            raise self.fail(node, f"has a per-channel {where} scale; only weights may have one")
        try:
            if scale.size > 1:
                return QuantParams(scale.ravel(), zp.astype(np.int64).ravel(), axis=axis)
            return QuantParams(scale.reshape(()), int(zp.ravel()[0]))
        except ValueError as exc:
            raise self.fail(node, f"{where}: {exc}") from None

    def tensor(self, name, shape, qparams):
        if name in self.tensors:
            raise ValueError(f"{self.name}: tensor {name!r} is produced twice")
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), "int8", qparams)
        return Q(name)

    def emit(self, node, kind, inputs, out_name, qparams, attrs=None):
        """Append ``kind`` and return its int8 output ``out_name`` (shape inferred)."""
        spec = OPS[kind]
        where = f"{self.name}: {self.c.describe(node)}"
        attrs = spec.check_attrs(attrs, where)
        ins = [None if i is None else self.tensors[i] for i in inputs]
        try:
            shape = spec.infer(attrs, ins, None)
        except ValueError as exc:
            raise self.fail(node, f"cannot be imported: {exc}") from None
        out = self.tensor(out_name, shape, qparams)
        self.ops.append(Operation(kind, list(inputs), [out.name], attrs,
                                  name=node.name or out_name))
        return out

    def q(self, node, index, what="input"):
        value = self.values.get(node.input[index])
        if not isinstance(value, Q):
            raise self.fail(node, f"takes {what} {node.input[index]!r}, which is not an int8 "
                            "tensor of the graph")
        return value

    def deq(self, node, index):
        value = self.values.get(node.input[index])
        if not isinstance(value, Deq):
            raise self.fail(node, f"takes {node.input[index]!r}, which is not the output of a "
                            "DequantizeLinear of an int8 tensor (QDQ); quantize the model first")
        return value

    def check_same(self, node, q, params, what):
        if self.tensors[q.name].qparams != params:
            raise self.fail(node, f"reads {what} {q.name!r} with {params}, but it was quantized "
                            f"with {self.tensors[q.name].qparams}; Tessera imports graphs where "
                            "producer and consumer agree (as ORT's quantizer writes them)")

    def shape(self, q):
        return self.tensors[q.name].shape

    # -- constants ----------------------------------------------------------------------------
    def weight(self, node, tensor, given=None):
        """Return ``(int8 OIHW/[K,N] array, QuantParams)`` of a quantized constant.

        QDQ weights are ``DequantizeLinear`` of an initializer (``tensor``); a QOperator node
        passes its weight and quantization as ``given``.
        """
        if tensor in self.qconst:
            dq = self.qconst[tensor]
            raw = self.c.constants[dq.input[0]]
            axis = self.c.attribute(dq, "axis", 1)
            params = self.qparams(dq, 1, "weight", axis=axis, per_channel=True)
        elif given is not None:
            raw, params = given
        else:
            raise self.fail(node, "has a weight that is not a quantized constant (a "
                            "DequantizeLinear of an int8 initializer)")
        if raw.dtype != np.int8 or np.any(params.zero_point != 0):
            raise self.fail(node, f"has {raw.dtype} weights with zero points "
                            f"{np.unique(params.zero_point).tolist()}; Tessera needs symmetric "
                            "int8 weights (quantize_static's default for QInt8 weights)")
        return raw, params

    def bias(self, node, tensor, x_scale, w_scale):
        if not tensor:
            return None
        if tensor in self.qconst:
            dq = self.qconst[tensor]
            b = self.c.constants[dq.input[0]]
            scale = np.asarray(self.c.constant(dq, 1, "bias scale"), np.float32)
            if b.dtype != np.int32 or not np.allclose(scale, np.float32(x_scale) * w_scale,
                                                      rtol=1e-6, atol=0):
                raise self.fail(node, "has a bias that is not int32 at scale input_scale * "
                                "weight_scale; re-quantize the bias with ORT's quantizer")
        else:
            b = self.c.constant(node, list(node.input).index(tensor), "bias")
            if b.dtype != np.int32:
                raise self.fail(node, f"has a {b.dtype} bias; quantized layers need int32")
        name = f"{tensor}/int32"
        if name not in self.tensors:
            self.tensors[name] = Tensor(name, (b.size,), "int32", data=b.ravel())
        return name

    def constant_tensor(self, name, data, qparams):
        if name not in self.tensors:
            self.tensors[name] = Tensor(name, data.shape, "int8", qparams, data)
        return name

    # -- attributes ---------------------------------------------------------------------------
    def spatial(self, node, x):
        if len(self.shape(x)) != 3:
            raise self.fail(node, f"works on a 4-D NCHW tensor; {x.name!r} has per-sample "
                            f"shape {self.shape(x)} (NHWC)")

    # -- operations (shared by QOperator nodes and resolved QDQ patterns) ---------------------
    def conv(self, node, x, w, w_params, bias, out, out_params):
        self.spatial(node, x)
        group = int(self.c.attribute(node, "group", 1))
        channels = self.shape(x)[2]
        stride, dilation, padding = self.c.window(node, self.shape(x)[:2], tuple(w.shape[2:]))
        attrs = {"stride": stride, "dilation": dilation, "padding": padding}
        scale = w_params.scale
        if group == 1:
            wname = self.constant_tensor(f"{out}/weight", np.ascontiguousarray(
                w.transpose(0, 2, 3, 1)), QuantParams(scale, 0, axis=0 if scale.ndim else None))
            return self.emit(node, "CONV_2D", [x.name, wname, bias], out, out_params, attrs)
        if group != channels or w.shape[1] != 1:
            raise self.fail(node, f"is a grouped conv ({group} groups of {channels} channels); "
                            "Tessera imports group=1 and depthwise (one group per channel)")
        attrs["depth_multiplier"] = w.shape[0] // channels
        wname = self.constant_tensor(f"{out}/weight", np.ascontiguousarray(
            w.transpose(1, 2, 3, 0)), QuantParams(scale, 0, axis=3 if scale.ndim else None))
        return self.emit(node, "DEPTHWISE_CONV_2D", [x.name, wname, bias], out, out_params, attrs)

    def pool(self, node, kind, x, out, out_params):
        self.spatial(node, x)
        c = self.c
        kernel = tuple(int(v) for v in c.attribute(node, "kernel_shape"))
        stride, dilation, padding = c.window(node, self.shape(x)[:2], kernel)
        if dilation != (1, 1) or c.attribute(node, "storage_order", 0):
            raise self.fail(node, "uses dilations or storage_order; not supported")
        attrs = {"pool": kernel, "stride": stride, "padding": padding}
        if kind == "MaxPool":
            return self.emit(node, "MAX_POOL_2D", [x.name], out, out_params, attrs)
        if c.attribute(node, "count_include_pad", 0) and padding != ((0, 0), (0, 0)):
            # Dividing by the whole window = padding with the zero point (which dequantizes to
            # exactly 0.0) and pooling without padding.
            padded = self.shape(x)[0] + sum(padding[0]), self.shape(x)[1] + sum(padding[1])
            if padded == kernel:
                raise self.fail(node, "pools the whole padded image with count_include_pad=1; "
                                "not supported (ORT runs it unlike the global pool)")
            x = self.emit(node, "PAD", [x.name], f"{out}/padded", self.tensors[x.name].qparams,
                          {"paddings": [padding[0], padding[1], (0, 0)]})
            attrs["padding"] = ((0, 0), (0, 0))
        attrs["unsigned"] = bool(self.unsigned)
        return self.emit(node, "AVERAGE_POOL_2D", [x.name], out, out_params, attrs)

    def flat(self, node, x, out=None):
        """Return ``x`` as a 1-D tensor: a RESHAPE named ``out`` unless it is flat already.

        NHWC and NCHW flatten a ``(1, 1, C)`` map alike; a larger map only feeding dense layers
        is flattened in NHWC order and noted in :attr:`nchw_order`, so :meth:`gemm` permutes
        the weight rows to match (exact: the same products, summed in another order).
        """
        shape = self.shape(x)
        if len(shape) == 1:
            return x
        ours = len(shape) == 3 and shape[:2] != (1, 1)
        if len(shape) != 3 or (ours and not self.feeds_only_dense(node.output[0])):
            raise self.fail(node, f"flattens a tensor of per-sample shape {shape} (NHWC) that "
                            "does not only feed Gemm/MatMul; Tessera imports flattening before "
                            "dense layers (whose weights it reorders) or of 1x1 feature maps")
        y = self.emit(node, "RESHAPE", [x.name], out or f"{x.name}/flat",
                      self.tensors[x.name].qparams, {"shape": (int(np.prod(shape)),)})
        if ours:
            self.nchw_order[y.name] = shape
        return y

    def feeds_only_dense(self, tensor):
        """Return whether ONNX ``tensor`` reaches only Gemm/MatMul inputs (through Q/DQ)."""
        if tensor == self.c.output_name:
            return False
        for node in self.c.consumers.get(tensor, []):
            if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity"):
                if not self.feeds_only_dense(node.output[0]):
                    return False
            elif node.op_type not in ("Gemm", "MatMul", "QGemm", "QLinearMatMul") or \
                    node.input[0] != tensor:
                return False
        return True

    def gemm(self, node, x, w_kn, w_params, bias, out, out_params):
        x = self.flat(node, x)
        if x.name in self.nchw_order:      # rows in ONNX's (c, h, w) order -> ours (h, w, c)
            h, w, c = self.nchw_order[x.name]
            w_kn = w_kn.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
        scale = w_params.scale
        wname = self.constant_tensor(f"{out}/weight", np.ascontiguousarray(w_kn),
                                     QuantParams(scale, 0, axis=1 if scale.ndim else None))
        return self.emit(node, "FULLY_CONNECTED", [x.name, wname, bias], out, out_params)

    def softmax(self, node, x, out, out_params):
        rank = len(self.shape(x)) + 1
        opset = self.c.attribute(node, "opset", 13) if node.domain == "com.microsoft" else max(
            (o.version for o in self.c.model.opset_import if o.domain in ("", "ai.onnx")),
            default=13)
        # Before opset 13 Softmax normalises over everything from axis on (default 1).
        axis = int(self.c.attribute(node, "axis", -1 if opset >= 13 else 1)) % rank
        if (rank == 4 and (axis != 1 or opset < 13)) or (rank != 4 and axis != rank - 1):
            raise self.fail(node, f"normalises over axis {axis} of a {rank}-D tensor; Tessera's "
                            "SOFTMAX is over the channels (the last NHWC axis)")
        return self.emit(node, "SOFTMAX", [x.name], out, out_params)

    def concat(self, node, xs, out, out_params):
        rank = len(self.shape(xs[0])) + 1
        axis = int(self.c.attribute(node, "axis")) % rank
        if axis != 1:
            raise self.fail(node, f"concatenates along axis {axis}; Tessera imports channel "
                            "concatenation (axis 1 of NCHW)")
        return self.emit(node, "CONCATENATION", [x.name for x in xs], out, out_params,
                         {"axis": -1})

    def table(self, node, x, nodes, out, out_params):
        """Return a RELU (a Relu on unchanged quantization) or a LUT tabulated by ORT."""
        if node.op_type == "Relu" and self.tensors[x.name].qparams == out_params:
            return self.emit(node, "RELU", [x.name], out, out_params)
        lut = tabulate_onnx(nodes, self.c.constants, input_name=nodes[0].input[0],
                            output_name=nodes[-1].output[0], unsigned=bool(self.unsigned),
                            opset_import=self.c.model.opset_import)
        if lut is None:
            raise self.fail(node, "needs onnxruntime to be tabulated (pip install onnxruntime)")
        table = f"{out}/table"
        self.tensors[table] = Tensor(table, (256,), "int8", data=lut)
        return self.emit(node, "LUT", [x.name, table], out, out_params,
                         {"function": node.op_type.lower()})
