"""Time ``tessera.quantize`` (and ``tessera.compile_model`` when available) on a ~1M-parameter MLP.

Usage: ``python bench/bench_quantize.py [--rows 512] [--repeat 3] [--json]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import tessera

SIZES = (1024, 640, 512, 256, 10)


def _model(seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, n) in enumerate(zip(SIZES, SIZES[1:])):
        act = "relu" if i < len(SIZES) - 2 else None
        layers.append((rng.normal(size=(k, n)) / np.sqrt(k), rng.normal(size=n) * 0.1, act))
    return layers


def _best(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512, help="calibration rows (default 512)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    layers = _model()
    params = sum(w.size + b.size for w, b, _ in layers)
    x = np.random.default_rng(1).normal(size=(args.rows, SIZES[0]))
    figures = {"sizes": list(SIZES), "parameters": int(params), "calibration_rows": args.rows}
    for per_channel in (True, False):
        for method in ("minmax", "percentile"):
            seconds, qmodel = _best(lambda: tessera.quantize(
                layers, calibration=x, per_channel=per_channel, calibration_method=method),
                args.repeat)
            key = f"quantize_{'per_channel' if per_channel else 'per_tensor'}_{method}_s"
            figures[key] = round(seconds, 4)
    qmodel = tessera.quantize(layers, calibration=x)
    figures["predict_s"] = round(_best(lambda: qmodel.predict(x), args.repeat)[0], 4)
    try:
        compile_model = tessera.compile_model
    except (AttributeError, ImportError) as exc:
        figures["compile_s"] = None
        figures["compile_unavailable"] = str(exc)
    else:
        config = tessera.AcceleratorConfig()
        seconds, _ = _best(lambda: compile_model(qmodel, config), args.repeat)
        figures["compile_s"] = round(seconds, 4)
        figures["quantize_plus_compile_s"] = round(
            figures["quantize_per_channel_minmax_s"] + seconds, 4)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"MLP {'-'.join(map(str, SIZES))}: {params} parameters, "
              f"{args.rows} calibration rows (best of {args.repeat})")
        for key, value in figures.items():
            if key.endswith("_s"):
                print(f"  {key[:-2]:<36} {'n/a' if value is None else f'{value * 1e3:9.1f} ms'}")
        if "compile_unavailable" in figures:
            print(f"  (compile not measured: {figures['compile_unavailable']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
