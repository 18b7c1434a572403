"""Build and run single-op quantized CNN graphs on ONNX Runtime (the mode "onnx" CNN oracle).

Every runner takes and returns NHWC int8 arrays (Tessera's layout) and transposes to ONNX's NCHW
at the edges. Two spellings of each op:

QOperator   the ORT kernel itself (``QLinearConv``, ``com.microsoft.QLinearAdd``, ...).
QDQ         ``DequantizeLinear -> op -> QuantizeLinear`` on float tensors, which ORT's graph
            optimizer fuses into the same kernel (``qdq=True``).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

__all__ = ["run_conv", "run_add", "run_average_pool", "run_global_average_pool", "run_max_pool",
           "run_softmax", "run_concat", "nhwc", "nchw"]

_OPSET = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
_MS = "com.microsoft"
_F32 = np.float32


def nchw(x):
    """Return NHWC ``x`` as NCHW."""
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def nhwc(x):
    """Return NCHW ``x`` as NHWC."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def _run(nodes, inputs, inits, feeds):
    rank = [None] * feeds[inputs[0]].ndim          # every op here keeps the rank
    dtype = TensorProto.UINT8 if feeds[inputs[0]].dtype == np.uint8 else TensorProto.INT8
    graph = helper.make_graph(
        nodes, "op", [helper.make_tensor_value_info(n, dtype, rank) for n in inputs],
        [helper.make_tensor_value_info("y", dtype, rank)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=_OPSET)
    model.ir_version = 10
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.qdqisint8allowed", "1")
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _q(prefix, scale, zero_point):
    return {f"{prefix}_s": _F32(scale), f"{prefix}_z": np.int8(zero_point)}


def _single(op, x_list, qin, qout, attrs, *, qdq, domain="", extra_inputs=()):
    """Run ``op`` on the int8 NCHW inputs ``x_list`` with per-input qparams ``qin``."""
    names = [f"x{i}" for i in range(len(x_list))]
    inits = {}
    for i, (s, z) in enumerate(qin):
        inits.update(_q(f"x{i}", s, z))
    inits.update(_q("y", *qout))
    feeds = dict(zip(names, x_list))
    if qdq:
        nodes = [helper.make_node("DequantizeLinear", [n, f"{n}_s", f"{n}_z"], [f"{n}_f"])
                 for n in names]
        nodes.append(helper.make_node(op, [f"{n}_f" for n in names] + list(extra_inputs),
                                      ["y_f"], **attrs))
        nodes.append(helper.make_node("QuantizeLinear", ["y_f", "y_s", "y_z"], ["y"]))
        return nodes, names, inits, feeds
    ins = []
    for n in names:
        ins += [n, f"{n}_s", f"{n}_z"]
    node = helper.make_node(op, ins + ["y_s", "y_z"], ["y"], domain=domain, **attrs)
    return [node], names, inits, feeds


def _pads(padding):
    (top, bottom), (left, right) = padding
    return [top, left, bottom, right]


def run_conv(x_q, w_q, bias, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point, stride,
             dilation, padding, group=1, qdq=False):
    """Run ``QLinearConv`` (or DQ -> Conv -> Q) on NHWC ``x_q`` with OIHW weights ``w_q``."""
    sw = np.asarray(w_scale, dtype=_F32)
    attrs = dict(strides=list(stride), dilations=list(dilation), pads=_pads(padding),
                 group=group)
    inits = {"x_s": _F32(x_scale), "x_z": np.int8(x_zero_point), "w": w_q, "w_s": sw,
             "w_z": np.zeros(sw.shape, np.int8), "y_s": _F32(y_scale),
             "y_z": np.int8(y_zero_point)}
    if qdq:
        nodes = [helper.make_node("DequantizeLinear", ["x", "x_s", "x_z"], ["xf"]),
                 helper.make_node("DequantizeLinear", ["w", "w_s", "w_z"], ["wf"], axis=0)]
        inputs = ["xf", "wf"]
        if bias is not None:
            inits.update(b=bias, b_s=(_F32(x_scale) * sw).astype(_F32),
                         b_z=np.zeros(sw.shape, np.int32))
            nodes.append(helper.make_node("DequantizeLinear", ["b", "b_s", "b_z"], ["bf"],
                                          axis=0))
            inputs.append("bf")
        nodes += [helper.make_node("Conv", inputs, ["yf"], **attrs),
                  helper.make_node("QuantizeLinear", ["yf", "y_s", "y_z"], ["y"])]
    else:
        inputs = ["x", "x_s", "x_z", "w", "w_s", "w_z", "y_s", "y_z"]
        if bias is not None:
            inits["b"] = bias
            inputs.append("b")
        nodes = [helper.make_node("QLinearConv", inputs, ["y"], **attrs)]
    return nhwc(_run(nodes, ["x"], inits, {"x": nchw(x_q)}))


def _run_maybe_unsigned(nodes, names, inits, feeds, unsigned):
    """Run on int8 tensors, or (``unsigned``) on uint8 ones: values and zero points plus 128."""
    if not unsigned:
        return _run(nodes, names, inits, feeds)
    feeds = {k: (v.astype(np.int16) + 128).astype(np.uint8) for k, v in feeds.items()}
    inits = {k: (np.uint8(int(v) + 128) if k.endswith("_z") else v) for k, v in inits.items()}
    return (_run(nodes, names, inits, feeds).astype(np.int16) - 128).astype(np.int8)


def run_add(a_q, b_q, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
            qdq=False, unsigned=False):
    """Run ``com.microsoft.QLinearAdd`` (or DQ, DQ -> Add -> Q) on two NHWC arrays.

    ``unsigned``: run it on uint8 tensors and map the result back to int8.
    """
    op, domain = ("Add", "") if qdq else ("QLinearAdd", _MS)
    nodes, names, inits, feeds = _single(
        op, [nchw(a_q), nchw(b_q)], [(a_scale, a_zero_point), (b_scale, b_zero_point)],
        (y_scale, y_zero_point), {}, qdq=qdq, domain=domain)
    return nhwc(_run_maybe_unsigned(nodes, names, inits, feeds, unsigned))


def run_average_pool(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, pool, stride, padding,
                     count_include_pad=False, qdq=False, unsigned=False):
    """Run ``com.microsoft.QLinearAveragePool`` (or DQ -> AveragePool -> Q) on NHWC ``x_q``."""
    attrs = dict(kernel_shape=list(pool), strides=list(stride), pads=_pads(padding),
                 count_include_pad=int(count_include_pad))
    op, domain = ("AveragePool", "") if qdq else ("QLinearAveragePool", _MS)
    nodes, names, inits, feeds = _single(op, [nchw(x_q)], [(x_scale, x_zero_point)],
                                         (y_scale, y_zero_point), attrs, qdq=qdq, domain=domain)
    return nhwc(_run_maybe_unsigned(nodes, names, inits, feeds, unsigned))


def run_global_average_pool(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, qdq=False):
    """Run ``com.microsoft.QLinearGlobalAveragePool`` (or its QDQ form); returns [B, 1, 1, C]."""
    op, domain = ("GlobalAveragePool", "") if qdq else ("QLinearGlobalAveragePool", _MS)
    attrs = {} if qdq else {"channels_last": 0}
    nodes, names, inits, feeds = _single(op, [nchw(x_q)], [(x_scale, x_zero_point)],
                                         (y_scale, y_zero_point), attrs, qdq=qdq, domain=domain)
    return nhwc(_run(nodes, names, inits, feeds))


def run_max_pool(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, pool, stride, padding):
    """Run DQ -> ``MaxPool`` -> Q on NHWC ``x_q`` (int8 ``MaxPool`` when the qparams agree)."""
    attrs = dict(kernel_shape=list(pool), strides=list(stride), pads=_pads(padding))
    nodes, names, inits, feeds = _single("MaxPool", [nchw(x_q)], [(x_scale, x_zero_point)],
                                         (y_scale, y_zero_point), attrs, qdq=True)
    return nhwc(_run(nodes, names, inits, feeds))


def run_softmax(x_q, *, x_scale, x_zero_point, y_scale, y_zero_point, qdq=False):
    """Run ``com.microsoft.QLinearSoftmax`` (or DQ -> Softmax -> Q) over the last axis."""
    if qdq:
        nodes, names, inits, feeds = _single("Softmax", [x_q], [(x_scale, x_zero_point)],
                                             (y_scale, y_zero_point), {"axis": -1}, qdq=True)
    else:
        nodes, names, inits, feeds = _single("QLinearSoftmax", [x_q], [(x_scale, x_zero_point)],
                                             (y_scale, y_zero_point), {"axis": -1, "opset": 13},
                                             qdq=False, domain=_MS)
    return _run(nodes, names, inits, feeds)


def run_concat(inputs, *, scales, zero_points, y_scale, y_zero_point, qdq=False):
    """Run ``com.microsoft.QLinearConcat`` (or its QDQ form) on NHWC arrays along channels."""
    arrays = [nchw(x) for x in inputs]
    qin = list(zip(scales, zero_points))
    if qdq:
        nodes, names, inits, feeds = _single("Concat", arrays, qin, (y_scale, y_zero_point),
                                             {"axis": 1}, qdq=True)
    else:
        names = [f"x{i}" for i in range(len(arrays))]
        inits = _q("y", y_scale, y_zero_point)
        ins = ["y_s", "y_z"]
        for i, (s, z) in enumerate(qin):
            inits.update(_q(f"x{i}", s, z))
            ins += [f"x{i}", f"x{i}_s", f"x{i}_z"]
        nodes = [helper.make_node("QLinearConcat", ins, ["y"], domain=_MS, axis=1)]
        feeds = dict(zip(names, arrays))
    return nhwc(_run(nodes, names, inits, feeds))
