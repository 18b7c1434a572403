"""Render docs/performance.md from the figures ``bench/run_all.py`` collected.

Only formatting: every number on the page comes from a benchmark's JSON output (or a saved
build report); a benchmark that failed or was not run is named with the reason.
"""

from __future__ import annotations

__all__ = ["render"]

_TITLES = {
    "utilisation": "bench/bench_utilisation.py", "rtl": "bench/bench_rtl.py",
    "boards": "bench/boards.py", "accuracy": "bench/bench_accuracy.py",
    "numerics": "bench/bench_numerics.py", "quantize": "bench/bench_quantize.py",
    "compile": "bench/bench_compile.py", "emulator": "bench/bench_emulator.py",
    "requant": "bench/bench_requant_exhaustive.py", "cnn": "bench/bench_cnn_reference.py",
    "mlperf": "bench/bench_mlperf_tiny.py", "fuzz": "bench/bench_rtl_fuzz.py",
}


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _data(results, name):
    bench = results["benches"].get(name)
    return bench["data"] if bench and bench["ok"] else None


def _source(results, name):
    bench = results["benches"].get(name)
    if bench is None:
        return f"*Not run (`{_TITLES[name]}`).*"
    quick = " with `--quick`" if bench.get("quick") else ""
    return f"*From `{_TITLES[name]}`{quick}, {bench.get('date', '')}, {bench['seconds']} s.*"


def _counter_diff(counters):
    differ = [f"{name} {c['rel_diff']:+.1%}" for name, c in counters.items() if not c["exact"]]
    return "all identical" if not differ else \
        "identical except " + ", ".join(differ)


def _utilisation(results):
    lines = ["## Array utilisation per GEMM shape", ""]
    data = _data(results, "utilisation")
    if data:
        lines += ["Emulator cycle model: utilisation over compute cycles (the RTL counts the "
                  "same compute cycles and MACs), and end to end including the loads and stores "
                  "over the byte-stream link (1 byte per cycle each way; the RTL in simulation "
                  "counts a few percent more total cycles, see below). Buffers hold every "
                  "operand (resident weights).", ""]
        lines += _table(("array", "M×K×N", "cycles", "util (compute)", "util (end to end)"),
                        [(r["array"], r["shape"].replace("x", "×"), f"{r['cycles']:,}",
                          f"{r['utilisation_compute']:.3f}",
                          f"{r['utilisation_end_to_end']:.3f}") for r in data["rows"]])
        lines += ["", _source(results, "utilisation"), ""]
    rtl = _data(results, "rtl")
    if rtl and rtl.get("gemm"):
        lines += ["Measured on the RTL (hardware counters):", ""]
        lines += _table(("simulator", "M×K×N on 8×8", "util (compute)", "util (end to end)",
                         "RTL counters vs emulator"),
                        [(sim, g["shape"], f"{g['utilisation_compute']:.3f}",
                          f"{g['utilisation_end_to_end']:.3f}", _counter_diff(g["counters"]))
                         for sim, g in rtl["gemm"].items()])
        lines += ["", _source(results, "rtl"), ""]
    return lines


def _speed(results):
    lines = ["## Simulation speed", ""]
    rtl, emu = _data(results, "rtl"), _data(results, "emulator")
    rows = []
    if rtl:
        rows += [(f"RTL, {name}", f"{cps:,.0f} cycles/s") for name, cps in rtl["speed"].items()]
        rows += [(f"RTL build, {name}", f"{t:.1f} s") for name, t in rtl["builds"].items()]
    if emu:
        rows.append((f"emulator, digits {emu['config']} ({emu['images']} images)",
                     f"{emu['images_per_s']:,.0f} images/s "
                     f"({emu['cycles_per_image']:.0f} cycles/image)"))
    if rows:
        lines += _table(("what", "speed"), rows) + [""]
    lines += [_source(results, "rtl"), _source(results, "emulator"), ""]
    return lines


