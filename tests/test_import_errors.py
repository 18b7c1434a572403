"""Bad models, files and options for the importers and ``tessera run``: clear, asserted errors."""

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tessera
from import_models import float_onnx
from tessera.cli import main

F32 = np.float32
RNG = np.random.default_rng(0)
W = [(RNG.normal(size=(6, 5)).astype(F32), RNG.normal(size=5).astype(F32)),
     (RNG.normal(size=(5, 3)).astype(F32), RNG.normal(size=3).astype(F32))]
X = RNG.normal(size=(50, 6)).astype(F32)


def _raises(exc, message, fn, *args, **kwargs):
    with pytest.raises(exc, match=re.escape(message)):
        fn(*args, **kwargs)


def _with_node(model, node, inits=()):
    model = onnx.ModelProto.FromString(model.SerializeToString())
    out = model.graph.node[-1]
    node.input[0] = out.input[0]
    out.input[0] = node.output[0]
    model.graph.node.insert(len(model.graph.node) - 1, node)
    model.graph.initializer.extend(inits)
    return model


def test_unsupported_operator_is_named():
    model = _with_node(float_onnx(W, ["relu", None]),
                       helper.make_node("Softmax", ["?"], ["sm"], name="probs"))
    _raises(tessera.UnsupportedModelError, "the ONNX model: unsupported operator in node 'probs' "
            "(Softmax); Tessera imports chains of: Gemm, MatMul, Add, Relu, Clip, Sigmoid, Tanh, "
            "Flatten, Reshape, Identity, Dropout", tessera.quantize, model, X)


def test_clip_bounds_and_dynamic_reshape():
    model = float_onnx(W, ["relu6", None])
    for init in model.graph.initializer:
        if init.name == "hi0":
            init.CopyFrom(numpy_helper.from_array(F32(3), "hi0"))
    _raises(ValueError, "node 'relu60' (Clip) clips to [0.0, 3.0]; Tessera imports Clip(0, 6) "
            "(relu6) and Clip(0, inf) (relu) only", tessera.quantize, model, X)
    dynamic = _with_node(float_onnx(W, [None, None]),
                         helper.make_node("Reshape", ["?", "shape_at_runtime"], ["r"], name="r"))
    dynamic.graph.input.append(helper.make_tensor_value_info("shape_at_runtime",
                                                             TensorProto.INT64, [2]))
    _raises(ValueError, "Tessera imports models with exactly one input tensor, found 2",
            tessera.quantize, dynamic, X)


def test_unresolvable_input_shape():
    model = float_onnx(W, [None, None], input_shape=("N", "c"))
    model.graph.input[0].type.tensor_type.shape.dim.add().dim_param = "d"
    _raises(ValueError, "input 'x' has shape ['N', 'c', 'd'] with dimensions that are symbolic "
            "or unknown; Tessera cannot resolve how it flattens to [batch, features]",
            tessera.quantize, model, X)


def test_float_model_needs_calibration(tmp_path):
    path = tmp_path / "float.onnx"
    onnx.save(float_onnx(W, ["relu", None]), path)
    _raises(ValueError, f"ONNX model {path} is a float model: quantizing it needs calibration "
            "data (calibration=x, a representative float batch [M, in_features]; on the command "
            "line --calibration FILE.npy)", tessera.quantize, path)


