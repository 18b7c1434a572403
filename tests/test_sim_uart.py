"""UART in the loop: ``tessera.connect("serial://...")`` against the RTL *with* its UART gateware.

No board needed: :class:`tessera.sim.uart_loop.UartSimulation` runs UART + accelerator in the
simulator behind a pseudo-terminal, and the runtime's real ``SerialTransport`` (pyserial) opens
the pty as it would open ``/dev/ttyUSB1``. Every byte crosses the RTL's UART as 8N1 bits.
Kept to a few frames: HELLO, a small model's setup and program frames, the counters.
"""

import numpy as np
import pytest

from sim_helpers import CONFIGS, simulators

import tessera
from tessera.sim import runner
from tessera.sim.uart_loop import UartSimulation
from tessera.sim.uart_top import DEFAULT_DIVISOR, UartSimTop

#: The small 2x4 configuration with a board-like receive timeout: its 64-cycle one (for the
#: byte-stream truncated-frame test) is shorter than one UART character (10 * divisor cycles).
CONFIG = CONFIGS["2x4"].replace(rx_timeout_cycles=1 << 20)


def test_uart_top_rejects_timeout_shorter_than_a_character():
    with pytest.raises(ValueError, match=r"rx_timeout_cycles=64 is too short for a UART with "
                                         r"divisor 8: one 8N1 character takes 80 cycles"):
        UartSimTop(CONFIGS["2x4"], divisor=DEFAULT_DIVISOR)


@pytest.mark.slow
def test_serial_transport_through_rtl_uart():
    pytest.importorskip("serial", reason="pyserial is the serial transport's dependency")
    simulator = simulators()[0]
    runner.build(CONFIG, simulator, design="uart")
    rng = np.random.default_rng(0)
    layers = [(rng.normal(0, 0.5, (6, 5)), rng.normal(0, 0.1, 5), "relu"),
              (rng.normal(0, 0.5, (5, 3)), None, "none")]
    qmodel = tessera.quantize(layers, calibration=rng.normal(0, 1, (16, 6)))
    x_q = rng.integers(-128, 128, (3, 6), dtype=np.int8)
    with UartSimulation(CONFIG, simulator) as sim:
        with tessera.connect(sim.url(), config=CONFIG, timeout_s=15.0, retries=1) as dev:
            assert dev.id["config_hash"] == CONFIG.hash
            dev.clear_counters()
            got = dev.run(qmodel, x_q, raw=True)
            counters = dev.counters()
        process = sim.process
    np.testing.assert_array_equal(got, qmodel.predict(x_q, raw=True))
    assert counters["macs"] == 3 * (6 * 5 + 5 * 3)
    assert counters["rx_bytes"] > 0 and counters["tx_bytes"] > 0
    assert process.process.returncode == 0
