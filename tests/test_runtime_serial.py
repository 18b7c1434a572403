"""SerialTransport: URL parsing, clear errors, and a real serial port (a pty) to an emulator."""

import os
import select
import threading
import tty

import numpy as np
import pytest

import tessera
from tessera.runtime import Emulator, LinkError, connect
from tessera.runtime.device import Device
from tessera.runtime.serial import DEFAULT_BAUD, SerialTransport, parse_serial_url
from tessera.spec import AcceleratorConfig


@pytest.mark.parametrize("url, expected", [
    ("serial:///dev/ttyUSB1?baud=3000000", {"port": "/dev/ttyUSB1", "baud": 3_000_000}),
    ("serial:///dev/ttyACM0", {"port": "/dev/ttyACM0", "baud": DEFAULT_BAUD}),
    ("serial://COM3?baud=115200", {"port": "COM3", "baud": 115200}),
])
def test_parse_serial_url(url, expected):
    assert parse_serial_url(url) == expected


@pytest.mark.parametrize("url, message", [
    ("serial://", "names no port"),
    ("serial:///dev/ttyUSB1?baud=fast", "Baud rate must be a positive integer, not 'fast'"),
    ("serial:///dev/ttyUSB1?baud=0", "Baud rate must be a positive integer, not '0'"),
    ("serial:///dev/ttyUSB1?parity=E", "Unknown serial URL option.s. parity .* the only option "
                                       "is baud"),
    ("tcp://x", "Not a serial URL"),
])
def test_bad_serial_urls(url, message):
    with pytest.raises(ValueError, match=message):
        parse_serial_url(url)


def test_missing_port_is_a_link_error_with_a_hint():
    with pytest.raises(LinkError, match=r"Cannot open serial port /dev/tessera-no-such-port at "
                                        r"3000000 baud .*check that the board is plugged in"):
        connect("serial:///dev/tessera-no-such-port?baud=3000000")


def test_missing_pyserial_says_what_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(LinkError, match=r"needs pyserial, which is not installed: "
                                        r"pip install 'tessera-fpga\[serial\]' \(in a "
                                        r"checkout: pip install -e '.\[serial\]'\)"):
        SerialTransport("/dev/ttyUSB1")


class _PtyBoard:
    """An emulator behind the master side of a pseudo-terminal: a board on a serial port."""

    def __init__(self, config):
        self.emulator = Emulator(config)
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            self.emulator.feed(data)
            if self.emulator.pending:
                os.write(self.master, self.emulator.read(1 << 20))

    def close(self):
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)


def test_model_runs_over_a_real_serial_port():
    config = AcceleratorConfig(rows=4, cols=4, max_payload=256)
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(20, 8)).astype(np.float32), np.zeros(8, np.float32), "relu"),
              (rng.normal(size=(8, 3)).astype(np.float32), np.zeros(3, np.float32), "none")]
    x = rng.normal(size=(30, 20)).astype(np.float32)
    qmodel = tessera.quantize(layers, x)
    board = _PtyBoard(config)
    try:
        with connect(f"serial://{board.port}?baud=3000000", config=config) as dev:
            assert isinstance(dev, Device) and dev.transport.baud == 3_000_000
            np.testing.assert_array_equal(dev.run(qmodel, x), qmodel.predict(x))
            assert dev.counters()["macs"] == 30 * (20 * 8 + 8 * 3)
        assert board.emulator.stats["bad_crc"] == 0
    finally:
        board.close()
