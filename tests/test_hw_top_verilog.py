"""hw/top.py generate_verilog and the ``tessera verilog`` command."""

import json
import re

import pytest

from tessera.cli import main
from tessera.hw.top import TOP_NAME, generate_verilog
from tessera.spec import AcceleratorConfig

CONFIG = AcceleratorConfig(rows=2, cols=2, act_depth=16, weight_depth=16, param_depth=4,
                           max_payload=64, requant_modes=("tflite",), lut=False)
PORTS = ["clk", "rst", "i_rx__payload", "i_rx__valid", "i_rx__ready", "o_tx__payload",
         "o_tx__valid", "o_tx__ready", "busy"]


def _module_ports(text):
    header = re.search(rf"module {TOP_NAME}\((.*?)\);", text, re.S)
    assert header, "no tessera_top module"
    return sorted(p.strip() for p in header.group(1).split(","))


def test_generate_verilog_file_and_directory(tmp_path):
    path = generate_verilog(CONFIG, tmp_path / "x" / "top.v")
    assert path == tmp_path / "x" / "top.v"
    text = path.read_text()
    assert _module_ports(text) == sorted(PORTS)
    assert re.search(r"output \[7:0\] o_tx__payload", text)
    assert generate_verilog(CONFIG, tmp_path / "d") == tmp_path / "d" / f"{TOP_NAME}.v"


def test_generate_verilog_rejects_a_non_config(tmp_path):
    with pytest.raises(TypeError, match=r"Expected an AcceleratorConfig, not \{'rows': 2\}"):
        generate_verilog({"rows": 2}, tmp_path)


def test_cli_verilog(tmp_path, capsys):
    config_file = tmp_path / "c.json"
    config_file.write_text(CONFIG.to_json())
    assert main(["verilog", "--config", str(config_file), "-o", str(tmp_path / "out")]) == 0
    assert f"config {CONFIG.hash_hex}" in capsys.readouterr().out
    assert _module_ports((tmp_path / "out" / f"{TOP_NAME}.v").read_text()) == sorted(PORTS)
    saved = json.loads((tmp_path / "out" / f"{TOP_NAME}.json").read_text())
    assert AcceleratorConfig.from_dict(saved) == CONFIG
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["verilog", "--config", str(config_file), "-o", str(blocker)]) == 2
    assert "exists and is not a directory; pass a directory with -o" in capsys.readouterr().err
