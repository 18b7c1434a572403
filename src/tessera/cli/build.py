"""``tessera build``: a bitstream for a board, with a resource and timing report.

Exits 0 when the build meets timing, 1 when it does not (the bitstream and report are still
written) or when a tool fails or is missing (the message says why), 2 for a bad option: every
option (board, configuration, clock, baud rate, seed, whether the configuration fits the part)
is checked before any tool runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .options import nonnegative_int, positive_float, positive_int

__all__ = ["add_parser", "run", "format_boards"]


def add_parser(subparsers):
    """Register ``tessera build``."""
    p = subparsers.add_parser(
        "build", help="build a bitstream for a board (Yosys: system, pyosys or YoWASP; "
                      "nextpnr: system or YoWASP)",
        description="Synthesise, place and route the accelerator (or a UART loopback self-test) "
                    "for a board and report LUT/FF/DSP/BRAM/SPRAM use, Fmax and whether timing "
                    "is met. Exits non-zero when timing is not met; the report then lists every "
                    "register whose inputs arrive after the clock period, not only the critical "
                    "path.")
    p.add_argument("--board", metavar="NAME",
                   help="icebreaker, ulx3s-12f, ulx3s-25f, ulx3s-45f, ulx3s-85f or "
                        "orangecrab-25f (see --list-boards)")
    p.add_argument("--list-boards", action="store_true",
                   help="list the supported boards with their default configuration and clock")
    p.add_argument("--config", metavar="FILE",
                   help="AcceleratorConfig JSON (default: the board's preset)")
    p.add_argument("--preset", metavar="NAME",
                   help="a CNN preset (icebreaker-cnn, orangecrab-25f-cnn, ulx3s-85f-cnn): its "
                        "board, configuration and clock, instead of --config")
    p.add_argument("--clock-mhz", type=positive_float, metavar="F",
                   help="target clock in MHz (default: the board's preset)")
    p.add_argument("--baud", type=positive_int, default=None, metavar="BAUD",
                   help="UART baud rate (default: 3000000)")
    p.add_argument("--design", choices=("accelerator", "loopback"), default="accelerator",
                   help="what to put on the board: the accelerator, or a UART echo self-test")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="build directory (default: build/<board>-<design>-<config hash>)")
    p.add_argument("--seed", type=nonnegative_int, default=1, help="nextpnr placement seed")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def format_boards(boards) -> str:
    """Return the ``--list-boards`` table."""
    lines = [f"{'board':<16} {'part':<11} {'config':>7} {'MACs':>5} {'clock':>9}  UART"]
    for b in boards.values():
        c = b.config
        lines.append(f"{b.name:<16} {b.device:<11} {c.rows:>3}x{c.cols:<3} "
                     f"{c.peak_macs_per_cycle:>5} {b.clock_mhz:>5.0f} MHz  {b.uart}")
    return "\n".join(lines)


class _StageLine:
    """Print one line per build stage with the elapsed time (redrawn in place on a terminal).

    A stage with a detail (``"routing: 69,322 arcs left"``) is redrawn on a terminal as the
    detail changes, and printed again at most once every :attr:`DETAIL_EVERY_S` seconds to a
    file or pipe.
    """

    DETAIL_EVERY_S = 60.0

    def __init__(self, stream):
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.stage = None
        self.printed = 0.0
        self.start = time.monotonic()

    def __call__(self, stage, elapsed_s):
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r  {stage:<48} {now - self.start:6.0f} s")
            if stage == "done":
                self.stream.write("\n")
            self.stream.flush()
        elif (stage.split(":")[0] != (self.stage or "").split(":")[0]
              or (stage != self.stage and now - self.printed >= self.DETAIL_EVERY_S)):
            print(f"  {stage} ({now - self.start:.0f} s)", file=self.stream, flush=True)
            self.printed = now
        self.stage = stage


def _check_options(args, board, preset=None):
    """Return the configuration, after checking every option against the board (no tool runs).

    Raises ``ValueError`` (a user error: status 2) naming the option to change.
    """
    from tessera.hw.boards import DEFAULT_BAUD, BoardTop
    from tessera.hw.build import BuildError, check_fits

    from .options import load_config
    config = preset.config if preset else load_config(args.config) or board.config
    try:
        check_fits(board, config, args.design)
    except BuildError as e:
        raise ValueError(str(e)) from None
    baud = DEFAULT_BAUD if args.baud is None else args.baud
    # BoardTop checks the clock (the PLL can make it), the baud rate (the clock can divide it)
    # and the receive timeout; build_bitstream makes its own.
    top = BoardTop(board, config, clock_mhz=_clock_mhz(args, preset), baud=baud,
                   design=args.design)
    top._MustUse__silence = True    # a check, not an unused design (as BoardTop does itself)
    return config, baud


def _clock_mhz(args, preset):
    # --clock-mhz, else the preset's clock, else None (the board's)
    return args.clock_mhz if args.clock_mhz is not None or preset is None else preset.clock_mhz


def _preset(args):
    """Return the ``--preset`` (a :class:`~tessera.compiler.presets.CnnPreset`) or ``None``.

    Raises ``ValueError`` when it is unknown, comes with ``--config`` or names another board.
    """
    if args.preset is None:
        return None
    from tessera.compiler.presets import get_preset
    if args.config:
        raise ValueError(f"--preset {args.preset} and --config both give the configuration; "
                         f"give one of them")
    preset = get_preset(args.preset)
    if args.board and args.board != preset.board:
        raise ValueError(f"--preset {preset.name} is for board {preset.board}, not --board "
                         f"{args.board}; leave --board out or pick a preset of {args.board}")
    return preset


def run(args) -> int:
    """Run ``tessera build``."""
    from tessera.hw.boards import BOARDS, get_board
    from tessera.hw.build import BuildError, build_bitstream
    from tessera.hw.toolchain import ToolchainError

    if args.list_boards:
        print(format_boards(BOARDS))
        return 0
    preset = _preset(args)
    if not args.board and not preset:
        raise ValueError(f"--board is required (one of {', '.join(BOARDS)}; see --list-boards)")
    board = get_board(preset.board if preset else args.board)
    config, baud = _check_options(args, board, preset)
    out_dir = args.output or f"build/{board.name}-{args.design}-{config.hash_hex[:8]}"
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(f"-o {out_dir} exists and is not a directory; give a build "
                                 "directory")
    clock_mhz = _clock_mhz(args, preset) or board.clock_mhz
    print(f"Building {args.design} for {board.title}: {config.rows}x{config.cols} MACs, "
          f"target {clock_mhz:g} MHz, {baud} baud, in {out_dir}", file=sys.stderr)
    if preset is not None and preset.not_met:
        print(f"  note: {preset.name} {preset.not_met} (issue #15, docs/boards.md)",
              file=sys.stderr)
    try:
        report = build_bitstream(board, config, _clock_mhz(args, preset), out_dir,
                                 design=args.design,
                                 baud=baud, seed=args.seed, progress=_StageLine(sys.stderr))
    except (BuildError, ToolchainError) as e:
        print(f"tessera build: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(report.to_json())
    else:
        print(report.summary())
        print(f"Bitstream: {out_dir}/{report.bitstream}; report: {out_dir}/report.json")
        for command in board.program:
            print(f"Program:   {command.format(bitstream=f'{out_dir}/{report.bitstream}')}")
    if not report.timing_met:
        print(f"tessera build: timing NOT met: {report.fmax_design_mhz:.2f} MHz achieved, "
              f"{report.target_mhz:.2f} MHz wanted; lower --clock-mhz or the array size",
              file=sys.stderr)
        return 1
    return 0
