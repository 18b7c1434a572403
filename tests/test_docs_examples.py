"""Every Python example in the README and the quickstart runs as written."""

import pathlib
import re
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/quickstart.md"]


def _blocks(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page):
    blocks = _blocks(page)
    assert blocks, f"{page} has no Python example"
    for code in blocks:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec(compile(code, page, "exec"), {"__name__": "__docs__"})


def test_linear_regression_example(capsys):
    import runpy
    import sys
    sys.argv = ["linear_regression.py", "--device", "emu"]
    runpy.run_path(str(ROOT / "examples" / "linear_regression.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "identical to qmodel.predict: True" in out
    mse = dict(re.findall(r"MSE (float|accelerator)\s+([0-9.]+)", out))
    assert float(mse["float"]) < 0.02 and float(mse["accelerator"]) < 0.02
