"""The system testbench of the accelerator: driver, monitor, model and scoreboard.

Used by the cocotb test modules ``sim/system_*.py`` against the ``tessera_top`` Verilog of one
configuration. The configuration comes from ``$TESSERA_CONFIG`` (JSON, see
:meth:`~tessera.spec.AcceleratorConfig.to_json`), the seed of the random stimulus from
``$TESSERA_SEED``.

- **Driver** (:class:`~tb_streams.ByteDriver`): request bytes into ``i_rx`` with idle gaps.
- **Monitor** (:class:`~tb_streams.ByteMonitor`): response bytes from ``o_tx`` with ``ready``
  backpressure, parsed into frames.
- **Model**: the bit-exact :class:`~tessera.runtime.emulator.Emulator`, fed exactly the bytes the
  driver sends; what it answers is what the RTL must answer.
- **Scoreboard** (:class:`Scoreboard`): every response frame must equal the model's byte for byte.
  ``COUNTERS`` responses are compared counter by counter: ``compute_cycles``, ``macs``,
  ``stall_cycles``, ``rx_bytes`` and ``tx_bytes`` exactly; ``cycles`` counts the testbench's own
  idle gaps and waits, which the model does not see, so it is only recorded (the socket bridge,
  which stops the clock while idle, is where ``cycles`` is compared; see ``tests/test_sim_*``).
"""

from __future__ import annotations

import os
import random

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from tessera.runtime.emulator import Emulator
from tessera.spec import AcceleratorConfig
from tessera.spec.protocol import COUNTER_NAMES, FrameParser, Kind, decode_counters, encode_frame

from tb_streams import ByteDriver, ByteMonitor, is_high, stream_signals

__all__ = ["CLOCK_NS", "EXACT_COUNTERS", "TB", "Scoreboard", "config_from_env"]

#: Clock period of the testbench, in ns.
CLOCK_NS = 10

#: Counters the scoreboard compares exactly with the model's cycle model.
EXACT_COUNTERS = ("compute_cycles", "macs", "stall_cycles", "rx_bytes", "tx_bytes")


def config_from_env() -> AcceleratorConfig:
    """Return the configuration the simulated RTL was built from (``$TESSERA_CONFIG``)."""
    text = os.environ.get("TESSERA_CONFIG")
    if not text:
        raise RuntimeError("TESSERA_CONFIG is not set: run this cocotb module through "
                           "tessera.sim.runner.run_test with the configuration's JSON")
    return AcceleratorConfig.from_json(text)


class Scoreboard:
    """Compare the RTL's response frames with the model's, in order.

    Attributes
    ----------
    checked : int
        Frames compared so far.
    cycles : list of (int, int)
        ``(rtl, model)`` values of the ``cycles`` counter of every ``COUNTERS`` response.
    """

    def __init__(self):
        self.checked = 0
        self.cycles = []

    def compare(self, got, expected, *, counters=False, what="response"):
        """Assert that frame ``got`` equals ``expected`` (counters: field by field)."""
        self.checked += 1
        if counters and got.kind == expected.kind == 0 and got.seq == expected.seq and \
                len(got.payload) == len(expected.payload) == 8 * len(COUNTER_NAMES):
            rtl, model = decode_counters(got.payload), decode_counters(expected.payload)
            self.cycles.append((rtl["cycles"], model["cycles"]))
            wrong = {n: (rtl[n], model[n]) for n in EXACT_COUNTERS if rtl[n] != model[n]}
            assert not wrong, (f"{what}: counters differ from the cycle model "
                               f"(name: (rtl, model)): {wrong}")
            return
        assert got.encode() == expected.encode(), (
            f"{what}: RTL answered kind/status 0x{got.kind:02x} seq {got.seq} "
            f"payload[{len(got.payload)}] {got.payload[:48].hex()} but the model answered "
            f"0x{expected.kind:02x} seq {expected.seq} payload[{len(expected.payload)}] "
            f"{expected.payload[:48].hex()}")


