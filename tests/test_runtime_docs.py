"""Every Python example in docs/host-api.md runs as written, in order, in one namespace."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "host-api.md"


def test_host_api_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    namespace = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    assert "utilisation" in out and "BAD_FIELD" in out
