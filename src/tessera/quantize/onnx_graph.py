"""Read ONNX files safely and walk their graphs; import float ONNX MLPs as float layers.

An ONNX file is parsed as a protobuf message only: no code in it is ever executed. Graphs must be
*chains*: one float (or int8/uint8) input, every node consuming the tensor the previous node
produced, constant weights stored as initializers or ``Constant`` nodes.

Float graphs (:func:`float_layers_from_onnx`) may use ``Gemm`` (``transA = 0``; ``transB``,
``alpha`` and ``beta`` are folded into the weights), ``MatMul`` followed by ``Add`` of a constant
bias, ``Relu``, ``Clip`` (``[0, 6]`` is relu6, ``[0, inf)`` relu; other bounds are refused),
``Sigmoid``, ``Tanh`` and the no-ops ``Flatten`` (axis 1), ``Reshape`` to ``[batch, -1]``,
``Identity`` and ``Dropout``. Each activation must directly follow its ``Gemm``/``MatMul``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UnsupportedModelError
from .floatmodel import FloatLayer
from .sources import read_model_bytes

__all__ = ["FLOAT_OPS", "OnnxChain", "load_onnx", "float_layers_from_onnx", "is_onnx_model"]

#: Operators of float ONNX graphs that Tessera imports.
FLOAT_OPS = ("Gemm", "MatMul", "Add", "Relu", "Clip", "Sigmoid", "Tanh", "Flatten", "Reshape",
             "Identity", "Dropout")
NOOP_OPS = ("Flatten", "Reshape", "Identity", "Dropout")
_ACTIVATION_OPS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


def is_onnx_model(obj):
    """Return whether ``obj`` is an ``onnx.ModelProto`` (without importing onnx)."""
    cls = type(obj)
    return cls.__name__ == "ModelProto" and cls.__module__.startswith("onnx")


def load_onnx(source):
    """Return ``(ModelProto, name)`` for a path, ``bytes`` or an ``onnx.ModelProto``.

    Raises
    ------
    ValueError
        The file is empty, truncated, not an ONNX protobuf, holds no graph, or its external
        weight data is missing or lies outside its directory.
    """
    import onnx
    from google.protobuf.message import DecodeError
    if is_onnx_model(source):
        model, name = source, "the ONNX model"
    else:
        data, name = read_model_bytes(source, "ONNX")
        if not data:
            raise ValueError(f"{name} is empty, not an ONNX model")
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise ValueError(f"{name} is not a valid ONNX model (protobuf decoding failed: "
                             f"{exc}); the file may be truncated or of another format") from None
        if not isinstance(source, (bytes, bytearray)) and any(
                t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            from onnx.external_data_helper import load_external_data_for_model
            try:
                load_external_data_for_model(model, str(Path(source).parent))
            except (onnx.checker.ValidationError, OSError) as exc:
                raise ValueError(f"{name}: cannot read its external weight data ({exc}); keep "
                                 "the data files the model names beside it, inside its "
                                 "directory") from None
    if not model.graph.node or not model.graph.input:
        raise ValueError(f"{name} holds no ONNX graph (no nodes or no inputs); the file may be "
                         "truncated or of another format")
    return model, name


class OnnxChain:
    """The nodes of a chain-shaped ONNX graph with its constants.

    Parameters
    ----------
    model : onnx.ModelProto
    name : str
        Used in error messages (file name).
    """

    def __init__(self, model, name):
        from onnx import numpy_helper
        self.model, self.name = model, name
        graph = model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                self.constants[node.output[0]] = self._constant_node_value(node)
            else:
                self.nodes.append(node)
        inputs = [i for i in graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise UnsupportedModelError(
                f"{name}: Tessera imports models with exactly one input tensor, "
                f"found {len(inputs)}: {[i.name for i in inputs]}")
        if len(graph.output) != 1:
            raise UnsupportedModelError(
                f"{name}: Tessera imports models with exactly one output tensor, "
                f"found {len(graph.output)}: {[o.name for o in graph.output]}")
        self.input = inputs[0]
        self.output_name = graph.output[0].name
        self.consumers = {}
        for node in self.nodes:
            for tensor in node.input:
                if tensor and tensor not in self.constants:
                    self.consumers.setdefault(tensor, []).append(node)

    def _constant_node_value(self, node):
        from onnx import helper, numpy_helper
        for attr in node.attribute:
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
            if attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
                return np.asarray(helper.get_attribute_value(attr))
        raise UnsupportedModelError(
            f"{self.name}: Constant node {node.name!r} has no supported value")

    def describe(self, node):
        """Return ``"node 'name' (OpType)"`` for messages."""
        label = node.name or (node.output[0] if node.output else "?")
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        return f"node {label!r} ({op})"

    def unsupported(self, node, supported):
        """Return the error for an operator Tessera does not import."""
        return UnsupportedModelError(
            f"{self.name}: unsupported operator in {self.describe(node)}; Tessera "
            f"imports chains of: {', '.join(supported)}")

    def constant(self, node, index, what):
        """Return input ``index`` of ``node`` as a constant array (or None if absent)."""
        if index >= len(node.input) or not node.input[index]:
            return None
        tensor = node.input[index]
        if tensor not in self.constants:
            raise UnsupportedModelError(
                f"{self.name}: the {what} of {self.describe(node)} comes from tensor "
                f"{tensor!r}, which is computed at run time; Tessera needs it to be a "
                "constant initializer (fold constants before importing, e.g. with "
                "onnxruntime's quant_pre_process or onnxsim)")
        return self.constants[tensor]

    @staticmethod
    def attribute(node, name, default=None):
        """Return attribute ``name`` of ``node`` (Python value) or ``default``."""
        from onnx import helper
        for attr in node.attribute:
            if attr.name == name:
                return helper.get_attribute_value(attr)
        return default

    def input_dims(self):
        """Return the input's dimensions (int, str for symbolic, None unknown) or None."""
        ttype = self.input.type.tensor_type
        if not ttype.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in ttype.shape.dim]

    def check_noop(self, node, features):
        """Check that ``node`` (Flatten/Reshape/Identity/Dropout) keeps ``[batch, features]``."""
        op = node.op_type
        if op == "Flatten" and self.attribute(node, "axis", 1) != 1:
            raise UnsupportedModelError(
                f"{self.name}: {self.describe(node)} flattens from axis "
                f"{self.attribute(node, 'axis')}; only axis 1 ([batch, -1]) "
                "is supported")
        if op == "Reshape":
            shape = [int(v) for v in np.asarray(self.constant(node, 1, "target shape")).ravel()]
            ok = len(shape) == 2 and shape[0] in (0, -1) and shape[1] in (-1, features) \
                and shape != [-1, -1]
            ok = ok or (len(shape) == 2 and shape[1] == features and features is not None)
            if not ok:
                raise UnsupportedModelError(
                    f"{self.name}: {self.describe(node)} reshapes to {shape}; "
                    "Tessera only imports reshapes to [batch, -1] (e.g. "
                    "[0, -1] or [-1, features])")

    def nhwc_input_shape(self):
        """Return the input's per-sample shape in the graph's layout: ``(H, W, C)`` or ``(K,)``.

        Raises
        ------
        UnsupportedModelError
            The input is not a static ``[N, C, H, W]`` or ``[N, K]`` tensor (N may be symbolic).
        """
        dims = self.input_dims()
        if dims is None or len(dims) not in (2, 4) or \
                not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise UnsupportedModelError(
                f"{self.name}: input {self.input.name!r} has shape {dims}; Tessera imports "
                "CNNs with a static [batch, C, H, W] (or [batch, features]) input")
        return (dims[2], dims[3], dims[1]) if len(dims) == 4 else (dims[1],)

    def window(self, node, in_hw, kernel):
        """Return ``(stride, dilation, ((top, bottom), (left, right)))`` of a Conv or pool node.

        Explicit ``pads`` are ``[top, left, bottom, right]``; ``auto_pad`` ``SAME_UPPER`` puts
        the extra row/column at the end (as TensorFlow's SAME), ``SAME_LOWER`` at the start.

        Raises
        ------
        UnsupportedModelError
            ``ceil_mode = 1`` (output sizes Tessera's graph does not compute).
        """
        if self.attribute(node, "ceil_mode", 0):
            raise UnsupportedModelError(f"{self.name}: {self.describe(node)} uses ceil_mode=1; "
                                        "Tessera imports ceil_mode=0 windows")
        stride = tuple(int(v) for v in self.attribute(node, "strides", [1, 1]))
        dilation = tuple(int(v) for v in self.attribute(node, "dilations", [1, 1]))
        auto = self.attribute(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
            from ..numerics.cnn import resolve_padding
            pads = resolve_padding(auto.split("_")[0], in_hw, kernel, stride, dilation)
            return stride, dilation, tuple(p[::-1] for p in pads) if auto == "SAME_LOWER" \
                else pads
        top, left, bottom, right = (int(v) for v in self.attribute(node, "pads", [0, 0, 0, 0]))
        return stride, dilation, ((top, bottom), (left, right))

    def check_input(self, in_features):
        """Check the model input against the first layer's ``in_features``."""
        dims = self.input_dims()
        if dims is None:
            return
        if len(dims) < 2:
            raise UnsupportedModelError(
                f"{self.name}: input {self.input.name!r} has shape {dims}; Tessera "
                "needs [batch, features]")
        features = dims[1:]
        if all(isinstance(d, int) and d > 0 for d in features):
            if int(np.prod(features)) != in_features:
                raise UnsupportedModelError(
                    f"{self.name}: input {self.input.name!r} has "
                    f"{int(np.prod(features))} features per row (shape {dims}) but "
                    f"the first layer takes {in_features}")
        elif len(features) > 1:
            raise UnsupportedModelError(
                f"{self.name}: input {self.input.name!r} has shape {dims} with "
                "dimensions that are symbolic or unknown; Tessera cannot resolve "
                "how it flattens to [batch, features]: give the model a static "
                "input shape (e.g. onnx.tools.update_model_dims)")


def _clip_bounds(chain, node):
    if len(node.input) > 1 or chain.model.opset_import and any(
            o.domain in ("", "ai.onnx") and o.version >= 11 for o in chain.model.opset_import):
        lo = chain.constant(node, 1, "min")
        hi = chain.constant(node, 2, "max")
    else:
        lo, hi = chain.attribute(node, "min"), chain.attribute(node, "max")
    lo = -np.inf if lo is None else float(np.asarray(lo))
    hi = np.inf if hi is None else float(np.asarray(hi))
    if lo == 0 and hi == 6:
        return "relu6"
    if lo == 0 and hi == np.inf:
        return "relu"
    raise UnsupportedModelError(
        f"{chain.name}: {chain.describe(node)} clips to [{lo}, {hi}]; Tessera "
        "imports Clip(0, 6) (relu6) and Clip(0, inf) (relu) only")


def _gemm_weights(chain, node):
    if chain.attribute(node, "transA", 0):
        raise UnsupportedModelError(
            f"{chain.name}: {chain.describe(node)} has transA=1; Tessera needs "
            "the activations as the first (untransposed) operand")
    w = np.asarray(chain.constant(node, 1, "weight B"), dtype=np.float64)
    if w.ndim != 2:
        raise UnsupportedModelError(
            f"{chain.name}: {chain.describe(node)} has a {w.ndim}-D weight; "
            "Gemm weights must be 2-D")
    if chain.attribute(node, "transB", 0):
        w = w.T
    alpha = float(chain.attribute(node, "alpha", 1.0))
    beta = float(chain.attribute(node, "beta", 1.0))
    c = chain.constant(node, 2, "bias C")
    bias = np.zeros(w.shape[1]) if c is None else _bias_vector(chain, node, c, w.shape[1]) * beta
    return w * alpha, bias


def _bias_vector(chain, node, value, n):
    b = np.asarray(value, dtype=np.float64)
    if b.size == 1:
        return np.full(n, float(b.ravel()[0]))
    if b.shape in ((n,), (1, n)):
        return b.reshape(n)
    raise UnsupportedModelError(
        f"{chain.name}: {chain.describe(node)} adds a bias of shape {b.shape}; "
        f"expected ({n},) or (1, {n})")


def float_layers_from_onnx(chain):
    """Return the float layers of a float ONNX chain (``[(W, b, activation), ...]``).

    Raises
    ------
    UnsupportedModelError
        An operator is not supported (the message names the node, its type and the supported
        operators), a weight is not constant, shapes cannot be resolved, or the graph is not a
        chain.
    """
    current, layers, pending_matmul, linear_output = chain.input.name, [], None, None
    for node in chain.nodes:
        op = node.op_type if node.domain in ("", "ai.onnx") else None
        if op not in FLOAT_OPS:
            raise chain.unsupported(node, FLOAT_OPS)
        if node.input[0] != current and not (op == "Add" and current in node.input[1:2]):
            raise UnsupportedModelError(
                f"{chain.name}: {chain.describe(node)} does not consume the "
                f"previous tensor {current!r}; Tessera imports chains only")
        if len(chain.consumers.get(current, [])) > 1:
            raise UnsupportedModelError(
                f"{chain.name}: tensor {current!r} feeds "
                f"{len(chain.consumers[current])} nodes; Tessera imports chains only")
        if pending_matmul is not None and op != "Add":
            layers.append([pending_matmul, np.zeros(pending_matmul.shape[1]), None])
            pending_matmul = None
        if op == "Gemm":
            layers.append([*_gemm_weights(chain, node), None])
        elif op == "MatMul":
            w = np.asarray(chain.constant(node, 1, "weight"), dtype=np.float64)
            if w.ndim != 2:
                raise UnsupportedModelError(
                    f"{chain.name}: {chain.describe(node)} has a {w.ndim}-D weight; "
                    "MatMul weights must be 2-D [in_features, out_features]")
            pending_matmul = w
        elif op == "Add":
            if pending_matmul is None:
                raise UnsupportedModelError(
                    f"{chain.name}: {chain.describe(node)} does not follow a MatMul; "
                    "Tessera imports Add only as the bias of MatMul")
            other = 1 if node.input[0] == current else 0
            b = _bias_vector(chain, node, chain.constant(node, other, "bias"),
                             pending_matmul.shape[1])
            layers.append([pending_matmul, b, None])
            pending_matmul = None
        elif op in _ACTIVATION_OPS or op == "Clip":
            name = _clip_bounds(chain, node) if op == "Clip" else _ACTIVATION_OPS[op]
            if not layers or layers[-1][2] is not None or current != linear_output:
                raise UnsupportedModelError(
                    f"{chain.name}: {chain.describe(node)} does not directly "
                    "follow a Gemm or MatMul(+Add); Tessera fuses one activation "
                    "into each fully-connected layer")
            layers[-1][2] = name
        else:
            chain.check_noop(node, layers[-1][0].shape[1] if layers else None)
        current = node.output[0]
        linear_output = current if op in ("Gemm", "MatMul", "Add") else None
    if pending_matmul is not None:
        layers.append([pending_matmul, np.zeros(pending_matmul.shape[1]), None])
    if not layers:
        raise UnsupportedModelError(f"{chain.name}: the graph has no Gemm or MatMul layer")
    if current != chain.output_name:
        raise UnsupportedModelError(
            f"{chain.name}: the graph output {chain.output_name!r} is not the end "
            f"of the chain ({current!r})")
    chain.check_input(layers[0][0].shape[0])
    return [tuple(layer) for layer in layers]
