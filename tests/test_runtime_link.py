"""HostLink over faulty links: retries give correct results or DeviceTimeout, never wrong data."""

import numpy as np
import pytest

import tessera
from runtime_helpers import load
from tessera.runtime import (DeviceError, DeviceTimeout, Emulator, EmulatorTransport,
                             FaultyTransport, HostLink, LinkError, Transport, connect)
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.isa import Buffer
from tessera.spec.protocol import Kind, Status, encode_frame

CFG = AcceleratorConfig(rows=4, cols=4, max_payload=256)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(12, 10)).astype(np.float32),
               rng.normal(size=10).astype(np.float32), "relu"),
              (rng.normal(size=(10, 5)).astype(np.float32),
               rng.normal(size=5).astype(np.float32), "none")]
    x = rng.normal(size=(40, 12)).astype(np.float32)
    return tessera.quantize(layers, x), x


def _faulty(**kw):
    made = []

    def wrap(transport):
        made.append(FaultyTransport(transport, **kw))
        return made[-1]
    return wrap, made


@pytest.mark.parametrize("faults", [
    dict(corrupt=0.002), dict(drop=0.002), dict(duplicate=0.002), dict(lose=0.05),
    dict(corrupt=0.001, drop=0.001, duplicate=0.001, lose=0.02),
    dict(corrupt=0.003, directions="read"), dict(drop=0.003, directions="write"),
], ids=["corrupt", "drop", "duplicate", "lose", "mixed", "corrupt-responses", "drop-requests"])
def test_faulty_link_gives_bit_exact_results(model, faults):
    qmodel, x = model
    wrap, made = _faulty(seed=1, **faults)
    with connect("emu", config=CFG, retries=10, transport_wrapper=wrap) as dev:
        for _ in range(3):
            np.testing.assert_array_equal(dev.run(qmodel, x, raw=False), qmodel.predict(x))
        stats = dev.link.stats
    assert sum(made[0].faults.values()) > 0          # faults really happened ...
    assert stats["resends"] > 0                      # ... and were recovered from


def test_heavy_faults_never_give_wrong_results(model):
    # Faults so frequent that some runs exhaust their retries: every run must end either with
    # the exact output or with an exception, never with a wrong output.
    qmodel, x = model
    x_q = qmodel.quantize_input(x)
    expected = qmodel.predict(x_q, raw=True)
    outcomes = []
    for seed in range(12):
        wrap, made = _faulty(seed=seed, corrupt=0.001, drop=0.001, duplicate=0.001, lose=0.05)
        try:
            with connect("emu", config=CFG, retries=3, transport_wrapper=wrap) as dev:
                y = dev.run(qmodel, x_q, raw=True)
        except DeviceTimeout:
            outcomes.append("timeout")
            continue
        except DeviceError as e:    # a link status that persisted through every retry
            assert e.status in (Status.BAD_CRC, Status.BAD_LENGTH, Status.BAD_KIND)
            outcomes.append("link status")
            continue
        np.testing.assert_array_equal(y, expected)
        outcomes.append("exact")
    assert outcomes.count("exact") >= 3 and len(set(outcomes)) >= 2, outcomes


class _DeadTransport(Transport):
    def __init__(self):
        self.writes = 0

    def write(self, data):
        self.writes += 1

    def read(self, max_bytes, timeout_s):
        return b""


def test_timeout_after_retries_names_the_request():
    dead = _DeadTransport()
    link = HostLink(dead, max_payload=64, timeout_s=0.01, retries=3)
    with pytest.raises(DeviceTimeout, match=r"No valid response to COUNTERS \(seq 0, 0-byte "
                                            r"payload\) after 4 attempts of 0.01 s each .*check "
                                            r"that the device is powered"):
        link.request(Kind.COUNTERS)
    assert dead.writes == 4
    assert isinstance(DeviceTimeout("x"), TimeoutError)


class _CorruptEveryRequest(Transport):
    """Flip one payload bit of every request: the device answers BAD_CRC every time."""

    def __init__(self, inner):
        self.inner = inner

    def write(self, data):
        data = bytearray(data)
        data[-1] ^= 0x01
        self.inner.write(bytes(data))

    def read(self, max_bytes, timeout_s):
        return self.inner.read(max_bytes, timeout_s)


def test_persistent_bad_crc_becomes_device_error():
    emu = Emulator(CFG)
    link = HostLink(_CorruptEveryRequest(EmulatorTransport(emu)), max_payload=256, retries=2)
    with pytest.raises(DeviceError, match=r"Device answered EXEC with BAD_CRC \(0x01\): the "
                                          r"device received a corrupted frame") as info:
        link.request(Kind.EXEC, isa.Nop().encode())
    assert info.value.status == Status.BAD_CRC
    assert emu.stats["bad_crc"] == 3 and emu.stats["executed"] == 0


def test_execution_error_is_raised_with_its_record():
    link = HostLink(EmulatorTransport(Emulator(CFG)), max_payload=256)
    program = isa.Nop().encode() + isa.Gemm(0, 0, 0).encode()
    with pytest.raises(DeviceError, match=r"Device answered EXEC with BAD_FIELD \(0x12\) at "
                                          r"byte 16 of the program frame \(opcode 2 = GEMM\): "
                                          r"an instruction field is out of range") as info:
        link.request(Kind.EXEC, program)
    assert (info.value.offset, info.value.opcode) == (16, 2)
    assert link.stats["resends"] == 0           # execution errors are not retried


