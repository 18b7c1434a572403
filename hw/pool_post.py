"""The drain's post-processing of a pool (ISA version 3, ``CONV`` kinds 2 and 3).

docs/isa.md: an average pool drains ``y = clamp(a / n, lo, hi)`` (``n`` the pixel's in-bounds
taps, rounding half away from zero: :class:`~tessera.hw.pool.PoolDivider`), a max pool
``y = clamp(a, lo, hi)``; neither uses ``PARAM``, the zero point, the LUT or the requant.
:class:`PoolPostProcessor` is the pool's counterpart of the
:class:`~tessera.hw.postproc.PostProcessor` for the drain: a stream of elements with a
pass-through ``tag`` and ``last`` in, results out in order.

Timing: a max-pool element accepted in cycle *T* leaves in *T+2*, one per cycle; an
average-pool element is accepted every :data:`~tessera.spec.timing.POOL_DIVIDE_CYCLES` cycles
(``i.ready`` low meanwhile) and leaves in *T+* :data:`AVERAGE_LATENCY` — both within the drain's
``DRAIN_OVERHEAD_CYCLES`` after its last element.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import POOL_DIVIDE_CYCLES

from .pool import SUM_BITS, TAPS_BITS, PoolDivider
from .postproc import TAG_BITS

__all__ = ["PoolPostProcessor", "AVERAGE_LATENCY", "pool_post_layouts"]

#: Cycles from an average-pool element's acceptance to its result (the divider, the clamp).
AVERAGE_LATENCY = POOL_DIVIDE_CYCLES + 2


def pool_post_layouts(config) -> tuple:
    """Return ``(in_layout, out_layout)`` of a :class:`PoolPostProcessor`."""
    out = signed(config.output_bits)
    layout_in = data.StructLayout({
        "acc": signed(SUM_BITS), "taps": unsigned(TAPS_BITS), "average": unsigned(1),
        "lo": out, "hi": out, "tag": unsigned(TAG_BITS), "last": unsigned(1),
    })
    layout_out = data.StructLayout({"value": out, "tag": unsigned(TAG_BITS), "last": unsigned(1)})
    return layout_in, layout_out


class PoolPostProcessor(wiring.Component):
    """Divide (average pool) and clamp pooled accumulators.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    i : In(stream.Signature(pool_post_layouts(config)[0]))
        One pool kind at a time (the drain of one command).
    o : Out(stream.Signature(pool_post_layouts(config)[1]))
        Always taken (the drain's collecting side is always ready).
    """

    def __init__(self, config):
        self._config = config
        layout_in, layout_out = pool_post_layouts(config)
        super().__init__({"i": In(stream.Signature(layout_in)),
                          "o": Out(stream.Signature(layout_out))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.divider = divider = PoolDivider()
        p = self.i.payload
        accept = self.i.valid & self.i.ready

        # the element's clamp bounds, tag and last travel beside it
        held = Signal(self.i.payload.shape())
        with m.If(accept):
            m.d.sync += held.eq(p)
        m.d.comb += [
            divider.i_div.payload.sum.eq(p.acc), divider.i_div.payload.taps.eq(p.taps),
            divider.i_div.valid.eq(self.i.valid & p.average),
            self.i.ready.eq(Mux(p.average, divider.i_div.ready, 1)),
        ]
        # The divider takes the next element in the last cycle of the previous one (its
        # `i_div.ready` is high then, as when idle): the element in flight moves to `shown`,
        # which belongs to the quotient of the next cycle.
        in_flight = Signal(self.i.payload.shape())
        shown = Signal(self.i.payload.shape())
        max_valid = Signal()
        m.d.sync += max_valid.eq(accept & ~p.average)
        with m.If(divider.i_div.ready):
            m.d.sync += shown.eq(in_flight)
        with m.If(divider.i_div.valid & divider.i_div.ready):
            m.d.sync += in_flight.eq(p)
        value = Mux(max_valid, held.acc, divider.o_quotient)
        bounds = Signal(self.i.payload.shape())
        m.d.comb += bounds.eq(Mux(max_valid, held.as_value(), shown.as_value()))
        result = Signal(signed(SUM_BITS + 1))
        m.d.comb += result.eq(value)
        out = self.o.payload
        m.d.sync += [
            self.o.valid.eq(max_valid | divider.o_valid),
            out.value.eq(Mux(result < bounds.lo, bounds.lo,
                             Mux(result > bounds.hi, bounds.hi, result))),
            out.tag.eq(bounds.tag), out.last.eq(bounds.last),
        ]
        return m
