"""Export a :class:`QuantizedModel` as an ONNX QDQ graph to cross-check it in ONNX Runtime.

Each layer becomes ``DequantizeLinear(x) -> Gemm(DequantizeLinear(W int8), DequantizeLinear(b
int32)) -> QuantizeLinear``, which ONNX Runtime fuses into ``QGemm`` (mode "onnx" arithmetic);
relu/relu6 clamps become ``DequantizeLinear -> Relu | Clip -> QuantizeLinear`` and lookup tables
an exact ``Gather`` from the 256-entry int8 table. With ``raw=True`` the graph takes and returns
int8 (like ``predict(raw=True)``); otherwise float in, float out (like ``predict``).

Run the export with the session option ``session.qdqisint8allowed = 1``: by default ONNX Runtime
converts int8 QDQ graphs to uint8 on x86 CPUs without VNNI, whose u8s8 kernel saturates int16
pair sums and is then not exact integer arithmetic (see docs/import.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["export_onnx", "ORT_SESSION_CONFIG"]

#: Session config entries under which ONNX Runtime computes exported graphs exactly.
ORT_SESSION_CONFIG = {"session.qdqisint8allowed": "1"}


def export_onnx(qmodel, path=None, *, raw=False, strict=True):
    """Write ``qmodel`` as an ONNX QDQ model; return the ``onnx.ModelProto``.

    Parameters
    ----------
    qmodel : QuantizedModel
    path : str or os.PathLike, optional
        Where to save the ``.onnx`` file (nothing is written if None).
    raw : bool
        int8 input and output instead of float.
    strict : bool
        Refuse models in mode "tflite" (ONNX Runtime would compute them in mode "onnx" and
        differ by 1 LSB at some outputs). ``strict=False`` exports them anyway.
    """
    from onnx import TensorProto, checker, helper, numpy_helper, save
    if strict and qmodel.mode != "onnx":
        raise ValueError(f"The model is in mode {qmodel.mode!r}; ONNX Runtime computes mode "
                         "'onnx', so its outputs would differ by 1 LSB at some entries. Quantize "
                         "with mode='onnx', or pass strict=False to export anyway")
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def quant(name, tensor, scale, zp, op):
        s = const(f"{name}_scale", np.float32(scale))
        z = const(f"{name}_zp", np.int8(zp))
        out = f"{name}_{'q' if op == 'QuantizeLinear' else 'f'}"
        nodes.append(helper.make_node(op, [tensor, s, z], [out], name=f"{name}_{op}"))
        return out

    current = "input"
    if not raw:
        current = quant("input", current, qmodel.input_scale, qmodel.input_zero_point,
                        "QuantizeLinear")
    for i, layer in enumerate(qmodel.layers):
        p = f"l{i}"
        x = quant(f"{p}_x", current, layer.input_scale, layer.input_zero_point,
                  "DequantizeLinear")
        w = const(f"{p}_w", layer.weight)
        ws = const(f"{p}_w_scale", layer.weight_scale)
        wz = const(f"{p}_w_zp", np.zeros(layer.out_features, np.int8))
        nodes.append(helper.make_node("DequantizeLinear", [w, ws, wz], [f"{p}_wf"], axis=1))
        bs = const(f"{p}_b_scale", np.float32(layer.input_scale) * layer.weight_scale)
        bz = const(f"{p}_b_zp", np.zeros(layer.out_features, np.int32))
        b = const(f"{p}_b", layer.bias)
        nodes.append(helper.make_node("DequantizeLinear", [b, bs, bz], [f"{p}_bf"], axis=0))
        nodes.append(helper.make_node("Gemm", [x, f"{p}_wf", f"{p}_bf"], [f"{p}_acc"],
                                      name=f"{p}_{layer.name}"))
        current = quant(f"{p}_y", f"{p}_acc", layer.requant_scale, layer.requant_zero_point,
                        "QuantizeLinear")
        if layer.activation in ("relu", "relu6"):
            f = quant(f"{p}_act", current, layer.output_scale, layer.output_zero_point,
                      "DequantizeLinear")
            inputs = [f] if layer.activation == "relu" else \
                [f, const(f"{p}_lo", np.float32(0)), const(f"{p}_hi", np.float32(6))]
            nodes.append(helper.make_node("Relu" if layer.activation == "relu" else "Clip",
                                          inputs, [f"{p}_actf"]))
            current = quant(f"{p}_out", f"{p}_actf", layer.output_scale,
                            layer.output_zero_point, "QuantizeLinear")
        elif layer.activation == "lut":
            nodes.append(helper.make_node("Cast", [current], [f"{p}_i32"], to=TensorProto.INT32))
            nodes.append(helper.make_node("Add", [f"{p}_i32", const(f"{p}_128", np.int32(128))],
                                          [f"{p}_idx"]))
            nodes.append(helper.make_node("Gather", [const(f"{p}_lut", layer.lut), f"{p}_idx"],
                                          [f"{p}_looked"]))
            current = f"{p}_looked"
    if not raw:
        current = quant("output", current, qmodel.output_scale, qmodel.output_zero_point,
                        "DequantizeLinear")
    nodes.append(helper.make_node("Identity", [current], ["output"]))
    io_type = TensorProto.INT8 if raw else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "tessera_qmodel",
        [helper.make_tensor_value_info("input", io_type, ["batch", qmodel.in_features])],
        [helper.make_tensor_value_info("output", io_type, ["batch", qmodel.out_features])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="tessera")
    model.ir_version = 8
    checker.check_model(model)
    if path is not None:
        save(model, str(path))
    return model
