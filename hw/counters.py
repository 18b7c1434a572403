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

__all__ = ["PerfCounters"]


class PerfCounters(wiring.Component):
    """Count cycles, compute cycles, MACs, stall cycles and link bytes.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    ev_compute, ev_stall : In(1)
        The array is occupied by a GEMM / a finished GEMM waits for the drain, this cycle.
    ev_macs : In(range(rows*cols + 1))
        Useful MACs performed this cycle.
    ev_rx, ev_tx : In(1)
        A byte was transferred on the receive / transmit stream this cycle.
    clear : In(1)
        Set every counter to zero (events of this cycle are not counted).
    values : Out(data.ArrayLayout(counter_bits, 6))
        The counters, in the order of ``protocol.COUNTER_NAMES``.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "ev_compute": In(1),
            "ev_stall": In(1),
            "ev_macs": In(range(config.rows * config.cols + 1)),
            "ev_rx": In(1),
            "ev_tx": In(1),
            "clear": In(1),
            "values": Out(data.ArrayLayout(config.counter_bits, len(protocol.COUNTER_NAMES))),
        })

    def counter(self, name):
        """Return the value of the counter called ``name`` (one of ``COUNTER_NAMES``)."""
        if name not in protocol.COUNTER_NAMES:
            raise ValueError(f"Unknown counter {name!r}; the counters are "
                             f"{', '.join(protocol.COUNTER_NAMES)}")
        return self.values[protocol.COUNTER_NAMES.index(name)]

    def elaborate(self, platform):
        m = Module()
        # A one-bit event is its counter's enable, not an addend: added, it would ripple through
        # the whole carry chain, and the events come late in the cycle (ECP5 timing).
        enables = {"cycles": 1, "compute_cycles": self.ev_compute, "macs": 1,
                   "stall_cycles": self.ev_stall, "rx_bytes": self.ev_rx, "tx_bytes": self.ev_tx}
        amounts = {"macs": self.ev_macs}
        for name in protocol.COUNTER_NAMES:
            value = self.counter(name)
            with m.If(self.clear):
                m.d.sync += value.eq(0)
            with m.Elif(enables[name]):
                m.d.sync += value.eq(value + amounts.get(name, 1))
        return m
