"""A Device under concurrent and raw use, empty batches, bad read() ranges, an echoing port."""

import re
import threading

import numpy as np
import pytest

import tessera
from tessera.compiler import compile_model
from tessera.runtime import (Device, DeviceError, Emulator, EmulatorTransport, HostLink, LinkError,
                             Transport, connect)
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import Buffer
from tessera.spec.protocol import READ_LAYOUT, Kind


def _model(seed, sizes, m=24):
    rng = np.random.default_rng(seed)
    layers = [(rng.normal(size=(k, n)) / np.sqrt(k), rng.normal(scale=0.3, size=n), "relu")
              for k, n in zip(sizes, sizes[1:])]
    x = rng.normal(size=(m, sizes[0])).astype(np.float32)
    return tessera.quantize(layers, calibration=x), x


def _executed(dev):
    return dev.transport.emulator.stats["executed"]


def test_threads_sharing_a_device_each_get_correct_results():
    # Two models with the same input width but different weights: a run that interleaves with
    # another thread's setup or program computes with the wrong weights or inputs.
    models = [_model(1, [20, 16, 6]), _model(2, [20, 12, 6])]
    expected = [qmodel.predict(x) for qmodel, x in models]
    wrong, failures = [], []
    with connect("emu") as dev:
        def worker(index):
            try:
                for run in range(20):
                    which = (index + run) % 2
                    qmodel, x = models[which]
                    if not np.array_equal(dev.run(qmodel, x), expected[which]):
                        wrong.append((index, run))
            except Exception as exc:   # reported below, with the thread's results
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert (failures, wrong) == ([], [])
        for (qmodel, x), y in zip(models, expected):   # and the device is still in order
            np.testing.assert_array_equal(dev.run(qmodel, x), y)


def test_threads_mixing_runs_reads_counters_and_raw_requests():
    qmodel, x = _model(3, [16, 8, 4])
    expected = qmodel.predict(x)
    block = np.arange(-16, 16, dtype=np.int8).reshape(4, 8)
    failures = []

    def guard(body):
        def run():
            try:
                body()
            except Exception as exc:
                failures.append(exc)
        return run

    with connect("emu") as dev:
        def runs():
            for _ in range(30):
                np.testing.assert_array_equal(dev.run(qmodel, x), expected)

        def raw():   # overwrites weights and inputs the other thread's model uses
            for _ in range(30):
                dev.link.request(Kind.EXEC, isa.Load(Buffer.WGT, 0, 4, bytes(32)).encode())
                dev.counters()

        threads = [threading.Thread(target=guard(f)) for f in (runs, raw, runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_a_raw_exec_makes_the_next_run_reload_the_model():
    qmodel, x = _model(4, [16, 8, 4])
    with connect("emu") as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))
        # The reproduction: zero the first weight entries behind the Device's back.
        dev.link.request(Kind.EXEC, isa.Load(Buffer.WGT, 0, 4, bytes(32)).encode())
        np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))


def test_read_only_raw_requests_keep_the_model_resident():
    qmodel, x = _model(5, [16, 8, 4])
    with connect("emu") as dev:
        dev.run(qmodel, x)
        before = _executed(dev)
        dev.run(qmodel, x)
        per_batch = _executed(dev) - before
        dev.link.request(Kind.READ, READ_LAYOUT.to_bytes(addr=0, count=1))
        dev.link.request(Kind.COUNTERS)
        dev.link.request(Kind.CLEAR_COUNTERS)
        before = _executed(dev)
        dev.run(qmodel, x)
        assert _executed(dev) - before == per_batch          # no setup frames resent
        dev.link.request(Kind.EXEC, isa.Nop().encode())     # may write: forget the model
        before = _executed(dev)
        dev.run(qmodel, x)
        assert _executed(dev) - before == per_batch + len(
            compile_model(qmodel, dev.config).setup_frames)
        assert dev.link.stats["requests"] == dev._link.stats["requests"]
        dev.link.timeout_s = 2.5
        assert dev._link.timeout_s == 2.5 and "timeout_s" not in vars(dev.link)


def test_a_raw_request_that_fails_also_forgets_the_model():
    qmodel, x = _model(6, [16, 8, 4])
    with connect("emu") as dev:
        dev.run(qmodel, x)
        with pytest.raises(DeviceError, match="EXEC with BAD_ADDRESS"):
            dev.link.request(Kind.EXEC, isa.Load(Buffer.WGT, 0, 4, bytes(32)).encode() +
                             isa.Load(Buffer.WGT, 4095, 1, bytes(8)).encode())
        np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))


@pytest.mark.parametrize("config", [AcceleratorConfig(), AcceleratorConfig().with_widths(16)],
                         ids=["int8", "int16"])
