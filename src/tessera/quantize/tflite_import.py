"""Import full-integer (int8) TFLite models, keeping every parameter exactly.

The flatbuffer is read with LiteRT's generated schema (``ai_edge_litert.schema_py_generated``,
object API): no TensorFlow, and nothing in the file is executed. Supported chains::

    [QUANTIZE] -> FULLY_CONNECTED [fused NONE | RELU | RELU6] -> [LOGISTIC | TANH | RELU | RELU6]
               -> FULLY_CONNECTED ... -> [DEQUANTIZE]          (RESHAPE to [batch, -1] anywhere)

A converter's constant shape arithmetic before a RESHAPE (SHAPE, STRIDED_SLICE, PACK, ...) is
folded first (:mod:`.tflite_fold`).

Weights are int8 ``[N, K]`` (per tensor or per output channel, zero point 0), biases int32.
Standalone activation operators become the preceding layer's lookup table
(:mod:`.tflite_tables`: TFLite Micro's arithmetic in mode ``"tflite"``, LiteRT's in ``"onnx"``). Such chains import as a
:class:`QuantizedModel` (they run on the accelerator); a model with any other operator (CNNs,
residual DAGs) is read by :mod:`.tflite_graph` into a :class:`tessera.graph.QuantizedGraph`.

Which mode? LiteRT 2.3's default interpreter (XNNPACK delegate) computes ``FULLY_CONNECTED``
exactly as mode ``"onnx"`` — the default here. Its ``BUILTIN_REF`` kernel rounds
``float64(acc) * M`` half away from zero and its ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (ruy)
kernel rounds the final shift half up: Tessera reproduces neither. ``mode="tflite"`` gives
TFLite's ``MultiplyByQuantizedMultiplier`` (TFLite Micro, CMSIS-NN, LiteRT's CONV_2D reference).
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedModelError
from .prequantized import LayerDrafts
from .tflite_fold import fold_shape_subgraphs
from .tflite_reader import TFLiteReader, is_tflite_bytes, read_tflite
from .tflite_tables import tflite_table

__all__ = ["TFLITE_OPS", "is_tflite_bytes", "import_tflite"]

#: Operators Tessera imports from TFLite models.
TFLITE_OPS = ("QUANTIZE", "DEQUANTIZE", "FULLY_CONNECTED", "LOGISTIC", "TANH", "RELU", "RELU6",
              "RESHAPE")


def _fully_connected(r, i, op, x, drafts):
    where = f"{r.name}: {r.describe(i, op)}"
    r.check_fully_connected_options(op, where)
    if r.type_of(op.inputs[0]) != "INT8" or r.type_of(op.outputs[0]) != "INT8":
        raise UnsupportedModelError(
            f"{where} has {r.type_of(op.inputs[0])} input and "
            f"{r.type_of(op.outputs[0])} output; Tessera imports full-integer int8 "
            "models (converter: representative_dataset, inference int8 ops only), "
            "not float, dynamic-range (hybrid) or 16x8 models")
    r.check_int8_weight(op, where)
    w = r.constant(op.inputs[1], np.int8, where)
    if w.ndim != 2:
        raise UnsupportedModelError(f"{where} has weights of shape {w.shape}; expected [N, K]")
    r.check_symmetric_weight(op.inputs[1], where)
    wq = r.tensor(op.inputs[1]).quantization
    scales = np.asarray(wq.scale, dtype=np.float32)
    if scales.size > 1 and wq.quantizedDimension != 0:
        raise UnsupportedModelError(
            f"{where} is quantized per channel along axis "
            f"{wq.quantizedDimension}, not the output axis 0")
    if w.size and int(w.min()) == -128:
        raise UnsupportedModelError(
            f"{where} has weight value -128; Tessera's symmetric weights lie in "
            "-127..127")
    bias = r.bias_index(op, where)
    if bias is not None:
        bias = r.constant(bias, np.int32, where).ravel()
    activation = r.fused_activation(op.builtinOptions, where)
    out = r.qparams(op.outputs[0], where)
    index = drafts.add_linear(r.tname(op.outputs[0]) or f"fc{len(drafts.drafts)}",
                              np.ascontiguousarray(w.T), bias, x, scales, out)
    drafts.set_clamp(index, activation)
    return out, index


def import_tflite(source, *, mode=None):
    """Return the model of an int8 TFLite file (path or bytes): a chain or a graph.

    A chain of FULLY_CONNECTED layers and activations gives a :class:`QuantizedModel`; any
    other operator a :class:`tessera.graph.QuantizedGraph` (:mod:`.tflite_graph`).

    Parameters
    ----------
    source : str, os.PathLike or bytes
    mode : {"onnx", "tflite"} or None
        None or ``"onnx"``: bit-identical to LiteRT's default interpreter (XNNPACK);
        ``"tflite"``: MultiplyByQuantizedMultiplier (see the module docstring).

    Raises
    ------
    UnsupportedModelError
        An operator is not supported (named with its index, output tensor and the list), a
        float/hybrid model, not a chain, or parameters Tessera cannot keep exactly.
    ValueError
        Not a TFLite file, truncated or corrupt (a tensor or operator index out of range).
    """
    mode = "onnx" if mode is None else mode
    model, data, name = read_tflite(source)
    r = TFLiteReader(model, data, name)
    g = r.graph
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise UnsupportedModelError(
            f"{name}: Tessera imports models with one input and one output, found "
            f"{len(g.inputs)} and {len(g.outputs)}")
    for i, op in enumerate(g.operators or []):
        r.check_operator(i, op)
    r.folded = fold_shape_subgraphs(r)      # constant shape arithmetic before a RESHAPE
    if any(r.op_names[op.opcodeIndex] not in TFLITE_OPS
           for i, op in enumerate(g.operators or []) if i not in r.folded):
        from .tflite_graph import import_tflite_graph      # a CNN or another DAG
        return import_tflite_graph(r, mode=mode)
    drafts = LayerDrafts(mode)
    current, params, layer = g.inputs[0], None, None
    if r.type_of(current) == "INT8":
        params = r.qparams(current, f"{name}: model input")
    for i, op in enumerate(g.operators or []):
        if i in r.folded:
            continue
        kind = r.op_names[op.opcodeIndex]
        where = f"{name}: {r.describe(i, op)}"
        if op.inputs is None or len(op.inputs) == 0 or op.inputs[0] != current:
            raise UnsupportedModelError(
                f"{where} does not consume the previous tensor "
                f"{r.tname(current)!r}; Tessera imports chains only")
        if kind == "QUANTIZE":
            out = r.qparams(op.outputs[0], where)
            if params is not None and out != params:
                raise UnsupportedModelError(f"{where} re-quantizes an int8 tensor; not supported")
            params = out
        elif kind == "DEQUANTIZE":
            pass
        elif kind == "RESHAPE":
            shape = list(r.tensor(op.outputs[0]).shape)
            if len(shape) != 2:
                raise UnsupportedModelError(
                    f"{where} reshapes to {shape}; only [batch, -1] is supported")
        elif kind == "FULLY_CONNECTED":
            if params is None:
                raise UnsupportedModelError(
                    f"{where} takes a float tensor; Tessera imports full-integer "
                    "int8 models (add QUANTIZE, or convert with int8 inference ops)")
            params, layer = _fully_connected(r, i, op, params, drafts)
        else:
            if layer is None or drafts.drafts[layer].out != params:
                raise UnsupportedModelError(
                    f"{where} does not follow a FULLY_CONNECTED layer; Tessera fuses "
                    "activations into the layer before them")
            out = r.qparams(op.outputs[0], where)
            lut, source_name = tflite_table(kind, op, model.operatorCodes[op.opcodeIndex],
                                            r.tensor(op.inputs[0]).quantization,
                                            r.tensor(op.outputs[0]).quantization, mode=mode,
                                            where=where)
            drafts.attach_table(layer, lut, out, what=where, source=source_name)
            params = out
        current = op.outputs[0]
    if current != g.outputs[0]:
        raise UnsupportedModelError(
            f"{name}: the model output {r.tname(g.outputs[0])!r} is not the end of "
            "the chain")
    if not drafts.drafts:
        raise UnsupportedModelError(f"{name}: the model has no FULLY_CONNECTED layer")
    if layer != len(drafts.drafts) - 1 or params != drafts.drafts[-1].out:
        raise UnsupportedModelError(
            f"{name}: the model does not end with a quantized layer's output")
    return drafts.finish({"source": f"TFLite ({name})", "runtime": "LiteRT"})
