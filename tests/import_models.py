"""Model builders for the importer tests: float ONNX from weights, ORT-quantized ONNX, int8 TFLite.

Nothing here uses torch.onnx or TensorFlow: ONNX graphs are written with ``onnx.helper`` from the
weights of an MLP trained with scikit-learn, quantized by ``onnxruntime.quantization
.quantize_static``; TFLite flatbuffers are written with LiteRT's generated schema.
"""

from __future__ import annotations

import warnings

import flatbuffers
import numpy as np
import onnx
import onnxruntime as ort
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32


def digits_mlp(hidden=(24, 16), activation="relu"):
    """Return (sklearn MLPClassifier, x_train, x_test) on the digits data set (float32)."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(F32)
    clf = MLPClassifier(hidden_layer_sizes=hidden, activation=activation, max_iter=60,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x[:1200], y[:1200])
    return clf, x[:1200], x[1200:]


def float_onnx(weights, activations, *, style="gemm", input_shape=("N", None)):
    """Return a float ONNX model: ``style`` "gemm" (Gemm transB=1) or "matmul" (MatMul + Add).

    ``weights`` is a list of (W [in, out], b); ``activations`` names per layer ("relu",
    "relu6", "sigmoid", "tanh" or None).
    """
    nodes, inits = [], []
    current = "x"
    for i, ((w, b), act) in enumerate(zip(weights, activations)):
        w, b = np.asarray(w, F32), np.asarray(b, F32)
        if style == "gemm":
            inits += [numpy_helper.from_array(np.ascontiguousarray(w.T), f"W{i}"),
                      numpy_helper.from_array(b, f"b{i}")]
            nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"b{i}"], [f"h{i}"],
                                          name=f"gemm{i}", transB=1))
        else:
            inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes += [helper.make_node("MatMul", [current, f"W{i}"], [f"m{i}"], name=f"mm{i}"),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"], name=f"add{i}")]
        current = f"h{i}"
        if act:
            op = {"relu": "Relu", "relu6": "Clip", "sigmoid": "Sigmoid", "tanh": "Tanh"}[act]
            extra = []
            if act == "relu6":
                inits += [numpy_helper.from_array(F32(0), f"lo{i}"),
                          numpy_helper.from_array(F32(6), f"hi{i}")]
                extra = [f"lo{i}", f"hi{i}"]
            nodes.append(helper.make_node(op, [current, *extra], [f"a{i}"], name=f"{act}{i}"))
            current = f"a{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="out"))
    k = np.asarray(weights[0][0]).shape[0]
    n = np.asarray(weights[-1][0]).shape[1]
    shape = [input_shape[0], k if input_shape[1] is None else input_shape[1]]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def ort_quantize(float_model, calibration, path, *, fmt="QDQ", activations="int8",
                 per_channel=True, tmp_path):
    """Quantize ``float_model`` with ``quantize_static`` (pre-processed, min/max) to ``path``."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": calibration[i:i + 100]}
                                 for i in range(0, len(calibration), 100)])

        def get_next(self):
            return next(self.batches, None)

    src, pre = tmp_path / "float.onnx", tmp_path / "pre.onnx"
    onnx.save(float_model, src)
    quant_pre_process(str(src), str(pre))
    quantize_static(str(pre), str(path), Reader(), quant_format=getattr(QuantFormat, fmt),
                    activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel,
                    reduce_range=activations == "uint8")
    return path


def ort_session(model):
    """Return an ORT CPU session computing exact integer arithmetic for int8 QDQ graphs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.qdqisint8allowed", "1")
    data = model if isinstance(model, bytes) else (
        model.SerializeToString() if hasattr(model, "SerializeToString") else str(model))
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


# --- TFLite ---------------------------------------------------------------------------------
def _quant(scale, zero_point, axis=0):
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(np.asarray(scale, F32))]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = axis
    return q


def tflite_mlp(layers, *, x_scale, x_zero_point, float_io=False):
    """Return ``.tflite`` bytes for a chain of int8 layers.

    ``layers``: dicts with ``w`` int8 [K, N], ``b`` int32 [N] or None, ``w_scale`` scalar or
    [N], ``y_scale``, ``y_zero_point``, ``fused`` ("none"/"relu"/"relu6") and optionally
    ``table`` ("LOGISTIC"/"TANH") with ``t_scale``, ``t_zero_point``. ``float_io`` adds
    QUANTIZE/DEQUANTIZE at the ends.
    """
    codes, tensors, buffers, ops = {}, [], [schema.BufferT()], []

    def opcode(name):
        if name not in codes:
            code = getattr(schema.BuiltinOperator, name)
            oc = schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            codes[name] = (len(codes), oc)
        return codes[name][0]

    def tensor(name, shape, ttype, quant=None, data=None):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.quantization = name, list(shape), ttype, quant
        t.buffer = 0
        if data is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    def op(name, inputs, outputs, options_type=0, options=None):
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = opcode(name), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        ops.append(o)

    int8, int32, f32 = schema.TensorType.INT8, schema.TensorType.INT32, schema.TensorType.FLOAT32
    k0 = layers[0]["w"].shape[0]
    cur = tensor("x_q", [1, k0], int8, _quant(x_scale, x_zero_point))
    first = cur
    if float_io:
        first = tensor("x", [1, k0], f32)
        op("QUANTIZE", [first], [cur])
    fused = {"none": 0, "relu": schema.ActivationFunctionType.RELU,
             "relu6": schema.ActivationFunctionType.RELU6}
    for i, layer in enumerate(layers):
        w, n = layer["w"], layer["w"].shape[1]
        sw = np.asarray(layer["w_scale"], F32)
        wt = tensor(f"w{i}", [n, w.shape[0]], int8,
                    _quant(sw, np.zeros(sw.size, np.int64)), np.ascontiguousarray(w.T))
        inputs = [cur, wt, -1]
        if layer.get("b") is not None:
            bscale = F32(x_scale) * (sw if sw.ndim else np.full(n, sw, F32))
            inputs[2] = tensor(f"b{i}", [n], int32, _quant(bscale, np.zeros(n, np.int64)),
                               np.asarray(layer["b"], np.int32))
        out = tensor(f"fc{i}", [1, n], int8, _quant(layer["y_scale"], layer["y_zero_point"]))
        opts = schema.FullyConnectedOptionsT()
        opts.fusedActivationFunction = fused[layer.get("fused", "none")]
        op("FULLY_CONNECTED", inputs, [out], schema.BuiltinOptions.FullyConnectedOptions, opts)
        cur, x_scale = out, layer["y_scale"]
        if layer.get("table"):
            t = tensor(f"act{i}", [1, n], int8, _quant(layer["t_scale"], layer["t_zero_point"]))
            op(layer["table"], [cur], [t])
            cur, x_scale = t, layer["t_scale"]
    last = cur
    if float_io:
        last = tensor("y", [1, layers[-1]["w"].shape[1]], f32)
        op("DEQUANTIZE", [cur], [last])
    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = \
        tensors, [first], [last], ops, "main"
    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers = 3, [sub], buffers
    model.operatorCodes = [oc for _, oc in sorted(codes.values(), key=lambda c: c[0])]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_tflite(content, x, *, resolver="AUTO"):
    """Run ``.tflite`` bytes on ``x`` [M, K] (batch resized to M) with the named op resolver."""
    interpreter = Interpreter(model_content=content, num_threads=1,
                              experimental_op_resolver_type=getattr(OpResolverType, resolver))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
