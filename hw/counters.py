"""Performance counters of the accelerator (the ``COUNTERS`` response).

Six free-running counters, ``config.counter_bits`` wide, wrapping modulo ``2**counter_bits``,
in the order of :data:`tessera.spec.protocol.COUNTER_NAMES`. Their meaning is the cycle model of
``docs/architecture.md``; the compute-side events come from the Core, the byte events from the
link streams (one event per byte transferred, whatever the byte is).
"""

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import protocol

from .ports import BusSignature

__all__ = ["CountersSignature", "EventSignature", "PerfCounters"]


class EventSignature(BusSignature):
    """The compute-side counter events of one cycle, from the source's side (the Core).

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    compute : Out(1)
        The array is occupied by a GEMM.
    stall : Out(1)
        A finished GEMM waits for the drain.
    macs : Out(range(rows*cols + 1))
        Useful MACs performed.
    """

    def __init__(self, config):
        super().__init__({
            "compute": Out(1),
            "stall": Out(1),
            "macs": Out(range(config.rows * config.cols + 1)),
        })


class CountersSignature(BusSignature):
    """The counters as the executor reads and clears them, from the counters' side.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    values : Out(data.ArrayLayout(counter_bits, 6))
        The counters, in the order of ``protocol.COUNTER_NAMES``.
    clear : In(1)
        Set every counter to zero (events of this cycle are not counted).
    """

    def __init__(self, config):
        super().__init__({
            "values": Out(data.ArrayLayout(config.counter_bits, len(protocol.COUNTER_NAMES))),
            "clear": In(1),
        })


class PerfCounters(wiring.Component):
    """Count cycles, compute cycles, MACs, stall cycles and link bytes.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    events : In(EventSignature(config))
        The Core's events of this cycle.
    ev_rx, ev_tx : In(1)
        A byte was transferred on the receive / transmit stream this cycle.
    counters : Out(CountersSignature(config))
        The counters and their clear, to the executor.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "events": In(EventSignature(config)),
            "ev_rx": In(1),
            "ev_tx": In(1),
            "counters": Out(CountersSignature(config)),
        })

    def counter(self, name):
        """Return the value of the counter called ``name`` (one of ``COUNTER_NAMES``)."""
        if name not in protocol.COUNTER_NAMES:
            raise ValueError(f"Unknown counter {name!r}; the counters are "
                             f"{', '.join(protocol.COUNTER_NAMES)}")
        return self.counters.values[protocol.COUNTER_NAMES.index(name)]

    def elaborate(self, platform):
        m = Module()
        # A one-bit event is its counter's enable, not an addend: added, it would ripple through
        # the whole carry chain, and the events come late in the cycle (ECP5 timing).
        events = self.events
        enables = {"cycles": 1, "compute_cycles": events.compute, "macs": 1,
                   "stall_cycles": events.stall, "rx_bytes": self.ev_rx, "tx_bytes": self.ev_tx}
        amounts = {"macs": events.macs}
        for name in protocol.COUNTER_NAMES:
            value = self.counter(name)
            with m.If(self.counters.clear):
                m.d.sync += value.eq(0)
            with m.Elif(enables[name]):
                m.d.sync += value.eq(value + amounts.get(name, 1))
        return m
