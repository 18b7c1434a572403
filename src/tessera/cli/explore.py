"""``tessera explore``: sweep array shapes and operand widths on boards; show the trade-offs.

For every point of boards × rows × cols × bits: the quantized model's accuracy on the data and
its cycles per inference on the emulator (bit-exact with the RTL), LUTs/FFs/DSPs/BRAMs and Fmax
from a real bitstream build, and latency and throughput at that Fmax. Prints a table with the
Pareto front (accuracy vs latency vs LUTs) and writes explore.json, explore.md and PNG plots.
Results are cached in DIR/cache, so an interrupted sweep resumes where it stopped. A quantized
model (.tflite, quantized .onnx, saved .npz) keeps its width and mode: only boards and array
shapes are swept; a CNN runs on each board's CNN preset (in the emulator; never built, #15).
"""

from __future__ import annotations

import json
import sys

from .options import nonnegative_int, positive_float

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register ``tessera explore``."""
    p = subparsers.add_parser(
        "explore", help="sweep array shapes and bit widths: accuracy, cycles, LUTs, Fmax",
        description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("model", metavar="MODEL",
                   help="digits (the demo's MLP, trained here), a float .onnx file, an .npz "
                        "of float layers w0, b0, act0, w1, ..., or a quantized model (.tflite, "
                        "quantized .onnx, saved .npz: swept at its own width and mode; see "
                        "docs/explore.md)")
    p.add_argument("--board", action="append", metavar="B",
                   help="board to build for (repeatable; see tessera build --list-boards)")
    p.add_argument("--rows", default="2,4,8", metavar="LIST",
                   help="array rows to sweep, comma-separated (default 2,4,8)")
    p.add_argument("--cols", default="4,8", metavar="LIST",
                   help="array columns to sweep (default 4,8)")
    p.add_argument("--bits", default="8", metavar="LIST",
                   help="operand widths to sweep, each 4, 8 or 16 (default 8)")
    p.add_argument("--data", metavar="digits|FILE.npz|X.npy",
                   help="test data: digits, an .npz with x_train (calibration), x_test, y_test, "
                        "or inputs X.npy (with --labels; a float model is calibrated on them). "
                        "Default: digits for the digits model; optional for a quantized model")
    p.add_argument("--labels", metavar="Y.npy",
                   help="integer class labels of --data X.npy, one per row (accuracy)")
    p.add_argument("--mode", choices=("onnx", "tflite"),
                   help="requantization mode (default onnx; a quantized model's own mode)")
    p.add_argument("--clock-mhz", type=positive_float, metavar="F",
                   help="target clock of every build (default: each board's)")
    p.add_argument("--batch", type=int, default=64,
                   help="rows per device call for the throughput figure (default 64)")
    p.add_argument("--seed", type=nonnegative_int, default=1,
                   help="nextpnr placement seed (default 1)")
    p.add_argument("--no-build", action="store_true",
                   help="emulator only: accuracy and cycles, no bitstreams (points the part "
                        "cannot hold are still marked does not fit)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: the CPU count; 1 = in this process)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the points on this Dask scheduler's workers instead")
    p.add_argument("--check-rtl", action="store_true",
                   help="spot-check the smallest and largest points on the RTL simulation "
                        "(outputs and work/byte counters must equal the emulator's, total "
                        "cycles within 5%%)")
    p.add_argument("--rtl-rows", type=int, default=8,
                   help="test rows per RTL spot check (default 8)")
    p.add_argument("-o", "--output", metavar="DIR", default="explore",
                   help="where the reports and the cache go (default ./explore)")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    p.add_argument("--json", action="store_true", help="print the sweep as JSON")
    return p


class _Progress:
    """One line per finished point on stderr."""

    def __init__(self, stream):
        self.stream = stream

    def __call__(self, record, done, total, cached):
        status = record["status"] or "emulated"
        extra = f", {record['lut4']} LUT4, {record['fmax_mhz']:.1f} MHz" \
            if record.get("fmax_mhz") else ""
        origin = "cached" if cached else f"{record.get('elapsed_s', 0):.0f} s"
        figures = [f"accuracy {record['accuracy']:.2%}"] if record.get("accuracy") is not None \
            else []
        if record.get("cycles_per_inference") is not None:
            figures.append(f"{record['cycles_per_inference']:.0f} cycles/inference")
        print(f"  [{done}/{total}] {record['label']}: {', '.join(figures + [status])}{extra} "
              f"({origin})", file=self.stream, flush=True)


def _grid(args, workload=None):
    from tessera.explore.grid import make_grid, parse_int_list
    if not args.board:
        raise ValueError("--board is required (repeat it to sweep several boards; see "
                         "tessera build --list-boards)")
    rows = parse_int_list(args.rows, "--rows", hi=64)
    cols = parse_int_list(args.cols, "--cols", hi=64)
    bits = parse_int_list(args.bits, "--bits")
    model = None if workload is None else workload.quantized
    if model is None:
        return make_grid(args.board, rows, cols, bits, clock_mhz=args.clock_mhz)
    from tessera.explore.quantized import fixed_bits, is_graph
    width = fixed_bits(model)
    if bits != [width]:
        if args.bits != "8" or width != 8:    # the default --bits says nothing
            print(f"tessera explore: {args.model} is quantized at int{width}: its width cannot "
                  f"change, so --bits {args.bits} is ignored and only boards and array shapes "
                  f"are swept", file=sys.stderr)
    return make_grid(args.board, rows, cols, [width], clock_mhz=args.clock_mhz,
                     cnn=is_graph(model))


def run(args) -> int:
    """Run ``tessera explore``."""
    from pathlib import Path

    from tessera.explore import (check_rtl, choose_rtl_points, format_table, load_workload,
                                 run_sweep, write_reports)
    from tessera.explore.sweep import check_points
    for name in ("batch", "workers", "rtl_rows"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, not {value}")
    _grid(args)                              # the options first: they cost nothing to check
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"-o {out_dir} exists and is not a directory; give a directory "
                                 "for the reports and the cache")
    workload = load_workload(args.model, args.data, args.labels, mode=args.mode)
    points = _grid(args, workload)
    mode = workload.quantized.mode if workload.quantized is not None else args.mode or "onnx"
    check_points(points, mode)
    if args.check_rtl and any(p.cnn for p in points):
        raise ValueError(f"--check-rtl: {args.model} is a CNN, and no RTL implements the CNN "
                         "features yet (#15); drop --check-rtl")
    print(f"Sweeping {len(points)} design points of {args.model}; reports and cache in "
          f"{out_dir}", file=sys.stderr)
    result = run_sweep(points, workload, out_dir / "cache", mode=mode, batch=args.batch,
                       seed=args.seed, build=not args.no_build, workers=args.workers,
                       scheduler=args.scheduler, progress=_Progress(sys.stderr))
    status = 0
    if args.check_rtl:
        for index in choose_rtl_points(result.records):
            record = result.records[index]
            print(f"  checking {record['label']} on the RTL ({args.rtl_rows} rows) ...",
                  file=sys.stderr, flush=True)
            check = check_rtl(record, workload, rows=args.rtl_rows)
            record["rtl_check"] = check
            print(f"  {record['label']}: RTL outputs "
                  f"{'identical' if check['outputs_identical'] else 'DIFFER'}, work and byte "
                  f"counters {'identical' if check['counters_identical'] else 'DIFFER'}, "
                  f"total cycles {check['cycles_rel_diff']:+.1%} vs the model"
                  f"{'' if check['ok'] else ' — CHECK FAILED'}", file=sys.stderr)
            status = status or (0 if check["ok"] else 1)
    written = write_reports(result, out_dir, plots=not args.no_plots)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1, sort_keys=True))
    else:
        print(format_table(result))
        print("Wrote " + ", ".join(str(p) for p in written))
    bad = [r["label"] for r in result.records if r.get("outputs_identical") is False]
    if bad:
        print(f"tessera explore: ERROR: emulator outputs differ from the reference for "
              f"{', '.join(bad)}", file=sys.stderr)
        status = 1
    return status
