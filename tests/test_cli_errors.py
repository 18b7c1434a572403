"""User errors on the command line: one line on stderr, exit status 2, no traceback.

The table runs ``tessera.cli.main`` in this process (fast); a few cases go through a real
``python -m tessera`` process, where the interpreter's own output (tracebacks, broken pipes) would
show.
"""

import json
import os
import re
import subprocess
import sys

import flatbuffers
import numpy as np
import onnx
import pytest
from ai_edge_litert import schema_py_generated as schema
from onnx import helper
from onnx.external_data_helper import convert_model_to_external_data

import tessera
from import_models import float_onnx, tflite_mlp
from tessera.cli import main


F32 = np.float32
RNG = np.random.default_rng(0)
W = [(RNG.normal(size=(6, 5)).astype(F32), RNG.normal(size=5).astype(F32)),
     (RNG.normal(size=(5, 3)).astype(F32), RNG.normal(size=3).astype(F32))]
X = RNG.normal(size=(20, 6)).astype(F32)


def _softmax_onnx():
    model = float_onnx(W, ["relu", None])
    last = model.graph.node[-1]
    node = helper.make_node("Softmax", [last.input[0]], ["sm"], name="probs")
    last.input[0] = "sm"
    model.graph.node.insert(len(model.graph.node) - 1, node)
    return model


def _external_data_onnx(directory, location):
    model = float_onnx(W, ["relu", None])
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="w.bin",
                                   size_threshold=0)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path = directory / f"external-{len(list(directory.iterdir()))}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _tflite_with_tensor_index(index):
    w = RNG.integers(-127, 128, size=(6, 3)).astype(np.int8)
    content = tflite_mlp([dict(w=w, b=np.zeros(3, np.int32), w_scale=0.01, y_scale=0.1,
                               y_zero_point=0)], x_scale=0.05, x_zero_point=0)
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    op = model.subgraphs[0].operators[0]
    op.inputs = [op.inputs[0], index, op.inputs[2]]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    qmodel = tessera.quantize([(w, b, "relu") for w, b in W], X)
    qmodel.save(d / "model.npz")
    np.save(d / "x.npy", X)
    np.save(d / "xq.npy", qmodel.quantize_input(X))
    np.savez(d / "x.npz", x=X)
    (d / "empty.npy").write_bytes(b"")
    np.save(d / "text_values.npy", np.array(["a", "b"]))
    np.save(d / "bool.npy", np.ones((2, 6), bool))
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "csv.npy").write_text("1,2,3\n4,5,6\n")
    (d / "csv.npz").write_text("1,2,3\n")
    (d / "null.json").write_text("null")
    (d / "big.json").write_text(tessera.AcceleratorConfig(rows=16, cols=8).to_json())
    onnx.save(_softmax_onnx(), d / "softmax.onnx")
    (d / "ext").mkdir()
    _external_data_onnx(d / "ext", "../../../etc/passwd").rename(d / "ext" / "escape.onnx")
    _external_data_onnx(d / "ext", "nothere.bin").rename(d / "ext" / "nothere.onnx")
    (d / "corrupt.tflite").write_bytes(_tflite_with_tensor_index(99))
    (d / "outdir").mkdir()
    layers = {"w0": W[0][0], "b0": W[0][1], "act0": np.array("relu"), "w1": W[1][0],
              "b1": W[1][1]}
    np.savez(d / "layers.npz", **layers)
    np.savez(d / "gap.npz", w0=W[0][0], b0=W[0][1], w2=W[1][0], b2=W[1][1])
    np.savez(d / "extra.npz", **layers, scale=np.ones(3))
    np.savez(d / "pickled.npz", **{**layers, "act0": np.array([{"relu": 1}], dtype=object)},
             allow_pickle=True)
    np.savez(d / "data.npz", x_train=X, x_test=X, y_test=RNG.integers(0, 3, size=len(X)))
    return d


RUN = ["run", "{d}/model.npz", "--input"]

