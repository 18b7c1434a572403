"""``tessera explore`` inputs: model and data sources, and the error messages for bad ones.

No bitstream builds here (``--no-build``, emulator only): these run in seconds.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import tessera
from tessera.cli import main
from tessera.explore import check_bits, load_workload, make_grid, parse_int_list, run_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _explore(capsys, *argv):
    status = main(["explore", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    (["--bits", "3"], "--bits 3: operand widths are 4, 8, 16"),
    (["--rows", "2,x"], "--rows: 'x' is not an integer (give a comma-separated list such as "
                        "2,4,8)"),
    (["--cols", "0"], "--cols: 0 is out of range; each value must be from 1 to 64"),
    (["--rows", ","], "--rows must be a comma-separated list of integers such as 2,4,8, not ','"),
    (["--mode", "tflite"], "icebreaker 2x4 int8: the board's configuration builds requant "
                           "mode(s) onnx only, not 'tflite'; use --mode onnx or another board"),
    (["--workers", "0"], "--workers must be a positive integer, not 0"),
    (["--batch", "0"], "--batch must be a positive integer, not 0"),
])
def test_bad_grid_options(capsys, tmp_path, argv, message):
    status, out, err = _explore(capsys, "digits", "--board", "icebreaker", "--rows", "2",
                                "--cols", "4", "--no-build", "-o", str(tmp_path), *argv)
    assert status == 2
    assert f"tessera explore: error: {message}" in err
    assert out == "" and not (tmp_path / "cache").exists()    # failed before any work


def test_board_errors(capsys, tmp_path):
    status, _, err = _explore(capsys, "digits", "-o", str(tmp_path))
    assert status == 2
    assert "tessera explore: error: --board is required (repeat it to sweep several boards; " \
           "see tessera build --list-boards)" in err
    status, _, err = _explore(capsys, "digits", "--board", "nope", "-o", str(tmp_path))
    assert status == 2
    assert "tessera explore: error: Unknown board 'nope'; supported boards are icebreaker, " \
           "ulx3s-12f" in err


def test_bits_map_to_the_config_and_the_quantizer():
    check_bits([4, 8, 16])
    assert parse_int_list("8, 4,8", "--bits") == [4, 8]
    point = make_grid(["ulx3s-25f"], [2], [4], [8])[0]
    config = point.config()
    assert (config.rows, config.cols, config.input_bits, config.weight_bits) == (2, 4, 8, 8)
    assert point.clock_mhz == 100.0 and point.label == "ulx3s-25f 2x4 int8"
    assert make_grid(["ulx3s-25f"], [2], [4], [8], clock_mhz=50)[0].clock_mhz == 50.0
    # Other widths re-derive the width fields and keep the board's buffers and frame size.
    base = make_grid(["ulx3s-25f"], [2], [4], [8])[0].config()
    int4, int16 = (make_grid(["ulx3s-25f"], [2], [4], [b])[0].config() for b in (4, 16))
    assert (int4.input_bits, int4.weight_bits, int4.acc_bits, int4.lut) == (4, 4, 32, False)
    assert int4.requant_modes == base.requant_modes == ("onnx", "tflite")
    assert (int16.acc_bits, int16.requant_modes) == (48, ("onnx",))
    assert int16.act_depth == base.act_depth and int16.max_payload == base.max_payload
    ice = make_grid(["icebreaker"], [2], [4], [4])[0].config()
    assert ice.input_bits == 4 and ice.requant_modes == ("onnx",)


def _save_layers(path, workload):
    arrays = {}
    for i, (w, b, act) in enumerate(workload.layers):
        arrays.update({f"w{i}": w, f"b{i}": b, f"act{i}": np.array(act)})
    np.savez(path, **arrays)


def _save_data(path, workload):
    np.savez(path, x_train=workload.x_calibration, x_test=workload.x_test,
             y_test=workload.y_test)


@pytest.fixture(scope="module")
def digits():
    return load_workload("digits")


def test_model_and_data_files_hash_like_the_builtin(digits, tmp_path, capsys):
    """The same layers and data from files give the same keys: the second run is all cache."""
    _save_layers(tmp_path / "mlp.npz", digits)
    _save_data(tmp_path / "data.npz", digits)
    argv = ["--board", "ulx3s-25f", "--rows", "2,4", "--cols", "4", "--no-build",
            "--workers", "1", "-o", str(tmp_path / "out"), "--json", "--no-plots"]
    status, out, err = _explore(capsys, "digits", *argv)
    assert status == 0, err
    first = json.loads(out)
    assert first["evaluated"] == 2
    status, out, err = _explore(capsys, str(tmp_path / "mlp.npz"), "--data",
                                str(tmp_path / "data.npz"), *argv)
    assert status == 0, err
    second = json.loads(out)
    assert second["evaluated"] == 0 and second["cached"] == 2
    assert second["points"] == first["points"]
    assert second["info"]["model"] == "mlp.npz"
    assert [r["status"] for r in first["points"]] == [None, None]     # no builds asked for
    from tessera.explore.evaluate import RECORD_FIELDS
    assert set(first["points"][0]) == set(RECORD_FIELDS) | {"key", "pareto"}
    assert all(r["pareto"] == (r["latency_cycles"] == min(p["latency_cycles"]
                                                           for p in first["points"]))
               for r in first["points"])


def test_float_onnx_model(digits, tmp_path, capsys):
    import onnx
    from import_models import float_onnx
    acts = [None if a == "none" else a for _, _, a in digits.layers]
    onnx.save(float_onnx([(w, b) for w, b, _ in digits.layers], acts), tmp_path / "mlp.onnx")
    _save_data(tmp_path / "data.npz", digits)
    status, out, err = _explore(capsys, str(tmp_path / "mlp.onnx"), "--data",
                                str(tmp_path / "data.npz"), "--board", "ulx3s-25f", "--rows",
                                "4", "--cols", "4", "--no-build", "--workers", "1", "-o",
                                str(tmp_path / "out"), "--json", "--no-plots")
    assert status == 0, err
    (record,) = json.loads(out)["points"]
    assert record["outputs_identical"]
    qmodel = tessera.quantize(str(tmp_path / "mlp.onnx"), calibration=digits.x_calibration)
    expected = (np.argmax(qmodel.predict(digits.x_test), axis=1) == digits.y_test).mean()
    assert record["accuracy"] == expected > 0.9


def test_source_errors(digits, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^Model file nope\.onnx does not exist; give "
                                                r"digits, a float \.onnx file"):
        load_workload("nope.onnx", "digits")
    with pytest.raises(ValueError, match=r"^Give --data FILE\.npz \(x_train, x_test, y_test\) "
                                         r"for m\.npz; only the built-in digits model"):
        load_workload("m.npz")
    qpath = tmp_path / "q.npz"
    tessera.quantize(list(digits.layers), calibration=digits.x_calibration).save(qpath)
    # A saved QuantizedModel is swept at its own width and mode, with or without data.
    fixed = load_workload(str(qpath))
    assert fixed.quantized is not None and fixed.x_test is None and fixed.layers == ()
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"^Cannot sweep .*m\.pt: give digits, a float \.onnx"):
        load_workload(str(tmp_path / "m.pt"), "digits")
    np.savez(tmp_path / "empty.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"empty\.npz holds no float layers: expected arrays "
                                         r"w0, b0 .* found x$"):
        load_workload(str(tmp_path / "empty.npz"), "digits")
    _save_layers(tmp_path / "mlp.npz", digits)
    np.savez(tmp_path / "d1.npz", x_train=digits.x_calibration)
    with pytest.raises(ValueError, match=r"d1\.npz lacks x_test, y_test: the data file needs "
                                         r"x_train \(calibration inputs\), x_test and y_test"):
        load_workload(str(tmp_path / "mlp.npz"), str(tmp_path / "d1.npz"))
    np.savez(tmp_path / "d2.npz", x_train=digits.x_calibration, x_test=digits.x_test,
             y_test=digits.y_test + 5)
    with pytest.raises(ValueError, match=r"y_test labels run from 5 to 14 but the model has 10 "
                                         r"outputs"):
        load_workload(str(tmp_path / "mlp.npz"), str(tmp_path / "d2.npz"))
    np.savez(tmp_path / "d3.npz", x_train=digits.x_calibration[:, :10], x_test=digits.x_test,
             y_test=digits.y_test)
    with pytest.raises(ValueError, match=r"x_train is \(1437, 10\) but the model takes 64 "
                                         r"inputs per row"):
        load_workload(str(tmp_path / "mlp.npz"), str(tmp_path / "d3.npz"))
    np.savez(tmp_path / "d4.npz", x_train=digits.x_calibration, x_test=digits.x_test,
             y_test=digits.y_test.astype(np.float32))
    with pytest.raises(ValueError, match=r"y_test must be a 1-D array of integer class labels, "
                                         r"not float32 \(360,\)"):
        load_workload(str(tmp_path / "mlp.npz"), str(tmp_path / "d4.npz"))


def _square(task, shared):
    return task * task + shared


def test_executor_errors_and_serial_order():
    assert list(run_tasks(_square, [1, 2, 3], 10, workers=1)) == [(0, 11), (1, 14), (2, 19)]
    assert list(run_tasks(_square, [], 10, workers=4)) == []
    with pytest.raises(ValueError, match=r"^--workers must be a positive integer, not -1$"):
        run_tasks(_square, [1], 0, workers=-1)
