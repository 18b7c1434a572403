"""The four MLPerf Tiny models on the emulated device with each CNN preset that holds them.

Every model runs resident (weights and ``PARAM`` entries loaded once, the input map and the
result are the only per-inference transfers) through ``connect("emu", config=<preset>)`` on
100 int8 inputs — all -128, all 127, the zero point, checkerboards and random ones — and must
equal TFLite Micro bit for bit: the device's result (the classifier's logits, before the host's
SOFTMAX) against TFLM's tensor, and the final output. The emulator refuses any program with an
unsynchronised hazard, so each compiled program also passes the hazard checker. The anomaly
detector is a dense chain: it runs with the dense compiler on the same configurations.
"""

from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime as tflm

import tessera
from tessera.compiler import CNN_PRESETS, compile_graph
from tessera.spec.protocol import Kind

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
INPUTS = 100


def _inputs(shape, zero_point, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(INPUTS,) + tuple(shape), dtype=np.int16)
    x[0], x[1], x[2] = -128, 127, zero_point
    checker = np.indices(shape).sum(axis=0) % 2
    x[3], x[4] = np.where(checker, 127, -128), np.where(checker, -128, 127)
    x[5:10] = rng.integers(-3, 4, size=(5,) + tuple(shape)) + zero_point
    return np.clip(x, -128, 127).astype(np.int8)


_ORACLE = {}


def _tflm(name, x, tensor_name):
    """Return TFLM's outputs for ``x`` and its values of tensor ``tensor_name`` (cached)."""
    key = (name, tensor_name)
    if key not in _ORACLE:
        interpreter = tflm.Interpreter.from_file(
            str(MODELS / name), intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)
        from ai_edge_litert import schema_py_generated as schema
        tensors = schema.ModelT.InitFromPackedBuf((MODELS / name).read_bytes(), 0)
        index = next((i for i, t in enumerate(tensors.subgraphs[0].tensors)
                      if t.name.decode() == tensor_name), None)
        out, inner = [], []
        for sample in x:
            interpreter.set_input(sample[None], 0)
            interpreter.invoke()
            out.append(interpreter.get_output(0)[0].copy())
            if index is not None:
                inner.append(interpreter.GetTensor(index, 0)["tensor_data"][0].copy())
        _ORACLE[key] = np.stack(out), (np.stack(inner) if inner else None)
    return _ORACLE[key]


@pytest.mark.parametrize("name, preset", [
    ("kws_ref_model.tflite", "icebreaker-cnn"),
    ("kws_ref_model.tflite", "orangecrab-25f-cnn"),
    ("kws_ref_model.tflite", "ulx3s-85f-cnn"),
    ("pretrainedResnet_quant.tflite", "ulx3s-85f-cnn"),
    ("vww_96_int8.tflite", "ulx3s-85f-cnn"),
])
def test_cnn_resident_equals_tflite_micro(name, preset):
    model = tessera.load_model(MODELS / name, mode="tflite")
    config = CNN_PRESETS[preset].config
    compiled = compile_graph(model, config)
    x = _inputs(model.input_shape, model.input_zero_point, seed=len(name))
    expected, logits = _tflm(name, x, compiled.result)
    got = []
    with tessera.connect("emu", config=config) as dev:
        for frame in compiled.setup_frames:
            dev.link.request(Kind.EXEC, frame)
        for sample in x:
            for frame in compiled.input_frames(sample):
                dev.link.request(Kind.EXEC, frame)
            responses = {i: dev.link.request(Kind.EXEC, frame)
                         for i, frame in enumerate(compiled.frames)}
            got.append(compiled.output_from(responses))
        got = np.stack(got)
        np.testing.assert_array_equal(got, logits)
        assert len({row.tobytes() for row in got}) > 20     # the test discriminates
        np.testing.assert_array_equal(compiled.finish(got), expected)
        # Device.run does the same (setup once, then one input and one result per sample).
        np.testing.assert_array_equal(dev.run(model, x[:3], raw=True), expected[:3])
    assert [s.where for s in compiled.steps][-1] == "host"          # the SOFTMAX


@pytest.mark.parametrize("preset", list(CNN_PRESETS))
def test_autoencoder_dense_chain_equals_tflite_micro(preset):
    name = "ad01_int8.tflite"
    model = tessera.load_model(MODELS / name, mode="tflite")
    x = _inputs((model.in_features,), model.input_zero_point, seed=7)
    expected, _ = _tflm(name, x, "")
    with tessera.connect("emu", config=CNN_PRESETS[preset].config) as dev:
        np.testing.assert_array_equal(dev.run(model, x, raw=True), expected)
