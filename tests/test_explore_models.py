"""``tessera explore`` on quantized model files: the MLPerf Tiny CNNs on the boards' CNN presets.

Emulator only (``--no-build``; the explorer builds no CNN point, #15): a few seconds.
The oracles are ``tessera profile`` (the cycle model of one inference) and TFLite Micro (the
accuracy on labelled data).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from tessera.cli import main
from tessera.cli.demo_kws import tflite_micro_outputs
from tessera.compiler import CNN_PRESETS
from tessera.compiler.profile import profile_model

MODELS = Path(__file__).parent / "data" / "mlperf_tiny"
KWS = MODELS / "kws_ref_model.tflite"


def _explore(capsys, *argv):
    status = main(["explore", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _tflm_outputs(x):
    return tflite_micro_outputs(KWS, x)


@pytest.fixture(scope="module")
def kws_sweep(tmp_path_factory):
    """KWS on two boards x 2 shapes x 2 shapes, with 8 labelled int8 inputs."""
    out = tmp_path_factory.mktemp("explore-kws")
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(8, 49, 10, 1)).astype(np.int8)
    x[0], x[1] = -128, 127                                    # the extremes
    expected = np.argmax(_tflm_outputs(x), axis=1)
    y = expected.copy()
    y[::2] = (y[::2] + 1) % 12                                # half of them wrong: 50 %
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", y)
    return out, x, y, expected


def test_kws_sweep_prints_the_table_and_writes_the_plots(kws_sweep, capsys):
    out, x, y, expected = kws_sweep
    status, stdout, stderr = _explore(
        capsys, KWS, "--board", "icebreaker", "--board", "ulx3s-85f", "--rows", "4,16",
        "--cols", "2,8", "--bits", "4", "--data", out / "x.npy", "--labels", out / "y.npy",
        "--no-build", "--workers", "1", "-o", out / "sweep")
    assert status == 0, stderr
    assert "quantized at int8: its width cannot change, so --bits 4 is ignored" in stderr
    for label in ("icebreaker 4x2 int8", "ulx3s-85f 16x8 int8"):
        assert label in stdout
    assert "icebreaker 16x8 int8: does not fit — 16x8 MACs need 128 hardware multipliers but " \
        "the iCE40UP5K has 8" in stdout
    for name in ("explore.json", "explore.md", "accuracy_vs_latency.png",
                 "resources_vs_latency.png"):
        assert (out / "sweep" / name).is_file(), name
    result = json.loads((out / "sweep" / "explore.json").read_text())
    assert result["info"]["quantized"] and result["info"]["test_rows"] == 8
    records = {r["label"]: r for r in result["points"]}
    assert len(records) == 8
    accuracy = float((expected == y).mean())
    assert accuracy == 0.5
    from tessera.explore.evaluate import RECORD_FIELDS
    for r in records.values():
        assert set(r) == set(RECORD_FIELDS) | {"key", "pareto"}
        assert r["point"]["cnn"] and r["point"]["bits"] == 8 and r["mode"] == "tflite"
        if r["status"] == "does not fit":
            assert r["point"]["board"] == "icebreaker"
            assert r["latency_us"] is None and not r["pareto"]
            continue
        assert r["status"] is None and r["outputs_identical"] is True
        assert r["accuracy"] == accuracy                       # TFLite Micro's, exactly
        clock = CNN_PRESETS[f"{r['point']['board']}-cnn"].clock_mhz
        assert r["latency_us"] == pytest.approx(r["latency_cycles"] / clock)
        assert r["latency_clock_mhz"] == clock
    assert sum(r["status"] == "does not fit" for r in records.values()) == 3
    # The preset shapes: the sweep's cycles are tessera profile's, to the cycle.
    for label, board in (("icebreaker 4x2 int8", "icebreaker"),
                         ("ulx3s-85f 16x8 int8", "ulx3s-85f")):
        assert records[label]["latency_cycles"] == profile_model(KWS, board)["cycles"]
        assert records[label]["config"] == CNN_PRESETS[f"{board}-cnn"].config.to_dict()
    # Same accuracy everywhere: the front is latency vs MACs; 16x8 on the ULX3S is fastest.
    assert records["ulx3s-85f 16x8 int8"]["pareto"]
    assert not records["icebreaker 4x2 int8"]["pareto"]      # ulx3s 4x2: same MACs, faster
    markdown = (out / "sweep" / "explore.md").read_text()
    assert "Pareto front (accuracy ↑, latency ↓, MACs per cycle ↓): " in markdown
    assert "its width and mode are fixed" in markdown


def test_a_model_the_memories_cannot_hold_does_not_fit(tmp_path, capsys):
    status, stdout, stderr = _explore(
        capsys, MODELS / "pretrainedResnet_quant.tflite", "--board", "icebreaker", "--rows", "4",
        "--cols", "2", "--no-build", "--workers", "1", "-o", tmp_path, "--json", "--no-plots")
    assert status == 0, stderr
    (record,) = json.loads(stdout)["points"]
    assert record["status"] == "does not fit" and not record["pareto"]
    assert "ACT" in record["reason"] and "bytes" in record["reason"]
    assert record["accuracy"] is None and record["latency_cycles"] is None


def test_labels_go_to_the_front_only_and_never_overlap(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from tessera.explore import labels, plots
    placed, original = [], labels.place_labels

    def spy(ax, items, **options):
        boxes = original(ax, items, **options)
        placed.append((ax, items, boxes))
        return boxes

    monkeypatch.setattr(labels, "place_labels", spy)
    rng = np.random.default_rng(1)
    records = []
    for i in range(24):                         # a crowded sweep: many points close together
        rows, cols = 2 ** (i % 4), 2 ** (i // 4 % 3)
        records.append({"label": f"p{i}", "point": {"board": ("icebreaker", "ulx3s-85f")[i % 2],
                                                    "bits": (4, 8)[i // 12], "cnn": False},
                        "config": {"rows": rows, "cols": cols}, "accuracy": 0.9 + i % 3 / 100,
                        "latency_us": float(100 + rng.integers(0, 30)), "lut4": 3000 + 50 * i,
                        "dsp": rows * cols, "bram": 4 + i % 5, "pareto": i % 3 == 0})
    written = plots.write_plots(records, tmp_path)
    assert {p.name for p in written} == {"accuracy_vs_latency.png", "accuracy_vs_luts.png",
                                         "latency_vs_luts.png", "resources_vs_latency.png"}
    assert len(placed) == 6                     # three pair plots, three resource panels
    for ax, items, boxes in placed:
        assert len(items) == 8                  # the front only
        area = ax.get_window_extent()
        for i, a in enumerate(boxes):
            assert area.x0 <= a.x0 and a.x1 <= area.x1 and area.y0 <= a.y0 and a.y1 <= area.y1
            for b in boxes[i + 1:]:
                assert not labels._overlaps(a, b), (a, b)


@pytest.fixture(scope="module")
def digits():
    from tessera.explore import load_workload
    return load_workload("digits")


def test_saved_quantized_dense_model_keeps_its_width(digits, tmp_path, capsys):
    """A saved int4 QuantizedModel: swept at int4, accuracy equal to its own predict."""
    import tessera
    qmodel = tessera.quantize(list(digits.layers), calibration=digits.x_calibration, bits=4)
    qmodel.save(tmp_path / "q4.npz")
    np.save(tmp_path / "x.npy", digits.x_test)                  # float rows: quantized here
    np.save(tmp_path / "y.npy", digits.y_test)
    status, stdout, stderr = _explore(
        capsys, tmp_path / "q4.npz", "--data", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
        "--board", "ulx3s-25f", "--rows", "2,4", "--cols", "4", "--bits", "8", "--no-build",
        "--workers", "1", "-o", tmp_path / "out", "--json", "--no-plots")
    assert status == 0, stderr
    assert "quantized at int4: its width cannot change, so --bits 8 is ignored" in stderr
    points = json.loads(stdout)["points"]
    expected = float((np.argmax(qmodel.predict(digits.x_test), axis=1) == digits.y_test).mean())
    assert [r["point"]["bits"] for r in points] == [4, 4]
    assert [r["config"]["input_bits"] for r in points] == [4, 4]
    for r in points:
        assert r["outputs_identical"] and r["accuracy"] == expected and not r["point"]["cnn"]
        assert r["latency_us"] == pytest.approx(r["latency_cycles"] / 100.0)   # target clock


def test_float_model_with_npy_data_and_labels(digits, tmp_path, capsys):
    """--data x.npy --labels y.npy: a float model calibrated and scored on the same rows."""
    import tessera
    from test_explore_errors import _save_layers
    _save_layers(tmp_path / "mlp.npz", digits)
    np.save(tmp_path / "x.npy", digits.x_test)
    np.save(tmp_path / "y.npy", digits.y_test.astype(np.int32))
    status, stdout, stderr = _explore(
        capsys, tmp_path / "mlp.npz", "--data", tmp_path / "x.npy", "--labels",
        tmp_path / "y.npy", "--board", "ulx3s-25f", "--rows", "4", "--cols", "4", "--no-build",
        "--workers", "1", "-o", tmp_path / "out", "--json", "--no-plots")
    assert status == 0, stderr
    (record,) = json.loads(stdout)["points"]
    qmodel = tessera.quantize(list(digits.layers), calibration=digits.x_test, mode="onnx")
    expected = float((np.argmax(qmodel.predict(digits.x_test), axis=1) == digits.y_test).mean())
    assert record["accuracy"] == expected and record["outputs_identical"]


def test_quantized_model_option_errors(tmp_path, capsys):
    status, _, stderr = _explore(capsys, KWS, "--board", "icebreaker", "--rows", "4", "--cols",
                                 "2", "--no-build", "--check-rtl", "-o", tmp_path)
    assert status == 2
    assert "--check-rtl: " in stderr and "no RTL implements the CNN features yet (#15)" in stderr
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    status, _, stderr = _explore(capsys, KWS, "--labels", tmp_path / "y.npy", "--board",
                                 "icebreaker", "--no-build", "-o", tmp_path)
    assert status == 2 and "--labels needs --data (the inputs they label)" in stderr
    np.save(tmp_path / "x.npy", np.zeros((3, 49, 10, 1), np.int16) + 300)
    status, _, stderr = _explore(capsys, KWS, "--data", tmp_path / "x.npy", "--board",
                                 "icebreaker", "--no-build", "-o", tmp_path)
    assert status == 2
    assert "holds integers from 300 to 300, but the model's quantized input is int8 " \
        "[-128, 127]" in stderr
    status, _, stderr = _explore(capsys, KWS, "--board", "ulx3s-25f", "--no-build", "-o",
                                 tmp_path)
    assert status == 2 and "Unknown CNN board preset 'ulx3s-25f'" in stderr


def test_a_cnn_sweep_asked_to_build_runs_once_and_says_why_nothing_was_built(tmp_path, capsys):
    argv = [KWS, "--board", "ulx3s-85f", "--rows", "16", "--cols", "8", "--workers", "1", "-o",
            tmp_path, "--json", "--no-plots"]
    status, stdout, stderr = _explore(capsys, *argv)
    assert status == 0, stderr
    first = json.loads(stdout)
    (record,) = first["points"]
    assert record["status"] is None and record["lut4"] is None
    assert record["reason"].startswith("not built: the explorer does not build CNN points")
    assert record["latency_cycles"] == profile_model(KWS, "ulx3s-85f")["cycles"]
    assert record["latency_us"] == pytest.approx(record["latency_cycles"] / 100.0)
    status, stdout, stderr = _explore(capsys, *argv)
    second = json.loads(stdout)
    assert (second["evaluated"], second["cached"]) == (0, 1)          # CNN points are never built


def test_all_names_of_the_new_modules_resolve():
    from tessera.explore import grid, labels, plots, quantized, report
    for module in (grid, labels, plots, quantized, report):
        for name in module.__all__:
            assert getattr(module, name) is not None, (module.__name__, name)


def _float_cnn_onnx(path):
    """A float ONNX CNN the device runs: Conv 3x3 + Relu, AveragePool 8x8, Flatten, Gemm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(4)
    inits = {"w0": rng.normal(0, 0.5, (4, 3, 3, 3)), "b0": rng.normal(0, 0.1, 4),
             "wf": rng.normal(0, 0.8, (3, 4)), "bf": rng.normal(0, 0.1, 3)}
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("AveragePool", ["r0"], ["p0"], kernel_shape=[8, 8]),
             helper.make_node("Flatten", ["p0"], ["f0"]),
             helper.make_node("Gemm", ["f0", "wf", "bf"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return model


def test_a_float_cnn_is_quantized_once_for_the_cnn_presets(tmp_path, capsys):
    import onnxruntime as ort

    import tessera
    model = _float_cnn_onnx(tmp_path / "cnn.onnx")
    x = np.random.default_rng(6).normal(size=(40, 3, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = np.argmax(session.run(None, {"x": x})[0], axis=1)          # the float model's classes
    y[::4] = (y[::4] + 1) % 3                                      # a quarter of them wrong
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    status, stdout, stderr = _explore(
        capsys, tmp_path / "cnn.onnx", "--data", tmp_path / "x.npy", "--labels",
        tmp_path / "y.npy", "--board", "orangecrab-25f", "--rows", "4,8", "--cols", "2",
        "--no-build", "--workers", "1", "-o", tmp_path / "out", "--json", "--no-plots")
    assert status == 0, stderr
    points = json.loads(stdout)["points"]
    qgraph = tessera.quantize(str(tmp_path / "cnn.onnx"), calibration=x, mode="tflite")
    expected = float((np.argmax(qgraph.predict(x), axis=1) == y).mean())
    assert 0.5 <= expected <= 0.75
    for r in points:
        assert r["point"]["cnn"] and r["mode"] == "tflite" and r["outputs_identical"]
        assert r["accuracy"] == expected