def test_not_a_model_and_truncated(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    with pytest.raises(ValueError, match=r"notes.onnx (is not a valid ONNX model|holds no ONNX "
                                         r"graph)"):
        tessera.quantize(text, X)
    data = float_onnx(W, ["relu", None]).SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.onnx (is not a valid ONNX model \(protobuf "
                                         r"decoding failed|holds no ONNX graph)"):
        tessera.quantize(cut, X)
    _raises(FileNotFoundError, "Model file", tessera.quantize, tmp_path / "missing.onnx", X)


def test_quantized_add_is_refused_with_the_fix():
    sx = numpy_helper.from_array
    inits = [sx(F32(0.1), "s"), sx(np.int8(0), "z"), sx(np.int8([1, 2, 3, 4, 5]), "c")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("QLinearAdd", ["q", "s", "z", "c", "s", "z", "s", "z"], ["y"],
                              domain="com.microsoft", name="add_quant")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 5])], [helper.make_tensor_value_info(
            "y", TensorProto.INT8, ["N", 5])], inits)
    model = helper.make_model(graph)
    _raises(ValueError, "node 'add_quant' (com.microsoft.QLinearAdd) is a quantized Add (MatMul "
            "and Add quantized separately round twice); run onnxruntime.quantization."
            "quant_pre_process on the float model first", tessera.quantize, model)


def test_prequantized_options_are_refused():
    qmodel = tessera.quantize([(w, b, None) for w, b in W], calibration=X)
    exported = qmodel.to_onnx()
    _raises(ValueError, "ONNX model the ONNX model is already quantized: Tessera keeps its "
            "parameters exactly, so calibration data is not used", tessera.quantize, exported, X)
    _raises(ValueError, "is quantized for a runtime that mode 'tflite' does not reproduce; use "
            "mode 'onnx' (or None)", tessera.quantize, exported, mode="tflite")
    np.testing.assert_array_equal(tessera.quantize(exported).predict(X), qmodel.predict(X))


def test_cli_runs_onnx_files(tmp_path, capsys):
    np.save(tmp_path / "x.npy", X[:4])
    np.save(tmp_path / "calib.npy", X)
    onnx.save(float_onnx(W, ["relu", None]), tmp_path / "float.onnx")
    status = main(["run", str(tmp_path / "float.onnx"), "--input", str(tmp_path / "x.npy"),
                   "--device", "emu"])
    assert status == 2
    assert "is a float model: quantizing it needs calibration data" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "float.onnx"), "--input", str(tmp_path / "x.npy"),
                 "--calibration", str(tmp_path / "calib.npy"), "--device", "emu", "--check",
                 "--output", str(tmp_path / "y.npy")]) == 0
    expected = tessera.quantize(tmp_path / "float.onnx", X).predict(X[:4])
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    tessera.quantize(tmp_path / "float.onnx", X).to_onnx(tmp_path / "q.onnx")
    assert main(["run", str(tmp_path / "q.onnx"), "--input", str(tmp_path / "x.npy"),
                 "--check", "--output", str(tmp_path / "y2.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y2.npy"), expected)


class Dense:          # duck-typed Keras layers (Keras itself is not installed here)
    def __init__(self, w, b, activation, name):
        self.w, self.b, self.activation, self.name = w, b, activation, name

    def get_weights(self):
        return [self.w, self.b]

    def get_config(self):
        return {"activation": self.activation}


class Dropout:
    name = "drop"

    def get_config(self):
        return {}


class Sequential:
    def __init__(self, layers):
        self.layers = layers


def test_keras_like_sequential():
    model = Sequential([Dense(W[0][0], W[0][1], "relu", "d0"), Dropout(),
                        Dense(W[1][0], W[1][1], "linear", "d1")])
    ours = tessera.quantize(model, calibration=X)
    direct = tessera.quantize([(W[0][0], W[0][1], "relu"), (W[1][0], W[1][1], None)],
                              calibration=X)
    np.testing.assert_array_equal(ours.predict(X), direct.predict(X))
    _raises(ValueError, "The Keras model Sequential is a float model: quantizing it needs "
            "calibration data", tessera.quantize, model)

    class Conv2D(Dropout):
        name = "conv"
    _raises(tessera.UnsupportedModelError, "Unsupported Keras layer 'conv' (Conv2D); supported: "
            "Dense, Activation, ReLU, InputLayer, Flatten, Dropout, Reshape", tessera.quantize,
            Sequential([Conv2D()]), X)
