"""The Device driver end to end: connect("emu").run(qmodel, x) == qmodel.predict(x), bit for bit."""

import numpy as np
import pytest

import tessera
from tessera.compiler import compile_model
from tessera.runtime import (ConfigMismatch, Device, Emulator, EmulatorTransport,
                             HazardError, LinkError, RecordingTransport, ReplayTransport,
                             TesseraError, Transport, connect)
from tessera.spec import AcceleratorConfig, isa
from tessera.spec.protocol import ID_LAYOUT, Kind, Status, encode_frame, encode_id


def _mlp(seed, sizes, activations, mode="onnx", per_channel=True, m=64):
    rng = np.random.default_rng(seed)
    layers = [(rng.normal(size=(k, n)).astype(np.float32) / np.sqrt(k),
               rng.normal(scale=0.3, size=n).astype(np.float32), act)
              for k, n, act in zip(sizes, sizes[1:], activations)]
    x = rng.normal(size=(m, sizes[0])).astype(np.float32)
    return tessera.quantize(layers, x, mode=mode, per_channel=per_channel), x


CONFIGS = {
    "8x8": AcceleratorConfig(),
    "4x4-small": AcceleratorConfig(rows=4, cols=4, act_depth=256, weight_depth=128,
                                   param_depth=64, max_payload=128),
    "2x4": AcceleratorConfig(rows=2, cols=4, act_depth=512, weight_depth=512, max_payload=96),
    "16x8": AcceleratorConfig(rows=16, cols=8),
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_run_equals_predict(config, mode):
    qmodel, x = _mlp(1, [23, 17, 9, 5], ["relu", "sigmoid", "none"], mode=mode, m=37)
    with connect("emu", config=config) as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))
        x_q = qmodel.quantize_input(x[:5])
        y_q = dev.run(qmodel, x_q, raw=True)
        assert y_q.dtype == np.int8
        np.testing.assert_array_equal(y_q, qmodel.predict(x_q, raw=True))


@pytest.mark.parametrize("activations", [["relu6", "tanh"], ["none", "relu"]])
def test_run_equals_predict_per_tensor(activations):
    qmodel, x = _mlp(2, [30, 12, 3], activations, per_channel=False, m=11)
    with connect("emu") as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))


def test_setup_is_sent_once_per_model_and_again_after_another_model():
    first, x1 = _mlp(3, [16, 8, 4], ["relu", "none"])
    second, x2 = _mlp(4, [16, 6, 4], ["relu", "none"])
    emu = Emulator(AcceleratorConfig())
    dev = Device(EmulatorTransport(emu))
    compiled = compile_model(first, dev.config)
    dev.run(first, x1)
    after_first = emu.stats["executed"]
    dev.run(first, x1)
    per_batch = emu.stats["executed"] - after_first
    assert per_batch == len(compiled.program(first.quantize_input(x1)).frames)
    for _ in range(2):   # alternate models: each run must reload its resident state
        np.testing.assert_array_equal(dev.run(second, x2), second.predict(x2))
        np.testing.assert_array_equal(dev.run(first, x1), first.predict(x1))


def test_execute_a_compiled_program():
    qmodel, x = _mlp(5, [10, 7], ["relu"])
    with connect("emu") as dev:
        compiled = compile_model(qmodel, dev.config)
        for frame in compiled.setup_frames:
            dev.link.request(Kind.EXEC, frame)
        x_q = qmodel.quantize_input(x)
        np.testing.assert_array_equal(dev.execute(compiled.program(x_q)),
                                      qmodel.predict(x_q, raw=True))


@pytest.mark.parametrize("x, raw, error, message", [
    (np.zeros(10, np.float32), False, ValueError, r"must be a 2-D array \[M, 10\]"),
    (np.zeros((3, 9), np.float32), False, ValueError, "has 9 features but the model expects 10"),
    (np.zeros((3, 10), np.float32), True, ValueError,
     r"With raw=True the input must be an int8 array \[M, 10\], not float32 \(3, 10\)"),
    (np.zeros((0, 9), np.int8), True, ValueError,
     r"With raw=True the input must be an int8 array \[M, 10\], not int8 \(0, 9\)"),
])
def test_bad_input_is_refused_with_a_clear_error(x, raw, error, message):
    qmodel, _ = _mlp(6, [10, 4], ["none"])
    with connect("emu") as dev:
        with pytest.raises(error, match=message):
            dev.run(qmodel, x, raw=raw)


def test_run_needs_a_quantized_model():
    with connect("emu") as dev:
        with pytest.raises(TypeError, match=r"run\(\) needs a tessera.QuantizedModel .*not list"):
            dev.run([(np.eye(2), np.zeros(2), "none")], np.zeros((1, 2)))


def test_config_mismatch_names_both_hashes():
    device_cfg = AcceleratorConfig(rows=4, cols=4)
    host_cfg = AcceleratorConfig()
    transport = EmulatorTransport(Emulator(device_cfg))
    with pytest.raises(ConfigMismatch, match=rf"built from configuration {device_cfg.hash_hex} "
                                             rf"\(4x4, max_payload 1024\) but the host expects "
                                             rf"{host_cfg.hash_hex} \(8x8.*connect with the "
                                             rf"configuration the bitstream was built from"):
        Device(transport, host_cfg)


