"""The four MLPerf Tiny reference models in mode "tflite" equal TFLite Micro bit for bit.

TFLite Micro (the ``tflite-micro`` wheel's Python interpreter) runs the reference kernels that
MLPerf Tiny microcontroller submissions run. ``tessera.load_model(path, mode="tflite")`` reads
each model (a graph for the three CNNs, a dense chain for the autoencoder, which keeps running
on the device) and ``predict(x, raw=True)`` on 200 int8 inputs per model — all -128, all 127,
the input zero point everywhere, a -128/127 checkerboard and random ones — must equal TFLM's
output exactly, and so must every intermediate tensor (TFLM preserving all tensors).
"""

from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime as tflm

import tessera
from tessera.graph import QuantizedGraph

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
INPUTS = 200


def _inputs(shape, zero_point, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(INPUTS,) + tuple(shape), dtype=np.int16)
    x[0], x[1], x[2] = -128, 127, zero_point
    checker = np.indices(shape).sum(axis=0) % 2
    x[3] = np.where(checker, 127, -128)
    x[4] = np.where(checker, -128, 127)
    x[5:10] = rng.integers(-3, 4, size=(5,) + tuple(shape)) + zero_point   # near the zero point
    return np.clip(x, -128, 127).astype(np.int8)


def _tflm(path, x, names):
    """Return TFLM's outputs for ``x`` and its value of every tensor named in ``names``."""
    interpreter = tflm.Interpreter.from_file(
        str(path), intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)
    indices = {}
    for index, tensor in enumerate(_flatbuffer(path).subgraphs[0].tensors):
        if tensor.name.decode() in names:
            indices[tensor.name.decode()] = index
    out, inner = [], {name: [] for name in indices}
    for sample in x:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        out.append(interpreter.get_output(0)[0].copy())
        for name, index in indices.items():
            inner[name].append(interpreter.GetTensor(index, 0)["tensor_data"][0].copy())
    return np.stack(out), {name: np.stack(values) for name, values in inner.items()}


def _flatbuffer(path):
    from ai_edge_litert import schema_py_generated as schema
    return schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)


@pytest.mark.parametrize("name, kind, ops", [
    ("kws_ref_model.tflite", QuantizedGraph, 13),
    ("pretrainedResnet_quant.tflite", QuantizedGraph, 16),
    ("vww_96_int8.tflite", QuantizedGraph, 31),
    ("ad01_int8.tflite", tessera.QuantizedModel, 10),
])
def test_equals_tflite_micro(name, kind, ops):
    path = MODELS / name
    model = tessera.load_model(path, mode="tflite")
    assert isinstance(model, kind)
    if kind is QuantizedGraph:
        assert len(model.graph.ops) == ops and model.input_layout == "NHWC"
        shape, zero_point = model.input_shape, model.input_zero_point
    else:
        assert len(model.layers) == ops
        shape, zero_point = (model.in_features,), model.input_zero_point
    x = _inputs(shape, zero_point, seed=len(name))
    if kind is QuantizedGraph:
        g = model.graph
        inner_names = [op.outputs[0] for op in g.ops]
        expected, inner = _tflm(path, x, set(inner_names))
        assert len(inner) >= len(g.ops) - 1          # all but the flattened FC input, if any
        ours = model.forward_raw(x)
        for tensor_name, values in inner.items():    # every operation's output, not only the end
            np.testing.assert_array_equal(ours[tensor_name], values, err_msg=tensor_name)
        # The softmax saturates on many inputs: the pooled features must vary for the test to
        # discriminate.
        features = inner[next(op for op in g.ops if op.kind == "FULLY_CONNECTED").inputs[0]]
        assert len({row.tobytes() for row in features}) > INPUTS // 2
    else:
        expected, _ = _tflm(path, x, set())
        assert len({row.tobytes() for row in expected}) > INPUTS // 2
    got = model.predict(x, raw=True)
    assert got.dtype == np.int8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_kws_summary_counts_what_the_readme_measured():
    model = tessera.load_model(MODELS / "kws_ref_model.tflite", mode="tflite")
    text = model.summary()
    assert "2,656,768 MACs" in text            # README of tests/data/mlperf_tiny
    assert "layout NHWC" in text
    assert "peak live activation memory 16,000 B" in text     # two 25x5x64 int8 tensors
