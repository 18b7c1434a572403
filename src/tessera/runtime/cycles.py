"""The emulator's cycle model: performance counters exactly as the gateware counts them.

The model follows ``docs/architecture.md`` with the constants of :mod:`tessera.spec.timing`:

- The link moves :data:`~tessera.spec.timing.LINK_BYTES_PER_CYCLE` byte per cycle each way; a
  request is received whole (it is checked before it runs), then executed, then answered.
- The executor reads its frame buffer :data:`EXECUTOR_BYTES_PER_CYCLE` byte per cycle: an
  instruction costs 16 cycles of fetch, a ``LOAD`` also one cycle per payload byte.
- A ``GEMM`` is handed to the engine when the engine is free (the executor waits for that):
  accepted in cycle *A*, it occupies the array for ``k + GEMM_OVERHEAD_CYCLES`` cycles
  (``compute_cycles``) and does ``m_rows * n_cols * k`` useful MACs (``macs``); its nominal
  hand-off cycle is ``A + k + GEMM_OVERHEAD_CYCLES``. With ``drain`` the hand-off waits while the
  previous drain is still busy (``stall_cycles``): ``H = max(nominal, drain_free)``, and the drain
  then occupies the drain unit until ``drain_free = H + m_rows * n_cols * requant_cycles +
  DRAIN_OVERHEAD_CYCLES`` (``requant_cycles`` of the configuration, 1 unless an iterative
  requant multiplier is built). The engine accepts the next GEMM from cycle *H* and reports
  idle from ``H + 1`` (the cycle-by-cycle table of ``docs/architecture.md``).
- ``SYNC``, ``STORE`` and the end of every ``EXEC`` frame wait until the engine and the drain are
  idle (and go on :data:`~tessera.spec.timing.IDLE_LAG_CYCLES` after they became idle), so no
  work is ever in flight while the host link is idle: every counter is a deterministic function
  of the request stream, identical in the emulator and the RTL.
- ``cycles`` counts every cycle since the last clear (the simulation bridge stops the clock only
  while the device is idle and no byte is pending).

``compute_cycles`` and ``macs`` are sums over instructions; ``stall_cycles`` depends on the
executor's issue timing only when the engine waits for instructions, and ``cycles`` on the
executor's fetch rate, which this module states in one place.
"""

from __future__ import annotations

from tessera.spec import timing
from tessera.spec.protocol import COUNTER_NAMES

__all__ = ["CycleModel", "EXECUTOR_BYTES_PER_CYCLE"]

#: Bytes the executor reads from the frame buffer per cycle (instruction words and payloads).
EXECUTOR_BYTES_PER_CYCLE = 1


class CycleModel:
    """Timeline of one device: the executor's clock, the engine and the drain unit.

    Parameters
    ----------
    counter_bits : int
        Width of the hardware counters; values wrap modulo ``2**counter_bits``.
    requant_cycles : int
        Cycles the drain spends per element (``AcceleratorConfig.requant_cycles``).
    """

    def __init__(self, counter_bits=48, requant_cycles=1):
        self._mask = (1 << counter_bits) - 1
        self._requant_cycles = requant_cycles
        self.now = 0              # executor time, in cycles since power-up
        self.engine_free_at = 0   # when the engine can accept the next GEMM (hand-off cycle H)
        self.engine_idle_at = 0   # when the engine reports idle (H + 1)
        self.drain_free_at = 0    # when the drain unit finishes its current tile
        self._cleared_at = 0
        self._events = dict.fromkeys(COUNTER_NAMES, 0)

    # -- link ------------------------------------------------------------------------------

    def receive(self, nbytes: int):
        """Account ``nbytes`` arriving on the link (garbage included)."""
        self.now += -(-nbytes // timing.LINK_BYTES_PER_CYCLE)
        self._events["rx_bytes"] += nbytes

    def transmit(self, nbytes: int):
        """Account ``nbytes`` sent on the link."""
        self.now += -(-nbytes // timing.LINK_BYTES_PER_CYCLE)
        self._events["tx_bytes"] += nbytes

    def wait(self, ncycles: int):
        """Let ``ncycles`` pass while the device is busy doing nothing else (an rx timeout)."""
        self.now += ncycles

    # -- executor ----------------------------------------------------------------------------

    def fetch(self, nbytes: int):
        """Account the executor reading ``nbytes`` of the frame buffer."""
        self.now += -(-nbytes // EXECUTOR_BYTES_PER_CYCLE)

    def gemm(self, *, k: int, m_rows: int, n_cols: int, drain: bool):
        """Issue one GEMM: the executor waits until the engine accepts it."""
        start = max(self.now, self.engine_free_at)
        self.now = start
        done = start + k + timing.GEMM_OVERHEAD_CYCLES
        self._events["compute_cycles"] += k + timing.GEMM_OVERHEAD_CYCLES
        self._events["macs"] += m_rows * n_cols * k
        if drain:
            handoff = max(done, self.drain_free_at)
            self._events["stall_cycles"] += handoff - done
            self.drain_free_at = (handoff + m_rows * n_cols * self._requant_cycles
                                  + timing.DRAIN_OVERHEAD_CYCLES)
            self.engine_free_at = handoff
        else:
            self.engine_free_at = handoff = done
        self.engine_idle_at = handoff + 1

    def wait_idle(self):
        """Wait until the engine and the drain unit are idle (``SYNC``, ``STORE``, frame end).

        The executor sees ``idle`` through a register: it goes on
        :data:`~tessera.spec.timing.IDLE_LAG_CYCLES` after the Core went idle (at once if the
        Core went idle earlier).
        """
        busy_until = max(self.engine_idle_at, self.drain_free_at)
        if busy_until > 0:
            self.now = max(self.now, busy_until + timing.IDLE_LAG_CYCLES)

    @property
    def idle(self) -> bool:
        return self.now >= self.engine_idle_at and self.now >= self.drain_free_at

    # -- counters ----------------------------------------------------------------------------

    def counters(self) -> dict:
        """Return the counters as the ``COUNTERS`` response reports them right now."""
        values = dict(self._events, cycles=self.now - self._cleared_at)
        return {name: values[name] & self._mask for name in COUNTER_NAMES}

    def clear(self):
        """Zero every counter (``CLEAR_COUNTERS``)."""
        self._cleared_at = self.now
        self._events = dict.fromkeys(COUNTER_NAMES, 0)