def test_an_empty_batch_gives_what_predict_gives(config):
    rng = np.random.default_rng(7)
    layers = [(rng.normal(size=(10, 4)), rng.normal(size=4), "none")]
    qmodel = tessera.quantize(layers, calibration=rng.normal(size=(20, 10)),
                              bits=config.input_bits)
    with connect("emu", config=config) as dev:
        requests = dev.link.stats["requests"]
        for x, raw in ((np.zeros((0, 10), np.float32), False),
                       (qmodel.quantize_input(np.zeros((0, 10))), True)):
            got, want = dev.run(qmodel, x, raw=raw), qmodel.predict(x, raw=raw)
            assert (got.shape, got.dtype) == (want.shape, want.dtype) == (
                (0, 4), np.dtype(np.int16 if raw and config.input_bits == 16 else
                                 np.int8 if raw else np.float32))
        assert dev.link.stats["requests"] == requests   # nothing was sent


@pytest.mark.parametrize("addr, count, message", [
    (2.0, 1, "read() addr must be an integer, not 2.0"),
    (2, 1.5, "read() count must be an integer, not 1.5"),
    (True, 1, "read() addr must be an integer, not True"),
    ("3", 1, "read() addr must be an integer, not '3'"),
    (-1, 1, "read() addr must be an entry of the activation buffer, 0 to 2047, not -1"),
    (2048, 1, "read() addr must be an entry of the activation buffer, 0 to 2047, not 2048"),
    (0, 0, "read() count must be from 1 to 128 at addr 0 (the activation buffer has 2048 "
           "entries and one READ returns at most 128), not 0; read in several calls"),
    (0, 129, "read() count must be from 1 to 128 at addr 0"),
    (2040, 9, "read() count must be from 1 to 8 at addr 2040"),
    (np.int64(2047), np.int64(2), "read() count must be from 1 to 1 at addr 2047"),
])
def test_read_refuses_bad_ranges_before_sending(addr, count, message):
    with connect("emu") as dev:
        requests = dev.link.stats["requests"]
        with pytest.raises(ValueError) as info:
            dev.read(addr, count)
        assert str(info.value).startswith(message)
        assert dev.link.stats["requests"] == requests


def test_read_takes_numpy_integers_and_the_whole_range():
    config = AcceleratorConfig(rows=4, cols=4, act_depth=64)
    with connect("emu", config=config) as dev:
        data = np.arange(-8, 8, dtype=np.int8).reshape(4, 4)
        dev.link.request(Kind.EXEC, isa.Load(Buffer.ACT, 60, 4, data.tobytes()).encode())
        np.testing.assert_array_equal(dev.read(np.int64(60), np.uint8(4)), data)
        # The device's own check is still there for raw READ requests.
        with pytest.raises(DeviceError, match="READ with BAD_ADDRESS"):
            dev.link.request(Kind.READ, READ_LAYOUT.to_bytes(addr=63, count=2))


class _Echo(Transport):
    """A serial port with the loopback bitstream: every byte written comes back."""

    def __init__(self):
        self.pending = bytearray()
        self.writes = 0

    def write(self, data):
        self.writes += 1
        self.pending += data

    def read(self, max_bytes, timeout_s):
        data, self.pending = bytes(self.pending[:max_bytes]), self.pending[max_bytes:]
        return data


def test_a_port_that_echoes_our_frames_is_recognised():
    echo = _Echo()
    with pytest.raises(LinkError, match="^" + re.escape(
            "The device echoes what it is sent (the answer to HELLO was the request frame "
            "itself, on 2 attempts): probably the UART loopback bitstream (tessera build "
            "--design loopback) is still loaded; flash the accelerator bitstream (tessera build "
            "--board BOARD, then program the board as docs/boards.md shows) and connect "
            "again") + "$"):
        Device(echo)
    assert echo.writes == 2
    link = HostLink(_Echo(), max_payload=1024, retries=0)
    frame = isa.Nop().encode()
    with pytest.raises(LinkError, match=r"the answer to EXEC was the request frame itself, on 1 "
                                        r"attempts\)"):
        link.request(Kind.EXEC, frame)


def test_one_echo_among_real_answers_is_only_a_resend():
    # A single echoed frame (e.g. a glitch) is retried like a bad response, not reported.
    emu = EmulatorTransport(Emulator(AcceleratorConfig()))

    class EchoOnce(Transport):
        echoed = False

        def write(self, data):
            if not self.echoed:
                self.echoed, self.pending = True, bytes(data)
            else:
                emu.write(data)

        def read(self, max_bytes, timeout_s):
            if getattr(self, "pending", b""):
                data, self.pending = self.pending, b""
                return data
            return emu.read(max_bytes, timeout_s)

    with Device(EchoOnce()) as dev:
        assert dev.id["rows"] == 8 and dev.link.stats["resends"] == 1


def test_a_dense_chain_graph_is_compiled_and_loaded_once():
    qmodel, x = _model(8, [16, 8, 4])
    qgraph = qmodel.to_graph()
    with connect("emu") as dev:
        dev.run(qmodel, x)
        before = _executed(dev)
        dev.run(qmodel, x)
        per_batch = _executed(dev) - before
        np.testing.assert_array_equal(dev.run(qgraph, x), qgraph.predict(x))
        before = _executed(dev)
        np.testing.assert_array_equal(dev.run(qgraph, x), qgraph.predict(x))
        assert _executed(dev) - before == per_batch
