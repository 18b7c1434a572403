"""The Python example of docs/explore.md runs as written (emulator only)."""

import re
from pathlib import Path

import pytest

from tessera.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "explore.md"


def test_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    example = next(b for b in blocks if "run_sweep" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(DOC), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["ulx3s-25f", "2x4"], ["ulx3s-25f", "4x4"]]
    markdown = (tmp_path / "explore-py" / "explore.md").read_text()
    # Without builds the front is accuracy vs latency in µs at the target clock vs the array's
    # MACs: 2x4 needs fewer cycles for one row, and fewer multipliers.
    assert "Pareto front (accuracy ↑, latency ↓, MACs per cycle ↓): ulx3s-25f 2x4 int8." \
        in markdown
    assert len(list((tmp_path / "explore-py" / "cache" / "points").glob("*.json"))) == 2


def test_cli_help_lists_explore(capsys):
    with pytest.raises(SystemExit) as info:
        main(["explore", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--board", "--rows", "--cols", "--bits", "--data", "--workers",
                   "--scheduler", "--check-rtl", "--json"):
        assert option in out


def test_saved_sweep_is_real_and_is_what_the_docs_show():
    """The sweep quoted in docs/explore.md: 3 shapes x 2 widths x 2 boards, all from builds."""
    import json

    from tessera.explore.report import table_rows
    saved = DOC.parent.parent / "bench" / "results" / "explore-digits"
    points = json.loads((saved / "explore.json").read_text())["points"]
    shapes = {(r["point"]["rows"], r["point"]["cols"]) for r in points}
    assert len(shapes) >= 3
    assert {r["point"]["bits"] for r in points} == {4, 8}
    assert {r["point"]["board"] for r in points} == {"icebreaker", "orangecrab-25f"}
    assert len(points) == len(shapes) * 2 * 2
    for r in points:
        assert r["status"] == "ok" and r["outputs_identical"], r["label"]
        assert r["lut4"] > 0 and r["dsp"] > 0 and r["fmax_mhz"] > 0
        assert r["latency_us"] == pytest.approx(r["latency_cycles"] / r["fmax_mhz"])
    checks = [r["rtl_check"] for r in points if r.get("rtl_check")]
    assert len(checks) == 2 and all(c["ok"] and c["outputs_identical"] for c in checks)
    # Every row of the table is in the docs as the sweep printed it.
    doc = DOC.read_text()
    head, rows = table_rows(points)
    for row in rows:
        assert re.search(r"\s+".join(re.escape(cell) for cell in row if cell), doc), row
    for name in ("accuracy_vs_latency.png", "accuracy_vs_luts.png", "latency_vs_luts.png"):
        assert (saved / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
