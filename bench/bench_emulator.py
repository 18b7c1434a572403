"""Benchmark: the digits test split (360 images, 64-32-10 MLP) through ``connect("emu").run``.

Prints the wall-clock seconds of the run (first call, with compilation and setup frames, and
warm calls) and the device's performance counters; ``--json`` prints the same as JSON.

    python bench/bench_emulator.py [--mode onnx|tflite] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np


def _digits_model(mode, seed=0):
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    import tessera
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed,
                                                        stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((32,), max_iter=300, random_state=seed).fit(x_train, y_train)
    return tessera.quantize(clf, x_train, mode=mode), x_test, y_test


def run_bench(mode="onnx", repeat=5, config=None) -> dict:
    """Return the benchmark figures as a dict."""
    import tessera
    qmodel, x_test, y_test = _digits_model(mode)
    reference = qmodel.predict(x_test)
    with tessera.connect("emu", config=config) as dev:
        dev.clear_counters()
        start = time.perf_counter()
        y = dev.run(qmodel, x_test)
        first_s = time.perf_counter() - start
        counters = dev.counters()
        warm = []
        for _ in range(repeat):
            start = time.perf_counter()
            dev.run(qmodel, x_test)
            warm.append(time.perf_counter() - start)
        cfg = dev.config
    return {
        "mode": mode, "images": int(len(x_test)), "config": f"{cfg.rows}x{cfg.cols}",
        "first_run_s": first_s, "warm_run_s_best": min(warm) if warm else None,
        "warm_run_s_median": float(np.median(warm)) if warm else None,
        "images_per_s": len(x_test) / min(warm) if warm else None,
        "bit_exact": bool(np.array_equal(y, reference)),
        "accuracy": float(np.mean(np.argmax(y, axis=1) == y_test)),
        "counters": counters,
        "cycles_per_image": counters["cycles"] / len(x_test),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["onnx", "tflite"], default="onnx")
    parser.add_argument("--repeat", type=int, default=5, help="warm runs to time (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    report = run_bench(args.mode, args.repeat)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        c = report["counters"]
        print(f"digits test split, {report['images']} images, 64-32-10 MLP, mode {args.mode}, "
              f"{report['config']} array on the emulator")
        print(f"  first run (compile + setup) {report['first_run_s']:.3f} s; warm run best "
              f"{report['warm_run_s_best']:.3f} s ({report['images_per_s']:.0f} images/s)")
        print(f"  bit-exact vs predict: {report['bit_exact']}; accuracy "
              f"{report['accuracy']:.4f}")
        print(f"  cycles {c['cycles']} ({report['cycles_per_image']:.0f}/image), compute "
              f"{c['compute_cycles']}, MACs {c['macs']}, stalls {c['stall_cycles']}, "
              f"utilisation {c['utilisation']:.1%}, link {c['rx_bytes']} B in / "
              f"{c['tx_bytes']} B out")
    return 0 if report["bit_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
