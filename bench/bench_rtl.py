"""RTL benchmarks through ``tessera.connect("sim")``: utilisation, cycle model, simulation speed.

Runs on the RTL in a simulator, through the real host driver and socket bridge:

1. **GEMM 256x256x256 on the 8x8 array** (buffers big enough for everything to be resident;
   the program comes from the compiler): utilisation from the hardware counters,
   ``macs / (rows*cols*compute_cycles)`` (target >= 0.90), and end to end including the loads
   and stores over the link, ``macs / (rows*cols*cycles)``.
2. **Emulator cycle model vs RTL counters** on every benchmark shape (each counter; within 5 %).
3. **RTL simulation speed** (simulated cycles per wall-clock second) on Verilator and Icarus,
   and the one-off build time of each configuration.
4. **Host overhead per batch and link bytes per inference** for the digits MLP.

Prints a table; ``--json`` prints the figures as JSON.

    .venv/bin/python bench/bench_rtl.py [--json] [--simulators verilator,icarus] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

import tessera
from tessera.compiler import compile_gemm
from tessera.sim import runner
from tessera.spec import AcceleratorConfig
from tessera.spec.protocol import Kind

#: The 8x8 configuration with buffers big enough for a resident 256^3 GEMM in one chunk.
GEMM_CONFIG = AcceleratorConfig(act_depth=16384, weight_depth=8192, param_depth=256,
                                max_payload=4096)
DIGITS_CONFIG = AcceleratorConfig()
COUNTERS = ("cycles", "compute_cycles", "macs", "stall_cycles", "rx_bytes", "tx_bytes")


def _gemm(size, config, seed=1):
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (size, size), dtype=np.int8)
    b = rng.integers(-1000, 1000, size, dtype=np.int32)
    compiled = compile_gemm(w, b, np.float32(1e-4).view(np.uint32), 0, config)
    x = rng.integers(-128, 128, (size, size), dtype=np.int8)
    return compiled, x


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0,
                                                   stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
        clf.fit(x_train, y_train)
    qmodel = tessera.quantize(clf, calibration=x_train)
    return qmodel, qmodel.quantize_input(x_test)


def _run_gemm(dev, compiled, x):
    for frame in compiled.setup_frames:
        dev.link.request(Kind.EXEC, frame)
    dev.clear_counters()
    start = time.perf_counter()
    y = dev.execute(compiled.program(x))
    wall = time.perf_counter() - start
    counters = dev.counters()
    np.testing.assert_array_equal(y, compiled.reference(x))
    return counters, wall


def _run_digits(dev, qmodel, x_q, batch):
    dev.run(qmodel, x_q[:1], raw=True)      # setup frames (resident weights) and compilation
    dev.clear_counters()
    start = time.perf_counter()
    out = np.concatenate([dev.run(qmodel, x_q[i:i + batch], raw=True)
                          for i in range(0, len(x_q), batch)])
    wall = time.perf_counter() - start
    counters = dev.counters()
    np.testing.assert_array_equal(out, qmodel.predict(x_q, raw=True))
    return counters, wall


def _compare(rtl, emu):
    out = {}
    for name in COUNTERS:
        r, e = rtl[name], emu[name]
        out[name] = {"rtl": r, "emu": e, "rel_diff": (r - e) / e if e else 0.0,
                     "exact": r == e}
    return out


def _timed_build(config, simulator):
    start = time.perf_counter()
    sim = runner.build(config, simulator)
    return sim, time.perf_counter() - start


def run(simulators, quick=False, log=print):
    report = {"gemm": {}, "digits": {}, "builds": {}, "speed": {}}
    size = 64 if quick else 256
    compiled, x = _gemm(size, GEMM_CONFIG)
    with tessera.connect("emu", config=GEMM_CONFIG) as emu:
        emu_gemm, _ = _run_gemm(emu, compiled, x)
    qmodel, x_q = _digits()
    if quick:
        x_q = x_q[:90]
    digits = tessera.compiler.compile_model(qmodel, DIGITS_CONFIG)
    with tessera.connect("emu", config=DIGITS_CONFIG) as emu:
        emu_digits, emu_wall = _run_digits(emu, qmodel, x_q, 45)
    batches = -(-len(x_q) // 45)
    start = time.perf_counter()
    for i in range(0, len(x_q), 45):
        program = digits.program(x_q[i:i + 45])
    program_s = (time.perf_counter() - start) / batches
    report["digits"]["host"] = {
        "images": int(len(x_q)), "batch": 45, "program_build_s_per_batch": program_s,
        "emulator_wall_s_per_batch": emu_wall / batches,
        "link_bytes_per_inference_model": digits.bytes_per_inference,
        "link_bytes_per_inference_measured":
            (emu_digits["rx_bytes"] + emu_digits["tx_bytes"]) / len(x_q),
        "frames_per_batch": len(program.frames),
    }
    for simulator in simulators:
        if simulator not in runner.available_simulators():
            log(f"{simulator}: not installed, skipped")
            continue
        _, t_build = _timed_build(DIGITS_CONFIG, simulator)
        report["builds"][f"8x8 default / {simulator}"] = t_build
        log(f"{simulator}: digits split ({len(x_q)} images) ...")
        with tessera.connect(f"sim:{simulator}", config=DIGITS_CONFIG) as dev:
            rtl, wall = _run_digits(dev, qmodel, x_q, 45)
        report["digits"][simulator] = {"counters": _compare(rtl, emu_digits), "wall_s": wall,
                                       "cycles_per_s": rtl["cycles"] / wall,
                                       "cycles_per_inference": rtl["cycles"] / len(x_q)}
        report["speed"][f"digits / {simulator}"] = rtl["cycles"] / wall
        if simulator != "verilator" and not quick:
            continue    # the 256^3 GEMM is ~10^6 cycles: Verilator only
        _, t_build = _timed_build(GEMM_CONFIG, simulator)
        report["builds"][f"8x8 big buffers / {simulator}"] = t_build
        log(f"{simulator}: GEMM {size}^3 ...")
        with tessera.connect(f"sim:{simulator}", config=GEMM_CONFIG) as dev:
            rtl, wall = _run_gemm(dev, compiled, x)
        peak = GEMM_CONFIG.rows * GEMM_CONFIG.cols
        report["gemm"][simulator] = {
            "shape": f"{size}x{size}x{size}", "counters": _compare(rtl, emu_gemm),
            "utilisation_compute": rtl["macs"] / (peak * rtl["compute_cycles"]),
            "utilisation_end_to_end": rtl["macs"] / (peak * rtl["cycles"]),
            "wall_s": wall, "cycles_per_s": rtl["cycles"] / wall}
        report["speed"][f"gemm / {simulator}"] = rtl["cycles"] / wall
    return report


def format_report(report) -> str:
    lines = []
    for sim, g in report["gemm"].items():
        lines.append(f"GEMM {g['shape']} on 8x8 ({sim}): utilisation {g['utilisation_compute']:.3f}"
                     f" (compute cycles), {g['utilisation_end_to_end']:.3f} end to end "
                     f"(cycles incl. loads/stores); {g['counters']['cycles']['rtl']} cycles")
    lines.append("")
    lines.append(f"{'benchmark':<22}{'counter':<16}{'RTL':>12}{'emulator':>12}{'diff':>9}")
    for bench, per_sim in (("gemm", report["gemm"]), ("digits", report["digits"])):
        for sim, data in per_sim.items():
            if sim == "host":
                continue
            for name, c in data["counters"].items():
                diff = "exact" if c["exact"] else f"{c['rel_diff']:+.2%}"
                lines.append(f"{bench + ' / ' + sim:<22}{name:<16}{c['rtl']:>12}{c['emu']:>12}"
                             f"{diff:>9}")
    lines.append("")
    for name, cps in report["speed"].items():
        lines.append(f"simulation speed {name:<22}{cps:>12,.0f} cycles/s")
    for name, t in report["builds"].items():
        lines.append(f"build (cached after first) {name:<30}{t:>8.1f} s")
    h = report["digits"]["host"]
    lines.append("")
    lines.append(f"digits host: program build {h['program_build_s_per_batch'] * 1e3:.2f} ms/batch "
                 f"of {h['batch']}, emulator {h['emulator_wall_s_per_batch'] * 1e3:.1f} ms/batch, "
                 f"{h['frames_per_batch']} frames/batch, link bytes/inference "
                 f"{h['link_bytes_per_inference_measured']:.1f} (compiler estimate "
                 f"{h['link_bytes_per_inference_model']:.1f})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--simulators", default="verilator,icarus",
                        help="comma-separated simulators (default verilator,icarus)")
    parser.add_argument("--quick", action="store_true",
                        help="64^3 GEMM and 90 digits images (a smoke run)")
    args = parser.parse_args(argv)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    report = run(args.simulators.split(","), quick=args.quick, log=log)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
