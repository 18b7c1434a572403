"""``tessera quantize``, ``tessera compile`` and the ``tessera demo`` table: each step of the API
from the command line gives exactly what the API gives, and ONNX Runtime agrees bit for bit.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

import tessera
from import_models import float_onnx, ort_quantize, ort_session
from tessera.cli import main
from tessera.cli.demo import format_report
from tessera.compiler import compile_model, disassemble
from tessera.spec import AcceleratorConfig

F32 = np.float32
RNG = np.random.default_rng(1)
W = [(RNG.normal(size=(6, 5)).astype(F32), RNG.normal(size=5).astype(F32)),
     (RNG.normal(size=(5, 3)).astype(F32), RNG.normal(size=3).astype(F32))]
X = RNG.normal(size=(64, 6)).astype(F32)
# Rows at the calibration extremes and exactly on zero: the input quantizer's borders.
X_TEST = np.concatenate([X.min(axis=0, keepdims=True), X.max(axis=0, keepdims=True),
                         np.zeros((1, 6), F32), X[:9]])


@pytest.fixture
def files(tmp_path):
    onnx.save(float_onnx(W, ["relu", None]), tmp_path / "float.onnx")
    np.save(tmp_path / "calib.npy", X)
    np.save(tmp_path / "x.npy", X_TEST)
    np.savez(tmp_path / "layers.npz", w0=W[0][0], b0=W[0][1], act0=np.array("relu"),
             w1=W[1][0], b1=W[1][1])
    return tmp_path


@pytest.mark.parametrize("extra, options", [
    ([], {}),
    (["--bits", "4", "--no-per-channel"], {"bits": 4, "per_channel": False}),
    (["--mode", "tflite", "--calibration-method", "percentile", "--percentile", "99"],
     {"mode": "tflite", "calibration_method": "percentile", "percentile": 99.0}),
])
def test_quantize_saves_what_the_api_returns(files, capsys, extra, options):
    out = files / "q.npz"
    assert main(["quantize", str(files / "float.onnx"), "--calibration",
                 str(files / "calib.npy"), "-o", str(out), *extra]) == 0
    assert "QuantizedModel 6 -> 5 -> 3" in capsys.readouterr().out
    expected = tessera.quantize(str(files / "float.onnx"), X, **options)
    saved = tessera.QuantizedModel.load(out)
    np.testing.assert_array_equal(saved.predict(X_TEST), expected.predict(X_TEST))
    for a, b in zip(saved.layers, expected.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert (a.mode, a.input_bits) == (b.mode, b.input_bits)


def test_quantize_float_layers_then_run(files, capsys):
    assert main(["quantize", str(files / "layers.npz"), "--calibration",
                 str(files / "calib.npy"), "-o", str(files / "q.npz")]) == 0
    expected = tessera.quantize([(W[0][0], W[0][1], "relu"), (W[1][0], W[1][1], None)], X)
    assert main(["run", str(files / "q.npz"), "--input", str(files / "x.npy"), "--check",
                 "--output", str(files / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(files / "y.npy"), expected.predict(X_TEST))


def test_quantize_keeps_an_ort_model_exactly(files, capsys):
    qdq = ort_quantize(float_onnx(W, ["relu", None]), X, files / "qdq.onnx", tmp_path=files)
    assert main(["quantize", str(qdq), "-o", str(files / "q.npz")]) == 0
    saved = tessera.QuantizedModel.load(files / "q.npz")
    np.testing.assert_array_equal(saved.predict(X_TEST),
                                  ort_session(onnx.load(qdq)).run(None, {"x": X_TEST})[0])
    assert main(["quantize", str(qdq), "--calibration", str(files / "calib.npy"), "-o",
                 str(files / "q2.npz")]) == 2
    assert capsys.readouterr().err.endswith(
        "qdq.onnx is already quantized: its parameters are kept exactly, so give no "
        "--calibration\n")


@pytest.mark.parametrize("argv, message", [
    (["{d}/float.onnx", "-o", "{d}/q.npz"], "ONNX model {d}/float.onnx is a float model: "
                                            "quantizing it needs calibration data"),
    (["{d}/layers.npz", "-o", "{d}/q.npz"], "{d}/layers.npz holds float layers: quantizing "
                                            "them needs --calibration FILE.npy"),
    (["{d}/float.onnx", "--calibration", "{d}/calib.npy", "-o", "{d}/q"],
     "-o {d}/q: name the file *.npz (tessera run and compile choose the reader by the suffix)"),
    (["{d}/float.onnx", "--calibration", "{d}/calib.npy", "-o", "{d}"], "-o {d} is a directory"),
    (["{d}/float.onnx", "--calibration", "{d}/calib.npy"],
     "the following arguments are required: -o/--output"),
    (["{d}/float.onnx", "--calibration", "{d}/calib.npy", "--bits", "6", "-o", "{d}/q.npz"],
     "argument --bits: invalid choice: 6 (choose from 4, 8, 16)"),
    (["{d}/quantized.npz", "-o", "{d}/q.npz"],
     "{d}/quantized.npz is already a quantized model (QuantizedModel.save): give it to "
     "tessera run or tessera compile as it is"),
])
def test_quantize_errors(files, capsys, argv, message):
    tessera.quantize(list(zip(*zip(*W), ["relu", None])), X).save(files / "quantized.npz")
    argv = [a.replace("{d}", str(files)) for a in argv]
    try:
        status = main(["quantize", *argv])
    except SystemExit as e:
        status = e.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert message.replace("{d}", str(files)) in err, err


def test_a_cnn_needs_a_configuration_with_the_cnn_features(files, capsys):
    import torch
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(64, 3)).eval()
    with warnings.catch_warnings():       # the legacy exporter says it is old
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.randn(1, 3, 6, 6), str(files / "cnn.onnx"), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    x = RNG.normal(size=(16, 3, 6, 6)).astype(F32)
    np.save(files / "cnn_x.npy", x)
    assert main(["quantize", str(files / "cnn.onnx"), "--calibration", str(files / "cnn_x.npy"),
                 "-o", str(files / "cnn.npz")]) == 0
    capsys.readouterr()
    from tessera.graph import QuantizedGraph
    saved = QuantizedGraph.load(files / "cnn.npz")
    np.testing.assert_array_equal(saved.predict(x),
                                  tessera.quantize(str(files / "cnn.onnx"), x).predict(x))
    # The default 8x8 configuration has no CNN features: one line, naming the operation.
    for command, start in ((["run", str(files / "cnn.npz"), "--input", str(files / "cnn_x.npy")],
                            "tessera run: error: The device cannot run operation 0 (CONV_2D"),
                           (["compile", str(files / "cnn.npz")],
                            "tessera compile: error: operation 0 (CONV_2D, output ")):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(start) and err.count("\n") == 1, err


KWS = Path(__file__).resolve().parent / "data" / "mlperf_tiny" / "kws_ref_model.tflite"


def test_a_cnn_runs_and_disassembles_on_a_cnn_preset(files, capsys):
    from tessera.compiler import compile_graph
    from tessera.compiler.presets import get_preset
    from tessera.graph import QuantizedGraph
    config = get_preset("icebreaker-cnn").config
    config.save(files / "cnn.json")
    assert main(["quantize", str(KWS), "--mode", "tflite", "-o", str(files / "kws.npz")]) == 0
    qgraph = QuantizedGraph.load(files / "kws.npz")
    x_q = RNG.integers(-128, 128, size=(2, *qgraph.input_shape)).astype(np.int8)
    x_q[0, :3] = -128                              # the input range's ends
    x_q[1, :3] = 127
    np.save(files / "kws_xq.npy", x_q)
    capsys.readouterr()
    assert main(["run", str(files / "kws.npz"), "--config", str(files / "cnn.json"), "--input",
                 str(files / "kws_xq.npy"), "--raw", "--check", "--output",
                 str(files / "y.npy")]) == 0
    assert "identical to the NumPy reference" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(files / "y.npy"), qgraph.predict(x_q, raw=True))
    assert main(["compile", str(files / "kws.npz"), "--config", str(files / "cnn.json"),
                 "--disasm"]) == 0
    out = capsys.readouterr().out
    compiled = compile_graph(qgraph, config)
    assert out.startswith(f"Compiled graph '{qgraph.graph.name}' for 4x2")
    assert disassemble(compiled.frames, config,
                       start=len(compiled.setup_frames) + 1) in out
    assert f"inference: {len(compiled.frames)} frame(s)" in out and "CONV" in out
    # The .tflite file itself, read in mode tflite, compiles to the same program.
    assert main(["compile", str(KWS), "--mode", "tflite", "--config", str(files / "cnn.json"),
                 "--disasm"]) == 0
    assert capsys.readouterr().out.replace(str(KWS), "") == out.replace(str(KWS), "")


def test_compile_disasm_lists_the_compiled_program(files, capsys):
    config = AcceleratorConfig(rows=2, cols=4, act_depth=64, weight_depth=8, param_depth=16,
                               max_payload=96)
    (files / "cfg.json").write_text(config.to_json())
    qmodel = tessera.quantize([(W[0][0], W[0][1], "relu"), (W[1][0], W[1][1], "sigmoid")], X)
    qmodel.save(files / "q.npz")
    assert main(["compile", str(files / "q.npz"), "--config", str(files / "cfg.json"),
                 "--disasm", "--batch", "3"]) == 0
    out = capsys.readouterr().out
    compiled = compile_model(qmodel, config)
    program = compiled.program(qmodel.quantize_input(np.zeros((3, 6), F32)))
    assert out.startswith(compiled.summary())
    assert disassemble(compiled.setup_frames, config) in out
    assert disassemble(program, config, start=len(compiled.setup_frames)) in out
    assert f"program of a 3-row batch: {len(program.frames)} frame(s)" in out
    assert "LOAD  LUT" in out and "STORE" in out      # the sigmoid's table, the output
    assert main(["compile", str(files / "q.npz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config_hash"] == AcceleratorConfig().hash_hex
    assert report == {"model": str(files / "q.npz"), "config": AcceleratorConfig().to_dict(),
                      "config_hash": AcceleratorConfig().hash_hex,
                      **json.loads(json.dumps(compile_model(qmodel,
                                                            AcceleratorConfig()).report()))}


def test_compile_refuses_a_model_wider_than_the_configuration(files, capsys):
    tessera.quantize(str(files / "float.onnx"), X, bits=16).save(files / "q16.npz")
    assert main(["compile", str(files / "q16.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tessera compile: error: ") and err.count("\n") == 1


def test_demo_table_columns_are_per_inference():
    device = {"target": "emu", "accuracy": 0.5, "bit_identical": 360,
              "cycles_per_inference": 244.0, "utilisation": 0.81,
              "simulated_time_ms": 0.878, "time_per_inference_us": 2.44, "wall_seconds": 0.1}
    report = {"model": "m", "mode": "onnx", "config": {"rows": 8, "cols": 8},
              "config_hash": "0", "test_images": 360, "float_accuracy": 0.5,
              "int8_reference_accuracy": 0.5, "devices": {"emu": device}}
    header, _, _, _, emu = format_report(report, 100.0).splitlines()[2:]
    assert "time/inference @ 100 MHz" in header and "wall time (360 images)" in header
    assert "2.44 µs" in emu and "0.88 ms" not in emu


def test_demo_json_into_a_closed_pipe():
    # `tessera demo --json | head`: no BrokenPipeError, status 141 as for a SIGPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run([sys.executable, "-m", "tessera", "demo", "--no-rtl", "--json"],
                             stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert out.returncode == 141, out.stderr
    assert "BrokenPipe" not in out.stderr and "Traceback" not in out.stderr
