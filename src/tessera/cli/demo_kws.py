"""The CNN part of ``tessera demo``: the MLPerf Tiny keyword-spotting DS-CNN, end to end.

The MLPerf Tiny KWS reference model (``tessera/data/mlperf_tiny/kws_ref_model.tflite``) is read
in mode ``"tflite"`` and run on a board's CNN preset (:mod:`tessera.compiler.presets`):

1. TFLite Micro's reference kernels (the ``tflite-micro`` wheel; the arithmetic of MLPerf Tiny's
   microcontroller submissions) are the oracle; Tessera's integer reference
   (``QuantizedGraph.predict``) and ``connect("emu", config=preset.config)`` must equal its
   outputs bit for bit on every input;
2. a few of the same inputs run on the RTL (``connect("sim", config=preset.config)``): the
   outputs must be TFLite Micro's and every counter (cycles, compute, stall, MACs, link bytes)
   the emulator's after the same requests;
3. ``tessera profile``'s latency of one inference on every board preset (input already on the
   device, MLPerf Tiny's rule), beside the published MLPerf Tiny KWS latencies.

The inputs are first the MLPerf Tiny repository's own KWS samples (:func:`kws_samples`: the
reference submission's MFCC map and the MFCCs of a Speech Commands clip, with their source and
expected keyword), then deterministic int8 feature maps (:func:`kws_inputs`). Two recorded
samples are no test set: the part reports agreement, and the keyword of each sample, not accuracy.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

__all__ = ["KWS_MODEL", "KWS_SAMPLES", "PUBLISHED_KWS_LATENCY_MS", "INPUTS_LABEL", "kws_samples",
           "kws_inputs", "tflite_micro_outputs", "run_kws", "format_kws"]

#: The packaged MLPerf Tiny KWS model (Apache-2.0, ``LICENSE`` and ``README.md`` beside it).
KWS_MODEL = Path(str(resources.files("tessera").joinpath("data/mlperf_tiny/kws_ref_model.tflite")))

#: The MLPerf Tiny repository's KWS samples as int8 model inputs, with their labels and sources
#: (written by tests/make_mlperf_samples.py; a copy of ``tests/data/mlperf_tiny/samples.npz``'s
#: ``kws_*`` arrays).
KWS_SAMPLES = KWS_MODEL.with_name("kws_samples.npz")

#: Published MLPerf Tiny KWS latencies, ms (mlcommons tiny_results v0.7-v1.3, closed division).
PUBLISHED_KWS_LATENCY_MS = (
    ("STM32L4R5 (Cortex-M4, 120 MHz)", 43.0),
    ("STM32H7A3 (Cortex-M7, 280 MHz)", 11.3),
    ("Renesas RA8D1 (Cortex-M85, 480 MHz)", 3.5),
    ("GreenWaves GAP9 (MCU + NN accelerator)", 0.48),
    ("fpgaConvNet, Zedboard XC7Z020 (Vivado)", 0.32),
)

#: What the part runs, in order (the report's ``inputs`` key).
INPUTS_LABEL = ("first the MLPerf Tiny repository's KWS samples (each listed with its source and "
                "keyword), then deterministic int8 49x10 feature maps, not speech: all -128, all "
                "127, the input zero point, two checkerboards of -128/127, five maps within 3 of "
                "the zero point, then seeded uniform random maps")


def kws_samples():
    """Return the packaged real KWS samples: int8 inputs, expected keywords and sources.

    The expected keyword is ``None`` where the source names none (the reference submission's
    ``kws_input_data.cc``); the "marvin" clip is none of the model's ten keywords: "unknown".
    Each source is the path in the MLPerf Tiny repository at the commit of ``commit``.
    """
    import numpy as np
    with np.load(KWS_SAMPLES) as data:
        classes = [str(c) for c in data["kws_classes"]]
        expected = [classes[i] if i >= 0 else None for i in data["kws_labels"]]
        sources = [f"mlcommons/tiny@{str(data['commit'])[:12]}:{s}" for s in data["kws_sources"]]
        return data["kws_inputs"], expected, sources, classes


def kws_inputs(shape, zero_point, count, seed=0):
    """Return ``count`` deterministic int8 inputs of ``shape`` (see :data:`INPUTS_LABEL`).

    The first five are the extremes the requantization clamps on (all -128, all 127, the zero
    point, two checkerboards); five more sit within 3 of the zero point, where roundings tie
    most often; the rest are uniform in [-128, 127] from ``numpy.random.default_rng(seed)``.
    """
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(count,) + tuple(shape), dtype=np.int16)
    checker = np.indices(shape).sum(axis=0) % 2
    fixed = [np.full(shape, -128), np.full(shape, 127), np.full(shape, zero_point),
             np.where(checker, 127, -128), np.where(checker, -128, 127)]
    fixed += [rng.integers(-3, 4, size=shape) + zero_point for _ in range(5)]
    for i, sample in enumerate(fixed[:count]):
        x[i] = sample
    return np.clip(x, -128, 127).astype(np.int8)


def tflite_micro_outputs(path, x):
    """Return TFLite Micro's int8 outputs for every sample of ``x`` (one invoke each)."""
    import numpy as np
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm
    except ImportError as e:
        from tessera.install import MissingDependencyError, install_hint
        raise MissingDependencyError(
            f"The KWS part of the demo needs TFLite Micro's interpreter (tflite-micro) as its "
            f"oracle: {install_hint('tflite')}, or run tessera demo --model digits") from e
    interpreter = tflm.Interpreter.from_file(str(path))
    out = []
    for sample in x:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        out.append(interpreter.get_output(0)[0].copy())
    return np.stack(out)


