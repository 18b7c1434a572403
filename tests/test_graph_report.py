"""Model reports: per-operation shapes, MACs, bytes and the peak live activation memory."""

import json
from pathlib import Path

import numpy as np

import tessera
from tessera.cli import main
from tessera.graph import Graph, Operation, QuantizedGraph, QuantParams, Tensor
from tessera.graph.report import op_rows, totals

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"


def _residual_graph():
    """x -> a=RELU(x) -> b=PAD(a) -> c=MAX_POOL(b) ; d=ADD(c, a): a lives until the ADD."""
    q = QuantParams(0.1, -2)
    tensors = [Tensor("x", (4, 4, 8), "int8", q), Tensor("a", (4, 4, 8), "int8", q),
               Tensor("b", (6, 6, 8), "int8", q), Tensor("c", (4, 4, 8), "int8", q),
               Tensor("d", (4, 4, 8), "int8", QuantParams(0.2, 0))]
    ops = [Operation("RELU", ["x"], ["a"]),
           Operation("PAD", ["a"], ["b"], {"paddings": [(1, 1), (1, 1), (0, 0)]}),
           Operation("MAX_POOL_2D", ["b"], ["c"], {"pool": (3, 3)}),
           Operation("ADD", ["c", "a"], ["d"])]
    return QuantizedGraph(Graph(tensors, ops, ["x"], ["d"], mode="tflite", name="residual"))


def test_liveness_keeps_the_residual_branch_alive():
    g = _residual_graph().graph
    live, peak = g.liveness()
    # x+a, a+b (x freed), a+b+c, a+c+d: 'a' stays live until the ADD reads it.
    assert live == [256, 128 + 288, 128 + 288 + 128, 128 * 3]
    assert peak == 544 and totals(g)["peak_op"] == 2


def test_rows_and_totals_of_resnet():
    qgraph = tessera.load_model(MODELS / "pretrainedResnet_quant.tflite", mode="tflite")
    rows = op_rows(qgraph.graph)
    conv = rows[1]
    assert (conv["kind"], conv["inputs"], conv["weights"], conv["output"]) == \
        ("CONV_2D", [(32, 32, 16)], [(16, 3, 3, 16), (16,)], (32, 32, 16))
    assert conv["macs"] == 32 * 32 * 16 * 3 * 3 * 16
    assert conv["weight_bytes"] == 16 * 3 * 3 * 16 + 16 * 4
    assert conv["activation_bytes"] == 32 * 32 * 16
    t = totals(qgraph.graph)
    assert t["macs"] == 12_501_632                    # the figure in tests/data/mlperf_tiny
    # Three 32x32x16 tensors at once: the block input (kept for the residual ADD), the first
    # conv's output and the second conv's output.
    assert t["peak_bytes"] == 3 * 32 * 32 * 16 and t["peak_op"] == 2


def test_info_model_text_and_json(capsys):
    path = MODELS / "kws_ref_model.tflite"
    assert main(["info", str(path), "--mode", "tflite"]) == 0
    text = capsys.readouterr().out
    assert "layout NHWC" in text and "DEPTHWISE_CONV_2D" in text
    assert "total: 2,656,768 MACs" in text and "peak live activation memory 16,000 B" in text
    assert main(["info", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["kind"], data["mode"], data["input_layout"]) == ("QuantizedGraph", "onnx", "NHWC")
    assert data["input_shape"] == [49, 10, 1] and data["macs"] == 2_656_768
    assert [op["kind"] for op in data["operations"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]


def test_info_dense_chain_reports_as_a_graph(capsys):
    assert main(["info", str(MODELS / "ad01_int8.tflite"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "QuantizedModel" and data["macs"] == 264_192
    assert data["peak_bytes"] == 640 + 128


def test_reference_run_of_the_residual_graph():
    qgraph = _residual_graph()
    x = np.random.default_rng(1).integers(-128, 128, size=(3, 4, 4, 8)).astype(np.int8)
    y = qgraph.forward_raw(x)
    a = np.maximum(x, -2)
    np.testing.assert_array_equal(y["a"], a)
    padded = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-2)
    windows = np.stack([padded[:, i:i + 4, j:j + 4] for i in range(3) for j in range(3)])
    np.testing.assert_array_equal(y["c"], windows.max(axis=0))


def test_forward_raw_keeps_only_what_is_asked():
    qgraph = _residual_graph()
    x = np.random.default_rng(2).integers(-128, 128, size=(2, 4, 4, 8)).astype(np.int8)
    every = qgraph.forward_raw(x)
    assert sorted(every) == ["a", "b", "c", "d", "x"]
    only = qgraph.forward_raw(x, keep={"d"})
    assert list(only) == ["d"]
    np.testing.assert_array_equal(only["d"], every["d"])
