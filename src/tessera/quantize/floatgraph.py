"""The float reference graph every CNN importer normalises a user model to.

A :class:`FloatGraph` is the float twin of :class:`tessera.graph.Graph`: operations of the same
kinds over named NHWC tensors (batch first), with float64 weights in the graph's layouts
(``CONV_2D`` ``[OC, KH, KW, IC]``, ``DEPTHWISE_CONV_2D`` ``[1, KH, KW, IC*mult]``,
``FULLY_CONNECTED`` ``[K, N]``) and explicit padding ``((top, bottom), (left, right))``.
BatchNormalization is folded into the preceding convolution or dense layer by the importers
(:func:`fold_batchnorm`); activations are fused (``attrs["activation"]``) or standalone
``ACTIVATION`` operations. :meth:`FloatGraph.forward` runs it in NumPy (float64): the quantizer
calibrates on it, and the tests compare it with the source framework's own output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .floatmodel import FLOAT_ACTIVATIONS, FloatLayer, apply_activation

__all__ = ["FLOAT_GRAPH_KINDS", "FUSABLE_KINDS", "FloatOp", "FloatGraph", "GraphBuilder",
           "fold_batchnorm", "fuse_activations", "run_op"]

#: Operation kinds of a float graph (``ACTIVATION`` is a standalone activation function).
FLOAT_GRAPH_KINDS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                     "MAX_POOL_2D", "MEAN", "ADD", "PAD", "RESHAPE", "CONCATENATION", "SOFTMAX",
                     "ACTIVATION")


@dataclass(frozen=True)
class FloatOp:
    """One float operation ``output = kind(inputs; weight, bias, attrs)``.

    ``name`` is the source's layer or node name (used in messages and as the quantized
    operation's name). ``attrs`` holds what the kind needs: ``stride``, ``dilation``,
    ``padding``, ``paddings`` (PAD: one pair per per-sample axis, padded with 0.0), ``pool``,
    ``depth_multiplier``, ``activation`` (a key of
    :data:`~tessera.quantize.floatmodel.FLOAT_ACTIVATIONS`), ``shape``, ``axis``, ``function``.
    """

    kind: str
    name: str
    inputs: tuple
    output: str
    attrs: dict = field(default_factory=dict)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None

    def __post_init__(self):
        if self.kind not in FLOAT_GRAPH_KINDS:
            raise ValueError(f"Operation {self.name!r}: unknown kind {self.kind!r}")
        act = self.attrs.get("activation", self.attrs.get("function", "none"))
        if act not in FLOAT_ACTIVATIONS:
            raise ValueError(f"Operation {self.name!r}: unknown activation {act!r}")

    @property
    def activation(self):
        """The fused activation (``"none"`` if the kind has none)."""
        return self.attrs.get("activation", "none")


def fold_batchnorm(op, gamma, beta, mean, var, epsilon, *, name):
    """Return ``op`` (CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED, no activation yet) with the
    inference BatchNormalization ``gamma * (y - mean) / sqrt(var + epsilon) + beta`` folded into
    its weight and bias, per output channel; ``name`` is the BatchNormalization's (messages)."""
    from .errors import UnsupportedModelError
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") \
            or op.activation != "none":
        raise UnsupportedModelError(
            f"BatchNormalization {name!r} follows {op.kind} {op.name!r}"
            + (f" with activation {op.activation!r}" if op.activation != "none" else "")
            + "; Tessera folds BatchNormalization only into a directly preceding convolution or "
            "dense layer without activation")
    factor = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + epsilon)
    axis = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 1}[op.kind]
    shape = [1] * op.weight.ndim
    shape[axis] = -1
    weight = op.weight * factor.reshape(shape)
    bias = np.zeros(factor.size) if op.bias is None else op.bias
    bias = (bias - np.asarray(mean, np.float64)) * factor + np.asarray(beta, np.float64)
    return FloatOp(op.kind, op.name, op.inputs, op.output, op.attrs, weight, bias)


