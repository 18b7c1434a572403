"""Build small int8 ``.tflite`` graphs without TensorFlow and run them on TFLite Micro.

The flatbuffer is written with LiteRT's generated schema (``ai_edge_litert.schema_py_generated``,
object API), the same structures a converter emits. One :class:`TFLiteGraph` holds tensors,
constant buffers and operators; each ``add_*`` method appends one operator, infers its output
shape, and returns the output tensor's index::

    g = TFLiteGraph()
    x = g.input("x", (1, 8, 8, 3), scale=0.05, zero_point=-2)
    y = g.conv2d(x, w_q, bias, w_scale=sw, y_scale=0.1, y_zero_point=3, padding="same")
    y = g.softmax(g.reshape(y, (1, -1)), beta=1.0)
    outputs = run_tflm(g.build(outputs=[y]), [x_q])

Quantization is per tensor except for weights, whose ``w_scale`` may be per output channel
(axis 0 for CONV_2D, axis 3 for DEPTHWISE_CONV_2D, as converters write them). Tensors are int8,
biases int32. ``run_tflm`` runs a model in the ``tflite-micro`` wheel's interpreter (TFLite
Micro's reference kernels).
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tessera.numerics import cnn

__all__ = ["TFLiteGraph", "run_tflm", "quantization", "ACTIVATIONS", "PADDINGS"]

ACTIVATIONS = {
    "none": schema.ActivationFunctionType.NONE,
    "relu": schema.ActivationFunctionType.RELU,
    "relu6": schema.ActivationFunctionType.RELU6,
}
PADDINGS = {"same": schema.Padding.SAME, "valid": schema.Padding.VALID}

_OPS = schema.BuiltinOperator
_INT8, _INT32 = schema.TensorType.INT8, schema.TensorType.INT32


def quantization(scale, zero_point, axis=0):
    """Return the schema's ``QuantizationParametersT`` (per-channel along ``axis``)."""
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(np.asarray(scale, dtype=np.float32))]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = axis
    return q


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


