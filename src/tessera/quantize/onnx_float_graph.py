"""Read a float ONNX CNN (NCHW, e.g. exported from PyTorch) as an NHWC :class:`FloatGraph`.

The graph is walked in the file's node order (ONNX requires it topological); every 4-D tensor is
held NHWC and convolution weights are turned from OIHW into the graph's layouts, so the model's
input and output stay NCHW for the user (``input_layout = "NCHW"``). A ``Flatten``/``Reshape``
of a ``C x H x W`` tensor keeps ONNX's channel-major order by permuting the rows of the
``Gemm``/``MatMul`` that reads it. Operators: ``Conv`` (group 1, or depthwise: group = input
channels), ``BatchNormalization`` (folded into the Conv/Gemm before it), ``Relu``, ``Clip``
(relu6/relu), ``Sigmoid``, ``Tanh``, ``MaxPool``, ``AveragePool`` (padding not counted),
``GlobalAveragePool``, ``ReduceMean`` over H and W, ``Pad`` (constant zeros on H and W),
``HardSwish``, ``HardSigmoid`` (PyTorch's), ``Add`` (two run-time tensors),
``Concat`` (channels), ``Flatten``, ``Reshape`` to ``[batch, -1]``, ``Gemm``, ``MatMul`` (+
``Add`` of a constant bias), ``Softmax`` (last axis), ``Identity``, ``Dropout``.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedModelError
from .floatgraph import GraphBuilder
from .onnx_graph import OnnxChain, _bias_vector, _clip_bounds, _gemm_weights

__all__ = ["GRAPH_ONLY_OPS", "ONNX_GRAPH_OPS", "is_float_cnn", "onnx_float_graph"]

#: Operators that make a float ONNX model a graph rather than a dense chain (a chain of Gemm
#: layers ending in Softmax stays with the chain reader, which refuses the Softmax).
GRAPH_ONLY_OPS = ("Conv", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
                  "ReduceMean", "Concat")
#: Every operator :func:`onnx_float_graph` reads.
ONNX_GRAPH_OPS = GRAPH_ONLY_OPS + ("Pad", "Softmax", "Relu", "Clip", "Sigmoid", "Tanh",
                                   "HardSwish", "HardSigmoid", "Add", "Flatten", "Reshape",
                                   "Gemm", "MatMul", "Identity", "Dropout")
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
                "HardSigmoid": "hardsigmoid"}


def is_float_cnn(chain):
    """Return whether the float ONNX ``chain`` needs the graph reader (convolutions, pools,
    BatchNorm, concat or an Add of two run-time tensors)."""
    for node in chain.nodes:
        if node.op_type in GRAPH_ONLY_OPS:
            return True
        if node.op_type == "Add" and all(t not in chain.constants for t in node.input):
            return True
    return False


class _Reader(GraphBuilder):
    def __init__(self, chain):
        self.chain = chain
        super().__init__(chain.input.name, chain.nhwc_input_shape())
        self.alias = {chain.input.name: chain.input.name}
        self.permuted = {}         # flat tensor -> ONNX (C, H, W) order as indices into ours

    def refuse(self, node, why):
        raise UnsupportedModelError(f"{self.chain.name}: {self.chain.describe(node)} {why}")

    def conv(self, node, x, output):
        w = np.asarray(self.chain.constant(node, 1, "weight"), np.float64)    # [OC, IC/g, KH, KW]
        bias = self.chain.constant(node, 2, "bias")
        bias = None if bias is None else np.asarray(bias, np.float64)
        group, channels = int(self.chain.attribute(node, "group", 1)), self.shapes[x][2]
        stride, dilation, padding = self.chain.window(node, self.shapes[x][:2], w.shape[2:])
        attrs = {"stride": stride, "dilation": dilation, "padding": padding}
        if group == 1:
            self.emit("CONV_2D", output, [x], output, attrs, w.transpose(0, 2, 3, 1), bias)
        elif group == channels and w.shape[1] == 1:
            attrs["depth_multiplier"] = w.shape[0] // channels
            self.emit("DEPTHWISE_CONV_2D", output, [x], output, attrs,
                      w.transpose(1, 2, 3, 0), bias)
        else:
            self.refuse(node, f"is a grouped convolution (group={group}); Tessera reads group 1 "
                        "and depthwise (group = input channels)")

    def pool(self, node, x, output):
        chain, op = self.chain, node.op_type
        kernel = tuple(chain.attribute(node, "kernel_shape"))
        if chain.attribute(node, "ceil_mode", 0) or any(
                d != 1 for d in chain.attribute(node, "dilations", [1, 1])):
            self.refuse(node, "uses ceil_mode or dilations; Tessera reads floor-mode pools")
        stride, _, padding = self.chain.window(node, self.shapes[x][:2], kernel)
        if op == "AveragePool" and chain.attribute(node, "count_include_pad", 0) \
                and padding != ((0, 0), (0, 0)):
            self.refuse(node, "counts the padding in its average (count_include_pad=1); "
                        "Tessera averages over the in-bounds taps only (in PyTorch: "
                        "AvgPool2d(..., count_include_pad=False))")
        self.emit("MAX_POOL_2D" if op == "MaxPool" else "AVERAGE_POOL_2D", output, [x], output,
                  {"pool": kernel, "stride": stride, "padding": padding})

    def check_flatten(self, node, features):
        """Accept a Reshape to ``[batch, -1]`` or ``[batch, features]``, ``batch`` 0, -1, or 1
        when the model's batch is 1 (a static export folds ``x.view(x.size(0), -1)`` to it)."""
        shape = [int(v) for v in np.asarray(self.chain.constant(node, 1, "target shape")).ravel()]
        batches = (0, -1, 1) if self.chain.input_dims()[0] == 1 else (0, -1)
        if len(shape) != 2 or shape[0] not in batches or shape[1] not in (-1, features) \
                or shape == [-1, -1]:
            self.refuse(node, f"reshapes to {shape}; Tessera reads reshapes that flatten to "
                        f"[batch, -1] or [batch, {features}]")

    def dense(self, node, x, output, weight, bias):
        if x in self.permuted:                  # rows in ONNX's (C, H, W) order
            rows = np.empty_like(weight)
            rows[self.permuted[x]] = weight
            weight = rows
        self.emit("FULLY_CONNECTED", output, [x], output, {}, weight, bias)

    def flatten(self, node, x, output):
        shape = self.shapes[x]
        self.emit("RESHAPE", output, [x], output, {"shape": (int(np.prod(shape)),)})
        if len(shape) == 3 and shape[:2] != (1, 1):
            h, w, c = shape
            self.permuted[output] = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1) \
                .ravel()

    def node(self, node, nodes_after):
        chain, op = self.chain, node.op_type
        if op == "Identity" and node.input[0] in chain.constants:
            # torch.onnx writes a repeated weight once and copies it through Identity nodes.
            chain.constants[node.output[0]] = chain.constants[node.input[0]]
            return
        inputs = [self.alias.get(t, t) for t in node.input if t and t not in chain.constants]
        self.check_inputs(inputs, chain.describe(node))
        missing = [t for t in inputs if t not in self.shapes]
        if missing:
            self.refuse(node, f"reads {missing[0]!r}, which no earlier node produces (nodes "
                        "must be in topological order)")
        for tensor in inputs:
            if tensor in self.permuted and op not in ("Gemm", "MatMul"):
                self.refuse(node, f"reads the flattened {tensor!r}; a Flatten of a CxHxW "
                            "tensor must feed a Gemm or MatMul")
        x, output = inputs[0] if inputs else None, node.output[0]
        if op in ("Identity", "Dropout"):
            self.alias[output] = x
        elif op == "Conv":
            self.conv(node, x, output)
        elif op in ("MaxPool", "AveragePool"):
            self.pool(node, x, output)
        elif op in ("GlobalAveragePool", "ReduceMean"):
            axes = [2, 3] if op == "GlobalAveragePool" else \
                sorted(int(a) for a in (chain.attribute(node, "axes") or
                                        chain.constant(node, 1, "axes")))
            if axes != [2, 3]:
                self.refuse(node, f"averages over axes {axes}; Tessera reads means over H and "
                            "W (axes [2, 3])")
            self.emit("MEAN", output, [x], output,
                      {"keepdims": bool(chain.attribute(node, "keepdims", 1))})
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (chain.constant(node, i, what) for i, what in
                                      enumerate(("scale", "bias", "mean", "variance"), 1))
            self.fold_batchnorm(x, output, gamma, beta, mean, var,
                                float(chain.attribute(node, "epsilon", 1e-5)),
                                name=node.name or output, where=chain.describe(node))
        elif op in _ACTIVATIONS or op == "Clip":
            function = _ACTIVATIONS.get(op) or _clip_bounds(chain, node)
            if op == "HardSigmoid" and not np.allclose(
                    [chain.attribute(node, "alpha", 0.2), chain.attribute(node, "beta", 0.5)],
                    [1 / 6, 0.5]):
                self.refuse(node, "has alpha/beta other than 1/6 and 0.5 (PyTorch's "
                            "Hardsigmoid); Tessera's table is clip(x / 6 + 0.5, 0, 1)")
            self.emit("ACTIVATION", output, [x], output, {"function": function})
        elif op == "Add" and len(inputs) == 2:
            self.emit("ADD", output, inputs, output)
        elif op == "Concat":
            rank = len(self.shapes[x]) + 1
            axis = int(chain.attribute(node, "axis")) % rank
            if rank == 4 and axis != 1:
                self.refuse(node, "concatenates along H or W; Tessera reads channel concats")
            self.emit("CONCATENATION", output, inputs, output,
                      {"axis": -1 if rank == 4 else axis - 1})
        elif op in ("Flatten", "Reshape"):
            if op == "Flatten" and chain.attribute(node, "axis", 1) != 1:
                self.refuse(node, "flattens from an axis other than 1")
            if op == "Reshape":
                self.check_flatten(node, int(np.prod(self.shapes[x])))
            self.flatten(node, x, output)
        elif op == "Pad":
            self.pad(node, x, output)
        elif op == "Gemm":
            self.dense(node, x, output, *_gemm_weights(chain, node))
        elif op == "MatMul":
            self.matmul(node, x, output, nodes_after)
        elif op == "Softmax":
            if int(chain.attribute(node, "axis", -1)) not in (-1, len(self.shapes[x])):
                self.refuse(node, "is not over the last axis")
            self.emit("SOFTMAX", output, [x], output)
        else:
            raise chain.unsupported(node, ONNX_GRAPH_OPS)

    def pad(self, node, x, output):
        chain = self.chain
        mode = chain.attribute(node, "mode", b"constant")
        pads = [int(p) for p in np.asarray(chain.constant(node, 1, "pads")).ravel()]
        value = chain.constant(node, 2, "constant value")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "constant" or len(pads) != 8 \
                or any(pads[i] for i in (0, 1, 4, 5)) or (value is not None and float(value)):
            self.refuse(node, f"pads {pads} ({mode!r}); Tessera reads constant zero padding of "
                        "H and W of a [N, C, H, W] tensor")
        self.emit("PAD", output, [x], output,
                  {"paddings": ((pads[2], pads[6]), (pads[3], pads[7]), (0, 0))})

    def matmul(self, node, x, output, nodes_after):
        weight = np.asarray(self.chain.constant(node, 1, "weight"), np.float64)
        users = [n for n in nodes_after if output in n.input]
        bias = None
        if len(users) == 1 and users[0].op_type == "Add":
            add = users[0]
            other = [t for t in add.input if t != output]
            if other and other[0] in self.chain.constants:
                bias = _bias_vector(self.chain, add, self.chain.constants[other[0]],
                                    weight.shape[1])
                output = add.output[0]
                self.skip.add(id(add))
        self.dense(node, x, output, weight, bias)


def onnx_float_graph(chain):
    """Return the float ONNX ``chain`` (:class:`~.onnx_graph.OnnxChain`) as a FloatGraph.

    Raises
    ------
    UnsupportedModelError
        An operator, attribute or topology Tessera does not read (the node is named).
    """
    reader = _Reader(chain)
    reader.skip = set()
    nodes = list(chain.nodes)
    for index, node in enumerate(nodes):
        if id(node) not in reader.skip:
            reader.node(node, nodes[index + 1:])
    output = reader.alias.get(chain.output_name, chain.output_name)
    if output in reader.permuted:
        raise UnsupportedModelError(f"{chain.name}: the output {chain.output_name!r} is a "
                                    "flattened CxHxW tensor; Tessera needs it to feed a Gemm")
    layout = "NCHW" if len(reader.input_shape) == 3 else "NHWC"
    return reader.graph(output, layout=layout, name=chain.model.graph.name or "onnx")
