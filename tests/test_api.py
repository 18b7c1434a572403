"""The public API: every name in each __all__ resolves, and the host library imports with
only NumPy (no Amaranth, cocotb, ONNX, torch or scikit-learn pulled in)."""

import importlib
import subprocess
import sys

import pytest

PUBLIC_MODULES = ["tessera", "tessera.spec", "tessera.spec.isa", "tessera.spec.protocol",
                  "tessera.spec.config", "tessera.spec.layout", "tessera.spec.timing"]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_names_resolve(name):
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__), "duplicate names in __all__"
    for attr in module.__all__:
        assert getattr(module, attr) is not None, f"{name}.{attr}"


def test_import_pulls_in_no_heavy_dependency():
    code = ("import sys, tessera; tessera.AcceleratorConfig();"
            "heavy = {'amaranth', 'cocotb', 'onnx', 'onnxruntime', 'torch', 'sklearn', 'serial'};"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
