"""Array utilisation per GEMM shape and array size, from the emulator's cycle model.

The cycle model is the RTL's (the counters agree exactly; ``bench/bench_rtl.py`` and the
``--check-rtl`` option of ``tessera explore`` check it), so these figures hold for the gateware
without hours of simulation. For each array size and GEMM shape ``M x K x N`` the compiled
program (setup frames loaded first) runs on ``tessera.connect("emu")``; the output is checked
bit for bit against the compiler's reference. Reported: utilisation over compute cycles
(``macs / (rows*cols*compute_cycles)``), end to end including loads and stores over the link
(``macs / (rows*cols*cycles)``) and the cycles.

    .venv/bin/python bench/bench_utilisation.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

#: Array shapes (rows, cols).
ARRAYS = ((2, 4), (4, 4), (8, 8), (16, 8))
#: GEMM shapes (M, K, N).
SHAPES = ((64, 64, 64), (256, 64, 10), (1, 256, 256), (128, 128, 128), (256, 256, 256))
QUICK_SHAPES = SHAPES[:3]


def _config(rows, cols):
    from tessera import AcceleratorConfig
    return AcceleratorConfig(rows=rows, cols=cols, act_depth=16384, weight_depth=16384,
                             param_depth=512, max_payload=4096)


def run_shape(config, m, k, n, seed=1):
    """Return the figures of one GEMM on the emulator of ``config``."""
    import tessera
    from tessera.compiler import compile_gemm
    from tessera.spec.protocol import Kind
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (k, n), dtype=np.int8)
    b = rng.integers(-1000, 1000, n, dtype=np.int32)
    compiled = compile_gemm(w, b, np.float32(1e-4).view(np.uint32), 0, config)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    start = time.perf_counter()
    with tessera.connect("emu", config=config) as dev:
        for frame in compiled.setup_frames:
            dev.link.request(Kind.EXEC, frame)
        dev.clear_counters()
        y = dev.execute(compiled.program(x))
        c = dev.counters()
    np.testing.assert_array_equal(y, compiled.reference(x))
    peak = config.rows * config.cols
    return {"array": f"{config.rows}x{config.cols}", "shape": f"{m}x{k}x{n}",
            "macs": int(c["macs"]), "cycles": int(c["cycles"]),
            "compute_cycles": int(c["compute_cycles"]),
            "utilisation_compute": c["macs"] / (peak * c["compute_cycles"]),
            "utilisation_end_to_end": c["macs"] / (peak * c["cycles"]),
            "weights_resident": compiled.weights_resident,
            "wall_s": round(time.perf_counter() - start, 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the three smallest shapes only")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    rows = [run_shape(_config(r, c), *shape) for r, c in ARRAYS
            for shape in (QUICK_SHAPES if args.quick else SHAPES)]
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
        return 0
    print(f"{'array':<7}{'M x K x N':<14}{'cycles':>10}{'util (compute)':>16}"
          f"{'util (end to end)':>19}")
    for r in rows:
        print(f"{r['array']:<7}{r['shape']:<14}{r['cycles']:>10}{r['utilisation_compute']:>16.3f}"
              f"{r['utilisation_end_to_end']:>19.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