class TB:
    """Testbench of one ``tessera_top`` instance.

    Parameters
    ----------
    dut : cocotb handle
    config : AcceleratorConfig, optional
        Defaults to :func:`config_from_env`.
    seed : int, optional
        Seed of the idle gaps and backpressure; defaults to ``$TESSERA_SEED`` or 1.
    gap_probability, max_gap : float, int
        Idle gaps of the driver.
    ready_probability : float
        ``o_tx.ready`` duty of the monitor.
    """

    def __init__(self, dut, config=None, *, seed=None, gap_probability=0.3, max_gap=3,
                 ready_probability=0.6):
        import cocotb
        self.dut = dut
        self.config = config if config is not None else config_from_env()
        seed = int(os.environ.get("TESSERA_SEED", "1")) if seed is None else seed
        self.rng = random.Random(seed)
        self.driver = ByteDriver(dut.clk, stream_signals(dut, "i_rx"), rng=self.rng,
                                 gap_probability=gap_probability, max_gap=max_gap)
        self.monitor = ByteMonitor(dut.clk, stream_signals(dut, "o_tx"), rng=self.rng,
                                   ready_probability=ready_probability,
                                   max_payload=self.config.max_payload)
        self.model = Emulator(self.config)
        self._carry_memories()
        self._model_parser = FrameParser(max_payload=self.config.max_payload)
        self.scoreboard = Scoreboard()
        self._seq = 0
        self._cocotb = cocotb

    #: The model of the previous test run in this simulation (see :meth:`_carry_memories`).
    _previous_machine = None

    def _carry_memories(self):
        """Start the model's buffers from where the previous test left the RTL's.

        All tests of a cocotb module share one simulation. ``rst`` resets registers (post
        state, counters, the remembered ``seq``, the accumulators) but not the memories: the
        buffers hold what the previous test wrote, as block RAM does on a board after a reset.
        """
        previous = TB._previous_machine
        machine = self.model.machine
        if previous is not None and previous.config == self.config:
            for name in ("act", "wgt", "param", "lut"):
                getattr(machine, name)[...] = getattr(previous, name)
        TB._previous_machine = machine

    @property
    def cycle(self) -> int:
        """Clock cycles since the start of the simulation."""
        return int(get_sim_time("ns") // CLOCK_NS)

    async def start(self):
        """Start the clock, reset the design and start the driver and the monitor."""
        dut = self.dut
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        dut.rst.value = 1
        for _ in range(4):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        self._cocotb.start_soon(self.driver.run())
        self._cocotb.start_soon(self.monitor.run())

    def next_seq(self) -> int:
        """Return a fresh sequence number (never the previous one)."""
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    # -- transactions ------------------------------------------------------------------------

    async def transact(self, data, *, counter_seqs=(), what="response", timeout_cycles=None):
        """Send raw ``data``; check every response frame against the model's; return them.

        The model sees the same bytes. Waits for as many frames as the model answered, then for
        the design to become idle, and checks that nothing else came out. Responses whose
        ``seq`` is in ``counter_seqs`` are compared as ``COUNTERS`` records.
        """
        data = bytes(data)
        self.model.feed(data)
        expected = self._model_parser.feed(self.model.read(self.model.pending))
        self.driver.send(data)
        timeout = timeout_cycles or self._timeout_cycles(data)
        got = await self._collect(len(expected), timeout, what)
        for index, (g, e) in enumerate(zip(got, expected)):
            self.scoreboard.compare(g, e, counters=g.seq in counter_seqs,
                                    what=f"{what} (frame {index})")
        await self.settle(timeout)
        return got

    async def request(self, kind, payload=b"", *, seq=None, what=None):
        """Send one well-formed request; check and return its response frame."""
        seq = self.next_seq() if seq is None else seq
        frame = encode_frame(kind, seq, payload)
        name = Kind(kind).name if kind in set(Kind) else f"kind 0x{kind:02x}"
        got = await self.transact(frame, counter_seqs={seq} if kind == Kind.COUNTERS else (),
                                  what=what or f"{name} seq {seq}")
        assert len(got) == 1, f"{name} got {len(got)} responses"
        return got[0]

    async def exec(self, payload, *, seq=None, what=None):
        """Send an ``EXEC``; return its (checked) response frame."""
        return await self.request(Kind.EXEC, payload, seq=seq, what=what)

    async def counters(self) -> dict:
        """Read the counters (checked against the model); return the RTL's values."""
        frame = await self.request(Kind.COUNTERS)
        return decode_counters(frame.payload)

    def _timeout_cycles(self, data) -> int:
        # Generous: bytes at the worst idle/backpressure duty plus the work of a full frame.
        return 64 * len(data) + 200_000

    async def _collect(self, count, timeout_cycles, what):
        deadline = self.cycle + timeout_cycles
        frames = self.monitor.frames
        while len(frames) < count:
            left = deadline - self.cycle
            assert left > 0, (f"{what}: timed out after {timeout_cycles} cycles with "
                              f"{len(frames)} of {count} response frames "
                              f"(received bytes: {self.monitor.data[-64:].hex()})")
            self.monitor.new_frame.clear()
            await First(self.monitor.new_frame.wait(), Timer(left * CLOCK_NS, unit="ns"))
        return [frames.popleft() for _ in range(count)]

    async def settle(self, timeout_cycles=200_000, quiet_cycles=8):
        """Wait until all bytes are sent and the design is idle; check that it stays silent."""
        await RisingEdge(self.dut.clk)     # leave the ReadOnly phase we may have woken in
        await self.driver.wait_sent()
        deadline = self.cycle + timeout_cycles
        busy = self.dut.busy
        while True:
            await ReadOnly()
            if not is_high(busy):
                break
            left = deadline - self.cycle
            assert left > 0, f"the design stayed busy for {timeout_cycles} cycles"
            await First(FallingEdge(busy), Timer(left * CLOCK_NS, unit="ns"))
        before = len(self.monitor.data)
        for _ in range(quiet_cycles):
            await RisingEdge(self.dut.clk)
        assert len(self.monitor.data) == before and not self.monitor.frames, \
            f"unexpected bytes from an idle design: {self.monitor.data[before:].hex()}"
        assert not self.monitor.parser.bad_frames, \
            f"the RTL sent frames with a bad CRC: {self.monitor.parser.bad_frames[:3]}"
        assert self.monitor.parser.skipped_bytes == 0, \
            f"the RTL sent {self.monitor.parser.skipped_bytes} bytes outside frames"

    async def idle_cycles(self, n):
        """Let ``n`` clock cycles pass."""
        await Timer(n * CLOCK_NS, unit="ns")
        await RisingEdge(self.dut.clk)