#: (argv, the error message after "tessera COMMAND: error: ", as a regular expression)
BAD_INVOCATIONS = [
    (["run", "{d}/softmax.onnx", "--calibration", "{d}/x.npy", "--input", "{d}/x.npy"],
     r".*softmax.onnx: unsupported operator in node 'probs' \(Softmax\); Tessera imports chains "
     r"of: Gemm, .*"),
    (RUN + ["{d}/x.npz"], r".*x.npz is a NumPy .npz archive, not one .npy array; save the one "
                          r"array with numpy.save .*"),
    (RUN + ["{d}/empty.npy"], r".*empty.npy is empty \(0 bytes\), not a NumPy .npy file; save "
                              r"the array with numpy.save"),
    (RUN + ["{d}/text_values.npy"], r".*text_values.npy holds text \(dtype <U1\); give real "
                                    r"numbers .*"),
    (RUN + ["{d}/bool.npy"], r".*bool.npy holds booleans \(dtype bool\); give real numbers .*"),
    (RUN + ["{d}/objects.npy"], r".*objects.npy holds Python objects \(pickled data\), which "
                                r"Tessera never loads; save a numeric array"),
    (RUN + ["{d}/x.npy", "--config", "{d}/null.json"],
     r".*null.json is not an AcceleratorConfig JSON file: Configuration must be a JSON object, "
     r"not NoneType \(see docs/quickstart.md for the format\)"),
    (["run", "{d}/ext/escape.onnx", "--calibration", "{d}/x.npy", "--input", "{d}/x.npy"],
     r".*escape.onnx: cannot read its external weight data \(.*points outside the "
     r"directory.*\); keep the data files the model names beside it, inside its directory"),
    (["run", "{d}/ext/nothere.onnx", "--calibration", "{d}/x.npy", "--input", "{d}/x.npy"],
     r".*nothere.onnx: cannot read its external weight data \(.*nothere.bin.*"),
    (["run", "{d}/corrupt.tflite", "--input", "{d}/x.npy"],
     r".*corrupt.tflite is corrupt: it refers to tensor 99, but its subgraph has 4 tensors"),
    (RUN + ["{d}/csv.npy"], r".*csv.npy is not a NumPy .npy file \(it starts with '1,2,3\\n4,', "
                            r"like a text or CSV file\); convert it with numpy.save .*"),
    (["run", "{d}/csv.npz", "--input", "{d}/x.npy"],
     r".*csv.npz is not a NumPy .npz archive \(it starts with '1,2,3\\n', like a text or CSV "
     r"file\)"),
    (RUN + ["{d}/xq.npy"], r".*xq.npy holds int8 values, which look like an already quantized "
                           r"input: add --raw to run it as such .*"),
    (RUN + ["{d}/x.npy", "--raw"], r"--raw needs the quantized input as an integer array .*"),
    (RUN + ["{d}/x.npy", "--output", "{d}/outdir"],
     r"--output .*outdir is a directory; give a file name such as .*outdir/y.npy"),
    (RUN + ["{d}/x.npy", "--output", "{d}/nowhere/y.npy"],
     r"--output .*nowhere/y.npy: directory .*nowhere does not exist; create it first"),
    (RUN + ["{d}/x.npy", "--device", "fpga"], r"Unknown target 'fpga'; valid targets .*"),
    (RUN + ["{d}/x.npy", "--mode", "tflite"],
     r"--mode only applies to .onnx and .tflite files: .*model.npz is quantized already, in the "
     r"mode it was saved with"),
    (["run", "{d}/model.npz"], r"the following arguments are required: --input \(see tessera "
                               r"run --help\)"),
    (["run", "{d}/model.pt", "--input", "{d}/x.npy"], r"Cannot load a model from .*model.pt: "
                                                      r"unknown suffix '.pt'.*"),
    (["build", "--board", "icebreaker", "--clock-mhz", "inf"],
     r"argument --clock-mhz: must be a finite number greater than 0, not inf \(see tessera "
     r"build --help\)"),
    (["build", "--board", "icebreaker", "--clock-mhz", "0"],
     r"argument --clock-mhz: must be a finite number greater than 0, not 0 .*"),
    (["build", "--board", "icebreaker", "--clock-mhz", "nan"],
     r"argument --clock-mhz: must be a finite number greater than 0, not nan .*"),
    (["build", "--board", "icebreaker", "--baud", "0"],
     r"argument --baud: must be a positive integer, not 0 .*"),
    (["build", "--board", "icebreaker", "--clock-mhz", "400"],
     r"iCE40 PLL output must be 16 to 275 MHz, not 400 MHz"),
    (["build", "--board", "icebreaker", "--baud", "12000000"],
     r"Baud rate 12000000 is too fast for a 30 MHz clock.*"),
    (["build", "--board", "icebreaker", "--config", "{d}/big.json"],
     r"Configuration does not fit icebreaker: it needs 128 hardware multipliers.*"),
    (["build", "--board", "icebreaker", "-o", "{d}/csv.npy"],
     r"-o .*csv.npy exists and is not a directory; give a build directory"),
    (["build"], r"--board is required \(one of icebreaker, .*; see --list-boards\)"),
    (["build", "--board", "icebreaker", "--seed", "-1"],
     r"argument --seed: must be 0 or more, not -1 \(see tessera build --help\)"),
    (["demo", "--batch", "x"], r"argument --batch: 'x' is not an integer \(see tessera demo "
                               r"--help\)"),
    (["info", "--config", "{d}/missing.json"], r"Configuration file .*missing.json does not "
                                               r"exist; .*"),
    (["verilog", "--config", "{d}/null.json"], r".*null.json is not an AcceleratorConfig .*"),
    (["explore", "{d}/gap.npz", "--data", "{d}/data.npz", "--board", "icebreaker", "--no-build",
      "-o", "{d}/explore"],
     r".*gap.npz: layer weights must be numbered w0, w1, ... without gaps, but w1 is missing "
     r"\(found w0, w2\)"),
    (["explore", "{d}/extra.npz", "--data", "{d}/data.npz", "--board", "icebreaker",
      "--no-build", "-o", "{d}/explore"],
     r".*extra.npz: unexpected entries scale; a float-layer .npz holds only w0..w1, b0..b1 and "
     r"optional act0..act1"),
    (["explore", "{d}/pickled.npz", "--data", "{d}/data.npz", "--board", "icebreaker",
      "--no-build", "-o", "{d}/explore"],
     r".*pickled.npz is not a readable .npz file: entry 'act0' holds pickled Python objects "
     r"\(dtype object\); Tessera never loads pickled data"),
    (["explore", "{d}/layers.npz", "--data", "{d}/csv.npz", "--board", "icebreaker",
      "--no-build", "-o", "{d}/explore"],
     r".*csv.npz is not a NumPy .npz archive \(it starts with .*\)"),
    (["explore", "digits", "--board", "icebreaker", "--clock-mhz", "inf"],
     r"argument --clock-mhz: must be a finite number greater than 0, not inf .*"),
]


