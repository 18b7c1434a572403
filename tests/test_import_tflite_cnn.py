"""TFLite CNN import: every parameter kept, the graph equal to TFLite Micro, the rest refused.

Graphs are written with ``tests/tflite_builder.py`` (LiteRT's schema, as a converter writes
them) so that each parameter the converter fixtures do not cover — PAD, asymmetric strides and
dilations, VALID with a remainder, depth multiplier 3, a residual ADD with ReLU6, MAX_POOL and
AVERAGE_POOL with padded borders, CONCATENATION, MEAN with keepdims — is in one DAG; the
converter-made fixtures are compared with TFLM in ``tests/test_keras_real.py``.
"""

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from tflite_builder import TFLiteGraph, quantization, run_tflm

import tessera
from tessera.graph import QuantizedGraph

RNG = np.random.default_rng(1313)
FIXTURES = Path(__file__).parent / "data" / "tflite_cnn"


def _weights(shape):
    return RNG.integers(-127, 128, size=shape).astype(np.int8)


def _dag():
    """Return ``(graph builder, output index)`` of a DAG exercising every CNN parameter."""
    g = TFLiteGraph()
    x = g.input("x", (1, 9, 7, 3), scale=0.04, zero_point=-5)
    p = g.pad(x, [(0, 0), (1, 2), (0, 1), (0, 0)], name="pad")
    c = g.conv2d(p, _weights((6, 3, 3, 3)), RNG.integers(-900, 900, 6), name="conv",
                 w_scale=np.linspace(0.002, 0.009, 6), y_scale=0.05, y_zero_point=-128,
                 stride=(2, 1), dilation=(1, 2), padding="valid", activation="relu6")
    d = g.depthwise_conv2d(c, _weights((1, 3, 3, 18)), RNG.integers(-500, 500, 18),
                           w_scale=np.linspace(0.01, 0.03, 18), y_scale=0.07, y_zero_point=-20,
                           depth_multiplier=3, padding="same", activation="relu", name="dw")
    e = g.conv2d(d, _weights((6, 1, 1, 18)), None, w_scale=0.004, y_scale=0.06,
                 y_zero_point=3, name="project")
    f = g.add(c, e, y_scale=0.08, y_zero_point=-128, activation="relu6", name="residual")
    m = g.max_pool2d(f, pool=2, stride=2, padding="same", name="maxpool")
    a = g.average_pool2d(f, pool=(3, 2), stride=2, padding="same", name="avgpool")
    cat = g.concatenation([m, a], axis=-1, name="concat")
    mean = g.mean_hw(cat, y_scale=0.03, y_zero_point=1, keepdims=True, name="mean")
    return g, g.reshape(mean, (1, -1), name="flatten")


def _inputs(shape, zero_point, count):
    x = RNG.integers(-128, 128, size=(count,) + tuple(shape)).astype(np.int8)
    x[0], x[1], x[2] = -128, 127, zero_point
    return x


def test_dag_parameters_are_kept_exactly():
    g, out = _dag()
    qgraph = tessera.load_model(g.build([out]), mode="tflite")
    assert isinstance(qgraph, QuantizedGraph)
    ops = {op.name: op for op in qgraph.graph.ops}
    assert [op.kind for op in qgraph.graph.ops] == [
        "PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "MAX_POOL_2D",
        "AVERAGE_POOL_2D", "CONCATENATION", "MEAN", "RESHAPE"]
    assert ops["pad/y"].attrs["paddings"] == ((1, 2), (0, 1), (0, 0))
    assert ops["conv/y"].attrs == {"stride": (2, 1), "dilation": (1, 2),
                                   "padding": ((0, 0), (0, 0)), "activation": "relu6"}
    assert ops["dw/y"].attrs == {"stride": (1, 1), "dilation": (1, 1), "depth_multiplier": 3,
                                 "padding": ((1, 1), (1, 1)), "activation": "relu"}
    # SAME on odd sizes: TensorFlow's extra row/column goes at the bottom/right.
    assert ops["maxpool/y"].attrs["padding"] == ((0, 1), (0, 0))
    assert ops["avgpool/y"].attrs["padding"] == ((1, 1), (0, 0))     # 3x2 window: even total
    assert ops["concat/y"].attrs == {"axis": 2}
    assert ops["mean/y"].attrs == {"keepdims": True}
    file = schema.ModelT.InitFromPackedBuf(g.build([out]), 0).subgraphs[0]
    by_name = {t.name.decode(): t for t in file.tensors}
    for name in ("conv/w", "dw/w", "project/w"):
        ours, theirs = qgraph.graph.tensor(name), by_name[name]
        np.testing.assert_array_equal(ours.qparams.scale.reshape(-1),
                                      np.asarray(theirs.quantization.scale, np.float32))
        assert ours.qparams.axis == (theirs.quantization.quantizedDimension
                                     if len(theirs.quantization.scale) > 1 else None)
    assert qgraph.graph.tensor("project/y").qparams == tessera.graph.QuantParams(0.06, 3)


