"""The runnable example of docs/import.md runs and its bit-exactness assertions hold."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "import.md"


def test_import_doc_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "__doc_example__"})
    out = capsys.readouterr().out
    assert "matches ONNX Runtime CPU" in out
    assert "unsupported operator in node 'probs' (Softmax)" in out
    assert (tmp_path / "mlp_tessera.onnx").is_file()