def _main(argv):
    try:
        return main(argv)
    except SystemExit as e:          # argparse exits by itself
        return e.code


@pytest.mark.parametrize("argv, message", BAD_INVOCATIONS,
                         ids=[f"{i:02d}-{a[0]}" for i, (a, _) in enumerate(BAD_INVOCATIONS)])
def test_user_error_is_one_line_and_status_2(files, capsys, argv, message):
    argv = [a.replace("{d}", str(files)) for a in argv]
    status = _main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n"), captured.err
    assert re.fullmatch(rf"tessera {argv[0]}: error: {message}\n", captured.err), captured.err


def test_the_table_is_long_enough():
    assert len(BAD_INVOCATIONS) >= 20


def _tessera(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "tessera", *argv], capture_output=True,
                          text=True, **kwargs)


def test_a_process_prints_one_line_and_debug_shows_the_traceback(files):
    out = _tessera("run", str(files / "model.npz"), "--input", str(files / "csv.npy"))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "is not a NumPy .npy file" in out.stderr
    out = _tessera("--debug", "run", str(files / "model.npz"), "--input", str(files / "csv.npy"))
    assert out.returncode == 1 and "Traceback" in out.stderr
    out = _tessera("run", str(files / "model.npz"), "--input", str(files / "csv.npy"), "--debug")
    assert out.returncode == 1 and "Traceback" in out.stderr


def test_a_closed_stdout_is_not_an_error(files):
    # `tessera info --json | head -1`: the reader has gone before tessera writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run([sys.executable, "-m", "tessera", "info", "--json"],
                             stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert out.stderr == "" and out.returncode == 141


def test_a_missing_simulator_is_one_line(files, tmp_path):
    (tmp_path / "bin").mkdir()
    out = _tessera("run", str(files / "model.npz"), "--input", str(files / "x.npy"), "--device",
                   "sim:icarus", env={**os.environ, "PATH": str(tmp_path / "bin")})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("tessera run: error: Simulator 'icarus' is not installed (iverilog, vvp "
                          "not found on PATH); install it with `apt-get install iverilog` (or "
                          "your system's package), or use the other simulator ('sim:verilator')"
                          "\n")


def test_output_reports_the_file_numpy_writes(files, capsys, tmp_path):
    qmodel = tessera.QuantizedModel.load(files / "model.npz")
    assert main(["run", str(files / "model.npz"), "--input", str(files / "x.npy"),
                 "--output", str(tmp_path / "yout")]) == 0
    assert f"saved to {tmp_path / 'yout.npy'}" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "yout.npy"), qmodel.predict(X))
    assert not (tmp_path / "yout").exists()


def test_options_are_checked_before_the_build_starts(files, capsys, tmp_path):
    # Nothing is printed, and no directory made, before a bad option is refused.
    assert _main(["build", "--board", "icebreaker", "--clock-mhz", "400", "-o",
                  str(tmp_path / "b")]) == 2
    assert "Building" not in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_explore_without_builds_still_checks_the_fit(files, capsys, tmp_path):
    # 8x2 needs 16 multipliers; the iCE40UP5K has 8: not a Pareto point, builds or not.
    assert main(["explore", str(files / "layers.npz"), "--data", str(files / "data.npz"),
                 "--board", "icebreaker", "--rows", "2,8", "--cols", "2", "--no-build",
                 "--workers", "1", "--no-plots", "--json", "-o", str(tmp_path)]) == 0
    small, big = json.loads(capsys.readouterr().out)["points"]
    assert small["status"] is None and small["pareto"]
    assert big["status"] == "does not fit" and not big["pareto"]
    assert big["reason"].startswith("Configuration does not fit icebreaker: it needs 16 "
                                    "hardware multipliers")
    assert big["cycles_per_inference"] > 0      # the emulator still measured it
