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
- ``SYNC`` waits until the engine and the drain are idle (and goes on
  :data:`~tessera.spec.timing.IDLE_LAG_CYCLES` after they became idle); the end of every
  ``EXEC`` program (a ``STORE`` ends it) goes on ``EXEC_END_CYCLES`` after the Core is idle, so
  no work is ever in flight while the host link is idle: every counter is a deterministic
  function of the request stream, identical in the emulator and the RTL.
- Every request costs the executor ``REQUEST_HEAD_CYCLES`` before it acts and
  ``RESPONSE_TAIL_CYCLES`` after its answer; ``STORE``/``READ`` answers ``RESPONSE_ENTRY_CYCLES``
  per entry after the first; ``READ`` and ``HELLO`` a few more (``tessera.spec.timing``).
- ``cycles`` counts every cycle since the last clear (the simulation bridge stops the clock only
  while the device is idle and no byte is pending).

``compute_cycles`` and ``macs`` are sums over instructions; ``stall_cycles`` depends on the
executor's issue timing only when the engine waits for instructions, and ``cycles`` on the
executor's fetch rate, which this module states in one place.
"""

from __future__ import annotations

import numpy as np

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
    drain_lanes : int
        Elements the drain post-processes per cycle (``AcceleratorConfig.drain_lanes``).
    """

    def __init__(self, counter_bits=48, requant_cycles=1, drain_lanes=1):
        self._mask = (1 << counter_bits) - 1
        self._requant_cycles = requant_cycles
        self._drain_lanes = drain_lanes
        self.now = 0              # executor time, in cycles since power-up
        self.engine_free_at = 0   # when the engine can accept the next GEMM (hand-off cycle H)
        self.engine_idle_at = 0   # when the engine reports idle (H + 1)
        self.drain_free_at = 0    # when the drain unit finishes its current tile
        self.gather_free_at = 0   # when the gather has shown the last CONV's last step (+1)
        self._add_started_at = -1  # when the last ADD started on the drain unit
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

    def gemm(self, *, k: int, m_rows: int, n_cols: int, drain: bool, step_cycles=None,
             per_element=None):
        """Issue one GEMM: the executor waits until the engine accepts it.

        ``step_cycles`` (a gathered GEMM of ISA version 3): the cycles of its ``k`` steps,
        ``k`` by default (a gathered GEMM takes :data:`~tessera.spec.timing.
        GATHER_PIPELINE_CYCLES` more); ``per_element``: the drain's cycles per element, ``requant_cycles`` by
        default.
        """
        steps = k if step_cycles is None else step_cycles + timing.GATHER_PIPELINE_CYCLES
        start = max(self.now, self.engine_free_at)
        self.now = start
        done = start + steps + timing.GEMM_OVERHEAD_CYCLES
        self._events["compute_cycles"] += steps + timing.GEMM_OVERHEAD_CYCLES
        self._events["macs"] += m_rows * n_cols * k
        if drain:
            handoff = max(done, self.drain_free_at)
            self._events["stall_cycles"] += handoff - done
            q = self._requant_cycles if per_element is None else per_element
            self.drain_free_at = (handoff + -(-m_rows // self._drain_lanes) * n_cols * q
                                  + timing.DRAIN_OVERHEAD_CYCLES)
            self.engine_free_at = handoff
        else:
            self.engine_free_at = handoff = done
        self.engine_idle_at = handoff + 1

    def conv(self, *, per_tile_cycles, pixels, rows, groups, cols, out_c, k, per_element=None):
        """Issue the commands of one ``CONV`` (tile outer, channel group inner).

        ``per_tile_cycles[t]`` is the cycles of all gathered steps of tile *t* (a command
        computes for these ``+ GEMM_OVERHEAD_CYCLES + GATHER_PIPELINE_CYCLES``); a group has
        ``min(cols, out_c - g*cols)`` columns. The executor goes on
        :data:`~tessera.spec.timing.CONV_RELEASE_CYCLES` after the last command was accepted; the first command is accepted :func:`~tessera.spec.timing.conv_issue_cycles`
        after the issue at the earliest, or after the gather went free if that is later (the
        cycle after the previous ``CONV``'s last step was shown: the end of its last command's
        compute cycles minus ``GEMM_OVERHEAD_CYCLES - 2``), the window address generator's
        set-up. The
        same timeline as one :meth:`gemm` per command (the sequencer offers each command at
        once): hand-off ``H_i = H_(i-1) + max(c_i, d_(i-1))`` for compute cycles
        ``c`` and drain cycles ``d``, computed in one pass with NumPy.
        """
        steps = np.asarray(per_tile_cycles, dtype=np.int64)
        tiles = len(steps)
        m_rows = np.minimum(rows, pixels - rows * np.arange(tiles))
        n_cols = np.minimum(cols, out_c - cols * np.arange(groups))
        q = self._requant_cycles if per_element is None else per_element
        c = np.repeat(steps + (timing.GEMM_OVERHEAD_CYCLES + timing.GATHER_PIPELINE_CYCLES),
                      groups)
        d = ((-(-m_rows // self._drain_lanes))[:, None] * n_cols[None, :] * q
             + timing.DRAIN_OVERHEAD_CYCLES).reshape(-1)
        start = max(max(self.now, self.gather_free_at) + timing.conv_issue_cycles(rows),
                    self.engine_free_at)
        first = max(start + int(c[0]), self.drain_free_at)
        gaps = np.maximum(c[1:], d[:-1])
        handoffs = first + np.concatenate(([0], np.cumsum(gaps)))
        self._events["compute_cycles"] += int(c.sum())
        self._events["macs"] += int((m_rows[:, None] * n_cols[None, :]).sum()) * k
        self._events["stall_cycles"] += (first - start - int(c[0]) +
                                         int(np.maximum(0, d[:-1] - c[1:]).sum()))
        last = int(handoffs[-1])
        self.now = (int(handoffs[-2]) if len(handoffs) > 1 else start) + \
            timing.CONV_RELEASE_CYCLES
        self.engine_free_at = last
        self.engine_idle_at = last + 1
        self.drain_free_at = last + int(d[-1])
        # the last command's last step is shown GEMM_OVERHEAD_CYCLES - 1 before its computation
        # ends (its hand-off, unless the drain makes it wait)
        self.gather_free_at = (self.now - timing.CONV_RELEASE_CYCLES + int(c[-1])
                               - (timing.GEMM_OVERHEAD_CYCLES - 2))

    def add(self, ncycles: int):
        """Issue an ``ADD``: it runs for ``ncycles`` once the engine and the drain unit are free,
        :data:`~tessera.spec.timing.ADD_START_CYCLES` after its issue at the earliest.

        It occupies the drain unit, and the engine accepts nothing meanwhile (the ``ADD`` reads
        ACT through the engine's read port). The executor does not wait for it, except while
        the previous ``ADD`` is still waiting (the Core queues one): then it goes on
        :data:`~tessera.spec.timing.ADD_RELEASE_CYCLES` after that one starts.
        """
        if self.now <= self._add_started_at:
            self.now = self._add_started_at + timing.ADD_RELEASE_CYCLES
        start = max(self.now + timing.ADD_START_CYCLES, self.drain_free_at, self.engine_free_at)
        self._add_started_at = start
        self.drain_free_at = self.engine_free_at = start + ncycles

    @property
    def macs(self) -> int:
        """MACs so far (unwrapped)."""
        return self._events["macs"]

    def wait_idle(self):
        """Wait until the engine and the drain unit are idle (``SYNC``, ``STORE``, frame end).

        The executor sees ``idle`` through a register: it goes on
        :data:`~tessera.spec.timing.IDLE_LAG_CYCLES` after the Core went idle (at once if the
        Core went idle earlier).
        """
        busy_until = max(self.engine_idle_at, self.drain_free_at)
        if busy_until > 0:
            self.now = max(self.now, busy_until + timing.IDLE_LAG_CYCLES)

    # -- requests (the executor's FSM around each request, spec.timing) ----------------------

    def request_head(self):
        """Account the executor taking a request (IDLE, DISPATCH) before it acts."""
        self.now += timing.REQUEST_HEAD_CYCLES

    def response_tail(self):
        """Account the cycles after a response before the next request is taken."""
        self.now += timing.RESPONSE_TAIL_CYCLES

    def end_program(self, *, ok: bool):
        """End an EXEC program: wait until the Core is idle, then the answer's states."""
        core_idle = max(self.engine_free_at, self.drain_free_at)
        self.now = max(self.now, core_idle) + (timing.EXEC_END_CYCLES if ok
                                               else timing.EXEC_ERROR_END_CYCLES)

    def response_entries(self, count: int):
        """Account the ACT read of ``count`` entries of a STORE or READ response."""
        self.now += timing.RESPONSE_ENTRY_CYCLES * max(count - 1, 0)

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
