"""The average pool's divider of ISA version 3: ``a / n`` rounded half away from zero.

A ``CONV`` of kind 2 (docs/isa.md) drains each pixel's tap sum ``a`` as
``clamp(a / n, lo, hi)``, ``n`` the pixel's in-bounds taps, the division rounding half away from
zero (TFLite's ``AVERAGE_POOL_2D``; ``tessera.runtime.conv.pool_average``). :class:`PoolDivider`
is a restoring divider of ``|a| + n div 2`` by ``n``, one quotient bit per cycle,
:data:`~tessera.spec.timing.POOL_DIVIDE_CYCLES` bits: the tap sum of 8-bit operands is at most
``128 n`` in magnitude, so the quotient fits. The clamp is the drain's.

Timing: an element accepted in cycle *T* (``i_div`` transfer) is divided in cycles
*T+1 … T+16*; the next element is accepted in cycle *T+16* at the earliest (16 cycles per element,
back to back) and the quotient is shown on ``o_quotient`` (``o_valid``) in cycle *T+17*, for that
cycle only.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import POOL_DIVIDE_CYCLES

__all__ = ["PoolDivider", "SUM_BITS", "TAPS_BITS"]

#: Width of a tap sum: up to 31 x 31 taps of 8-bit operands (``kernel_h``, ``kernel_w`` u5).
SUM_BITS = 19
#: Width of a tap count (at most 31 x 31).
TAPS_BITS = 10


class PoolDivider(wiring.Component):
    """Divide tap sums by their tap counts, rounding half away from zero.

    Members
    -------
    i_div : In(stream.Signature(StructLayout({"sum": signed(SUM_BITS), "taps": TAPS_BITS})))
        A tap sum and its non-zero tap count; ready when idle or in an element's last cycle.
    o_valid : Out(1)
    o_quotient : Out(signed(POOL_DIVIDE_CYCLES + 1))
        ``sum / taps`` rounded half away from zero, shown with ``o_valid``.
    """

    i_div: In(stream.Signature(data.StructLayout({"sum": signed(SUM_BITS),
                                                  "taps": unsigned(TAPS_BITS)})))
    o_valid: Out(1)
    o_quotient: Out(signed(POOL_DIVIDE_CYCLES + 1))

    def elaborate(self, platform):
        m = Module()
        bits = POOL_DIVIDE_CYCLES
        rest = Signal(SUM_BITS + 1)                 # what is left of |sum| + taps div 2
        divisor = Signal(TAPS_BITS + bits)          # taps << the quotient bit being decided
        quotient = Signal(bits)
        negative = Signal()
        step = Signal(range(bits))
        busy = Signal()
        last = Signal()
        m.d.comb += [last.eq(busy & (step == bits - 1)),
                     self.i_div.ready.eq(~busy | last)]

        trial = Signal(signed(len(divisor) + 2))
        m.d.comb += trial.eq(rest - divisor)
        fits = ~trial[-1]
        bit = Mux(fits, 1, 0)
        with m.If(busy):
            with m.If(fits):
                m.d.sync += rest.eq(trial)
            m.d.sync += [quotient.eq(quotient << 1 | bit), divisor.eq(divisor >> 1),
                         step.eq(step + 1)]
        with m.If(last):
            m.d.sync += busy.eq(0)
        done = Signal()
        result = Signal(bits)
        sign = Signal()
        m.d.sync += done.eq(last)
        with m.If(last):
            m.d.sync += [result.eq(quotient << 1 | bit), sign.eq(negative)]
        m.d.comb += [self.o_valid.eq(done),
                     self.o_quotient.eq(Mux(sign, -result, result))]

        with m.If(self.i_div.valid & self.i_div.ready):
            value, taps = self.i_div.payload.sum, self.i_div.payload.taps
            magnitude = Mux(value < 0, -value, value)
            m.d.sync += [rest.eq(magnitude + (taps >> 1)), divisor.eq(taps << (bits - 1)),
                         quotient.eq(0), negative.eq(value < 0), step.eq(0), busy.eq(1)]
        return m