def test_request_longer_than_max_payload_is_refused_locally():
    link = HostLink(_DeadTransport(), max_payload=64)
    with pytest.raises(ValueError, match="EXEC payload of 65 bytes exceeds the device's "
                                         "max_payload of 64; split it"):
        link.request(Kind.EXEC, bytes(65))


def test_exec_never_reuses_the_last_exec_seq():
    emu = Emulator(CFG)
    link = HostLink(EmulatorTransport(emu), max_payload=256)
    link.request(Kind.HELLO)
    emu.machine.act[0] = 1
    emu.machine.wgt[0] = 1
    accumulate = isa.Gemm(0, 0, 1, clear=False, drain=False).encode()
    link.request(Kind.EXEC, accumulate)            # seq 1
    for _ in range(255):                           # seq 2 .. 256 = 0
        link.request(Kind.COUNTERS)
    link.request(Kind.EXEC, accumulate)            # would be seq 1 again: must not be deduped
    assert emu.stats["resent"] == 0 and emu.stats["executed"] == 2
    assert emu.machine.acc[0, 0] == 2


def test_stale_responses_are_ignored():
    emu = Emulator(CFG)
    link = HostLink(EmulatorTransport(emu), max_payload=256)
    # A leftover response (seq 0x77) sits in the pipe before our request's answer.
    emu._tx += encode_frame(Status.OK, 0x77, b"stale")
    assert link.request(Kind.EXEC, isa.Store(3, 1).encode()) == bytes(4)
    assert link.stats["stale"] == 1


class _Scripted(Transport):
    def __init__(self, response):
        self.response = response

    def write(self, data):
        self.seq = data[2]

    def read(self, max_bytes, timeout_s):
        return encode_frame(self.response[0], self.seq, self.response[1])


def test_unknown_status_is_a_link_error():
    link = HostLink(_Scripted((0x55, b"")), max_payload=64)
    with pytest.raises(LinkError, match="unknown status 0x55: the device speaks another "
                                        "protocol version"):
        link.request(Kind.HELLO)


@pytest.mark.parametrize("kw, message", [
    (dict(timeout_s=0), "timeout_s must be a positive number of seconds, not 0"),
    (dict(retries=-1), "retries must be a non-negative integer, not -1"),
])
def test_link_parameters_are_validated(kw, message):
    with pytest.raises(ValueError, match=message):
        HostLink(_DeadTransport(), max_payload=64, **kw)


@pytest.mark.parametrize("kw, message", [
    (dict(corrupt=1.0), r"corrupt probability must be in \[0, 1\), not 1.0"),
    (dict(directions="up"), "directions must be 'both', 'write' or 'read', not 'up'"),
])
def test_faulty_transport_parameters_are_validated(kw, message):
    with pytest.raises(ValueError, match=message):
        FaultyTransport(_DeadTransport(), **kw)


def test_faulty_transport_is_reproducible():
    outputs = []
    for _ in range(2):
        sink = []

        class Sink(_DeadTransport):
            def write(self, data):
                sink.append(bytes(data))
        faulty = FaultyTransport(Sink(), corrupt=0.1, drop=0.1, duplicate=0.1, seed=42)
        for i in range(20):
            faulty.write(bytes(range(i, i + 30)))
        outputs.append((sink, dict(faulty.faults)))
    assert outputs[0] == outputs[1]
    assert all(outputs[0][1][k] > 0 for k in ("corrupted", "dropped", "duplicated"))


def test_hand_built_program_over_a_faulty_link():
    emu = Emulator(CFG)
    faulty = FaultyTransport(EmulatorTransport(emu), corrupt=0.002, drop=0.001, seed=3)
    link = HostLink(faulty, max_payload=256, retries=20)
    link.request(Kind.HELLO)
    data = np.arange(-64, 64, dtype=np.int8).reshape(32, 4)
    for i in range(10):
        link.request(Kind.EXEC, load(Buffer.ACT, 32 * i, data + i, 4))
    for i in range(10):
        got = link.request(Kind.EXEC, isa.Store(32 * i, 32).encode())
        np.testing.assert_array_equal(np.frombuffer(got, np.int8).reshape(32, 4), data + i)
    assert sum(faulty.faults.values()) > 0 and link.stats["resends"] > 0


class _WriteTwice(Transport):
    """Deliver every request twice: the device must run each EXEC once and answer twice."""

    def __init__(self, inner):
        self.inner = inner

    def write(self, data):
        self.inner.write(data + data)

    def read(self, max_bytes, timeout_s):
        return self.inner.read(max_bytes, timeout_s)


def test_duplicated_requests_execute_once(model):
    qmodel, x = model
    emu = Emulator(CFG)
    from tessera.runtime import Device
    with Device(_WriteTwice(EmulatorTransport(emu)), CFG) as dev:
        for _ in range(2):
            np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))
        assert dev.link.stats["stale"] > 0         # the second answers were ignored
    assert emu.stats["resent"] == emu.stats["executed"] > 0