def _run_samples(dev, model, x, label, clear_after_first=False):
    """Run ``x`` one sample at a time with a progress bar; return outputs and counters."""
    import numpy as np
    from .progress import Progress
    outs = []
    dev.clear_counters()
    with Progress(label, len(x)) as bar:
        for i, sample in enumerate(x):
            outs.append(dev.run(model, sample[None], raw=True)[0])
            if clear_after_first and i == 0:
                dev.clear_counters()    # the weights are resident now: count inferences only
            bar.advance()
    return np.stack(outs), dev.counters()


def _agreement(out, expected):
    import numpy as np
    return {"bit_identical": int((out == expected).all(axis=1).sum()),
            "outputs_identical": bool(np.array_equal(out, expected))}


def run_kws(*, board="icebreaker", inputs=100, rtl_inputs=2, simulator=None, rtl=True,
            log=print):
    """Run the KWS part and return its report (a dict; keys in docs/quickstart.md)."""
    import numpy as np

    import tessera
    from tessera.compiler.presets import CNN_PRESETS, get_preset
    from tessera.compiler.profile import profile_model

    preset = get_preset(board)
    config = preset.config
    model = tessera.load_model(KWS_MODEL, mode="tflite")
    real, keywords, sources, classes = kws_samples()
    real = real[:inputs]
    x = np.concatenate([real, kws_inputs(model.input_shape, model.input_zero_point,
                                         inputs - len(real))])
    log(f"KWS DS-CNN: TFLite Micro (the oracle) and Tessera's reference on {inputs} inputs ...")
    expected = tflite_micro_outputs(KWS_MODEL, x)
    report = {"model": f"MLPerf Tiny KWS DS-CNN ({KWS_MODEL.name})", "mode": "tflite",
              "inputs": INPUTS_LABEL, "input_count": inputs, "preset": preset.name,
              "clock_mhz": preset.clock_mhz, "config": config.to_dict(),
              "config_hash": config.hash_hex,
              "reference": _agreement(model.predict(x, raw=True), expected), "devices": {}}
    t0 = time.monotonic()
    with tessera.connect("emu", config=config) as dev:
        out, counters = _run_samples(dev, model, x, "emu", clear_after_first=inputs > 1)
    report["samples"] = [
        {"source": source, "expected": keyword,
         "tflite_micro": classes[int(expected[i].argmax())], "emu": classes[int(out[i].argmax())]}
        for i, (keyword, source) in enumerate(zip(keywords[:len(real)], sources))]
    counted = max(inputs - 1, 1)
    report["devices"]["emu"] = {
        "target": "emu", **_agreement(out, expected),
        "cycles_per_inference": counters["cycles"] / counted,
        "utilisation": counters["utilisation"], "wall_seconds": time.monotonic() - t0}
    if rtl and rtl_inputs:
        report["devices"]["rtl"] = _run_rtl(model, x[:rtl_inputs], expected[:rtl_inputs],
                                            preset, simulator, log)
    log("KWS DS-CNN: tessera profile on every board preset ...")
    report["profile"] = []
    for name, other in CNN_PRESETS.items():
        p = profile_model(model, name)
        report["profile"].append({
            "preset": name, "array": f"{other.config.rows}x{other.config.cols}",
            "clock_mhz": other.clock_mhz, "cycles": p["cycles"], "latency_ms": p["latency_ms"],
            "utilisation": p["utilisation"], "fits": p["fits"], "link_ms": p["link_ms"]})
    report["published_latency_ms"] = dict(PUBLISHED_KWS_LATENCY_MS)
    return report


