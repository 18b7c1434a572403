"""Reference CNN kernels (mode "tflite") against TFLite Micro's interpreter, same inputs, same run.

    .venv/bin/python bench/bench_cnn_reference.py [--batch 100] [--repeat 3] [--json]

Loads the MLPerf Tiny keyword-spotting (DS-CNN) and image-classification (ResNet-8) models with
``tessera.load_model(path, mode="tflite")``, runs ``predict(x, raw=True)`` on one batch of
``--batch`` int8 inputs (random, plus all -128 and all 127), and TFLite Micro's Python
interpreter (the ``tflite-micro`` wheel, its reference kernels) on the same inputs one at a
time, as it runs them. The outputs are compared bit for bit first (exit 1 on a difference);
then the best-of-``--repeat`` wall time of each is printed with the ratio TFLM / Tessera
(goal: > 1, Tessera faster), one thread each (NumPy's BLAS is limited to one thread).
"""

from __future__ import annotations

import os

# One thread for NumPy's BLAS as well: TFLite Micro runs on one core (set before NumPy loads).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import tessera  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "tests" / "data" / "mlperf_tiny"
#: name: (file, what it is)
CASES = {
    "kws": ("kws_ref_model.tflite", "keyword spotting, DS-CNN, 1x49x10x1"),
    "ic": ("pretrainedResnet_quant.tflite", "image classification, ResNet-8, 1x32x32x3"),
}


def _best(fn, repeat):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _inputs(shape, batch, rng):
    x = rng.integers(-128, 128, (batch,) + tuple(shape)).astype(np.int8)
    x[0], x[1] = -128, 127
    return x


def _tflm(path):
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path))

    def run(x):
        out = []
        for row in x:
            interpreter.set_input(row[None], 0)
            interpreter.invoke()
            out.append(interpreter.get_output(0).copy())
        return np.concatenate(out)
    return run


def bench_model(name, batch, repeat, rng):
    """Return the figures of one model: times, per-inference ms, ratio, equality."""
    file, what = CASES[name]
    path = MODELS / file
    model = tessera.load_model(str(path), mode="tflite")
    run_tflm = _tflm(path)
    x = _inputs(model.input_shape, batch, rng)
    t_ours, y_ours = _best(lambda: model.predict(x, raw=True), repeat)
    t_tflm, y_tflm = _best(lambda: run_tflm(x), repeat)
    equal = bool(np.array_equal(np.asarray(y_ours).reshape(y_tflm.shape), y_tflm))
    return {
        "model": file, "what": what, "batch": batch, "equal": equal,
        "tessera_s": t_ours, "tflm_s": t_tflm,
        "tessera_ms_per_inference": 1e3 * t_ours / batch,
        "tflm_ms_per_inference": 1e3 * t_tflm / batch,
        "speedup_vs_tflm": t_tflm / t_ours,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100, help="inputs per model (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best is kept")
    parser.add_argument("--models", default="kws,ic", help="comma-separated: kws, ic")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [bench_model(name, args.batch, args.repeat, rng)
            for name in args.models.split(",")]
    result = {"batch": args.batch, "repeat": args.repeat, "models": rows}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'model':32} {'Tessera ms/inf':>14} {'TFLM ms/inf':>12} {'TFLM/Tessera':>12}"
              "  bit-exact")
        for r in rows:
            print(f"{r['model']:32} {r['tessera_ms_per_inference']:14.2f} "
                  f"{r['tflm_ms_per_inference']:12.2f} {r['speedup_vs_tflm']:12.2f}"
                  f"  {'yes' if r['equal'] else 'NO'}")
        print(json.dumps(result))
    return 0 if all(r["equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
