"""``tessera build``: a bitstream for a board, with a resource and timing report.

Exits 0 when the build meets timing, 1 when it does not (the bitstream and report are still
written) or when the build cannot run (the message says why), 2 for usage errors.
"""

from __future__ import annotations

import sys
import time

__all__ = ["add_parser", "run", "format_boards"]


def add_parser(subparsers):
    """Register ``tessera build``."""
    p = subparsers.add_parser(
        "build", help="build a bitstream for a board (YoWASP or system Yosys/nextpnr)",
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
    p.add_argument("--clock-mhz", type=float, metavar="F",
                   help="target clock in MHz (default: the board's preset)")
    p.add_argument("--baud", type=int, default=None, metavar="BAUD",
                   help="UART baud rate (default: 3000000)")
    p.add_argument("--design", choices=("accelerator", "loopback"), default="accelerator",
                   help="what to put on the board: the accelerator, or a UART echo self-test")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="build directory (default: build/<board>-<design>-<config hash>)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
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
    """Print one line per build stage with the elapsed time (redrawn in place on a terminal)."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.stage = None
        self.start = time.monotonic()

    def __call__(self, stage, elapsed_s):
        if self.tty:
            self.stream.write(f"\r  {stage:<20} {time.monotonic() - self.start:6.0f} s")
            if stage == "done":
                self.stream.write("\n")
            self.stream.flush()
        elif stage != self.stage:
            print(f"  {stage} ({time.monotonic() - self.start:.0f} s)", file=self.stream,
                  flush=True)
        self.stage = stage


def run(args) -> int:
    """Run ``tessera build``."""
    from tessera.hw.boards import BOARDS, DEFAULT_BAUD, get_board
    from tessera.hw.build import BuildError, build_bitstream
    from tessera.hw.toolchain import ToolchainError
    from tessera.spec import AcceleratorConfig

    if args.list_boards:
        print(format_boards(BOARDS))
        return 0
    if not args.board:
        print("tessera build: error: --board is required (one of "
              f"{', '.join(BOARDS)}; see --list-boards)", file=sys.stderr)
        return 2
    try:
        board = get_board(args.board)
        config = AcceleratorConfig.load(args.config) if args.config else board.config
    except (ValueError, TypeError, OSError) as e:
        print(f"tessera build: error: {e}", file=sys.stderr)
        return 1
    out_dir = args.output or f"build/{board.name}-{args.design}-{config.hash_hex[:8]}"
    print(f"Building {args.design} for {board.title}: {config.rows}x{config.cols} MACs, "
          f"target {args.clock_mhz or board.clock_mhz:g} MHz, in {out_dir}", file=sys.stderr)
    try:
        report = build_bitstream(board, config, args.clock_mhz, out_dir, design=args.design,
                                 baud=args.baud or DEFAULT_BAUD, seed=args.seed,
                                 progress=_StageLine(sys.stderr))
    except (BuildError, ToolchainError, ValueError) as e:
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