def _boards(results):
    lines = ["## Resources and Fmax per board", ""]
    data = _data(results, "boards")
    if not data:
        return lines + [_source(results, "boards"), ""]
    rows = []
    for r in data:
        res = r["resources"]
        use = lambda k: f"{res[k]['used']}/{res[k]['available']}" if k in res else ""  # noqa
        fmax = min((f for n, f in r["fmax_mhz"].items() if n in r["constraint_mhz"]),
                   default=min(r["fmax_mhz"].values(), default=0.0))
        rows.append((r["board"], r["design"], f"{r['config']['rows']}×{r['config']['cols']}",
                     use("lut4"), use("ff"), use("dsp"), use("bram"), f"{fmax:.1f}",
                     f"{r['target_mhz']:g}", "met" if r["timing_met"] else "NOT met"))
    lines += _table(("board", "design", "array", "LUT4", "FF", "DSP", "BRAM", "Fmax MHz",
                     "target MHz", "timing"), rows)
    return lines + ["", "Details and critical paths: [boards.md](boards.md). "
                    + _source(results, "boards"), ""]


def _accuracy(results):
    lines = ["## Accuracy per model and operand width", ""]
    data = _data(results, "accuracy")
    if data:
        rows, notes = [], {}
        for r in data["rows"]:
            if r["status"] == "not implemented":
                rows.append((r["model"], r["mode"], f"int{r['bits']}",
                             f"{r['float_accuracy']:.2%}", "not supported¹", "", ""))
                notes.setdefault(f"{r['mode']} int{r['bits']}", r["reason"])
                continue
            if r["status"] == "host only":
                rows.append((r["model"], r["mode"], f"int{r['bits']}",
                             f"{r['float_accuracy']:.2%}", f"{r['reference_accuracy']:.2%}",
                             "device: int8 only", ""))
                continue
            rows.append((r["model"], r["mode"], f"int{r['bits']}", f"{r['float_accuracy']:.2%}",
                         f"{r['reference_accuracy']:.2%}", f"{r['emulator_accuracy']:.2%}",
                         "yes" if r["bit_exact"] else "NO"))
        lines += _table(("model", "mode", "width", "float", "quantized (NumPy)",
                         "emulator", "bit-exact"), rows)
        lines += ["", "Post-training quantization, `tessera.quantize(layers, calibration=x_train, "
                  "bits=width)` (activations and weights at that width), of one seeded "
                  "scikit-learn `MLPClassifier` per data set: inputs standardised with "
                  "`StandardScaler`, a stratified 20 % test split, seed 0. Emulator of an "
                  f"{data['config']} array of each width (`with_widths`), compared with the "
                  "NumPy reference output by output. These digits figures are not those of "
                  "[quantization.md](quantization.md#operand-widths), which measures `tessera "
                  "demo`'s digits MLP (inputs scaled to [0, 1]): standardising makes the "
                  "near-constant pixels of this model's inputs large, so its 4-bit input grid "
                  "is coarse and int4 loses far more. " + _source(results, "accuracy"), ""]
        lines += [f"¹ {what}: {reason}" for what, reason in notes.items()]
        lines += [""] if notes else []
    else:
        lines += [_source(results, "accuracy"), ""]
    return lines


def _host(results):
    lines = ["## Host-side speed", ""]
    rows = []
    num = _data(results, "numerics")
    if num:
        rows.append((f"quantized_linear {num['size']}³ (onnx)",
                     f"{num['ours_onnx_s'] * 1e3:.1f} ms",
                     f"{num['ratio_onnx_vs_ort_1thread']:.2f}× ONNX Runtime QGemm (1 thread)"))
    q = _data(results, "quantize")
    if q:
        rows.append((f"quantize MLP {'-'.join(map(str, q['sizes']))}",
                     f"{q['quantize_per_channel_minmax_s'] * 1e3:.1f} ms",
                     f"{q['parameters']:,} parameters"))
    comp = _data(results, "compile")
    if comp:
        for r in comp["results"]:
            rows.append((f"compile {r['model']}", f"{r['compile_s'] * 1e3:.1f} ms",
                         f"{r['frames']} frames, {r['instructions']} instructions"))
    emu = _data(results, "emulator")
    if emu:
        rows.append((f"emulator, digits ({emu['images']} images, {emu['config']})",
                     f"{emu['warm_run_s_best'] * 1e3:.0f} ms",
                     f"accuracy {emu['accuracy']:.2%}, bit-exact {emu['bit_exact']}"))
    req = _data(results, "requant")
    if req:
        rows.append((f"PostProcessor on Verilator, {req['elements']:,} elements",
                     f"{req['simulation_s']:.2f} s",
                     f"{req['mismatch_numerics']} mismatches vs numerics, "
                     f"{req['mismatch_oracle']} vs the independent oracle"))
    if rows:
        lines += _table(("what", "time", "notes"), rows) + [""]
    lines += [_source(results, n) for n in ("numerics", "quantize", "compile", "requant")]
    return lines + [""]