def _run_rtl(model, x, expected, preset, simulator, log):
    """Run ``x`` on the RTL of ``preset`` and, from a fresh start, on the emulator."""
    import tessera
    target = f"sim:{simulator}" if simulator else "sim"
    log(f"KWS DS-CNN on the RTL of {preset.name} ({target}), {len(x)} inputs: the first run "
        f"compiles this configuration's simulator (minutes; cached afterwards), then each "
        f"inference simulates ~0.6 M cycles ...")
    t0 = time.monotonic()
    with tessera.connect(target, config=preset.config) as dev:
        out, counters = _run_samples(dev, model, x, "rtl")
    wall = time.monotonic() - t0
    with tessera.connect("emu", config=preset.config) as dev:
        _, emu_counters = _run_samples(dev, model, x, "emu (same requests)")
    return {"target": target, **_agreement(out, expected), "inputs": len(x),
            "counters": counters, "emulator_counters": emu_counters,
            "counters_equal_emulator": counters == emu_counters, "wall_seconds": wall}


def format_kws(report) -> str:
    """Return the KWS part's report as terminal tables."""
    n, c = report["input_count"], report["config"]
    lines = [f"Tessera demo — {report['model']}, mode 'tflite', {report['preset']} preset "
             f"({c['rows']}x{c['cols']} at {report['clock_mhz']:g} MHz, config "
             f"{report['config_hash']})",
             f"inputs: {n}, {report['inputs']}"]
    for s in report["samples"]:
        expected = "no keyword given" if s["expected"] is None else f"expected {s['expected']!r}"
        name = s["source"].split(":")[1].rsplit("/", 1)[-1]
        lines.append(f"  mlcommons/tiny {name}: {expected}; TFLite Micro {s['tflite_micro']!r}, "
                     f"emulator {s['emu']!r}")
    lines.append("")
    rows = [("int8 reference (NumPy)", f"{report['reference']['bit_identical']}/{n}", "", "",
             "", "")]
    for name, d in report["devices"].items():
        count = d.get("inputs", n)
        cycles = (f"{d['cycles_per_inference']:,.0f} each" if "cycles_per_inference" in d else
                  f"{d['counters']['cycles']:,} in all (weights + {count})")
        same = ("" if "counters_equal_emulator" not in d else
                "yes" if d["counters_equal_emulator"] else "NO")
        label = {"emu": "emulator", "rtl": f"RTL ({d['target']})"}[name]
        rows.append((label, f"{d['bit_identical']}/{count}", cycles, same,
                     f"{d['wall_seconds']:.1f} s", ""))
    head = ("vs TFLite Micro", "bit-identical", "cycles", "counters = emulator",
            "wall time", "")
    lines += _table(head, rows)
    lines += ["", "One inference, input already on the device (tessera profile):"]
    rows = [(p["preset"], p["array"], f"{p['clock_mhz']:g} MHz",
             "-" if p["cycles"] is None else f"{p['cycles']:,}",
             "-" if p["latency_ms"] is None else f"{p['latency_ms']:.2f} ms",
             "-" if p["utilisation"] is None else f"{p['utilisation']:.2f}",
             "yes" if p["fits"] else "no") for p in report["profile"]]
    lines += _table(("preset", "array", "clock", "cycles", "latency", "utilisation",
                     "resident"), rows)
    lines += ["", "Published MLPerf Tiny KWS latencies (tiny_results v0.7-v1.3):"]
    lines += [f"  {system:40} {ms:6g} ms" for system, ms in report["published_latency_ms"].items()]
    return "\n".join(lines)


def _table(head, rows):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)  # noqa: E731
                              for i, (v, w) in enumerate(zip(r, widths))).rstrip()
    return [fmt(head), "  ".join("-" * w for w in widths if w)] + [fmt(r) for r in rows]
