"""Tabulate a runtime's quantized activation as Tessera's int8 [256] lookup table.

Pre-quantized models apply sigmoid, tanh, ... on int8 tensors with the runtime's own kernel
(ONNX Runtime's ``QLinearSigmoid`` table, MLAS' float approximations, LiteRT's ``LOGISTIC`` /
``TANH`` kernels). These differ from a float64 formula in the last bit for a few inputs, so the
importer feeds all 256 int8 values through the runtime itself when it is installed: the table is
then exactly what the runtime computes. Without the runtime, the table is computed in NumPy
(float32 dequantize, float32 function, the runtime's rounding) and the model's ``info`` says so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tabulate_onnx", "tabulate_tflite", "numpy_lut"]

_ALL_INT8 = np.arange(-128, 128, dtype=np.int16).astype(np.int8)


def numpy_lut(fn, in_scale, in_zero_point, out_scale, out_zero_point, mode):
    """Return the table of float32 ``fn`` between two int8 quantizations (NumPy fallback)."""
    from .. import numerics
    x = numerics.dequantize_tensor(_ALL_INT8, in_scale, in_zero_point)
    with np.errstate(over="ignore"):
        y = np.asarray(fn(x), dtype=np.float32)
    return numerics.quantize_tensor(y, out_scale, out_zero_point, mode=mode)


def tabulate_onnx(nodes, constants, *, input_name, output_name, unsigned, opset_import):
    """Run ``nodes`` (a int8/uint8 -> int8/uint8 subgraph) on all 256 values in ONNX Runtime.

    Returns
    -------
    numpy.ndarray of int8 [256] or None
        ``lut[v + 128]`` in the int8 domain; None when onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from onnx import TensorProto, helper, numpy_helper
    dtype = TensorProto.UINT8 if unsigned else TensorProto.INT8
    used = {name for node in nodes for name in node.input if name in constants}
    inits = [numpy_helper.from_array(np.asarray(constants[name]), name) for name in sorted(used)]
    out_type = TensorProto.UINT8 if _output_unsigned(nodes[-1], constants) else TensorProto.INT8
    graph = helper.make_graph(
        list(nodes), "tessera_lut", [helper.make_tensor_value_info(input_name, dtype, [256])],
        [helper.make_tensor_value_info(output_name, out_type, [256])], inits)
    model = helper.make_model(graph, opset_imports=list(opset_import))
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    x = (_ALL_INT8.astype(np.int16) + 128).astype(np.uint8) if unsigned else _ALL_INT8
    y = session.run(None, {input_name: x})[0]
    return (y.astype(np.int16) - 128).astype(np.int8) if y.dtype == np.uint8 else y


def _output_unsigned(node, constants):
    # QuantizeLinear / QLinear* ops: the output type is the type of the output zero point.
    zp_index = {"QuantizeLinear": 2, "QLinearSigmoid": 4, "QLinearLeakyRelu": 4}[node.op_type]
    if zp_index >= len(node.input) or not node.input[zp_index]:
        return node.op_type == "QuantizeLinear"        # ONNX default zero point is uint8
    return np.asarray(constants[node.input[zp_index]]).dtype == np.uint8


def tabulate_tflite(operator, opcode, in_quant, out_quant, *, reference):
    """Run one LiteRT operator (e.g. ``LOGISTIC``) on all 256 int8 values.

    Parameters
    ----------
    operator : schema.OperatorT
        The source operator (its builtin options are reused).
    opcode : schema.OperatorCodeT
    in_quant, out_quant : schema.QuantizationParametersT
    reference : bool
        Use the ``BUILTIN_REF`` reference kernels instead of the default resolver (XNNPACK).

    Returns
    -------
    numpy.ndarray of int8 [256] or None
        None when ai-edge-litert is not installed.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        return None
    import flatbuffers
    tensors = []
    for name, quant in (("x", in_quant), ("y", out_quant)):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, [256], \
            schema.TensorType.INT8, 0, quant
        tensors.append(t)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.builtinOptionsType, op.builtinOptions = operator.builtinOptionsType, operator.builtinOptions
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = \
        tensors, [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [opcode], [subgraph]
    model.buffers = [schema.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_content=bytes(builder.Output()), num_threads=1,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], _ALL_INT8)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.int8)
