"""Logic depth of each CNN unit of issue #15 alone on the ECP5: a quick proxy for its timing.

Each unit (:data:`bench_cnn_units_synth.UNITS`, at the ``cnn`` configuration of an ECP5 preset)
is synthesised as a bitstream build does (:func:`bench_cnn_units_synth.synthesize`'s script:
the ``booth`` pass, then ``synth_ecp5``) and Yosys ``ltp -noff`` prints the longest
combinational path in cells between flip-flops (and ports): a ``LUT4``, a ``PFUMX``/``L6MUX21``
and a ``CCU2C`` (two bits of a carry chain) count one level each. About 6-7 levels is what
100 MHz allows on the ECP5 -8 grade once placed and routed. The unit's ports count as path
ends, so a path through a unit to its neighbour adds the neighbour's depth in the whole design.

Usage: ``.venv/bin/python bench/bench_cnn_units_depth.py [--preset orangecrab-25f-cnn]
[--unit NAME ...] [--path]`` (about a minute per unit; ``--path`` prints the path's cells).
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from bench_cnn_units_synth import UNITS, cell_counts
from tessera.compiler.presets import get_preset
from tessera.hw.boards import get_board
from tessera.hw.build import synthesis_overrides
from tessera.hw.toolchain import resolve_tools


def depth(unit, config, board, workdir):
    """Return ``(levels, path lines, cell counts)`` of ``unit`` at ``config`` on ``board``."""
    family = get_board(board).family
    if family != "ecp5":
        raise ValueError(f"The depth proxy is calibrated for the ECP5, not {family}: "
                         "pick an ECP5 preset (orangecrab-25f-cnn, ulx3s-85f-cnn)")
    overrides = synthesis_overrides(board, config)
    script = (f"read_rtlil {unit}.il; hierarchy -top top; "
              f"{overrides.get('script_after_read', '')}; "
              f"synth_ecp5 {overrides.get('synth_opts', '')} -top top; "
              f"tee -q -o {unit}.stat stat; delete t:TRELLIS_FF; tee -q -o {unit}.ltp ltp -noff")
    platform = get_board(board).make_platform()
    (Path(workdir) / f"{unit}.il").write_text(rtlil.convert(UNITS[unit](config), name="top",
                                                            platform=platform))
    yosys = resolve_tools(family)["YOSYS"].command
    result = subprocess.run([yosys, "-q", "-p", script], cwd=workdir, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Yosys failed for {unit}:\n{result.stderr[-2000:]}")
    text = (Path(workdir) / f"{unit}.ltp").read_text()
    found = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if found is None:
        raise RuntimeError(f"No ltp result for {unit}:\n{text[-2000:]}")
    path = [line.strip() for line in text[found.end():].splitlines() if line.strip()]
    return (int(found.group(1)), path,
            cell_counts((Path(workdir) / f"{unit}.stat").read_text()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="orangecrab-25f-cnn")
    parser.add_argument("--unit", choices=sorted(UNITS), action="append")
    parser.add_argument("--path", action="store_true", help="print each path's cells")
    args = parser.parse_args(argv)
    preset = get_preset(args.preset)
    print(f"{'unit':24}{'levels':>8}{'LUT4':>10}{'CCU2C':>10}{'TRELLIS_FF':>12}")
    with tempfile.TemporaryDirectory(dir=".") as workdir:
        for unit in args.unit or UNITS:
            levels, path, counts = depth(unit, preset.config, preset.board, workdir)
            print(f"{unit:24}{levels:>8}{counts.get('LUT4', 0):>10}"
                  f"{counts.get('CCU2C', 0):>10}{counts.get('TRELLIS_FF', 0):>12}", flush=True)
            if args.path:
                print("\n".join("    " + line for line in path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