def _cnn(results):
    lines = ["## CNN reference kernels vs TFLite Micro", ""]
    cnn = _data(results, "cnn")
    if cnn:
        lines += [f"`tessera.load_model(path, mode=\"tflite\").predict(x, raw=True)` on a batch of "
                  f"{cnn['batch']} int8 inputs against TFLite Micro's Python interpreter (the "
                  "`tflite-micro` wheel, its reference kernels) on the same inputs one at a "
                  "time, in the same run, one thread each; the outputs are compared bit for "
                  "bit first.", ""]
        rows = [(f"{r['model']} ({r['what']})", f"{r['tessera_ms_per_inference']:.2f} ms",
                 f"{r['tflm_ms_per_inference']:.2f} ms", f"{r['speedup_vs_tflm']:.2f}×",
                 "yes" if r["equal"] else "**no**") for r in cnn["models"]]
        lines += _table(("model", "Tessera per inference", "TFLM per inference",
                         "TFLM / Tessera", "bit-exact"), rows) + [""]
    return lines + [_source(results, "cnn"), ""]


def _real(row):
    real = row.get("real_samples")
    if real is None:
        return "–"
    if "refused" in real:
        return "– (does not fit)"
    windows = " windows" if row["model"] == "AD" else ""
    return f"{real['equal']}/{real['samples']}{windows}"


def _mlperf(results):
    lines = ["## MLPerf Tiny on the board presets (device model)", ""]
    data = _data(results, "mlperf")
    if data:
        lines += ["One inference with the input on the device (MLPerf Tiny's latency), from the "
                  "emulator's cycle model at each preset's clock (`tessera profile MODEL --board "
                  "BOARD`). The CNN presets (`tessera.compiler.presets`) run on the RTL in simulation with "
                  "the emulator's counters; of the CNN bitstreams, orangecrab-25f-cnn meets its 100 MHz "
                  "(109.91 MHz since its reset is on a global net, so its rows are at a met clock); "
                  "icebreaker-cnn does "
                  "not fit the UP5K (13,912 of 5,280 logic cells); ulx3s-85f-cnn is 16x8 since "
                  "1fd5b32 (the 32x4 design it replaced needs 90,530 of the LFE5U-85F's 83,640 "
                  "TRELLIS_COMB with the native Yosys of pyosys) and does not meet 100 MHz yet "
                  "(59.5 MHz routed at b8e65f4; its rows are at "
                  "the 100 MHz target, "
                  "not a met clock) "
                  "([boards.md](boards.md), \"CNN presets\"; issue #15). "
                  "*fits*: the whole model resident; a CNN "
                  "whose weights do not fit streams some of them every inference (the bytes "
                  "are shown, their time at 3 Mbaud is in the latency); one whose feature maps "
                  "or PARAM entries do not fit is modelled with the largest buffers (its "
                  "latency is what it would take if they fit, weights streamed as needed); the autoencoder is a dense chain run by the dense "
                  "compiler (the fewest column tiles of weights streamed when they do not all "
                  "fit, its input load and their link time included). Input transfer: the "
                  "input's frames at 3 Mbaud. *Real "
                  "samples = TFLM*: the MLPerf Tiny repository's sample inputs "
                  "(`tests/data/mlperf_tiny/samples.npz`; none for VWW) through "
                  "`connect(\"emu\", config=<preset>)`, outputs equal to TFLite Micro's bit "
                  "for bit.", ""]
        rows = []
        for r in data["models"]:
            lat = "–" if r["latency_ms"] is None else f"{r['latency_ms']:.3f} ms"
            util = "–" if r["utilisation"] is None else f"{r['utilisation']:.2f}"
            cycles = "–" if r["cycles"] is None else f"{r['cycles']:,}"
            xfer = "–" if r["input_transfer_ms"] is None else f"{r['input_transfer_ms']:.2f} ms"
            goal = "–" if r["goal_ms"] is None else f"≤ {r['goal_ms']:g} ms"
            if r["goal_ms"] is not None and r["latency_ms"] is not None:
                met = r["latency_ms"] <= r["goal_ms"] and r["fits"]
                goal += (" met" if met else
                         f" **missed** ({r['latency_ms'] / r['goal_ms']:.1f}×"
                         f"{'' if r['fits'] else ', not resident'})")
            rows.append((r["title"], f"{r['board']} ({r['array']} @ {r['clock_mhz']:g} MHz)",
                         "yes" if r["fits"] else
                         (f"no ({' and '.join(r['too_small'])} too small: modelled larger)"
                          if r.get("too_small") else
                          f"no ({r['streamed_bytes']:,} B streamed)" if r.get("streamed_bytes")
                          else "no"), cycles, lat, util, xfer, goal, _real(r),
                         r["published"]))
        lines += _table(("model", "board (array @ clock)", "fits", "cycles", "latency",
                         "utilisation", "input transfer", "goal (#14)", "real samples = TFLM",
                         "published"), rows)
        emu = data["emulator"]
        lines += ["", f"Emulator speed: {emu['model']} on {emu['inputs']} inputs through "
                      f"`connect(\"emu\", config=<{emu['preset']}>)` in {emu['seconds']:.2f} s "
                      "(goal: under 10 s).", ""]
    return lines + [_source(results, "mlperf"), ""]


