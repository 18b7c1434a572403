"""Real bitstream builds with the pip toolchain (YoWASP): the cheapest ones, on the iCEBreaker.

The UART loopback self-test is the smallest real board design (PLL, reset, UART, FIFO, LED); it
runs through the same flow as the accelerator (``tessera build``), so these tests check the
whole path: board table → Amaranth build plan → Yosys → nextpnr → icepack → report.
"""

import json

import pytest

from tessera.cli import main
from tessera.hw.report import BuildReport

pytestmark = pytest.mark.slow

#: Size of an iCE40UP5K bitstream (icepack output, no compression).
UP5K_BITSTREAM_BYTES = 104090


def test_icebreaker_loopback_meets_timing(tmp_path, capsys):
    out = tmp_path / "icebreaker"
    status = main(["build", "--board", "icebreaker", "--design", "loopback", "-o", str(out),
                   "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = BuildReport(**json.loads(captured.out))
    assert report == BuildReport.load(out / "report.json")
    assert report.timing_met
    assert report.target_mhz == 30.0
    assert report.fmax_design_mhz >= 30.0
    assert report.resources["pll"] == {"used": 1, "available": 1}
    assert report.resources["bram"]["used"] >= 1          # the echo FIFO
    assert 0 < report.resources["lut4"]["used"] < 1000
    assert 0 < report.resources["ff"]["used"] < 1000
    assert report.resources["dsp"] == {"used": 0, "available": 8}
    assert report.resources["spram"]["available"] == 4
    assert report.critical_path and "ns" in report.critical_path[0]
    assert (out / report.bitstream).stat().st_size == UP5K_BITSTREAM_BYTES
    assert "icepack" in report.tools and "nextpnr-ice40" in report.tools


def test_icebreaker_accelerator_preset_meets_timing(tmp_path, capsys):
    # The board's preset as `tessera build --board icebreaker` builds it: all 8 SB_MAC16 as
    # MACs, the iterative onnx requant, the UART link, at the 30 MHz target (issue 5).
    out = tmp_path / "accelerator"
    status = main(["build", "--board", "icebreaker", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = BuildReport(**json.loads(captured.out))
    assert report.design == "accelerator" and report.timing_met
    assert report.late_endpoints == []
    assert report.target_mhz == 30.0 and report.fmax_design_mhz >= 30.0
    assert report.config["rows"] * report.config["cols"] == 8
    assert report.resources["dsp"] == {"used": 8, "available": 8}
    assert report.resources["logic"]["used"] <= report.resources["logic"]["available"]
    assert (out / report.bitstream).stat().st_size == UP5K_BITSTREAM_BYTES


def test_timing_not_met_exits_non_zero(tmp_path, capsys):
    out = tmp_path / "fast"
    status = main(["build", "--board", "icebreaker", "--design", "loopback", "--clock-mhz", "150",
                   "-o", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    report = BuildReport.load(out / "report.json")
    assert not report.timing_met and report.target_mhz == 150.0
    assert report.fmax_design_mhz < 150.0
    assert (f"timing NOT met: {report.fmax_design_mhz:.2f} MHz achieved, 150.00 MHz wanted"
            in captured.err)
    assert "timing NOT MET" in captured.out  # the summary table says so too
    # every register arriving late is listed, not only the critical path's: the worst one is
    # the critical path's destination, all arrive after the period (6.67 ns), latest first
    late = report.late_endpoints
    assert late and all(e["worst_ns"] > 1000 / 150 and e["endpoints"] >= 1 for e in late)
    assert [e["worst_ns"] for e in late] == sorted((e["worst_ns"] for e in late), reverse=True)
    destination = report.critical_path[-1].split(" -> ")[-1]
    assert destination.startswith(late[0]["register"])
    assert f"{late[0]['worst_ns']:7.2f} ns  {late[0]['register']}" in captured.out
