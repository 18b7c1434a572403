"""What a user meets around the RTL simulation: a missing simulator, the build cache, signals.

Each check runs the real command (``python -m tessera ...`` or ``tessera.connect``) in a child
process with a doctored environment: ``PATH`` without the simulator, ``TESSERA_CACHE_DIR`` on a
temporary directory, ``TMPDIR`` to see which temporary directories a run leaves.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import tessera


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A saved one-layer model and a float input batch for ``tessera run``."""
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(6, 3)).astype(np.float32)
    w, b = rng.normal(size=(3, 2)), np.zeros(2)
    tessera.quantize([(w, b, None)], calibration=x).save(folder / "model.npz")
    np.save(folder / "x.npy", x)
    return folder / "model.npz", folder / "x.npy"


def _tessera(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "tessera", *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd, timeout=300)


def test_missing_icarus_is_one_line_saying_how_to_install_it(model_files, tmp_path):
    model, x = model_files
    empty = tmp_path / "bin"
    empty.mkdir()
    out = _tessera("run", model, "--input", x, "--device", "sim:icarus", env={"PATH": str(empty)})
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        "tessera run: error: Simulator 'icarus' is not installed (iverilog, vvp not found on "
        "PATH); install it with `apt-get install iverilog` (or your system's package), or use "
        "the other simulator ('sim:verilator')"]