def _fuzz(results):
    lines = ["## RTL fuzzing", ""]
    data = _data(results, "fuzz")
    if data:
        lines += [f"Random and mutated frames into the RTL (Verilator) and the emulator, seed "
                  f"{data['seed']}, every response compared byte for byte and a good request "
                  "after each bad stimulus ([simulation.md](simulation.md), \"Fuzzing\").", ""]
        rows = [(name, f"{s['sent']:,}", f"{s['undefined']:,} ({s['undefined_run']:,} run)",
                 f"{s['requests']:,}", f"{s['responses_checked']:,}", s["mismatches"], s["hangs"],
                 f"{s['cycles']:,}", f"{s['wall_s']} s") for name, s in data["configs"].items()]
        lines += _table(("configuration", "stimuli sent", "undefined (run on the RTL alone)",
                         "requests", "responses checked", "mismatches", "hangs", "cycles",
                         "wall time"),
                        rows) + [""]
    return lines + [_source(results, "fuzz"), ""]


def render(results) -> str:
    """Return docs/performance.md for ``results`` (the contents of performance.json)."""
    lines = ["# Performance", "",
             "<!-- Generated by bench/run_all.py (make bench) from "
             "bench/results/performance.json; do not edit by hand. -->", "",
             "Regenerate with `make bench` (everything, including bitstream builds of every "
             "board: tens of minutes) or `.venv/bin/python bench/run_all.py --quick` (small "
             "sizes, saved board reports). The design-space sweep of array sizes and widths "
             "on your own model is `tessera explore` ([explore.md](explore.md)).", ""]
    for section in (_utilisation, _speed, _boards, _accuracy, _host, _cnn, _mlperf,
                    _fuzz):
        lines += section(results)
    failed = [(n, b) for n, b in results["benches"].items() if not b["ok"]]
    if failed:
        lines += ["## Benchmarks that did not run", ""]
        for name, bench in failed:
            reason = bench["error"].splitlines()
            lines.append(f"- `{_TITLES.get(name, name)}`: {reason[0] if reason else ''}"
                         + (f" (last line: `{reason[-1].strip()}`)" if len(reason) > 1 else ""))
        lines.append("")
    return "\n".join(lines)
