"""Compile-time benchmark: quantize + compile a ~1M-parameter MLP, and build its programs.

Prints a table; ``--json`` prints the figures as JSON instead. The target is quantize + compile
under 2 s (``compile_model`` is the compiler's part; the per-shape schedule is built on the
first ``program()`` of a batch shape and cached).

    .venv/bin/python bench/bench_compile.py [--json] [--rows 8 --cols 8]
"""

import argparse
import json
import time

import numpy as np

import tessera
from tessera.compiler import compile_gemm, compile_model


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench_mlp(config, sizes, m_cal, batch):
    rng = np.random.default_rng(0)
    layers = [(rng.normal(0, 1 / np.sqrt(k), (k, n)), rng.normal(0, 0.1, n), act)
              for k, n, act in zip(sizes, sizes[1:], ["relu"] * (len(sizes) - 2) + ["none"])]
    x = rng.normal(0, 1, (m_cal, sizes[0]))
    qmodel, t_quant = _timed(lambda: tessera.quantize(layers, calibration=x, mode="onnx"))
    compiled, t_compile = _timed(lambda: compile_model(qmodel, config))
    x_q = qmodel.quantize_input(x[:batch])
    program, t_first = _timed(lambda: compiled.program(x_q))
    _, t_again = _timed(lambda: compiled.program(x_q))
    params = sum(k * n + n for k, n in zip(sizes, sizes[1:]))
    return {
        "model": "x".join(map(str, sizes)), "parameters": params,
        "quantize_s": t_quant, "compile_s": t_compile, "quantize_plus_compile_s":
        t_quant + t_compile, "first_program_s": t_first, "cached_program_s": t_again,
        "batch": batch, "frames": len(program.frames), "instructions": program.n_instructions,
        "request_bytes": program.request_bytes, "response_bytes": program.response_bytes,
        "weights_resident": compiled.weights_resident, "rows_per_chunk": compiled.rows_per_chunk,
        "bytes_per_inference": compiled.bytes_per_inference,
    }


def bench_gemm(config, size):
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (size, size), dtype=np.int8)
    b = rng.integers(-1000, 1000, size, dtype=np.int32)
    compiled, t_compile = _timed(
        lambda: compile_gemm(w, b, np.float32(1e-4).view(np.uint32), 0, config))
    x_q = rng.integers(-128, 128, (size, size), dtype=np.int8)
    program, t_program = _timed(lambda: compiled.program(x_q))
    return {"model": f"gemm {size}^3", "compile_s": t_compile, "first_program_s": t_program,
            "frames": len(program.frames), "instructions": program.n_instructions,
            "request_bytes": program.request_bytes}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    args = parser.parse_args(argv)
    config = tessera.AcceleratorConfig(rows=args.rows, cols=args.cols)
    results = [bench_mlp(config, [784, 1024, 256, 10], m_cal=256, batch=64),
               bench_gemm(config, 256)]
    if args.json:
        print(json.dumps({"config": config.to_dict(), "results": results}, indent=2))
        return 0
    print(f"Compile benchmark, {args.rows}x{args.cols} array (config {config.hash_hex})")
    for r in results:
        print(f"\n{r['model']}")
        for key, value in r.items():
            if key == "model":
                continue
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"  {key:<26}{shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
