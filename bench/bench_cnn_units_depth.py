"""Logic depth of each CNN unit of issue #15 alone on the ECP5: a quick proxy for its timing.

Each unit (:data:`bench_cnn_units_synth.UNITS`, at the ``cnn`` configuration of an ECP5 preset)
is synthesised as a bitstream build does (:func:`bench_cnn_units_synth.synthesize`: the
``booth`` pass, then ``synth_ecp5``) and Yosys ``ltp -noff`` prints the longest
combinational path in cells between flip-flops (and ports): a ``LUT4``, a ``PFUMX``/``L6MUX21``
and a ``CCU2C`` (two bits of a carry chain) count one level each. About 6-7 levels is what
100 MHz allows on the ECP5 -8 grade once placed and routed. The unit's ports count as path
ends, so a path through a unit to its neighbour adds the neighbour's depth in the whole design.
``LUTlev`` is the same longest path with a carry chain counted once (:func:`endpoint_levels`).

Usage: ``.venv/bin/python bench/bench_cnn_units_depth.py [--preset orangecrab-25f-cnn]
[--unit NAME ...] [--path] [--endpoints] [--source PORT ...]`` (seconds to minutes per unit;
``--path`` prints ltp's path, ``--endpoints`` the LUT levels before each output port and each
register, ``--source`` those from one input port, e.g. ``o_cmd__ready``).
"""

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from bench_cnn_units_synth import UNITS, synthesize
from tessera.compiler.presets import get_preset
from tessera.hw.boards import get_board


def depth(unit, config, board, workdir):
    """Return ``(ltp levels, path lines, cell counts, netlist)`` of ``unit`` at ``config`` on
    ``board`` (the netlist as Yosys ``write_json`` gives it, for :func:`endpoint_levels`)."""
    family = get_board(board).family
    if family != "ecp5":
        raise ValueError(f"The depth proxy is calibrated for the ECP5, not {family}: "
                         "pick an ECP5 preset (orangecrab-25f-cnn, ulx3s-85f-cnn)")
    counts = synthesize(unit, config, board, workdir,
                        after=f"write_json {unit}.json; delete t:TRELLIS_FF; "
                              f"tee -q -o {unit}.ltp ltp -noff")
    text = (Path(workdir) / f"{unit}.ltp").read_text()
    found = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if found is None:
        raise RuntimeError(f"No ltp result for {unit}:\n{text[-2000:]}")
    path = [line.strip() for line in text[found.end():].splitlines() if line.strip()]
    sys.setrecursionlimit(100000)
    netlist = json.loads((Path(workdir) / f"{unit}.json").read_text())
    return int(found.group(1)), path, counts, netlist


#: Cells whose outputs start a path (flip-flops, block RAMs, multipliers).
_SEQUENTIAL = ("TRELLIS_FF", "DP16KD", "MULT18X18D", "ALU54B", "TRELLIS_DPR16X4")


def endpoint_levels(netlist, source=None):
    """Return ``{endpoint: levels}``: the LUT levels on the longest path to each output port and
    to each flip-flop's inputs (grouped by the register's name, trailing indices dropped).

    A ``LUT4``, ``PFUMX``, ``L6MUX21`` or the entry into a ``CCU2C`` carry chain counts one
    level; the hops along a carry chain (``CIN``) count none (they take ~0.06 ns each, a LUT and
    its routing ~0.5-1 ns). With ``source`` (an input port's name) only the paths from it count.
    """
    module = netlist["modules"]["top"]
    driver_level, fanin = {}, {}
    for name, cell in module["cells"].items():
        outs = [b for port, d in cell["port_directions"].items() if d == "output"
                for b in cell["connections"][port]]
        ins = [(b, 0 if port == "CIN" else 1)
               for port, d in cell["port_directions"].items() if d == "input"
               for b in cell["connections"][port] if isinstance(b, int)]
        for bit in outs:
            if cell["type"] in _SEQUENTIAL:
                driver_level[bit] = None if source else 0
            else:
                fanin[bit] = ins
    if source is not None:
        for name, port in module["ports"].items():
            if port["direction"] == "input":
                for bit in port["bits"]:
                    driver_level[bit] = 0 if name == source else None
    names = {}                                 # per bit, its shortest visible net name
    for name, net in module["netnames"].items():
        for bit in net["bits"]:
            if isinstance(bit, int) and not net.get("hide_name"):
                if bit not in names or len(name) < len(names[bit]):
                    names[bit] = name

    def level(bit):
        if bit in driver_level:
            return driver_level[bit]
        driver_level[bit] = None if source else 0   # constants, undriven; breaks any loop
        if bit in fanin:
            found = [level(b) + weight for b, weight in fanin[bit] if level(b) is not None]
            driver_level[bit] = max(found) if found else driver_level[bit]
        return driver_level[bit]

    def deepest(bits):
        found = [level(b) for b in bits if isinstance(b, int) and level(b) is not None]
        return max(found) if found else None

    result = {}
    for name, cell in module["cells"].items():
        if cell["type"] not in _SEQUENTIAL:
            continue
        q = [b for port, d in cell["port_directions"].items() if d == "output"
             for b in cell["connections"][port]]
        group = re.sub(r"(_TRELLIS_FF_Q|_DP16KD|_MULT18X18D).*$", "",
                       names.get(q[0], name) if q else name)
        group = re.sub(r"(_\d+)+$", "", group)
        found = deepest([b for port, d in cell["port_directions"].items()
                         if d == "input" and port != "CLK" for b in cell["connections"][port]])
        if found is not None:
            result[group] = max(result.get(group, 0), found)
    for name, port in module["ports"].items():
        if port["direction"] == "output":
            found = deepest(port["bits"])
            if found is not None:
                result[name] = found
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="orangecrab-25f-cnn")
    parser.add_argument("--unit", choices=sorted(UNITS), action="append")
    parser.add_argument("--path", action="store_true", help="print each path's cells")
    parser.add_argument("--endpoints", action="store_true",
                        help="print the LUT levels before each output port and register")
    parser.add_argument("--source", action="append",
                        help="print the LUT levels from this input port (e.g. i_step__valid)")
    args = parser.parse_args(argv)
    preset = get_preset(args.preset)
    print(f"{'unit':24}{'ltp':>8}{'LUTlev':>8}{'LUT4':>10}{'CCU2C':>10}{'TRELLIS_FF':>12}")
    with tempfile.TemporaryDirectory(dir=".") as workdir:
        for unit in args.unit or UNITS:
            levels, path, counts, netlist = depth(unit, preset.config, preset.board, workdir)
            ends = endpoint_levels(netlist)
            print(f"{unit:24}{levels:>8}{max(ends.values(), default=0):>8}"
                  f"{counts.get('LUT4', 0):>10}{counts.get('CCU2C', 0):>10}"
                  f"{counts.get('TRELLIS_FF', 0):>12}", flush=True)
            if args.path:
                print("\n".join("    " + line for line in path))
            if args.endpoints:
                for name, value in sorted(ends.items(), key=lambda item: -item[1]):
                    print(f"    {value:>4}  {name}")
            for port in args.source or ():
                reached = endpoint_levels(netlist, source=port)
                print(f"  from {port}:")
                for name, value in sorted(reached.items(), key=lambda item: -item[1])[:12]:
                    print(f"    {value:>4}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
