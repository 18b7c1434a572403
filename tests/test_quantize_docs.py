"""The example in docs/quantization.md runs as written."""

import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "quantization.md"


def test_documented_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOC), "exec"), {})
    out = capsys.readouterr().out
    float_acc = float(re.search(r"float accuracy (\S+)", out).group(1))
    int8_acc = float(re.search(r"int8  accuracy (\S+)", out).group(1))
    assert abs(float_acc - int8_acc) <= 0.01
    assert (tmp_path / "digits.tq").exists()
