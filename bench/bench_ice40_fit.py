"""Does an iCE40 configuration fit its part? Logic cells after nextpnr's packing, in ~2 minutes.

The whole ``Accelerator`` (without the board's UART pins and PLL) of a CNN preset
(``tessera.compiler.presets``) or of a board's default configuration (``tessera.hw.boards``) is
synthesised as a bitstream build does it (:func:`tessera.hw.build.synthesis_overrides`: the
``booth`` pass, ``synth_ice40`` with the build's options, the board's platform so that the
iCE40 array and memories instantiate their SB_MAC16 and SB_SPRAM256KA), then packed by
``nextpnr-ice40 --pack-only``: its ``ICESTORM_LC`` count is the figure the part's logic cells
are checked against (an LC holds one SB_LUT4, one SB_CARRY and one flip-flop, so the count is
above both the LUT4 and the flip-flop counts). No placement or routing: a fit check in minutes
where ``tessera build`` takes half an hour.

Usage: ``.venv/bin/python bench/bench_ice40_fit.py [--preset icebreaker-cnn] [--json out.json]``
(``--preset icebreaker`` for the dense board configuration).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from tessera.compiler.presets import CNN_PRESETS
from tessera.hw.boards import BOARDS, get_board
from tessera.hw.build import synthesis_overrides
from tessera.hw.toolchain import resolve_tools
from tessera.hw.top import Accelerator

#: nextpnr's utilisation lines: cell type, used, available.
_UTIL = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def configuration(name):
    """Return ``(board, config)`` of a CNN preset or of a board's default configuration."""
    if name in CNN_PRESETS:
        return CNN_PRESETS[name].board, CNN_PRESETS[name].config
    if name in BOARDS:
        return name, BOARDS[name].config
    raise ValueError(f"Unknown preset or board {name!r}; choose from "
                     f"{', '.join([*CNN_PRESETS, *BOARDS])}")


def pack(name, workdir):
    """Return ``{"yosys": {cell: n}, "nextpnr": {cell: (used, available)}}`` for ``name``."""
    board_name, config = configuration(name)
    board = get_board(board_name)
    if board.family != "ice40":
        raise ValueError(f"{name} is on the {board.device}: this check packs for the iCE40 only")
    platform = board.make_platform()
    workdir = Path(workdir)
    (workdir / "top.il").write_text(rtlil.convert(Accelerator(config), name="top",
                                                  platform=platform))
    overrides = synthesis_overrides(board, config)
    tools = resolve_tools("ice40")
    script = (f"read_rtlil top.il; hierarchy -top top; {overrides.get('script_after_read', '')}; "
              f"synth_ice40 {overrides.get('synth_opts', '')} -top top; "
              f"tee -q -o top.stat stat; write_json top.json")
    subprocess.run([tools["YOSYS"].command, "-q", "-p", script], cwd=workdir, check=True,
                   capture_output=True, text=True)
    yosys = {}
    for count, cell in re.findall(r"^\s+(\d+)\s+(SB_\w+)\s*$",
                                  (workdir / "top.stat").read_text(), re.MULTILINE):
        key = "SB_DFF*" if cell.startswith("SB_DFF") else cell
        yosys[key] = yosys.get(key, 0) + int(count)
    device = board.device.lower().removeprefix("ice40")          # "up5k"
    result = subprocess.run([tools["NEXTPNR_ICE40"].command, f"--{device}", "--package",
                             platform.package.lower(), "--json", "top.json", "--pack-only"],
                            cwd=workdir, capture_output=True, text=True, check=False)
    nextpnr = {cell: (int(used), int(available))
               for cell, used, available in _UTIL.findall(result.stdout + result.stderr)}
    if "ICESTORM_LC" not in nextpnr:
        raise RuntimeError(f"nextpnr-ice40 --pack-only gave no utilisation:\n"
                           f"{(result.stdout + result.stderr)[-2000:]}")
    return {"yosys": yosys, "nextpnr": nextpnr}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="icebreaker-cnn",
                        help="a CNN preset or a board (its default configuration)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=".") as workdir:
        figures = pack(args.preset, workdir)
    print("  ".join(f"{cell} {n}" for cell, n in sorted(figures["yosys"].items())))
    for cell, (used, available) in figures["nextpnr"].items():
        if used or cell == "ICESTORM_LC":
            print(f"{cell:14} {used:>7} / {available:<6} ({100 * used / available:.0f} %)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    used, available = figures["nextpnr"]["ICESTORM_LC"]
    return 0 if used <= available else 1


if __name__ == "__main__":
    sys.exit(main())