def test_dag_equals_tflite_micro():
    g, out = _dag()
    model = g.build([out])
    qgraph = tessera.load_model(model, mode="tflite")
    x = _inputs(qgraph.input_shape, qgraph.input_zero_point, 120)
    expected = np.concatenate([run_tflm(model, [sample[None]])[0] for sample in x])
    assert len({row.tobytes() for row in expected}) > len(x) // 2
    np.testing.assert_array_equal(qgraph.predict(x, raw=True), expected)


def _refused(builder, out, message):
    with pytest.raises(tessera.UnsupportedModelError, match=message):
        tessera.load_model(builder.build([out]), mode="tflite")


def test_unsupported_operator_is_named():
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 2), scale=0.1, zero_point=0)
    y = g.activation("exp/y", (1, 4, 4, 2), scale=0.1, zero_point=0)
    g.operator(schema.BuiltinOperator.EXP, [x], [y])
    _refused(g, y, r"the TFLite bytes: unsupported operator in operator 0 \(EXP, output "
                   r"'exp/y'\); Tessera imports TFLite graphs of: CONV_2D, DEPTHWISE_CONV_2D")


def test_broadcasting_add_is_refused():
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 2), scale=0.1, zero_point=0)
    p = g.average_pool2d(x, pool=4, stride=4, name="pool")
    y = g.add(x, p, y_scale=0.2, y_zero_point=0, name="add")
    _refused(g, y, r"operator 1 \(ADD, output 'add/y'\) broadcasts \(4, 4, 2\) and \(1, 1, 2\); "
                   "Tessera adds equal shapes only")


def test_fused_tanh_is_refused():
    g = TFLiteGraph()
    x = g.input("x", (1, 5, 5, 2), scale=0.1, zero_point=0)
    y = g.conv2d(x, _weights((3, 3, 3, 2)), None, w_scale=0.01, y_scale=0.1, y_zero_point=0,
                 name="conv")
    g._operators[-1].builtinOptions.fusedActivationFunction = \
        schema.ActivationFunctionType.TANH
    _refused(g, y, r"operator 0 \(CONV_2D, output 'conv/y'\) has fused activation TANH; "
                   "Tessera supports NONE, RELU and RELU6")


def test_a_converter_fixture_keeps_its_depthwise_parameters():
    qgraph = tessera.load_model(FIXTURES / "depthwise.tflite", mode="tflite")
    first = qgraph.graph.ops[0]
    assert first.kind == "DEPTHWISE_CONV_2D"
    assert (first.attrs["stride"], first.attrs["depth_multiplier"], first.attrs["padding"]) == \
        ((2, 2), 2, ((0, 1), (0, 1)))
    dilated = [op for op in qgraph.graph.ops if op.attrs.get("dilation") == (2, 2)]
    assert [op.kind for op in dilated] == ["CONV_2D", "DEPTHWISE_CONV_2D"]


def test_float_edges_quantize_and_dequantize_like_tflite_micro():
    """A float input with QUANTIZE and a DEQUANTIZE to a float output are the graph's edges."""
    g = TFLiteGraph()
    xf = g._add_tensor("x_float", (1, 6, 6, 2), schema.TensorType.FLOAT32, None)
    g._inputs.append(xf)
    x = g.activation("x_int8", (1, 6, 6, 2), scale=0.02, zero_point=7)
    g.operator(schema.BuiltinOperator.QUANTIZE, [xf], [x])
    y = g.conv2d(x, _weights((3, 3, 3, 2)), RNG.integers(-300, 300, 3), padding="same",
                 w_scale=[0.01, 0.02, 0.015], y_scale=0.05, y_zero_point=-9, name="conv")
    yf = g._add_tensor("y_float", (1, 6, 6, 3), schema.TensorType.FLOAT32, None)
    g.operator(schema.BuiltinOperator.DEQUANTIZE, [y], [yf])
    model = g.build([yf])
    qgraph = tessera.load_model(model, mode="tflite")
    assert (qgraph.graph.inputs, qgraph.graph.outputs) == (("x_int8",), ("conv/y",))
    # Ties of the rounding (k + 0.5 steps), the saturation bounds and random values.
    x_float = ((RNG.integers(-300, 300, size=(40, 6, 6, 2)) + 0.5) * 0.02).astype(np.float32)
    x_float[0], x_float[1] = -10.0, 10.0
    x_float[2:] = np.where(RNG.random((38, 6, 6, 2)) < 0.5, x_float[2:],
                           RNG.uniform(-3, 3, size=(38, 6, 6, 2)).astype(np.float32))
    expected = np.concatenate([run_tflm(model, [sample[None]])[0] for sample in x_float])
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(qgraph.predict(x_float), expected)


