"""tessera.connect: target forms, clear errors, and a dependency-free public API."""

import importlib
import subprocess
import sys

import numpy as np
import pytest

import tessera
from tessera.runtime import LinkError, TARGET_FORMS, connect
from tessera.spec import AcceleratorConfig

RUNTIME_MODULES = ["tessera.runtime", "tessera.runtime.errors", "tessera.runtime.transport",
                   "tessera.runtime.link", "tessera.runtime.emulator", "tessera.runtime.machine",
                   "tessera.runtime.hazards", "tessera.runtime.cycles", "tessera.runtime.device",
                   "tessera.runtime.serial", "tessera.cli", "tessera.cli.info", "tessera.cli.run"]


@pytest.mark.parametrize("name", RUNTIME_MODULES)
def test_all_names_resolve(name):
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__)
    for attr in module.__all__:
        assert getattr(module, attr) is not None, f"{name}.{attr}"


def test_emulator_runs_with_only_numpy():
    # Connecting to the emulator and running a hand-made program imports nothing heavy.
    code = ("import sys, tessera\n"
            "from tessera.spec import isa\n"
            "from tessera.spec.protocol import Kind\n"
            "dev = tessera.connect('emu')\n"
            "dev.link.request(Kind.EXEC, isa.Sync().encode()); dev.counters()\n"
            "heavy = {'amaranth', 'cocotb', 'onnx', 'onnxruntime', 'torch', 'sklearn', 'serial'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_connect_is_the_top_level_api():
    assert tessera.connect is connect
    with tessera.connect() as dev:
        assert dev.config == AcceleratorConfig()
        assert dev.id["config_hash"] == AcceleratorConfig().hash


@pytest.mark.parametrize("target", ["emulator", "sim:modelsim", "tcp://localhost:1"])
def test_unknown_targets_list_the_valid_forms(target):
    with pytest.raises(ValueError) as info:
        connect(target)
    message = str(info.value)
    if target.startswith("sim:"):
        assert "Unknown simulator 'modelsim'" in message
        assert "'sim', 'sim:verilator' or 'sim:icarus'" in message
    else:
        assert message.startswith(f"Unknown target {target!r}; valid targets are ")
        for form in TARGET_FORMS:
            assert repr(form) in message


def test_bad_arguments():
    with pytest.raises(TypeError, match="target must be a string such as 'emu', not int"):
        connect(3)
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig, not dict"):
        connect("emu", config={"rows": 4})
    with pytest.raises(TypeError, match="Unknown option.s. for the emulator: speed"):
        connect("emu", speed=3)
    with pytest.raises(TypeError, match="Unknown option.s. for a serial target: rtscts"):
        connect("serial:///dev/ttyUSB0", rtscts=True)


def test_missing_sim_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tessera.sim.backend", None)
    with pytest.raises(LinkError, match=r"no RTL simulation backend \(tessera.sim.backend\)"):
        connect("sim:icarus")


def test_emu_timeout_and_retries_reach_the_link():
    with connect("emu", timeout_s=0.25, retries=7) as dev:
        assert (dev.link.timeout_s, dev.link.retries) == (0.25, 7)


def test_each_emu_connection_is_a_fresh_device():
    from tessera.spec import isa
    from tessera.spec.protocol import Kind
    with connect("emu") as a, connect("emu") as b:
        a.link.request(Kind.EXEC, isa.Load(isa.Buffer.ACT, 0, 1, bytes(range(8))).encode())
        np.testing.assert_array_equal(a.read(0, 1)[0], np.arange(8))
        np.testing.assert_array_equal(b.read(0, 1)[0], np.zeros(8))