class _FakeDevice(Transport):
    """Answer every request with a fixed HELLO payload."""

    def __init__(self, ident_payload):
        self.ident_payload = ident_payload

    def write(self, data):
        self.seq = data[2]

    def read(self, max_bytes, timeout_s):
        return encode_frame(Status.OK, self.seq, self.ident_payload)


def test_isa_version_mismatch_is_refused():
    cfg = AcceleratorConfig()
    ident = ID_LAYOUT.from_bytes(encode_id(cfg))
    ident["isa_version"] = isa.ISA_VERSION + 1
    with pytest.raises(ConfigMismatch, match=rf"implements ISA version {isa.ISA_VERSION + 1} "
                                             rf"but this host speaks version {isa.ISA_VERSION}"):
        Device(_FakeDevice(ID_LAYOUT.to_bytes(**ident)), cfg)


def test_non_tessera_device_is_refused():
    with pytest.raises(LinkError, match="not a Tessera ID record: ID record is 18 bytes, got 3"):
        Device(_FakeDevice(b"abc"))
    bad_magic = bytes(4) + encode_id(AcceleratorConfig())[4:]
    with pytest.raises(LinkError, match="magic is 0x00000000"):
        Device(_FakeDevice(bad_magic))


def test_record_and_replay(tmp_path):
    qmodel, x = _mlp(7, [12, 6, 3], ["relu", "none"])
    path = tmp_path / "session.jsonl"
    recorder = []
    with connect("emu", transport_wrapper=lambda t: recorder.append(
            RecordingTransport(t, path)) or recorder[-1]) as dev:
        expected = dev.run(qmodel, x)
        counters = dev.counters()
    # Replay without any device: the same host requests get the recorded answers.
    replay = ReplayTransport(path)
    with Device(replay, AcceleratorConfig()) as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x), expected)
        assert dev.counters() == counters
    assert replay.finished
    # A host that sends something else is caught at the first differing write.
    with Device(ReplayTransport(path), AcceleratorConfig()) as dev:
        with pytest.raises(LinkError, match=r"diverged at event \d+: the host wrote \d+ bytes "
                                            r"differing from the recorded \d+ at byte \d+"):
            dev.run(qmodel, x + 1)


def test_replay_rejects_other_files(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="is not a Tessera link recording"):
        ReplayTransport(path)


def test_counters_clear_and_utilisation():
    qmodel, x = _mlp(8, [64, 32, 10], ["relu", "none"], m=40)
    with connect("emu") as dev:
        dev.clear_counters()
        dev.run(qmodel, x)
        c = dev.counters()
        assert c["macs"] == 40 * (64 * 32 + 32 * 10)
        assert 0 < c["utilisation"] <= 1
        assert c["utilisation"] == c["macs"] / (64 * c["compute_cycles"])
        assert c["cycles"] >= c["rx_bytes"] + c["tx_bytes"]
        dev.clear_counters()
        c = dev.counters()
        assert (c["macs"], c["compute_cycles"], c["utilisation"]) == (0, 0, 0.0)


def test_read_returns_activation_entries():
    with connect("emu", config=AcceleratorConfig(rows=4, cols=4)) as dev:
        data = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
        dev.link.request(Kind.EXEC, isa.Load(isa.Buffer.ACT, 9, 3, data.tobytes()).encode())
        np.testing.assert_array_equal(dev.read(9, 3), data)
        with pytest.raises(ValueError, match=r"read\(\) count must be from 1 to 1 at addr 2047"):
            dev.read(2047, 2)   # refused before sending: tests/test_runtime_hardening.py


def test_hazard_in_a_program_surfaces_as_hazard_error():
    with connect("emu", config=AcceleratorConfig(rows=2, cols=2)) as dev:
        program = (isa.Gemm(0, 0, 4, out_addr=8, drain=False).encode() +
                   isa.Load(isa.Buffer.WGT, 1, 1, b"\x01\x02").encode())
        with pytest.raises(HazardError, match="insert a SYNC before the LOAD"):
            dev.link.request(Kind.EXEC, program)


def test_closed_device_refuses_requests():
    dev = connect("emu")
    dev.close()
    dev.close()
    with pytest.raises(TesseraError, match=r"This device is closed; connect again"):
        dev.counters()
    assert "closed" in repr(dev)


@pytest.fixture(scope="module")
def digits_classifier():
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0,
                                                   stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((32,), max_iter=60, random_state=0).fit(x_train, y_train)
    return clf, x_train, x_test


@pytest.mark.parametrize("mode", ["onnx", "tflite"])
def test_digits_test_split_is_bit_exact(digits_classifier, mode):
    clf, x_train, x_test = digits_classifier
    qmodel = tessera.quantize(clf, x_train, mode=mode)
    assert x_test.shape == (360, 64)
    with connect("emu") as dev:
        np.testing.assert_array_equal(dev.run(qmodel, x_test), qmodel.predict(x_test))
