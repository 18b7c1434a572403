"""Build single-layer int8 ``.tflite`` models without TensorFlow and run them on LiteRT.

The flatbuffer is written with LiteRT's own generated schema (``ai_edge_litert.
schema_py_generated``, object API), so it is exactly what a converter would emit for one quantized
dense layer. Two encodings of the same layer ``y = requant(x @ w + b)``:

``"conv2d"``
    a 1x1 ``CONV_2D`` (input [1, M, 1, K], filter [N, 1, 1, K], per-channel scales on axis 0).
    Its reference kernel requantizes with ``MultiplyByQuantizedMultiplier`` (mode "tflite").
``"fully_connected"``
    ``FULLY_CONNECTED`` (input [M, K], weights [N, K]).

Reusable by other tests (e.g. the TFLite importer): ``dense_model_bytes`` returns the model bytes,
``run_dense`` builds and runs it (``reference=True`` selects the ``BUILTIN_REF`` op resolver).
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_builder import quantization as _quant

__all__ = ["dense_model_bytes", "run_dense", "FUSED_ACTIVATIONS"]

FUSED_ACTIVATIONS = {
    "none": schema.ActivationFunctionType.NONE,
    "relu": schema.ActivationFunctionType.RELU,
    "relu6": schema.ActivationFunctionType.RELU6,
}


def _tensor(name, shape, dtype, buffer, quant):
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer, t.quantization = name, list(shape), dtype, buffer, quant
    return t


def _buffer(data=None):
    b = schema.BufferT()
    if data is not None:
        b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    return b


def dense_model_bytes(w_q, bias_q, *, batch, x_scale, x_zero_point, w_scale, y_scale,
                      y_zero_point, activation="none", op="conv2d") -> bytes:
    """Return a ``.tflite`` flatbuffer computing one quantized dense layer on int8 [batch, K].

    Parameters
    ----------
    w_q : numpy.ndarray of int8, shape [K, N]
    bias_q : numpy.ndarray of int32, shape [N], or None
    batch : int
        Rows M of the input.
    x_scale, x_zero_point, w_scale, y_scale, y_zero_point
        As for ``tessera.numerics.quantized_linear`` (``w_scale`` scalar or [N]).
    activation : {"none", "relu", "relu6"}
        Fused activation of the operator.
    op : {"conv2d", "fully_connected"}
    """
    k, n = w_q.shape
    sw = np.asarray(w_scale, dtype=np.float32)
    per_channel = sw.ndim == 1
    bias = np.zeros(n, np.int32) if bias_q is None else np.asarray(bias_q, np.int32)
    bias_scale = np.float32(x_scale) * (sw if per_channel else np.full(n, sw, np.float32))
    filt = np.ascontiguousarray(w_q.T)                           # [N, K] (OHWI for the conv)
    w_zp = np.zeros(n if per_channel else 1, dtype=np.int64)
    if op == "conv2d":
        x_shape, w_shape, y_shape = (1, batch, 1, k), (n, 1, 1, k), (1, batch, 1, n)
        code, options_type = schema.BuiltinOperator.CONV_2D, schema.BuiltinOptions.Conv2DOptions
        options = schema.Conv2DOptionsT()
        options.padding, options.strideW, options.strideH = schema.Padding.VALID, 1, 1
    elif op == "fully_connected":
        x_shape, w_shape, y_shape = (batch, k), (n, k), (batch, n)
        code = schema.BuiltinOperator.FULLY_CONNECTED
        options_type = schema.BuiltinOptions.FullyConnectedOptions
        options = schema.FullyConnectedOptionsT()
    else:
        raise ValueError(f"op must be 'conv2d' or 'fully_connected', not {op!r}")
    options.fusedActivationFunction = FUSED_ACTIVATIONS[activation]
    int8, int32 = schema.TensorType.INT8, schema.TensorType.INT32
    tensors = [
        _tensor("x", x_shape, int8, 0, _quant(x_scale, x_zero_point)),
        _tensor("w", w_shape, int8, 1, _quant(sw, w_zp)),
        _tensor("b", (n,), int32, 2, _quant(bias_scale, np.zeros(n, np.int64))),
        _tensor("y", y_shape, int8, 0, _quant(y_scale, y_zero_point)),
    ]
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1, 2], [3]
    operator.builtinOptionsType, operator.builtinOptions = options_type, options
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs = tensors, [0], [3]
    subgraph.operators, subgraph.name = [operator], "main"
    opcode = schema.OperatorCodeT()
    opcode.builtinCode, opcode.deprecatedBuiltinCode = code, code
    opcode.version = 5 if op == "conv2d" else 9
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [opcode], [subgraph]
    model.description = "tessera numerics oracle"
    model.buffers = [_buffer(), _buffer(filt), _buffer(bias)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_dense(x_q, w_q, bias_q, *, reference=True, op="conv2d", activation="none",
              **quant) -> np.ndarray:
    """Build the layer for ``x_q`` (int8 [M, K]) and run it once on LiteRT -> int8 [M, N].

    ``reference=True`` uses the ``BUILTIN_REF`` op resolver (reference kernels, no XNNPACK);
    ``False`` the default resolver (optimized kernels with the XNNPACK delegate).
    """
    m = x_q.shape[0]
    content = dense_model_bytes(w_q, bias_q, batch=m, activation=activation, op=op, **quant)
    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_content=content, num_threads=1,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], x_q.reshape(inp["shape"]))
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    return interpreter.get_tensor(out["index"]).reshape(m, -1)
