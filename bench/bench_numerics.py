"""Benchmark tessera.numerics.quantized_linear against ONNX Runtime QGemm on the same machine.

    .venv/bin/python bench/bench_numerics.py [--size 1024] [--repeat 5] [--json]

Prints the best-of-N wall time of our reference (mode "onnx" and "tflite"), of its two stages
(exact integer GEMM, requantization) and of ORT's ``com.microsoft.QGemm`` (int32 bias,
per-channel scales, one intra-op thread each and also ORT's default threading), and the ratio
ours/ORT (target <= 2.0). The outputs are checked bit for bit before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from oracles.onnx_models import qgemm_session  # noqa: E402
from tessera import numerics as tn  # noqa: E402


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="M = K = N (default 1024)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs, best is kept")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    n = args.size
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (n, n), dtype=np.int8)
    w = rng.integers(-127, 128, (n, n), dtype=np.int8)
    b = rng.integers(-50000, 50000, n, dtype=np.int32)
    quant = dict(x_scale=np.float32(0.02), x_zero_point=-3,
                 w_scale=rng.uniform(1e-3, 4e-3, n).astype(np.float32),
                 y_scale=np.float32(4.0), y_zero_point=5)

    sessions = {t: qgemm_session(w, b, threads=t, **quant) for t in (1, 0)}
    reference = sessions[1].run(None, {"x": x})[0]
    np.testing.assert_array_equal(tn.quantized_linear(x, w, b, **quant), reference)

    acc = tn.linear_accumulators(x, w, b, quant["x_zero_point"])
    mult, shift = tn.requant_multipliers(quant["x_scale"], quant["w_scale"], quant["y_scale"],
                                         "onnx")
    results = {
        "size": n,
        "ours_onnx_s": _best(lambda: tn.quantized_linear(x, w, b, **quant), args.repeat),
        "ours_tflite_s": _best(lambda: tn.quantized_linear(x, w, b, mode="tflite", **quant),
                               args.repeat),
        "ours_integer_matmul_s": _best(lambda: tn.integer_matmul(x, w), args.repeat),
        "ours_postprocess_onnx_s": _best(
            lambda: tn.postprocess(acc, mult, shift, mode="onnx", zero_point=5, lo=-128,
                                   hi=127), args.repeat),
        "ort_qgemm_1thread_s": _best(lambda: sessions[1].run(None, {"x": x}), args.repeat),
        "ort_qgemm_default_threads_s": _best(lambda: sessions[0].run(None, {"x": x}),
                                             args.repeat),
    }
    results["ratio_onnx_vs_ort_1thread"] = results["ours_onnx_s"] / results["ort_qgemm_1thread_s"]
    results["ratio_onnx_vs_ort_default"] = (results["ours_onnx_s"]
                                            / results["ort_qgemm_default_threads_s"])
    try:
        from threadpoolctl import threadpool_info
        results["blas"] = [{k: i.get(k) for k in ("internal_api", "num_threads", "architecture")}
                           for i in threadpool_info()]
    except ImportError:
        results["blas"] = None
    results["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"quantized_linear {n}x{n}x{n} (int32 bias, per-channel w_scale), best of {args.repeat}")
    for key, value in results.items():
        if key.endswith("_s"):
            print(f"  {key:<32} {value * 1e3:9.2f} ms")
    print(f"  {'ratio ours/ORT (1 thread)':<32} {results['ratio_onnx_vs_ort_1thread']:9.2f}")
    print(f"  {'ratio ours/ORT (default threads)':<32} {results['ratio_onnx_vs_ort_default']:9.2f}")
    print(f"  BLAS: {results['blas']}  OPENBLAS_CORETYPE={results['OPENBLAS_CORETYPE']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
