"""Build and run single-layer quantized ONNX graphs on ONNX Runtime (the mode "onnx" oracle).

``run_qgemm``       ``com.microsoft.QGemm`` with an int32 bias, per-tensor or per-channel B scale.
``run_qlinearmatmul`` ONNX ``QLinearMatMul`` (no bias).
``run_qdq_activation`` ``DequantizeLinear -> Relu | Clip(0, 6) -> QuantizeLinear`` on int8 data,
                    i.e. how a QDQ model applies an activation after a quantized MatMul/Gemm.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

__all__ = ["run_qgemm", "run_qlinearmatmul", "run_qdq_activation", "run_quantize_linear"]

_OPSET = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]


def _session(graph, threads=1) -> ort.InferenceSession:
    model = helper.make_model(graph, opset_imports=_OPSET)
    model.ir_version = 10
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    if threads:                      # 0 keeps ORT's default thread pool
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def qgemm_session(w_q, bias_q, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point,
                  threads=1):
    """Return an ORT session computing ``QGemm(x, w) + bias`` with int8 output (input ``x``).

    ``threads`` is ORT's intra-op thread count (0: ORT's default).
    """
    k, n = w_q.shape
    sw = np.asarray(w_scale, dtype=np.float32)
    inits = [
        _const("a_scale", np.float32(x_scale)), _const("a_zp", np.int8(x_zero_point)),
        _const("b", w_q), _const("b_scale", sw),
        _const("b_zp", np.zeros(sw.shape, dtype=np.int8)),
        _const("c", np.zeros(n, np.int32) if bias_q is None else bias_q),
        _const("y_scale", np.float32(y_scale)), _const("y_zp", np.int8(y_zero_point)),
    ]
    node = helper.make_node(
        "QGemm", ["x", "a_scale", "a_zp", "b", "b_scale", "b_zp", "c", "y_scale", "y_zp"],
        ["y"], domain="com.microsoft", alpha=1.0)
    graph = helper.make_graph(
        [node], "qgemm", [helper.make_tensor_value_info("x", TensorProto.INT8, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, ["m", n])], inits)
    return _session(graph, threads)


def run_qgemm(x_q, w_q, bias_q, **quant) -> np.ndarray:
    """Run ``com.microsoft.QGemm`` once on ``x_q`` (keyword arguments as quantized_linear)."""
    return qgemm_session(w_q, bias_q, **quant).run(None, {"x": x_q})[0]


def run_qlinearmatmul(x_q, w_q, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point):
    """Run ONNX ``QLinearMatMul`` (int8 x int8 -> int8, no bias)."""
    k, n = w_q.shape
    sw = np.asarray(w_scale, dtype=np.float32)
    inits = [
        _const("a_scale", np.float32(x_scale)), _const("a_zp", np.int8(x_zero_point)),
        _const("b", w_q), _const("b_scale", sw),
        _const("b_zp", np.zeros(sw.shape, dtype=np.int8)),
        _const("y_scale", np.float32(y_scale)), _const("y_zp", np.int8(y_zero_point)),
    ]
    node = helper.make_node(
        "QLinearMatMul", ["x", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"],
        ["y"])
    graph = helper.make_graph(
        [node], "qlinearmatmul",
        [helper.make_tensor_value_info("x", TensorProto.INT8, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, ["m", n])], inits)
    return _session(graph).run(None, {"x": x_q})[0]


def run_qdq_activation(y_q, activation, *, scale, zero_point) -> np.ndarray:
    """Apply ``Relu`` or ``Clip(0, 6)`` to int8 ``y_q`` the QDQ way: DQ -> act -> Q."""
    inits = [_const("s", np.float32(scale)), _const("z", np.int8(zero_point))]
    nodes = [helper.make_node("DequantizeLinear", ["y", "s", "z"], ["f"])]
    if activation == "relu":
        nodes.append(helper.make_node("Relu", ["f"], ["g"]))
    else:
        inits += [_const("lo", np.float32(0.0)), _const("hi", np.float32(6.0))]
        nodes.append(helper.make_node("Clip", ["f", "lo", "hi"], ["g"]))
    nodes.append(helper.make_node("QuantizeLinear", ["g", "s", "z"], ["out"]))
    graph = helper.make_graph(
        nodes, "qdq_act", [helper.make_tensor_value_info("y", TensorProto.INT8, list(y_q.shape))],
        [helper.make_tensor_value_info("out", TensorProto.INT8, list(y_q.shape))], inits)
    return _session(graph).run(None, {"y": y_q})[0]


def run_quantize_linear(x, *, scale, zero_point) -> np.ndarray:
    """Run ONNX ``QuantizeLinear`` (float32 -> int8) on ``x``."""
    x = np.asarray(x, dtype=np.float32)
    inits = [_const("s", np.float32(scale)), _const("z", np.int8(zero_point))]
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
    graph = helper.make_graph(
        [node], "quantize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("q", TensorProto.INT8, list(x.shape))], inits)
    return _session(graph).run(None, {"x": x})[0]
