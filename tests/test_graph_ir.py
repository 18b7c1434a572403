"""The tensor graph IR: validation messages, the dense chain both ways, liveness, files."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tessera
import tessera.graph
from tessera.graph import Graph, Operation, QuantizedGraph, QuantParams, Tensor

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
RNG = np.random.default_rng(13)


def test_all_names_resolve():
    for name in tessera.graph.__all__:
        assert getattr(tessera.graph, name) is not None


def _q(scale=0.05, zp=-3):
    return QuantParams(scale, zp)


def _conv(**attrs):
    attrs = {"stride": (2, 2), "padding": ((0, 1), (1, 1)), "activation": "relu", **attrs}
    return Operation("CONV_2D", ["x", "w", "b"], ["y"], attrs)


def _conv_graph(**changes):
    """x[6,5,2] -> CONV_2D 3x3 SAME stride 2 -> y[3,3,4] -> ADD(y, y) -> z."""
    w = RNG.integers(-127, 128, size=(4, 3, 3, 2)).astype(np.int8)
    parts = {
        "x": Tensor("x", (6, 5, 2), "int8", _q()),
        "w": Tensor("w", w.shape, "int8",
                    QuantParams(np.linspace(0.01, 0.02, 4), 0, axis=0), w),
        "b": Tensor("b", (4,), "int32", data=RNG.integers(-500, 500, 4).astype(np.int32)),
        "y": Tensor("y", (3, 3, 4), "int8", _q(0.1, 5)),
        "z": Tensor("z", (3, 3, 4), "int8", _q(0.2, -1)),
        "ops": [_conv(), Operation("ADD", ["y", "y"], ["z"])],
    }
    parts.update(changes)
    ops = parts.pop("ops")
    return Graph([t for t in parts.values() if t is not None], ops, ["x"], ["z"], mode="tflite",
                 name="g")


def test_valid_graph_and_defaults():
    g = _conv_graph()
    assert g.ops[0].attrs["dilation"] == (1, 1)
    assert g.producer("y") == 0 and g.consumers("y") == (1, 1)
    live, peak = g.liveness()
    assert live == [60 + 36, 36 + 36] and peak == 96


@pytest.mark.parametrize("changes, message", [
    ({"y": Tensor("y", (3, 2, 4), "int8", _q())},
     "Graph 'g': operation 0 (CONV_2D, output 'y'): output 'y' has shape (3, 2, 4), the "
     "operation produces (3, 3, 4)"),
    ({"ops": [Operation("ADD", ["y", "y"], ["z"]), _conv()]},
     "Graph 'g': operation 0 (ADD, output 'z'): input 'y' is used before it is produced (the "
     "operations are not in topological order, or the graph has a cycle)"),
    ({"ops": [_conv(), Operation("ADD", ["y", "q"], ["z"])]},
     "Graph 'g': operation 1 (ADD, output 'z'): input 'q' is not a tensor of the graph "
     "(dangling)"),
    ({"ops": [_conv(strides=(2, 2)), Operation("ADD", ["y", "y"], ["z"])]},
     "Graph 'g': operation 0 (CONV_2D, output 'y'): unknown attribute(s) ['strides'] for "
     "CONV_2D; it takes ['activation', 'dilation', 'padding', 'stride']"),
    ({"ops": [_conv(activation="tanh"), Operation("ADD", ["y", "y"], ["z"])]},
     "Graph 'g': operation 0 (CONV_2D, output 'y'): attribute 'activation' must be one of "
     "('none', 'relu', 'relu6'), not 'tanh'"),
    ({"ops": [Operation("CONV", ["x", "w", "b"], ["y"])]},
     "Graph 'g': operation 0 (CONV, output 'y'): unknown kind 'CONV'"),
    ({"w": Tensor("w", (4, 3, 3, 2), "int8", QuantParams(np.full(2, 0.1), 0, axis=3),
                  np.zeros((4, 3, 3, 2), np.int8))},
     "Graph 'g': operation 0 (CONV_2D, output 'y'): weight 'w' is quantized per channel along "
     "axis 3, not the output-channel axis 0"),
    ({"w": Tensor("w", (4, 3, 3, 2), "int8", QuantParams(0.1, 2),
                  np.zeros((4, 3, 3, 2), np.int8))},
     "Graph 'g': operation 0 (CONV_2D, output 'y'): weight 'w' has non-zero zero points; "
     "weights are symmetric"),
    ({"b": Tensor("b", (3,), "int32", data=np.zeros(3, np.int32))},
     "Graph 'g': operation 0 (CONV_2D, output 'y'): bias 'b' must be int32 of shape (4,), not "
     "int32 (3,)"),
    ({"extra": Tensor("extra", (2,), "int8", _q())},
     "Graph 'g': tensor 'extra' is dangling (no operation produces it and it is not a graph "
     "input)"),
    ({"z": Tensor("z", (3, 3, 4), "int16", _q(0.2, -1))},
     "Graph 'g': operation 1 (ADD, output 'z'): output 'z' must be a per-tensor int8 "
     "activation"),
])
def test_validation_messages(changes, message):
    with pytest.raises(ValueError) as info:
        _conv_graph(**changes)
    assert str(info.value).startswith(message)


def test_cycle_and_unused_output():
    x, y = Tensor("x", (4,), "int8", _q()), Tensor("y", (4,), "int8", _q())
    with pytest.raises(ValueError, match=r"input 'y' is used before it is produced \(the "
                                         "operations are not in topological order, or the graph "
                                         r"has a cycle\)"):
        Graph([x, y], [Operation("RELU", ["y"], ["y"])], ["x"], ["y"], mode="tflite")
    with pytest.raises(ValueError, match="tensor 'y' is not used by any operation nor a graph "
                                         "output; remove it"):
        Graph([x, y, Tensor("z", (4,), "int8", _q())], [Operation("RELU", ["x"], ["y"]),
                                                        Operation("RELU", ["x"], ["z"])],
              ["x"], ["z"], mode="tflite")


def test_quant_params_messages():
    with pytest.raises(ValueError, match=r"Scale must be positive and finite, not \[0.0\]"):
        QuantParams([0.0], 0)
    with pytest.raises(ValueError, match="Zero point 200 is outside the 8-bit range -128..127"):
        QuantParams(0.1, 200)
    with pytest.raises(ValueError, match=r"Per-channel scales \(3\) need the channel axis"):
        QuantParams([0.1, 0.2, 0.3], 0)
    with pytest.raises(ValueError, match=r"Tensor 'w' of shape \(4, 3\): 4 per-channel scales "
                                         "do not match axis 1"):
        Tensor("w", (4, 3), "int8", QuantParams(np.full(4, 0.1), 0, axis=1),
               np.zeros((4, 3), np.int8))
    assert QuantParams([0.5], [4]) == QuantParams(0.5, 4)        # one value: per tensor
    assert QuantParams(0.5, 4) != QuantParams(0.5, 4, bits=16)


def _dense_model(mode):
    x = RNG.normal(size=(64, 7)).astype(np.float32)
    layers = [(RNG.normal(size=(7, 6)), RNG.normal(size=6), "relu"),
              (RNG.normal(size=(6, 5)), RNG.normal(size=5), "tanh"),
              (RNG.normal(size=(5, 3)), RNG.normal(size=3), None)]
    return tessera.quantize(layers, calibration=x, mode=mode), x


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_dense_chain_both_ways(mode):
    qmodel, x = _dense_model(mode)
    qgraph = qmodel.to_graph()
    assert [op.kind for op in qgraph.graph.ops] == ["FULLY_CONNECTED", "FULLY_CONNECTED", "LUT",
                                                    "FULLY_CONNECTED"]
    x_q = qmodel.quantize_input(x)
    np.testing.assert_array_equal(qgraph.quantize_input(x), x_q)
    np.testing.assert_array_equal(qgraph.predict(x_q, raw=True), qmodel.predict(x_q, raw=True))
    np.testing.assert_array_equal(qgraph.predict(x), qmodel.predict(x))
    back = qgraph.to_dense_chain()
    for a, b in zip(back.layers, qmodel.layers):
        for field in ("weight", "bias", "weight_scale", "lut"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert (a.activation, a.input_scale, a.output_scale, a.output_zero_point) == \
            (b.activation, b.input_scale, b.output_scale, b.output_zero_point)


def test_cnn_is_not_a_dense_chain():
    qgraph = tessera.load_model(MODELS / "kws_ref_model.tflite", mode="tflite")
    with pytest.raises(ValueError, match=r"operation 0 \(CONV_2D, output '.*'\) is not part of a "
                                         "dense-layer chain"):
        qgraph.to_dense_chain()


def test_save_load_version_2_and_version_1(tmp_path):
    qgraph = tessera.load_model(MODELS / "pretrainedResnet_quant.tflite", mode="tflite")
    path = tmp_path / "resnet.npz"
    qgraph.save(path)
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(np.lib.format.read_array(archive.open("meta.npy")).tobytes())
    assert (meta["format"], meta["version"], meta["kind"]) == ("tessera.QuantizedModel", 2,
                                                               "graph")
    loaded = tessera.load_model(path)
    assert isinstance(loaded, QuantizedGraph) and loaded.summary() == qgraph.summary()
    x = RNG.integers(-128, 128, size=(5, 32, 32, 3)).astype(np.int8)
    np.testing.assert_array_equal(loaded.predict(x, raw=True), qgraph.predict(x, raw=True))
    for a, b in zip(loaded.graph.tensors.values(), qgraph.graph.tensors.values()):
        assert (a.name, a.shape, a.qparams) == (b.name, b.shape, b.qparams)
        if a.is_constant:
            np.testing.assert_array_equal(a.data, b.data)
    qmodel, _ = _dense_model("tflite")
    qmodel.save(tmp_path / "chain.npz")                   # dense chains stay version 1
    assert isinstance(tessera.load_model(tmp_path / "chain.npz"), tessera.QuantizedModel)


def test_load_refuses_entries_the_graph_does_not_define(tmp_path):
    qgraph = tessera.load_model(MODELS / "kws_ref_model.tflite", mode="tflite")
    path = tmp_path / "kws.npz"
    qgraph.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        with archive.open("huge.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros(10, np.int8))
    with pytest.raises(ValueError, match=r"kws.npz' is corrupted: the archive holds entry "
                                         "'huge' that the format does not define"):
        tessera.load_model(path)


def test_nchw_sources_take_and_return_nchw():
    q = QuantParams(0.1, 0)
    tensors = [Tensor("x", (4, 3, 2), "int8", q), Tensor("y", (4, 3, 2), "int8", q)]
    qgraph = tessera.QuantizedGraph(Graph(tensors, [Operation("RELU", ["x"], ["y"])], ["x"],
                                          ["y"], mode="onnx", input_layout="NCHW"))
    assert qgraph.input_shape == (2, 4, 3) and qgraph.output_shape == (2, 4, 3)
    x = RNG.integers(-128, 128, size=(5, 2, 4, 3)).astype(np.int8)       # [B, C, H, W]
    np.testing.assert_array_equal(qgraph.predict(x, raw=True), np.maximum(x, 0))
    assert qgraph.forward_raw(x)["x"].shape == (5, 4, 3, 2)             # the graph is NHWC
    with pytest.raises(ValueError, match=r"Raw input must be an array \[batch, 2, 4, 3\] "
                                         r"\(NCHW\), not shape \(5, 4, 3, 2\)"):
        qgraph.predict(x.transpose(0, 2, 3, 1), raw=True)


@pytest.mark.parametrize("bits, weight_bits", [(16, 8), (8, 4), (16, 16), (4, 4)])
def test_dense_chain_widths_survive_graph_and_file(tmp_path, bits, weight_bits):
    x = RNG.normal(size=(40, 6)).astype(np.float32)
    layers = [(RNG.normal(size=(6, 5)), RNG.normal(size=5), "relu"),
              (RNG.normal(size=(5, 3)), RNG.normal(size=3), None)]
    qmodel = tessera.quantize(layers, calibration=x, bits=bits, weight_bits=weight_bits)
    qgraph = qmodel.to_graph()
    assert qgraph.graph.tensor("input").dtype == ("int16" if bits > 8 else "int8")
    qgraph.save(tmp_path / "g.npz")
    x_q = qmodel.quantize_input(x)
    for model in (qgraph, qgraph.to_dense_chain(), tessera.load_model(tmp_path / "g.npz")):
        np.testing.assert_array_equal(model.predict(x_q, raw=True), qmodel.predict(x_q, raw=True))
