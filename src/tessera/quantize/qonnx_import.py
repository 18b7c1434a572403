"""Import QONNX and Brevitas QCDQ models (quantization-aware training) at the accelerator's widths.

QONNX (FINN's and hls4ml's exchange format, what ``brevitas.export.export_qonnx`` writes) marks
every quantized tensor with a ``Quant`` (``BipolarQuant``, ``Trunc``) node; Brevitas's
``export_onnx_qcdq`` writes ``QuantizeLinear → Clip → DequantizeLinear`` instead. Both describe
integer grids (:mod:`.qonnx_grids`), and a chain of them imports as a :class:`QuantizedModel`::

    Quant(input) -> Gemm | MatMul [+ Add](Quant(W), Quant(bias, 32 bit)) [-> Relu] -> Quant -> ...

Weights are the file's integers (per tensor or per output channel, zero point 0): 2- to 16-bit
weights map onto 4-, 8- or 16-bit operands unchanged, bipolar weights onto ±1. The bias must be
on the grid ``input_scale * weight_scale`` (Brevitas ``bias_quant=Int32Bias``). Activation grids
(signed or unsigned, any width up to 16 bits) map onto one activation width for the whole model
by an integer offset of the zero point (unsigned ``q`` becomes ``q - 2**(bits-1)``); a grid
narrower than that width is the requantizer's clamp (none or relu) or, at 8 bits, a lookup
table — as is any elementwise ``Quant``/``BipolarQuant``/``Trunc``/``Relu`` applied to an
already quantized activation, tabulated by running that node in QONNX's executor.

The layers requantize in mode ``"onnx"``: ``rint(float32(acc) * M)``, which is QONNX's float
``Gemm`` then ``Quant`` (round half to even) exactly when the scales are powers of two (Brevitas
``*FixedPoint`` quantizers) and the accumulators stay below 2**24, and up to float32 rounding
otherwise (docs/import.md gives the measured agreement; ``info["matches"]`` says which). Anything
else is refused with the node named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedModelError
from .qonnx_grids import Grid, quant_grid, rounding, tabulate_node

__all__ = ["QONNX_OPS", "QONNX_CHAIN_OPS", "is_qonnx_model", "import_qonnx"]

#: QONNX quantizer operators (domain ``qonnx.custom_op.general`` or FINN's older names).
QONNX_OPS = ("Quant", "BipolarQuant", "Trunc")
#: Every operator the importer reads.
QONNX_CHAIN_OPS = QONNX_OPS + ("QuantizeLinear", "Clip", "DequantizeLinear", "Gemm", "MatMul",
                               "Add", "Relu", "Identity", "Dropout", "Flatten", "Reshape")
_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
_WIDTHS = (4, 8, 16)
_INPUT = "model input"


def is_qonnx_model(model):
    """Return whether an ``onnx.ModelProto`` holds QONNX quantizers or QCDQ ``Clip`` nodes.

    QCDQ: a ``Clip`` between a ``QuantizeLinear`` (or an integer initializer) and a
    ``DequantizeLinear``, which ONNX Runtime's quantizer never writes.
    """
    nodes = model.graph.node
    integers = {t.name for t in model.graph.initializer if t.data_type in (2, 3, 4, 5)}
    made_by = {out: n.op_type for n in nodes for out in n.output}
    dequantized = {i for n in nodes if n.op_type == "DequantizeLinear" for i in n.input[:1]}
    return any(n.op_type in QONNX_OPS and n.domain in _DOMAINS for n in nodes) or any(
        n.op_type == "Clip" and n.input and n.output[0] in dequantized
        and (made_by.get(n.input[0]) == "QuantizeLinear" or n.input[0] in integers)
        for n in nodes)


@dataclass
class _Acc:
    """A layer being read: its input grid, weights, bias and whether a Relu follows."""

    node: object
    x: Grid
    weight: np.ndarray        # int [K, N]
    weight_scale: np.ndarray  # float32 [N]
    bias: np.ndarray | None = None
    relu: bool = False
    out: Grid | None = None


class _Reader:
    def __init__(self, chain):
        self.chain, self.values, self.layers, self.input = chain, {}, [], None

    def fail(self, node, text):
        return UnsupportedModelError(f"{self.chain.name}: {self.chain.describe(node)} {text}")

    def value(self, node, index):
        name = node.input[index]
        if name in self.values:
            return self.values[name]
        if name in self.chain.constants:
            return np.asarray(self.chain.constants[name])
        if name == self.chain.input.name:
            return _INPUT
        raise ValueError(f"{self.chain.name}: {self.chain.describe(node)} reads tensor {name!r}, "
                         "which no earlier node computes; the graph is not in order or corrupt")

    # -- quantizers ----------------------------------------------------------------------------
    def quantize(self, node, x, grid, round_mode):
        """Put ``grid`` (a quantizer's) on ``x``: a constant, the input, a layer or a table."""
        if isinstance(x, np.ndarray):
            return grid
        if round_mode not in ("ROUND", "HALF_EVEN"):
            raise self.fail(node, f"rounds {round_mode}; Tessera requantizes activations to "
                            "nearest, ties to even (rounding_mode ROUND)")
        if grid.per_tensor_scale is None:
            raise self.fail(node, "quantizes an activation per channel; Tessera's activations "
                            "have one scale")
        if isinstance(x, str):
            if self.input is not None or self.layers:
                raise self.fail(node, "quantizes the model input a second time")
            self.input = grid
            return grid
        if isinstance(x, _Acc):
            if x.out is not None:
                raise self.fail(node, "quantizes a layer output twice")
            x.out = grid.with_(layer=self.layers.index(x), relu=x.relu)
            return x.out
        return self.table(node, x, grid.scale, grid.zero_point)

    def table(self, node, x, scale, zero_point):
        if not isinstance(x, Grid) or x.ints is not None or not x.dequantized or x.layer is None:
            raise self.fail(node, "does not follow a quantized layer output; Tessera applies "
                            "elementwise quantizers as a table on a layer's output")
        ints = tabulate_node(self.chain, node, x, scale, zero_point)
        return Grid(np.float32(scale), int(zero_point), int(ints.min()), int(ints.max()), node,
                    layer=x.layer, steps=x.steps + ((x, ints),))

    def node_quant(self, node):
        x = self.value(node, 0)
        grid = quant_grid(self.chain, node, x if isinstance(x, np.ndarray) else None)
        return self.quantize(node, x, grid, rounding(self.chain, node)[0])

    def node_bipolarquant(self, node):
        x, scale = self.value(node, 0), self.chain.constant(node, 1, "scale")
        if isinstance(x, np.ndarray):
            return Grid(np.asarray(scale, np.float32), 0, -1, 1, node,
                        ints=np.where(x >= 0, 1, -1).astype(np.int64))
        return self.table(node, x, np.asarray(scale, np.float32).ravel()[0], 0)

    def node_trunc(self, node):
        x, c = self.value(node, 0), self.chain
        scale, zero_point = c.constant(node, 1, "scale"), c.constant(node, 2, "zero point")
        if len(node.input) > 5:          # Trunc v2: output scale, zero point / trunc scale
            out_scale = np.float32(c.constant(node, 4, "output scale"))
            zero_point = zero_point / 2.0 ** np.round(np.log2(out_scale / scale))
            scale = out_scale
        zp = float(np.asarray(zero_point).ravel()[0])
        if zp != round(zp):
            raise self.fail(node, f"has a fractional output zero point {zp}")
        return self.table(node, x, np.asarray(scale, np.float32).ravel()[0], int(zp))

    def node_quantizelinear(self, node):
        x, c = self.value(node, 0), self.chain
        scale = np.asarray(c.constant(node, 1, "scale"), np.float32)
        zp = c.constant(node, 2, "zero point")
        zp = np.zeros((), np.uint8) if zp is None else np.asarray(zp)
        if zp.dtype.kind not in "iu" or np.any(zp != zp.ravel()[0]):
            raise self.fail(node, f"has zero points {zp.ravel().tolist()[:4]} of {zp.dtype}; "
                            "Tessera needs one integer zero point")
        info = np.iinfo(zp.dtype)
        grid = Grid(scale, int(zp.ravel()[0]), int(info.min), int(info.max), node,
                    dequantized=False)
        if isinstance(x, np.ndarray):
            y = np.clip(np.round(x.astype(np.float32) / scale) + grid.zero_point, info.min,
                        info.max)
            return grid.with_(ints=y.astype(np.int64))
        return self.quantize(node, x, grid, "ROUND")

    def node_clip(self, node):
        x = self.value(node, 0)
        lo, hi = (self.chain.constant(node, i, "bound") for i in (1, 2))
        if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
            return np.clip(x, lo, hi).astype(x.dtype)
        if not isinstance(x, Grid) or x.dequantized:
            raise self.fail(node, "clamps a float tensor; Tessera reads Clip only between "
                            "QuantizeLinear and DequantizeLinear (QCDQ)")
        lo = x.lo if lo is None else max(x.lo, int(np.asarray(lo)))
        hi = x.hi if hi is None else min(x.hi, int(np.asarray(hi)))
        ints = None if x.ints is None else np.clip(x.ints, lo, hi)
        return x.with_(lo=lo, hi=hi, ints=ints)

    def node_dequantizelinear(self, node):
        x, c = self.value(node, 0), self.chain
        scale = np.asarray(c.constant(node, 1, "scale"), np.float32)
        zp = c.constant(node, 2, "zero point")
        zp = np.zeros((), x.dtype if isinstance(x, np.ndarray) else np.uint8) if zp is None \
            else np.asarray(zp)
        if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
            if np.any(zp != 0):
                raise self.fail(node, "has a constant with zero points other than 0; Tessera "
                                "needs symmetric weights and biases")
            info = np.iinfo(x.dtype)
            return Grid(scale, 0, int(info.min), int(info.max), node, ints=x.astype(np.int64))
        if not isinstance(x, Grid) or x.dequantized or not np.array_equal(
                np.broadcast_to(scale, np.shape(x.scale)), x.scale) \
                or np.any(zp != x.zero_point):
            raise self.fail(node, "does not dequantize with the scale and zero point of its "
                            "QuantizeLinear; Tessera reads matching QuantizeLinear/"
                            "DequantizeLinear pairs")
        return x.with_(dequantized=True)

    # -- layers --------------------------------------------------------------------------------
    def weights(self, node, w, transposed):
        """Return the int weights ``[K, N]`` and float32 scales ``[N]`` of a constant grid."""
        if not isinstance(w, Grid) or w.ints is None or not w.dequantized:
            raise self.fail(node, "has weights that are not a quantized constant (Quant, "
                            "BipolarQuant or QuantizeLinear/DequantizeLinear of an initializer)")
        if w.zero_point != 0 or w.ints.ndim != 2:
            raise self.fail(node, f"has {w.ints.ndim}-D weights with zero point {w.zero_point}; "
                            "Tessera needs 2-D symmetric weights (zero point 0)")
        ints = w.ints.T if transposed else w.ints
        scale = np.broadcast_to(np.asarray(w.scale, np.float32).T if transposed else w.scale,
                                ints.shape)
        if np.any(scale != scale[:1]):
            raise self.fail(node, "has weight scales that vary along the input axis; Tessera "
                            "reads per-tensor or per-output-channel scales")
        return ints, np.ascontiguousarray(scale[0])

    def layer(self, node, x, w, transposed):
        if not isinstance(x, Grid) or x.ints is not None or not x.dequantized:
            raise self.fail(node, "takes an input that is not a quantized activation; add a "
                            "quantizer before it (Brevitas: QuantIdentity or input_quant)")
        ints, scale = self.weights(node, w, transposed)
        if x.per_tensor_scale is None or ints.shape[0] == 0:
            raise self.fail(node, "has an input without one scale")
        self.layers.append(_Acc(node, x, ints, scale))
        return self.layers[-1]

    def bias(self, node, acc, b):
        n = acc.weight.shape[1]
        if acc.bias is not None or acc.relu or acc.out is not None:
            raise self.fail(node, "adds a second bias or adds after the activation; Tessera "
                            "reads one bias per layer, before the activation")
        expected = np.float32(acc.x.per_tensor_scale) * acc.weight_scale
        if isinstance(b, Grid) and b.ints is not None and b.dequantized:
            scale = np.broadcast_to(np.asarray(b.scale, np.float32).ravel(), (n,)) \
                if np.size(b.scale) in (1, n) else None
            if scale is None or b.zero_point != 0 or not np.array_equal(scale, expected):
                raise self.fail(node, "has a bias whose grid is not input_scale * weight_scale "
                                "with zero point 0; Tessera adds an int32 bias to the "
                                "accumulator (Brevitas: bias_quant=Int32Bias)")
            ints = b.ints.ravel()
        elif isinstance(b, np.ndarray) and b.dtype.kind == "f":
            ints = np.rint(b.ravel() / expected)
            if not np.array_equal((ints * expected).astype(np.float32), b.ravel()):
                raise self.fail(node, "has a float bias that is not on the accumulator's grid "
                                "(input_scale * weight_scale); quantize it to int32 (Brevitas: "
                                "bias_quant=Int32Bias)")
        else:
            raise self.fail(node, "adds a tensor that is not a constant bias")
        if ints.shape != (n,) or np.any(np.abs(ints) > np.iinfo(np.int32).max):
            raise self.fail(node, f"has a bias of shape {ints.shape} or outside int32; "
                            f"expected {n} int32 values")
        acc.bias = ints.astype(np.int32)
        return acc

    def node_gemm(self, node):
        a = self.chain.attribute
        if a(node, "transA", 0) or a(node, "alpha", 1.0) != 1.0 or a(node, "beta", 1.0) != 1.0:
            raise self.fail(node, "has transA, alpha or beta other than 0, 1, 1")
        acc = self.layer(node, self.value(node, 0), self.value(node, 1), a(node, "transB", 0))
        if len(node.input) > 2 and node.input[2]:
            self.bias(node, acc, self.value(node, 2))
        return acc

    def node_matmul(self, node):
        return self.layer(node, self.value(node, 0), self.value(node, 1), False)

    def node_add(self, node):
        a, b = self.value(node, 0), self.value(node, 1)
        if isinstance(b, _Acc):
            a, b = b, a
        if not isinstance(a, _Acc):
            raise self.fail(node, "does not add a bias to a MatMul; Tessera reads no other Add")
        return self.bias(node, a, b)

    def node_relu(self, node):
        x = self.value(node, 0)
        if isinstance(x, _Acc) and x.out is None:
            x.relu = True
            return x
        return self.table(node, x, np.asarray(x.scale, np.float32).ravel()[0], x.zero_point) \
            if isinstance(x, Grid) else self.fail(node, "is not on a layer or its output")

    def node_identity(self, node):
        return self.value(node, 0)

    node_dropout = node_identity

    def node_flatten(self, node):
        """A flatten to ``[batch, -1]`` of the input or an activation (rows stay rows)."""
        x = self.value(node, 0)
        if not (isinstance(x, str) or isinstance(x, Grid) and x.ints is None):
            raise self.fail(node, "reshapes a constant or a layer's accumulator; Tessera reads "
                            "flattens of the model input or of quantized activations")
        self.chain.check_noop(node, None)
        return x

    node_reshape = node_flatten

    def read(self):
        for node in self.chain.nodes:
            if node.op_type not in QONNX_CHAIN_OPS or (
                    node.op_type in QONNX_OPS and node.domain not in _DOMAINS):
                raise UnsupportedModelError(
                    f"{self.chain.name}: unsupported operator in {self.chain.describe(node)}; "
                    f"Tessera imports QONNX/QCDQ chains of: {', '.join(QONNX_CHAIN_OPS)}")
            result = getattr(self, f"node_{node.op_type.lower()}")(node)
            if isinstance(result, UnsupportedModelError):
                raise result
            self.values[node.output[0]] = result
        return self


def import_qonnx(chain):
    """Return the :class:`QuantizedModel` of a QONNX or QCDQ chain (``onnx_graph.OnnxChain``).

    Raises
    ------
    UnsupportedModelError
        An operator, quantizer, grid or topology Tessera does not import; the node is named.
    """
    from .qonnx_widths import build_model
    return build_model(_Reader(chain).read())
