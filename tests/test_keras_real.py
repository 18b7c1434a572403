"""Real Keras and the real TFLiteConverter: the seed's Keras example, the converter-made CNN
fixtures of tests/data/tflite_cnn (regenerated and run in TFLite Micro), functional graphs."""

import runpy
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from tflite_micro.python.tflite_micro import runtime as tflm

import tessera

import make_tflite_fixtures as fixtures

ROOT = Path(__file__).resolve().parents[1]


def tflm_run(model_bytes, x_q):
    """Return TFLite Micro's int8 outputs for the int8 inputs ``x_q`` [B, ...], one by one."""
    interpreter = tflm.Interpreter.from_bytes(model_bytes)
    outputs = []
    for row in x_q:
        interpreter.set_input(row[None], 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0)[0])
    return np.stack(outputs)


def int8_inputs(shape, *, seed=0, random_rows=24):
    """Discriminating int8 inputs ``[B, *shape]``: both extremes, a ±extreme checkerboard
    (saturates every window and the padding border), a ramp and uniform random rows."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    rows = [np.full(size, -128), np.full(size, 127), np.where(np.arange(size) % 2, 127, -128),
            np.arange(size) % 256 - 128, np.zeros(size)]
    rows += list(rng.integers(-128, 128, size=(random_rows, size)))
    return np.stack(rows).astype(np.int8).reshape(-1, *shape)


def test_keras_seed_example_runs(capsys):
    module = runpy.run_path(str(ROOT / "examples" / "keras_linear_regression.py"))
    figures = module["main"]([])
    out = capsys.readouterr().out
    assert "MSE float (Keras)" in out and "MSE int8, tessera.quantize" in out
    w0, w1, b = figures["weights"]
    assert abs(w0 - 3) < 0.1 and abs(w1 - 2) < 0.1 and abs(b) < 0.1
    # The noise has variance 0.01: int8 costs at most a few percent of it, both ways.
    assert figures["mse_float"] < 0.02
    assert abs(figures["mse_int8"] - figures["mse_float"]) < 1e-3
    assert abs(figures["mse_tflite"] - figures["mse_float"]) < 1e-3
    assert figures["identical_int8"] and figures["identical_tflite"]
    # The converter's file in the default mode is LiteRT's interpreter, bit for bit.
    interpreter = Interpreter(model_content=figures["tflite_model"])
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero_point = inp["quantization"]
    x_q = np.clip(np.round(figures["x"] / scale) + zero_point, -128, 127).astype(np.int8)
    interpreter.resize_tensor_input(inp["index"], x_q.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x_q)
    interpreter.invoke()
    y_q = interpreter.get_tensor(outp["index"]).astype(np.float32)
    scale, zero_point = outp["quantization"]
    np.testing.assert_array_equal(figures["y_tflite"], (y_q[:, 0] - zero_point) * scale)


def test_converter_fixtures_regenerate(tmp_path):
    """The committed fixtures are what the script writes today, and run the same in TFLM."""
    for path in fixtures.write_fixtures(tmp_path):
        committed = (fixtures.FIXTURE_DIR / path.name).read_bytes()
        fresh = path.read_bytes()
        x_q = int8_inputs(fixtures.FIXTURES[path.stem][0])
        np.testing.assert_array_equal(tflm_run(committed, x_q), tflm_run(fresh, x_q),
                                      err_msg=path.name)
        assert committed == fresh, (f"{path.name}: the converter now writes other bytes; rerun "
                                    "tests/make_tflite_fixtures.py and commit the files")


@pytest.mark.parametrize("name", sorted(fixtures.FIXTURES))
def test_converter_fixtures_are_nontrivial(name):
    """Each fixture's output depends on its input (a constant output would test nothing)."""
    data = (fixtures.FIXTURE_DIR / f"{name}.tflite").read_bytes()
    y = tflm_run(data, int8_inputs(fixtures.FIXTURES[name][0]))
    assert len({row.tobytes() for row in y}) > y.shape[0] // 2


@pytest.mark.parametrize("name", sorted(fixtures.FIXTURES))
def test_converter_fixtures_equal_tflm(name):
    """Each converter-made CNN loaded in mode "tflite" is TFLite Micro, bit for bit."""
    path = fixtures.FIXTURE_DIR / f"{name}.tflite"
    x_q = int8_inputs(fixtures.FIXTURES[name][0], random_rows=200)
    model = tessera.load_model(path, mode="tflite")
    np.testing.assert_array_equal(model.predict(x_q, raw=True), tflm_run(path.read_bytes(), x_q))