def test_quantize_inside_the_graph_is_a_requantization_table():
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 2), scale=0.1, zero_point=0)
    c = g.max_pool2d(x, pool=2, stride=2, name="pool")
    y = g.activation("requantized", (1, 2, 2, 2), scale=0.2, zero_point=3)
    g.operator(schema.BuiltinOperator.QUANTIZE, [c], [y])
    model = g.build(outputs=[y])
    x_q = np.arange(-128, 128, 8, dtype=np.int16).astype(np.int8).reshape(1, 4, 4, 2)
    qgraph = tessera.load_model(model, mode="tflite")
    assert [op.kind for op in qgraph.graph.ops] == ["MAX_POOL_2D", "LUT"]
    np.testing.assert_array_equal(qgraph.predict(x_q, raw=True), run_tflm(model, [x_q])[0])


def test_dequantize_inside_the_graph_is_refused():
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 2), scale=0.1, zero_point=0)
    c = g.max_pool2d(x, pool=2, stride=2, name="pool")
    y = g._add_tensor("dequantized", (1, 2, 2, 2), schema.TensorType.FLOAT32, None)
    g.operator(schema.BuiltinOperator.DEQUANTIZE, [c], [y])
    z = g.activation("again", (1, 2, 2, 2), scale=0.2, zero_point=3)
    g.operator(schema.BuiltinOperator.QUANTIZE, [y], [z])
    _refused(g, z, r"operator 1 \(DEQUANTIZE, output 'dequantized'\): QUANTIZE and DEQUANTIZE "
                   "are read only at the model's float input and output")


def test_add_of_a_per_channel_constant_is_refused_naming_the_constant():
    # A standalone BatchNormalization's ADD(x, beta[C]): not one value, so not a table.
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 2), scale=0.1, zero_point=0)
    beta = g._add_tensor("beta", (2,), schema.TensorType.INT8,
                         quantization(0.1, 0), np.array([30, -4], np.int8))
    y = g.add(x, beta, y_scale=0.2, y_zero_point=0, name="add")
    _refused(g, y, r"operator 0 \(ADD, output 'add/y'\): its constant 'beta' is INT8 \[2\]; "
                   "Tessera reads an element-wise operation with a constant as a table: one int8 "
                   "value")


def test_two_constants_are_refused_naming_the_constant():
    g = TFLiteGraph()
    x = g.input("x", (1, 4, 4, 2), scale=0.1, zero_point=0)
    p = g.max_pool2d(x, pool=1, stride=1, name="pool")
    a = g._add_tensor("a", (), schema.TensorType.INT8, quantization(0.1, 0), np.array(3, np.int8))
    b = g._add_tensor("b", (), schema.TensorType.INT8, quantization(0.1, 0), np.array(4, np.int8))
    y = g.activation("add/y", (1, 4, 4, 2), scale=0.2, zero_point=0)
    g.operator(schema.BuiltinOperator.ADD, [a, b], [y], schema.BuiltinOptions.AddOptions,
               schema.AddOptionsT())
    z = g.add(p, y, y_scale=0.2, y_zero_point=0, name="sum")
    _refused(g, z, r"operator 1 \(ADD, output 'add/y'\): tensor 'a' is a constant; Tessera's "
                   "operators take activation tensors here")


def test_add_of_a_squeezed_skip_tensor_equals_tflm():
    # The converter's residual ADD at 1x1: the skip squeezed to [C] by a RESHAPE (no batch
    # dimension), broadcast against [1, 1, 1, C]; values are never repeated.
    g = TFLiteGraph()
    x = g.input("x", (1, 1, 1, 3), scale=0.05, zero_point=-7)
    c = g.conv2d(x, _weights((3, 1, 1, 3)), RNG.integers(-300, 300, 3), w_scale=0.01,
                 y_scale=0.06, y_zero_point=4, name="conv")
    squeezed = g.reshape(x, (3,), name="squeeze")
    y = g.add(c, squeezed, y_scale=0.08, y_zero_point=-2, activation="relu", name="add")
    model = g.build([y])
    qgraph = tessera.load_model(model, mode="tflite")
    x_q = np.array([[-128, 0, 127], [127, -128, 5], [3, 9, -100]], np.int8).reshape(3, 1, 1, 1, 3)
    expected = np.concatenate([run_tflm(model, [s])[0] for s in x_q])
    np.testing.assert_array_equal(qgraph.predict(x_q[:, 0], raw=True), expected)
    from tessera.compiler.presets import get_preset
    with tessera.connect("emu", config=get_preset("icebreaker-cnn").config) as device:
        np.testing.assert_array_equal(device.run(qgraph, x_q[:, 0], raw=True), expected)
