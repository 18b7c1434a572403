"""Run the benchmark suite and regenerate docs/performance.md from its JSON (``make bench``).

Each benchmark script runs in its own process with ``--json``; its figures are kept in
``bench/results/performance.json`` and rendered into ``docs/performance.md``: utilisation per
GEMM shape (emulator cycle model, and the RTL counters), simulation speed, resources and Fmax per
board (the saved build reports of ``bench/boards.py``), accuracy per model and width, host-side
speeds (numerics, quantize, compile, emulator), the CNN reference kernels against TFLite Micro.
A benchmark that fails or is missing is listed with the reason; the others still make it into the
page.

    .venv/bin/python bench/run_all.py            # everything (board builds: tens of minutes)
    .venv/bin/python bench/run_all.py --quick    # small sizes, no bitstream builds (minutes)
    .venv/bin/python bench/run_all.py --only accuracy,utilisation
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "performance.json"
DOCS = ROOT / "docs" / "performance.md"

#: ``name: (script, full arguments, --quick arguments)``; every script gets ``--json`` too,
#: except bench_requant_exhaustive which always prints a JSON line last.
BENCHES = {
    "utilisation": ("bench_utilisation.py", [], ["--quick"]),
    "rtl": ("bench_rtl.py", [], ["--quick", "--simulators", "verilator"]),
    "boards": ("boards.py", ["--designs", "accelerator,loopback"], ["--docs-only"]),
    "accuracy": ("bench_accuracy.py", [], []),
    "numerics": ("bench_numerics.py", [], ["--size", "256", "--repeat", "2"]),
    "quantize": ("bench_quantize.py", [], ["--repeat", "1"]),
    "compile": ("bench_compile.py", [], []),
    "emulator": ("bench_emulator.py", [], ["--repeat", "1"]),
    "requant": ("bench_requant_exhaustive.py", [], ["--count", "20000"]),
    "cnn": ("bench_cnn_reference.py", [], ["--repeat", "1"]),
    "mlperf": ("bench_mlperf_tiny.py", [], []),
    "fuzz": ("bench_rtl_fuzz.py", [], ["--stimuli", "2000", "--configs", "2x4"]),
}
_NO_JSON_FLAG = {"bench_requant_exhaustive.py"}


def _last_json(text):
    """Return the JSON document printed by a benchmark: all of stdout, or its last line."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise ValueError("no JSON in its output")


def run_bench(name, quick, log=print):
    """Run one benchmark; return ``{"ok": bool, "seconds": s, "data" | "error": ...}``."""
    script, full, quick_args = BENCHES[name]
    path = ROOT / "bench" / script
    if not path.is_file():
        return {"ok": False, "seconds": 0.0, "error": f"bench/{script} does not exist (yet)"}
    argv = [sys.executable, str(path)] + (quick_args if quick else full)
    if script not in _NO_JSON_FLAG:
        argv.append("--json")
    log(f"[{name}] {' '.join(argv[1:])}")
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = round(time.monotonic() - start, 1)
    try:
        data = _last_json(proc.stdout)
    except ValueError:
        data = None
    if proc.returncode != 0 or data is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        log(f"[{name}] FAILED (exit {proc.returncode}, {seconds} s)\n{tail}")
        return {"ok": False, "seconds": seconds, "error": f"exit status {proc.returncode}: "
                                                          f"{tail}", "data": data}
    log(f"[{name}] done in {seconds} s")
    return {"ok": True, "seconds": seconds, "data": data}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, Verilator only, saved board reports (no builds)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--docs-only", action="store_true",
                        help="re-render docs/performance.md from bench/results/performance.json")
    args = parser.parse_args(argv)
    from performance_doc import render   # bench/performance_doc.py, next to this script

    if args.docs_only:
        results = json.loads(RESULTS.read_text())
    else:
        names = list(BENCHES) if not args.only else [n.strip() for n in args.only.split(",")]
        unknown = [n for n in names if n not in BENCHES]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(BENCHES)}")
        previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        benches = dict(previous.get("benches", {}))
        for name in names:
            benches[name] = {**run_bench(name, args.quick, log=lambda m: print(m, flush=True)),
                             "quick": args.quick,
                             "date": time.strftime("%Y-%m-%d %H:%M", time.localtime())}
        results = {"python": sys.version.split()[0], "benches": benches}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    DOCS.write_text(render(results), encoding="utf-8")
    print(f"wrote {DOCS.relative_to(ROOT)} (figures in {RESULTS.relative_to(ROOT)})")
    failed = [n for n, b in results["benches"].items() if not b["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
