"""Synthesis cost of each CNN unit of issue #15 alone, as a bitstream build synthesises it.

Each unit (``cnn`` configuration of a preset, the iCEBreaker's by default) is written as RTLIL
for the preset board's platform and synthesised with the build's Yosys (``resolve_tools``: the
native one of ``pyosys`` when installed, else YoWASP's) and the build's own script
(:func:`tessera.hw.build.synthesis_overrides`: the ``booth`` pass that turns every
multiplication but the array's MACs into logic, then ``synth_ice40`` or ``synth_ecp5`` with the
build's options). Prints the logic,
carry, flip-flop, multiplier and RAM cells per unit (on the iCE40 SB_DFF sums every flip-flop
type); ``--json`` also writes them.

``--by-module`` breaks the whole ``Accelerator`` down instead: each module of its hierarchy is
synthesised alone, its submodules black boxes, so each row is that module's own logic (nothing
is optimised across a module boundary, so the rows sum to a little more than the flattened
design; Yosys 0.70's ABC9 fails on ``synth_ice40 -noflatten`` of the whole design).

Usage: ``.venv/bin/python bench/bench_cnn_units_synth.py [--preset icebreaker-cnn] [--unit NAME]
[--by-module] [--json out.json]`` (a few seconds per unit, minutes for the Accelerator).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from tessera.compiler.presets import get_preset
from tessera.hw.add import AddUnit
from tessera.hw.add_stream import AddStream
from tessera.hw.boards import get_board
from tessera.hw.build import synthesis_overrides
from tessera.hw.conv_checks import WindowChecks
from tessera.hw.conv_commands import ConvCommandSequencer
from tessera.hw.conv_front import ConvFront
from tessera.hw.drain import Drain
from tessera.hw.executor import Executor
from tessera.hw.gather import GatherArbiter
from tessera.hw.pool import PoolDivider
from tessera.hw.pool_post import PoolPostProcessor
from tessera.hw.postproc import PostProcessor, shares_requant
from tessera.hw.requant_onnx import requant_bits
from tessera.hw.requant_tflite import TfliteRequant
from tessera.hw.toolchain import resolve_tools
from tessera.hw.top import Accelerator
from tessera.hw.window import WindowAddressGenerator

#: The units measured, by name: a function of the configuration returning the component.
UNITS = {
    "WindowChecks": WindowChecks,
    "ConvCommandSequencer": ConvCommandSequencer,
    "WindowAddressGenerator": WindowAddressGenerator,
    "GatherArbiter": GatherArbiter,
    # a CONV's front end: the command sequencer and GatheredSteps (generator, skid, arbiter);
    # `--source o_cmd__ready` gives the registers the engine's acceptance reaches
    "ConvFront": ConvFront,
    "PoolDivider": lambda config: PoolDivider(),
    "PoolPostProcessor": PoolPostProcessor,
    # the ADD's sequencing alone: its requant passes run on the drain's PostProcessor; and with
    # its queue, PARAM and operand reads and write-back (all drain lanes)
    "AddUnit": AddUnit,
    "AddStream": AddStream,
    # the drain's post-processor (one lane) and its tflite requant as it builds it: with the
    # preset's requant_cycles, lent to ADD (hw/postproc.py)
    "PostProcessor": PostProcessor,
    "TfliteRequant": lambda config: TfliteRequant(
        config.requant_cycles, result_bits=requant_bits(config.output_bits),
        unsaturated=shares_requant(config)),
    # for comparison: the fully pipelined 32x32 unit the AddUnit had of its own before 3aaa95e
    "TfliteRequant32": lambda config: TfliteRequant(result_bits=32),
    # the drain's sequencing alone (its post-processors are ports): its PARAM read-ahead, whose
    # address goes to the PARAM block RAMs (`--endpoints`: param_addr)
    "Drain": lambda config: Drain(config, postproc_latency=PostProcessor.latency),
    # the request handler, payload reader and program sequencer: its issue handshake with the
    # Core (o_cmd/o_conv/o_add ready -> take -> the frame buffer's read enable)
    "Executor": Executor,
    # the whole device (without the board's UART/PLL shell), for the fit against the part
    "Accelerator": lambda config: Accelerator(config),
}

#: The columns printed per family (``SB_DFF`` sums every iCE40 flip-flop type).
COLUMNS = {"ice40": ("SB_LUT4", "SB_CARRY", "SB_DFF", "SB_MAC16", "SB_RAM40_4K", "SB_SPRAM256KA"),
           "ecp5": ("LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D", "DP16KD", "TRELLIS_DPR16X4")}


def cell_counts(stat_text):
    """Return ``{cell type: count}`` from a Yosys ``stat`` report, flip-flops summed as SB_DFF."""
    counts = {}
    for count, name in re.findall(r"^\s+(\d+)\s+([A-Z]\w+)\s*$", stat_text,
                                  flags=re.MULTILINE):
        key = "SB_DFF" if name.startswith("SB_DFF") else name
        counts[key] = counts.get(key, 0) + int(count)
    return counts


def synthesize(unit, config, board, workdir, after=""):
    """Return the cell counts of ``unit`` (a :data:`UNITS` name) at ``config`` on ``board``;
    ``after``: Yosys commands run on the synthesised netlist in ``workdir`` (for its files)."""
    overrides = synthesis_overrides(board, config)
    family = get_board(board).family
    script = (f"read_rtlil {unit}.il; hierarchy -top top; "
              f"{overrides.get('script_after_read', '')}; "
              f"synth_{family} {overrides.get('synth_opts', '')} -top top; "
              f"tee -q -o {unit}.stat stat; {after}")
    # the board's platform, as the build: the iCE40 array instantiates its SB_MAC16 by hand
    platform = get_board(board).make_platform()
    (Path(workdir) / f"{unit}.il").write_text(rtlil.convert(UNITS[unit](config), name="top",
                                                            platform=platform))
    yosys = resolve_tools(family)["YOSYS"].command
    result = subprocess.run([yosys, "-q", "-p", script], cwd=workdir, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Yosys failed for {unit}:\n{result.stderr[-2000:]}")
    return cell_counts((Path(workdir) / f"{unit}.stat").read_text())


def synthesize_by_module(config, board, workdir):
    """Return ``{module: cell counts}`` of the ``Accelerator``'s modules, each without its
    submodules (black boxes), synthesised as :func:`synthesize` does."""
    overrides = synthesis_overrides(board, config)
    family = get_board(board).family
    platform = get_board(board).make_platform()
    text = rtlil.convert(Accelerator(config), name="top", platform=platform)
    (Path(workdir) / "top.il").write_text(text)
    children = {}
    for body in text.split("\nmodule ")[1:]:
        name = body.split("\n", 1)[0].strip()
        children[name] = sorted(set(re.findall(r"^\s*cell (\\top\S*) ", body, re.MULTILINE)))
    yosys = resolve_tools(family)["YOSYS"].command

    def run(name, boxes, options):
        stat = f"{len(figures)}.stat"
        script = (f"read_rtlil top.il; hierarchy -top {name}; "
                  + (f"blackbox {' '.join(boxes)}; " if boxes else "")
                  + f"{overrides.get('script_after_read', '')}; "
                  f"synth_{family} {overrides.get('synth_opts', '')} {options} -top {name}; "
                  f"tee -q -o {stat} stat")
        result = subprocess.run([yosys, "-q", "-p", script], cwd=workdir, capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            return None
        # the black boxes' own lines are not cells of this module
        return {cell: count
                for cell, count in cell_counts((Path(workdir) / stat).read_text()).items()
                if not cell.startswith("top")}

    figures = {}
    for name, inner in children.items():
        counts = run(name, inner, "")
        if counts is None:
            # Yosys 0.70's ABC9 stops at an assertion on some modules synthesised alone (native
            # pyosys and YoWASP alike: `count_id(wire->name) == 0' in ABC_OPS_REINTEGRATE on
            # icebreaker-cnn's core.act, core.front.steps, counters): Yosys's own LUT mapping
            # then (about 10 % more SB_LUT4 than ABC9 on the drain)
            counts, name = run(name, inner, "-noabc"), f"{name} (noabc)"
        if counts is None:
            raise RuntimeError(f"Yosys failed for {name} (run its script in {workdir})")
        figures[name] = counts
    return {name.lstrip("\\"): counts for name, counts in figures.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="icebreaker-cnn")
    parser.add_argument("--unit", choices=sorted(UNITS), action="append")
    parser.add_argument("--by-module", action="store_true",
                        help="the Accelerator's own cells per module of its hierarchy")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    preset = get_preset(args.preset)
    figures = {}
    columns = COLUMNS[get_board(preset.board).family]
    print(f"{'unit':24}" + "".join(f"{c:>16}" for c in columns))
    with tempfile.TemporaryDirectory(dir=".") as workdir:
        if args.by_module:
            figures = synthesize_by_module(preset.config, preset.board, workdir)
            total = {}
            for name, counts in figures.items():
                print(f"{name:44}" + "".join(f"{counts.get(c, 0):>14}" for c in columns))
                for cell, count in counts.items():
                    total[cell] = total.get(cell, 0) + count
            print(f"{'(sum)':44}" + "".join(f"{total.get(c, 0):>14}" for c in columns))
        for unit in [] if args.by_module else args.unit or UNITS:
            counts = synthesize(unit, preset.config, preset.board, workdir)
            figures[unit] = counts
            print(f"{unit:24}" + "".join(f"{counts.get(c, 0):>16}" for c in columns), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
