"""What a user meets around the RTL simulation: a missing simulator, the build cache, signals,
the steps a compilation reports; and the public names of ``tessera.sim``.

The user-facing checks run the real command (``python -m tessera ...`` or ``tessera.connect``)
in a child process with a doctored environment: ``PATH`` without the simulator,
``TESSERA_CACHE_DIR`` on a temporary directory, ``TMPDIR`` to see which temporary directories a
run leaves.
"""

import importlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from sim_helpers import CONFIGS, build, gone, simulators

import tessera
from tessera.sim import runner


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


def _fill(root):
    """Fake cache contents: two builds of 3000 + 1000 bytes, runtime objects, a foreign file."""
    files = {"sim/verilator-abc-123/Vtop": 3000, "sim/icarus-abc-456/sim.vvp": 1000,
             "verilator-runtime/789/verilated.o": 500}
    for relative, size in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(bytes(size))
    (root / "sim" / "verilator-abc.lock").write_bytes(b"")
    (root / "notes.txt").write_text("not Tessera's")


def test_info_shows_the_cache_and_clear_cache_empties_it(tmp_path):
    root = tmp_path / "cache"
    _fill(root)
    env = {"TESSERA_CACHE_DIR": str(root)}
    info = json.loads(_tessera("info", "--json", env=env).stdout)
    assert info["cache"] == {"path": str(root), "bytes": 4500, "builds": 2}
    text = _tessera("info", env=env).stdout
    assert text.splitlines()[-1] == (f"simulation cache: 0.0 MB in 2 builds at {root} "
                                     f"(tessera info --clear-cache removes them)")
    out = _tessera("info", "--clear-cache", env=env)
    assert out.returncode == 0
    assert out.stdout == f"removed 0.0 MB of simulation builds from {root}\n"
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    assert json.loads(_tessera("info", "--json", env=env).stdout)["cache"]["bytes"] == 0
    _fill(root)
    cleared = json.loads(_tessera("info", "--clear-cache", "--json", env=env).stdout)
    assert cleared == {"cleared_bytes": 4500, "path": str(root)}


#: A host program that runs a model on the RTL over and over until it is terminated. It starts
#: with Python's own SIGINT handler: a process started in the background by a non-interactive
#: shell (``make test &``, nohup) inherits SIGINT ignored, and would never see the signal.
_ENDLESS_RUN = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
import sys
import numpy as np
import tessera
from tessera.spec import AcceleratorConfig
qmodel = tessera.QuantizedModel.load(sys.argv[1])
x = np.load(sys.argv[2])
with tessera.connect("sim:" + sys.argv[3], config=AcceleratorConfig.load(sys.argv[4])) as dev:
    print(dev.transport.simulator.pid, dev.transport.simulator.work_dir, flush=True)
    while True:
        dev.run(qmodel, x)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_terminated_host_leaves_no_temporary_directory(signum, model_files, tmp_path):
    """SIGTERM (like SIGINT) mid-run: the simulator is gone and its temporary directory too."""
    simulator = simulators()[0]
    build("2x4", simulator)
    CONFIGS["2x4"].save(tmp_path / "config.json")
    temp = tmp_path / "tmp"
    temp.mkdir()
    with subprocess.Popen(
            [sys.executable, "-c", _ENDLESS_RUN, *map(str, model_files), simulator,
             tmp_path / "config.json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "TMPDIR": str(temp)}) as host:
        try:
            pid, work_dir = host.stdout.readline().split()
            assert os.path.dirname(work_dir) == str(temp) and os.path.isdir(work_dir)
            host.send_signal(signum)
            host.wait(timeout=60)
        finally:
            host.kill()
        errors = host.stderr.read()
    assert host.returncode == -signum, errors
    assert gone(int(pid)), "the simulator outlived its host"
    assert os.listdir(temp) == [], errors[-2000:]


#: The step lines of a compilation (after the first, which names the build directory).
_STEPS = {"verilator": ["Verilator: Verilog to C++", "g++: C++ to the simulation executable"],
          "icarus": ["iverilog: Verilog to the simulation image"]}


@pytest.mark.parametrize("simulator", simulators())
def test_compilation_reports_each_step(simulator, tmp_path):
    source = tmp_path / "counter.v"
    source.write_text("module counter(input clk, output reg [3:0] q);\n"
                      "    always @(posedge clk) q <= q + 1;\nendmodule\n")
    lines = []
    runner.compile_sources([source], "counter", simulator, tmp_path / "build",
                           progress=lines.append)
    assert lines[0] == (f"compiling counter with {simulator.capitalize()} into "
                        f"{tmp_path / 'build'}")
    assert [line.split(",")[0] for line in lines[1:]] == _STEPS[simulator]
    assert not list((tmp_path / "build").glob("*.gch"))


@pytest.mark.parametrize("name", ["runner", "backend", "cache", "standalone", "waves",
                                  "sessions", "uart_loop", "uart_top", "gates"])
def test_sim_all_names_resolve(name):
    module = importlib.import_module(f"tessera.sim.{name}")
    assert len(set(module.__all__)) == len(module.__all__), "duplicate names in __all__"
    for attr in module.__all__:
        assert getattr(module, attr) is not None, f"{name}.{attr}"
