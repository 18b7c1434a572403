"""``make bench`` plumbing: a real benchmark's JSON rendered into docs/performance.md."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import performance_doc  # noqa: E402
import run_all  # noqa: E402


def test_utilisation_bench_renders_into_the_page():
    proc = subprocess.run([sys.executable, str(BENCH / "bench_utilisation.py"), "--quick",
                           "--json"], capture_output=True, text=True, check=True)
    data = run_all._last_json(proc.stdout)
    results = {"benches": {
        "utilisation": {"ok": True, "seconds": 2.0, "quick": True, "date": "today", "data": data},
        "rtl": {"ok": False, "seconds": 1.0, "error": "exit status 1: boom\nlast words",
                "data": None},
    }}
    page = performance_doc.render(results)
    for row in data["rows"]:
        assert (f"| {row['array']} | {row['shape'].replace('x', '×')} | {row['cycles']:,} | "
                f"{row['utilisation_compute']:.3f} |") in page
    assert "*From `bench/bench_utilisation.py` with `--quick`, today, 2.0 s.*" in page
    assert "*Not run (`bench/bench_accuracy.py`).*" in page
    assert "- `bench/bench_rtl.py`: exit status 1: boom (last line: `last words`)" in page
    # 8x8 on a 64x64x64 GEMM: 64 rows of K=64 per output tile, compute-bound.
    row = next(r for r in data["rows"] if r["array"] == "8x8" and r["shape"] == "64x64x64")
    assert row["macs"] == 64 ** 3 and 0.9 < row["utilisation_compute"] <= 1


def test_last_json_takes_the_last_json_line():
    assert run_all._last_json('{"a": 1}') == {"a": 1}
    assert run_all._last_json('text\n{"b": 2}\n') == {"b": 2}
    with pytest.raises(ValueError, match="^no JSON in its output$"):
        run_all._last_json("Traceback ...\nError")