def _windows(x, kernel, stride, dilation, padding, fill):
    """Yield ``(tap index, [B, OH, OW, C] slice)`` per kernel tap of the padded ``x``."""
    (top, bottom), (left, right) = padding
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield (i, j), xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                             j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def _conv(op, x):
    w = op.weight
    a = op.attrs
    out = 0.0
    for (i, j), patch in _windows(x, w.shape[1:3], a["stride"], a["dilation"], a["padding"], 0):
        if op.kind == "CONV_2D":
            out = out + patch @ w[:, i, j, :].T
        else:
            out = out + np.repeat(patch, a["depth_multiplier"], axis=-1) * w[0, i, j, :]
    return out + (0.0 if op.bias is None else op.bias)


def _pool(op, x):
    a = op.attrs
    if op.kind == "MAX_POOL_2D":
        taps = [p for _, p in _windows(x, a["pool"], a["stride"], (1, 1), a["padding"], -np.inf)]
        return np.max(taps, axis=0)
    ones = np.ones(x.shape[:3] + (1,))
    total = sum(p for _, p in _windows(x, a["pool"], a["stride"], (1, 1), a["padding"], 0))
    count = sum(p for _, p in _windows(ones, a["pool"], a["stride"], (1, 1), a["padding"], 0))
    return total / count                       # in-bounds taps only, as TFLite and ONNX Runtime


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def run_op(op, values):
    """Return the float64 output of ``op`` given ``values`` (tensor name -> NHWC array)."""
    x = values[op.inputs[0]]
    kind = op.kind
    if kind == "FULLY_CONNECTED":
        y = x @ op.weight + (0.0 if op.bias is None else op.bias)
    elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        y = _conv(op, x)
    elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        y = _pool(op, x)
    elif kind == "MEAN":
        y = x.mean(axis=(1, 2), keepdims=bool(op.attrs.get("keepdims", False)))
    elif kind == "ADD":
        y = x + values[op.inputs[1]]
    elif kind == "PAD":
        y = np.pad(x, ((0, 0),) + tuple(op.attrs["paddings"]))
    elif kind == "RESHAPE":
        y = x.reshape((x.shape[0],) + tuple(op.attrs["shape"]))
    elif kind == "CONCATENATION":
        y = np.concatenate([values[name] for name in op.inputs], axis=op.attrs.get("axis", -1))
    elif kind == "SOFTMAX":
        y = _softmax(x)
    else:                                      # ACTIVATION
        return apply_activation(op.attrs["function"], x)
    return apply_activation(op.activation, y)


@dataclass(frozen=True)
class FloatGraph:
    """A float model as a DAG of :class:`FloatOp` in topological order, one input, one output.

    ``input_shape`` is per sample, NHWC for images (``(H, W, C)``) or ``(K,)``;
    ``input_layout`` is the source's (``"NHWC"`` or ``"NCHW"``: NCHW sources are converted at
    import, and :meth:`forward` always takes NHWC).
    """

    ops: tuple
    input: str
    input_shape: tuple
    output: str
    input_layout: str = "NHWC"
    name: str = "graph"

    def forward(self, x, *, every=False, observe=None):
        """Run the graph on NHWC ``x`` ``[B, *input_shape]`` in float64.

        Returns the output, or with ``every=True`` a dict tensor name -> array of every tensor
        (the input included). ``observe(name, array)``, if given, is called on every tensor as
        it is computed; without ``every`` a tensor is then dropped after its last reader, so a
        calibration batch needs the memory of the live tensors only.
        """
        values = {self.input: np.asarray(x, dtype=np.float64)}
        last_use = {name: i for i, op in enumerate(self.ops) for name in op.inputs}
        if observe is not None:
            observe(self.input, values[self.input])
        for index, op in enumerate(self.ops):
            values[op.output] = run_op(op, values)
            if observe is not None:
                observe(op.output, values[op.output])
            if not every:
                for name in set(op.inputs):
                    if last_use[name] == index and name != self.output:
                        del values[name]
        return values if every else values[self.output]

    def shapes(self):
        """Return tensor name -> per-sample shape (by running one zero sample)."""
        values = self.forward(np.zeros((1, *self.input_shape)), every=True)
        return {name: value.shape[1:] for name, value in values.items()}

    def dense_layers(self):
        """Return the graph as ``FloatLayer`` objects if it is a chain of FULLY_CONNECTED
        operations on a 1-D input (activations fused, no-op reshapes of the input allowed),
        else None: such models stay a :class:`~tessera.quantize.QuantizedModel`."""
        current, layers = self.input, []
        for op in self.ops:
            if op.inputs != (current,):
                return None
            if op.kind == "RESHAPE" and not layers and len(op.attrs["shape"]) == 1 \
                    and len(self.input_shape) == 1:
                current = op.output
                continue
            if op.kind != "FULLY_CONNECTED" or len(self.input_shape) != 1:
                return None
            bias = np.zeros(op.weight.shape[1]) if op.bias is None else op.bias
            layers.append(FloatLayer(f"fc{len(layers)}", op.weight, bias, op.activation))
            current = op.output
        return tuple(layers) if layers and current == self.output else None


