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
    # Without builds the front is accuracy vs latency in cycles: 2x4 needs fewer for one row.
    assert "Pareto front (accuracy ↑, latency in cycles ↓): ulx3s-25f 2x4 int8." in markdown
    assert len(list((tmp_path / "explore-py" / "cache" / "points").glob("*.json"))) == 2


def test_cli_help_lists_explore(capsys):
    with pytest.raises(SystemExit) as info:
        main(["explore", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--board", "--rows", "--cols", "--bits", "--data", "--workers",
                   "--scheduler", "--check-rtl", "--json"):
        assert option in out
