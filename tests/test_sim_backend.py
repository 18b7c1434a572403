"""``tessera.connect("sim")`` end to end: the real host driver against the RTL in a simulator.

The same digits MLP (scikit-learn, a small subset of the test split) runs through the emulator
and through the RTL; outputs must be identical, also with injected link faults (corrupted and
dropped bytes on the socket). A killed or broken simulator must surface as a ``LinkError`` that
carries its log tail, and closing a device must leave no simulator process behind.
"""

import os
import signal
import warnings

import numpy as np
import pytest

from sim_helpers import CONFIGS, build, gone, require, simulators

import tessera
from tessera.runtime import FaultyTransport, LinkError
from tessera.sim import backend, runner

CONFIG = CONFIGS["8x8"]
EXACT = ("compute_cycles", "macs", "stall_cycles", "rx_bytes", "tx_bytes")


@pytest.fixture(scope="module")
def digits():
    """A 64-32-10 MLP on digits, quantized (onnx mode), and 40 quantized test images."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0)
        clf.fit(x[:1200], y[:1200])
    qmodel = tessera.quantize(clf, calibration=x[:1200])
    return qmodel, qmodel.quantize_input(x[1200:1240])


def _run(dev, qmodel, x_q):
    dev.clear_counters()
    out = np.concatenate([dev.run(qmodel, x_q[i:i + 13], raw=True) for i in range(0, 40, 13)])
    return out, dev.counters()


@pytest.mark.slow
@pytest.mark.parametrize("simulator", simulators())
def test_digits_identical_on_emulator_and_rtl(simulator, digits):
    require(simulator)
    qmodel, x_q = digits
    build("8x8", simulator)
    with tessera.connect("emu", config=CONFIG) as emu:
        expected, emu_counters = _run(emu, qmodel, x_q)
    np.testing.assert_array_equal(expected, qmodel.predict(x_q, raw=True))
    with tessera.connect(f"sim:{simulator}", config=CONFIG) as dev:
        assert dev.id["config_hash"] == CONFIG.hash
        got, rtl_counters = _run(dev, qmodel, x_q)
        process = dev.transport.simulator
    np.testing.assert_array_equal(got, expected)
    # The emulator's cycle model: exact for these counters, `cycles` within 5 %.
    assert {n: rtl_counters[n] for n in EXACT} == {n: emu_counters[n] for n in EXACT}
    ratio = rtl_counters["cycles"] / emu_counters["cycles"]
    assert 0.95 <= ratio <= 1.05, (rtl_counters["cycles"], emu_counters["cycles"])
    # Clean shutdown: the simulator exited by itself, its process group is gone, logs removed.
    assert process.process.returncode == 0
    assert gone(process.pid)
    assert not process.work_dir.exists()


@pytest.mark.slow
def test_link_faults_recover_without_wrong_results(digits):
    """Corrupted and dropped bytes both ways: retries and EXEC dedup give the exact output."""
    qmodel, x_q = digits
    build("8x8", "verilator")
    faulty = []

    def wrap(transport):
        faulty.append(FaultyTransport(transport, corrupt=0.0005, drop=0.0003, seed=3))
        return faulty[-1]

    with tessera.connect("sim:verilator", config=CONFIG, timeout_s=3.0, retries=10,
                         transport_wrapper=wrap) as dev:
        got = dev.run(qmodel, x_q[:16], raw=True)
        stats = dict(dev.link.stats)
    np.testing.assert_array_equal(got, qmodel.predict(x_q[:16], raw=True))
    injected = faulty[0].faults
    assert injected["corrupted"] > 0 and injected["dropped"] > 0, injected
    assert stats["resends"] > 0, stats


@pytest.mark.slow
def test_killed_simulator_raises_with_log_tail(digits):
    qmodel, x_q = digits
    build("8x8", "verilator")
    dev = tessera.connect("sim:verilator", config=CONFIG)
    try:
        process = dev.transport.simulator
        os.killpg(process.pid, signal.SIGKILL)
        with pytest.raises(LinkError) as info:
            dev.run(qmodel, x_q[:2], raw=True)
        message = str(info.value)
        assert message.startswith("RTL simulation failed: ")
        assert "Simulator log" in message and str(process.work_dir) in message
    finally:
        dev.close()
    assert gone(process.pid)
    assert process.work_dir.exists(), "the logs of a failed simulator are kept"


def test_broken_build_fails_to_start_with_log_tail(tmp_path):
    """A simulator that cannot start raises at connect time, with what it printed."""
    broken = runner.SimBuild("verilator", runner.TOPLEVEL, tmp_path / "no-build",
                             tmp_path / "no-build" / "tessera_top.v")
    with pytest.raises(LinkError) as info:
        backend.launch(broken, "bridge", tmp_path)
    message = str(info.value)
    assert message.startswith("The verilator simulation exited. Simulator log")
    assert "[serve.log]" in message


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match="Unknown option.* for the simulation backend: colour; "
                                        "valid options are progress, work_dir, waves and "
                                        "transport_wrapper"):
        backend.connect_sim(CONFIG, "verilator", colour="red")