#: Kinds that take a fused activation (``attrs["activation"]``).
FUSABLE_KINDS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "ADD")


def fuse_activations(ops, graph_output):
    """Return ``ops`` with each standalone ``ACTIVATION`` fused into its producer where the
    producer takes one (:data:`FUSABLE_KINDS`), has none yet and feeds nothing else."""
    ops = list(ops)
    for index, op in enumerate(ops):
        if op is None or op.kind != "ACTIVATION":
            continue
        source = op.inputs[0]
        producers = [i for i, p in enumerate(ops) if p is not None and p.output == source]
        users = [p for p in ops if p is not None and source in p.inputs]
        if not producers or len(users) != 1 or source == graph_output:
            continue
        producer = ops[producers[0]]
        if producer.kind not in FUSABLE_KINDS or producer.activation != "none":
            continue
        attrs = dict(producer.attrs, activation=op.attrs["function"])
        ops[producers[0]] = FloatOp(producer.kind, producer.name, producer.inputs, op.output,
                                    attrs, producer.weight, producer.bias)
        ops[index] = None
    return tuple(op for op in ops if op is not None)


class GraphBuilder:
    """Collect :class:`FloatOp` objects in topological order for an importer.

    Tracks every tensor's per-sample NHWC shape (by running each new operation on zeros) and
    folds BatchNormalization into the operation that produced its input.
    """

    def __init__(self, input_name, input_shape):
        self.input, self.input_shape = input_name, tuple(int(d) for d in input_shape)
        self.ops, self.shapes, self.folded = [], {input_name: self.input_shape}, {}

    def emit(self, kind, name, inputs, output, attrs=None, weight=None, bias=None):
        """Append an operation; return its output's per-sample shape."""
        op = FloatOp(kind, name, tuple(inputs), output, dict(attrs or {}), weight, bias)
        values = {tensor: np.zeros((1, *self.shapes[tensor])) for tensor in op.inputs}
        self.shapes[output] = run_op(op, values).shape[1:]
        self.ops.append(op)
        return self.shapes[output]

    def fold_batchnorm(self, x, output, gamma, beta, mean, var, epsilon, *, name, where):
        """Fold the BatchNormalization ``x -> output`` (``where`` describes it in messages)."""
        from .errors import UnsupportedModelError
        producer = [i for i, op in enumerate(self.ops) if op.output == x]
        if not producer or any(x in op.inputs for op in self.ops):
            raise UnsupportedModelError(
                f"{where} does not directly follow a convolution or dense layer whose output "
                "feeds nothing else; Tessera folds BatchNormalization into that layer")
        op = fold_batchnorm(self.ops[producer[0]], gamma, beta, mean, var, epsilon, name=name)
        self.ops[producer[0]] = FloatOp(op.kind, op.name, op.inputs, output, op.attrs,
                                        op.weight, op.bias)
        self.shapes[output] = self.shapes.pop(x)
        self.folded[x] = name

    def check_inputs(self, inputs, where):
        """Refuse inputs that a folded BatchNormalization replaced (``where`` reads them)."""
        from .errors import UnsupportedModelError
        for tensor in inputs:
            if tensor in self.folded:
                raise UnsupportedModelError(
                    f"{where} reads {tensor!r}, which BatchNormalization "
                    f"{self.folded[tensor]!r} also reads; Tessera folds BatchNormalization "
                    "only into a layer whose output feeds nothing else")

    def graph(self, output, *, layout="NHWC", name="graph"):
        """Return the :class:`FloatGraph` ending at ``output`` (activations fused)."""
        return FloatGraph(fuse_activations(self.ops, output), self.input, self.input_shape,
                          output, layout, name)