class TFLiteGraph:
    """An int8 TFLite graph under construction (one subgraph)."""

    def __init__(self):
        self._tensors = []
        self._buffers = [schema.BufferT()]         # buffer 0: empty, for activations
        self._operators = []
        self._opcodes = {}                         # builtin code -> (index, version)
        self._inputs = []

    # ---- tensors -----------------------------------------------------------------------------
    def shape(self, index) -> tuple:
        """Return the shape of tensor ``index``."""
        return tuple(self._tensors[index].shape)

    def quant(self, index) -> tuple:
        """Return ``(scale, zero_point)`` of tensor ``index`` (first channel's if per-channel)."""
        q = self._tensors[index].quantization
        return np.float32(q.scale[0]), int(q.zeroPoint[0])

    def _add_tensor(self, name, shape, dtype, quant, data=None):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.quantization = name, [int(s) for s in shape], dtype, quant
        if data is None:
            t.buffer = 0
        else:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self._buffers.append(buffer)
            t.buffer = len(self._buffers) - 1
        self._tensors.append(t)
        return len(self._tensors) - 1

    def input(self, name, shape, *, scale, zero_point) -> int:
        """Add an int8 graph input and return its index."""
        index = self._add_tensor(name, shape, _INT8, quantization(scale, zero_point))
        self._inputs.append(index)
        return index

    def activation(self, name, shape, *, scale, zero_point) -> int:
        """Add an int8 activation tensor (an operator's output) and return its index."""
        return self._add_tensor(name, shape, _INT8, quantization(scale, zero_point))

    def weights(self, name, w_q, *, scale, axis) -> int:
        """Add constant int8 weights (zero point 0; ``scale`` scalar or per channel on axis)."""
        scale = np.atleast_1d(np.asarray(scale, np.float32))
        return self._add_tensor(name, w_q.shape, _INT8,
                                quantization(scale, np.zeros(scale.size, np.int64), axis),
                                np.asarray(w_q, np.int8))

    def bias(self, name, bias_q, *, scale) -> int:
        """Add a constant int32 bias at ``scale`` (per channel) and return its index."""
        scale = np.atleast_1d(np.asarray(scale, np.float32))
        return self._add_tensor(name, bias_q.shape, _INT32,
                                quantization(scale, np.zeros(scale.size, np.int64)),
                                np.asarray(bias_q, np.int32))

    def int32_constant(self, name, values) -> int:
        """Add a constant int32 tensor (shapes, axes, paddings) and return its index."""
        values = np.asarray(values, np.int32)
        return self._add_tensor(name, values.shape, _INT32, None, values)

    # ---- operators ---------------------------------------------------------------------------
    def operator(self, code, inputs, outputs, options_type=None, options=None, version=1):
        """Append operator ``code`` (a ``BuiltinOperator``) with its builtin options."""
        if code not in self._opcodes:
            self._opcodes[code] = (len(self._opcodes), version)
        op = schema.OperatorT()
        op.opcodeIndex = self._opcodes[code][0]
        op.inputs, op.outputs = list(inputs), list(outputs)
        if options is not None:
            op.builtinOptionsType, op.builtinOptions = options_type, options
        self._operators.append(op)

    def _output(self, name, shape, scale, zero_point, like):
        if scale is None:
            scale, zero_point = self.quant(like)
        return self.activation(name, shape, scale=scale, zero_point=zero_point)

    def _conv_geometry(self, x, kernel, stride, dilation, padding):
        _, h, w, _ = self.shape(x)
        pads = cnn.resolve_padding(padding, (h, w), kernel, stride, dilation)
        return tuple(cnn.output_size(n, k, s, d, *p)
                     for n, k, s, d, p in zip((h, w), kernel, stride, dilation, pads))

    def conv2d(self, x, w_q, bias_q, *, w_scale, y_scale, y_zero_point, stride=1, dilation=1,
               padding="valid", activation="none", name="conv") -> int:
        """Append CONV_2D; ``w_q`` is [OC, KH, KW, IC], ``w_scale`` scalar or [OC]."""
        return self._conv(_OPS.CONV_2D, x, w_q, bias_q, w_scale=w_scale, y_scale=y_scale,
                          y_zero_point=y_zero_point, stride=stride, dilation=dilation,
                          padding=padding, activation=activation, name=name)

    def depthwise_conv2d(self, x, w_q, bias_q, *, w_scale, y_scale, y_zero_point,
                         depth_multiplier=1, stride=1, dilation=1, padding="valid",
                         activation="none", name="dwconv") -> int:
        """Append DEPTHWISE_CONV_2D; ``w_q`` is [1, KH, KW, IC * depth_multiplier]."""
        return self._conv(_OPS.DEPTHWISE_CONV_2D, x, w_q, bias_q, w_scale=w_scale,
                          y_scale=y_scale, y_zero_point=y_zero_point, stride=stride,
                          dilation=dilation, padding=padding, activation=activation,
                          name=name, depth_multiplier=depth_multiplier)

    def _conv(self, code, x, w_q, bias_q, *, w_scale, y_scale, y_zero_point, stride, dilation,
              padding, activation, name, depth_multiplier=None):
        stride, dilation = _pair(stride), _pair(dilation)
        depthwise = depth_multiplier is not None
        channels = w_q.shape[3] if depthwise else w_q.shape[0]
        oh, ow = self._conv_geometry(x, w_q.shape[1:3], stride, dilation, padding)
        sx, _ = self.quant(x)
        sw = np.asarray(w_scale, np.float32)
        w = self.weights(f"{name}/w", w_q, scale=sw, axis=3 if depthwise else 0)
        inputs = [x, w]
        if bias_q is not None:
            inputs.append(self.bias(f"{name}/b", bias_q,
                                    scale=sx * np.broadcast_to(sw, (channels,))))
        y = self.activation(f"{name}/y", (self.shape(x)[0], oh, ow, channels), scale=y_scale,
                            zero_point=y_zero_point)
        if depthwise:
            options, options_type = schema.DepthwiseConv2DOptionsT(), \
                schema.BuiltinOptions.DepthwiseConv2DOptions
            options.depthMultiplier = depth_multiplier
        else:
            options, options_type = schema.Conv2DOptionsT(), schema.BuiltinOptions.Conv2DOptions
        options.padding = PADDINGS[padding]
        options.strideH, options.strideW = stride
        options.dilationHFactor, options.dilationWFactor = dilation
        options.fusedActivationFunction = ACTIVATIONS[activation]
        self.operator(code, inputs, [y], options_type, options, version=3)
        return y

    def _pool(self, code, x, pool, stride, padding, activation, y_scale, y_zero_point, name):
        pool, stride = _pair(pool), _pair(stride)
        b, _, _, c = self.shape(x)
        oh, ow = self._conv_geometry(x, pool, stride, (1, 1), padding)
        y = self._output(f"{name}/y", (b, oh, ow, c), y_scale, y_zero_point, x)
        options = schema.Pool2DOptionsT()
        options.padding = PADDINGS[padding]
        options.strideH, options.strideW = stride
        options.filterHeight, options.filterWidth = pool
        options.fusedActivationFunction = ACTIVATIONS[activation]
        self.operator(code, [x], [y], schema.BuiltinOptions.Pool2DOptions, options, version=2)
        return y

    def average_pool2d(self, x, *, pool, stride, padding="valid", activation="none",
                       y_scale=None, y_zero_point=None, name="avgpool") -> int:
        """Append AVERAGE_POOL_2D (output quantization: the input's unless given)."""
        return self._pool(_OPS.AVERAGE_POOL_2D, x, pool, stride, padding, activation, y_scale,
                          y_zero_point, name)

    def max_pool2d(self, x, *, pool, stride, padding="valid", activation="none", y_scale=None,
                   y_zero_point=None, name="maxpool") -> int:
        """Append MAX_POOL_2D (output quantization: the input's unless given)."""
        return self._pool(_OPS.MAX_POOL_2D, x, pool, stride, padding, activation, y_scale,
                          y_zero_point, name)

    def mean_hw(self, x, *, y_scale, y_zero_point, keepdims=True, name="mean") -> int:
        """Append MEAN over axes 1 and 2."""
        b, _, _, c = self.shape(x)
        axes = self.int32_constant(f"{name}/axes", [1, 2])
        y = self.activation(f"{name}/y", (b, 1, 1, c) if keepdims else (b, c), scale=y_scale,
                            zero_point=y_zero_point)
        options = schema.ReducerOptionsT()
        options.keepDims = keepdims
        self.operator(_OPS.MEAN, [x, axes], [y], schema.BuiltinOptions.ReducerOptions, options,
                      version=2)
        return y

    def add(self, a, b, *, y_scale, y_zero_point, activation="none", name="add") -> int:
        """Append ADD of tensors ``a`` and ``b`` (NumPy broadcasting of their shapes)."""
        shape = np.broadcast_shapes(self.shape(a), self.shape(b))
        y = self.activation(f"{name}/y", shape, scale=y_scale, zero_point=y_zero_point)
        options = schema.AddOptionsT()
        options.fusedActivationFunction = ACTIVATIONS[activation]
        self.operator(_OPS.ADD, [a, b], [y], schema.BuiltinOptions.AddOptions, options,
                      version=2)
        return y

    def fully_connected(self, x, w_q, bias_q, *, w_scale, y_scale, y_zero_point,
                        name="fc") -> int:
        """Append an int8 FULLY_CONNECTED of ``x [1, K]`` with weights ``w_q [N, K]`` (per
        tensor ``w_scale``) and int32 ``bias_q [N]`` (or None)."""
        sx, _ = self.quant(x)
        n = w_q.shape[0]
        w = self.weights(f"{name}/w", w_q, scale=np.float32(w_scale), axis=0)
        inputs = [x, w]
        if bias_q is not None:
            inputs.append(self.bias(f"{name}/b", np.asarray(bias_q, np.int32),
                                    scale=sx * np.float32(w_scale)))
        y = self.activation(f"{name}/y", (1, n), scale=y_scale, zero_point=y_zero_point)
        self.operator(_OPS.FULLY_CONNECTED, inputs, [y],
                      schema.BuiltinOptions.FullyConnectedOptions,
                      schema.FullyConnectedOptionsT(), version=4)
        return y

    def softmax(self, x, *, beta=1.0, name="softmax") -> int:
        """Append SOFTMAX over the last axis (output scale 1/256, zero point -128)."""
        y = self.activation(f"{name}/y", self.shape(x), scale=1 / 256, zero_point=-128)
        options = schema.SoftmaxOptionsT()
        options.beta = float(beta)
        self.operator(_OPS.SOFTMAX, [x], [y], schema.BuiltinOptions.SoftmaxOptions, options,
                      version=2)
        return y

    def pad(self, x, paddings, *, name="pad") -> int:
        """Append PAD (one ``(before, after)`` per axis) with the input's quantization."""
        shape = tuple(n + a + b for n, (a, b) in zip(self.shape(x), paddings))
        amounts = self.int32_constant(f"{name}/paddings", paddings)
        y = self._output(f"{name}/y", shape, None, None, x)
        self.operator(_OPS.PAD, [x, amounts], [y], schema.BuiltinOptions.PadOptions,
                      schema.PadOptionsT(), version=2)
        return y

    def concatenation(self, xs, *, axis=-1, activation="none", name="concat") -> int:
        """Append CONCATENATION along ``axis`` (output quantization: the first input's)."""
        shapes = [self.shape(x) for x in xs]
        rank = len(shapes[0])
        shape = list(shapes[0])
        shape[axis % rank] = sum(s[axis % rank] for s in shapes)
        y = self._output(f"{name}/y", shape, None, None, xs[0])
        options = schema.ConcatenationOptionsT()
        options.axis = axis % rank
        options.fusedActivationFunction = ACTIVATIONS[activation]
        self.operator(_OPS.CONCATENATION, list(xs), [y],
                      schema.BuiltinOptions.ConcatenationOptions, options, version=2)
        return y

    def reshape(self, x, shape, *, name="reshape") -> int:
        """Append RESHAPE to ``shape`` (one -1 allowed) keeping the quantization."""
        shape = tuple(np.empty(self.shape(x), np.int8).reshape(shape).shape)
        new_shape = self.int32_constant(f"{name}/shape", shape)
        y = self._output(f"{name}/y", shape, None, None, x)
        options = schema.ReshapeOptionsT()
        options.newShape = list(shape)
        self.operator(_OPS.RESHAPE, [x, new_shape], [y], schema.BuiltinOptions.ReshapeOptions,
                      options)
        return y

    def elementwise(self, code, x, *, y_scale, y_zero_point, options_type=None, options=None,
                    name="act") -> int:
        """Append a one-input element-wise operator ``code`` (RELU, LOGISTIC, QUANTIZE, ...)
        with output quantization ``(y_scale, y_zero_point)``."""
        y = self.activation(f"{name}/y", self.shape(x), scale=y_scale, zero_point=y_zero_point)
        self.operator(code, [x], [y], options_type, options)
        return y

    # ---- output ------------------------------------------------------------------------------
    def build(self, outputs) -> bytes:
        """Return the ``.tflite`` flatbuffer with graph outputs ``outputs`` (tensor indices)."""
        subgraph = schema.SubGraphT()
        subgraph.tensors, subgraph.operators = self._tensors, self._operators
        subgraph.inputs, subgraph.outputs, subgraph.name = self._inputs, list(outputs), "main"
        opcodes = []
        for code, (_, version) in sorted(self._opcodes.items(), key=lambda kv: kv[1][0]):
            opcode = schema.OperatorCodeT()
            opcode.builtinCode, opcode.version = code, version
            opcode.deprecatedBuiltinCode = min(code, 127)
            opcodes.append(opcode)
        model = schema.ModelT()
        model.version, model.operatorCodes, model.subgraphs = 3, opcodes, [subgraph]
        model.description, model.buffers = "tessera test graph", self._buffers
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def run_tflm(model, inputs, *, outputs=1, arena_size=1 << 23) -> list:
    """Run ``model`` (bytes) once on TFLite Micro's interpreter; return its first ``outputs``.

    ``arena_size``: bytes of the tensor arena (the wheel's default, sized from the model, is
    too small for some graphs: "TFLM failed to allocate tensors").
    """
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    for n, x in enumerate(inputs):
        interpreter.set_input(np.ascontiguousarray(x), n)
    interpreter.invoke()
    return [interpreter.get_output(n).copy() for n in range(outputs)]
