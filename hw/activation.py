"""Activation stage of the post-processor: zero point, clamp and the optional lookup table.

``y = clamp(v + zero_point, lo, hi)``, then ``LUT[y + 128]`` when the table is selected
(docs/isa.md). Two registered stages:

1. the comparisons ``v > hi - zero_point`` and ``v < lo - zero_point`` and the sum ``v +
   zero_point``, three carry chains side by side, each straight into a register;
2. the clamp, a multiplexer of those registers, into the address of the table's synchronous
   read port, whose output register is the stage register of the LUT path; a plain register
   holds the clamped value for the other path. On ECP5 the stage register of the LUT path is
   the table index instead, read asynchronously from distributed RAM (no block RAM
   clock-to-output in the cycle).

The comparisons and the clamp's multiplexers in one stage were the critical path of the
LFE5U-85F build (10.41 ns from the requant result register, 96 MHz against 100).

The result is the layer output width (``config.output_bits``) wide. The compiler keeps
``zero_point``, ``lo`` and ``hi`` within the output range (``tessera.numerics.postprocess``
refuses anything else), so the clamped value always fits it: narrower outputs only narrow the
result lane, the clamp itself works on the full ``POST`` fields.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from tessera.spec.config import OPERAND_BITS

from .mac_ecp5 import is_ecp5
from .requant_onnx import requant_bits

__all__ = ["Activation", "LUT_DEPTH", "clamp_bounds", "BOUND_BITS"]

#: Entries of the activation lookup table (one per int8 value, index ``y + 128``).
LUT_DEPTH = 256

#: Width of the shifted clamp bounds ``lo - zero_point``, ``hi - zero_point`` (-255 .. 255)
#: with 8-bit outputs; ``bits + 2`` for ``bits``-wide ones.
BOUND_BITS = 10


def clamp_bounds(zero_point, lo, hi):
    """Return ``{"lo_bound", "hi_bound", "lo_value"}`` for :class:`Activation`'s ports.

    ``lo_bound = lo - zero_point``, ``hi_bound = hi - zero_point`` and ``lo_value = min(lo,
    hi)``: the result of the clamp when ``v + zero_point < lo``. Works on Amaranth values (the
    PostProcessor registers them a stage ahead) and on Python ints (tests).
    """
    if all(isinstance(x, int) for x in (zero_point, lo, hi)):
        return {"lo_bound": lo - zero_point, "hi_bound": hi - zero_point, "lo_value": min(lo, hi)}
    return {"lo_bound": lo - zero_point, "hi_bound": hi - zero_point,
            "lo_value": Mux(lo > hi, hi, lo)}


class Activation(wiring.Component):
    """Zero point, clamp to ``[lo, hi]`` and optional 256-entry int8 lookup table.

    The clamp is ``min(max(v + zero_point, lo), hi)`` (exact for any ``lo``, ``hi``; callers
    keep ``lo <= hi``).
    The table powers up all-zero; it is written through the ``lut_wr_*`` port (host ``LOAD`` to
    the ``LUT`` buffer) and its contents survive reset.

    Parameters
    ----------
    lut : bool
        Whether the lookup table is built. Without it ``use_lut`` is ignored and the write port
        is absent.
    bits : int, optional
        Width of :attr:`result` (the layer output width, 4, 8 or 16; default 8). The table
        needs 8. The clamp result is exact when ``lo`` and ``hi`` lie in the ``bits`` range.

    Members
    -------
    en : In(1)
        Pipeline enable: the stage advances in a cycle with ``en`` set, holds otherwise.
    value : In(signed(requant_bits(bits)))
        Saturated requant result (16 bits up to 8-bit outputs, 24 for 16-bit ones).
    zero_point, hi : In(signed(bits))
        Output zero point and upper clamp bound.
    lo_bound, hi_bound : In(signed(bits + 2))
        ``lo - zero_point`` and ``hi - zero_point`` (:func:`clamp_bounds`; ``BOUND_BITS`` wide
        with 8-bit outputs).
    lo_value : In(signed(bits))
        ``min(lo, hi)`` (:func:`clamp_bounds`).
    use_lut : In(1)
        Apply the lookup table to this element.
    result : Out(signed(bits))
        The activation of the operands presented :attr:`latency` enabled cycles earlier.
    lut_wr_en : In(1)
        Write ``lut_wr_data`` to entry ``lut_wr_addr`` (only with ``lut=True``).
    lut_wr_addr : In(8)
        Table index (``y + 128``).
    lut_wr_data : In(8)
        Entry value, int8 bits.
    """

    #: Enabled cycles from operands to :attr:`result`: the comparisons, then the clamp.
    latency = 2

    def __init__(self, *, lut, bits=8):
        if not isinstance(lut, bool):
            self._MustUse__silence = True   # a rejected component is not an unused one
            raise TypeError(f"lut must be True or False, not {lut!r}")
        if isinstance(bits, bool) or bits not in OPERAND_BITS:
            self._MustUse__silence = True
            raise ValueError(f"Output width must be one of {OPERAND_BITS}, not {bits!r}")
        if lut and bits != 8:
            self._MustUse__silence = True
            raise ValueError(f"The lookup table needs 8-bit outputs, not {bits}-bit ones; "
                             "build the activation with lut=False")
        self._lut = lut
        self._bits = bits
        members = {
            "en": In(1),
            "value": In(signed(requant_bits(bits))),
            "zero_point": In(signed(bits)),
            "hi": In(signed(bits)),
            "lo_bound": In(signed(bits + 2)),
            "hi_bound": In(signed(bits + 2)),
            "lo_value": In(signed(bits)),
            "use_lut": In(1),
            "result": Out(signed(bits)),
        }
        if lut:
            members.update(lut_wr_en=In(1), lut_wr_addr=In(8), lut_wr_data=In(8))
        super().__init__(members)

    @property
    def has_lut(self) -> bool:
        """Whether the lookup table is built."""
        return self._lut

    @property
    def bits(self) -> int:
        """Width of :attr:`result`."""
        return self._bits

    def elaborate(self, platform):
        m = Module()

        # min(max(x, lo), hi) with x = v + zero_point, evaluated with the comparisons moved to
        # v's side: x > hi iff v > hi - zp and x < lo iff v < lo - zp. The bounds depend only
        # on the parameters, so the add and both comparisons run in parallel (one carry chain
        # deep, not three) and are registered (stage 1). If x > hi the result is hi; otherwise,
        # if x < lo it is min(lo, hi); otherwise x (stage 2, one multiplexer level). v is
        # saturated to int16, so v + zero_point fits 17 bits. The bounds come precomputed
        # (clamp_bounds) from an earlier pipeline stage. Only the low `bits` bits of x are kept
        # (in the clamp's range it fits them).
        bits = self._bits
        above = Signal()                      # x > hi
        below = Signal()                      # x < lo
        shifted = Signal(signed(bits))        # x, low `bits` bits
        hi_s1 = Signal(signed(bits))
        lo_value_s1 = Signal(signed(bits))
        use_lut_s1 = Signal()
        with m.If(self.en):
            m.d.sync += [
                above.eq(self.value > self.hi_bound),
                below.eq(self.value < self.lo_bound),
                shifted.eq((self.value + self.zero_point)[0:bits]),
                hi_s1.eq(self.hi),
                lo_value_s1.eq(self.lo_value),
                use_lut_s1.eq(self.use_lut),
            ]
        clamped = Signal(signed(bits))
        m.d.comb += clamped.eq(Mux(above, hi_s1, Mux(below, lo_value_s1, shifted)))

        plain = Signal(signed(bits))
        with m.If(self.en):
            m.d.sync += plain.eq(clamped)

        if not self._lut:
            m.d.comb += self.result.eq(plain)
            return m

        m.submodules.lut = table = Memory(shape=8, depth=LUT_DEPTH, init=[])
        write = table.write_port()
        m.d.comb += [
            write.en.eq(self.lut_wr_en),
            write.addr.eq(self.lut_wr_addr),
            write.data.eq(self.lut_wr_data),
        ]
        # y + 128 on 8 bits is y with its sign bit inverted.
        index = clamped.as_unsigned() ^ 0x80
        if is_ecp5(platform):
            # A registered index and an asynchronous read: the table maps to distributed RAM.
            # A block RAM's clock-to-output (5.6 ns on the LFE5U-85F) left the rest of the
            # cycle for the route to the drain: a 12.9 ns path. The same results as the
            # synchronous port unless the table is written while a drain reads it, a hazard
            # that programs synchronise away (docs/isa.md, "Ordering and hazards").
            read = table.read_port(domain="comb")
            index_q = Signal(8)
            with m.If(self.en):
                m.d.sync += index_q.eq(index)
            m.d.comb += read.addr.eq(index_q)
        else:
            read = table.read_port(domain="sync")
            m.d.comb += [read.en.eq(self.en), read.addr.eq(index)]
        selected = Signal()
        with m.If(self.en):
            m.d.sync += selected.eq(use_lut_s1)
        m.d.comb += self.result.eq(Mux(selected, read.data.as_signed(), plain))
        return m
