"""The requant units equal a plain Amaranth description of their formula.

:class:`~tessera.hw.requant_tflite.TfliteRequant` computes gemmlowp's
``RDBPOT(SRDHM(a << max(e, 0), m0), max(-e, 0))`` in six stages with one folded rounding addend
(its module docstring derives it). The reference here is the C code of docs/numerics.md written
out as it reads: the wrapping left shift, the 64-bit product, the nudge and the division that
truncates toward zero, the ``INT32_MIN * INT32_MIN`` case, RDBPOT's mask, remainder and
threshold at any shift up to 128 (every value of the 8-bit ``shift``), and the saturation.

The pipeline runs with ``en`` high, so its result in step ``t >= 6`` depends on its operands of
step ``t - 6`` only, and those are free: a bounded proof of depth 7 covers every operand value.
The multiplier is the hard part for the solver: the operands are narrowed (``a_bits``/``m_bits``:
``a`` sign-extended from its low ``a_bits``, ``m0`` with only its top ``m_bits`` bits free) and
the shift bounded (``shifts``: the contract's ``[-31, 30]`` by default, all 256 values on
request); docs/verification.md lists the widths each check proves.

The iterative unit (``TfliteRequant(cycles)``, ``requant_cycles > 1``) runs with ``en`` low
exactly while it holds, as the PostProcessor runs it: its result in a cycle is the formula of
the operands taken six enabled cycles before (:func:`tflite_iterative_equivalence`).
"""

from amaranth.hdl import Assert, Assume, Mux, Signal, signed

from tessera.hw.requant_tflite import TfliteRequant
from tessera.numerics.requant_tflite import SHIFT_MAX, SHIFT_MIN

from .bench import FormalBench

__all__ = ["tflite_reference", "tflite_equivalence", "tflite_iterative_equivalence"]

def tflite_reference(m, a, multiplier, shift, *, result_bits, max_right=128):
    """Return ``MultiplyByQuantizedMultiplier(a, m0, e)`` saturated to ``result_bits``.

    Combinational, as docs/numerics.md states it: no folded addends, no early sign. Exact for
    right shifts up to ``max_right`` (128 covers every 8-bit ``shift``).
    """
    int32_min, int32_max = -(1 << 31), (1 << 31) - 1
    left = Mux(shift > 0, shift, 0).as_unsigned()[:7]
    right = Mux(shift < 0, -shift, 0).as_unsigned()[:8]
    x = Signal(signed(32))
    m0 = Signal(signed(32))
    m.d.comb += [x.eq((a << left)[:32].as_signed()), m0.eq(multiplier.as_signed())]

    # SRDHM: (p + nudge) / 2^31, truncated toward zero; INT32_MIN * INT32_MIN saturates
    p = Signal(signed(64))
    t = Signal(signed(66))
    quotient = Signal(signed(66))
    s = Signal(signed(33))
    m.d.comb += [
        p.eq(x * m0),
        t.eq(p + Mux(p >= 0, 1 << 30, 1 - (1 << 30))),
        quotient.eq(Mux(t >= 0, t >> 31, -((-t) >> 31))),
        s.eq(Mux((x == int32_min) & (m0 == int32_min), int32_max, quotient)),
    ]
    # RDBPOT: (s >> k) + (remainder > threshold), with unbounded integers
    width = max_right + 2
    wide = Signal(signed(width))
    mask = Signal(width)
    remainder = Signal(width)
    threshold = Signal(width)
    rounded = Signal(signed(width))
    m.d.comb += [
        wide.eq(s),
        mask.eq((1 << right) - 1),
        remainder.eq(wide.as_unsigned() & mask),
        threshold.eq((mask >> 1) + (s < 0)),
        rounded.eq((wide >> right) + (remainder > threshold)),
    ]
    high, low = (1 << (result_bits - 1)) - 1, -(1 << (result_bits - 1))
    result = Signal(signed(result_bits))
    m.d.comb += result.eq(Mux(rounded > high, high, Mux(rounded < low, low, rounded)))
    return result


def _delayed(bench, value, cycles, name):
    for stage in range(cycles):
        value = bench.past(value, name=f"{name}_{stage}")
    return value


def _free_operands(bench, dut, *, a_bits, m_bits, shifts):
    """Return ``dut``'s free ``a``, ``multiplier`` and ``shift``, narrowed by assumptions.

    ``a`` is an ``a_bits``-bit signed value, ``multiplier`` has its low ``32 - m_bits`` bits
    clear and ``shift`` lies in ``shifts`` (both ends included).
    """
    m = bench.m
    a = bench.free(dut.a, name="a")
    multiplier = bench.free(dut.multiplier, name="multiplier")
    shift = bench.free(dut.shift, name="shift")
    m.d.comb += Assume((shift.as_signed() >= shifts[0]) & (shift.as_signed() <= shifts[1]))
    if a_bits < 32:
        m.d.comb += Assume(a.as_signed() == a[:a_bits].as_signed())
    if m_bits < 32:
        m.d.comb += Assume(multiplier[:32 - m_bits] == 0)
    return a, multiplier, shift


def tflite_equivalence(*, a_bits=32, m_bits=32, shifts=(SHIFT_MIN, SHIFT_MAX), result_bits=16,
                       unit_class=TfliteRequant):
    """Return ``(bench, depth)``: ``TfliteRequant.result`` equals :func:`tflite_reference`.

    ``shifts`` bounds the exponent (default: the contract's ``[-31, 30]``; ``(-128, 127)`` for
    every 8-bit value).
    """
    bench = FormalBench()
    m = bench.m
    m.submodules.dut = dut = unit_class(result_bits=result_bits)
    m.d.comb += dut.en.eq(1)
    a, multiplier, shift = _free_operands(bench, dut, a_bits=a_bits, m_bits=m_bits,
                                          shifts=shifts)

    latency = unit_class.latency
    expected = tflite_reference(
        m, _delayed(bench, a, latency, "a").as_signed(),
        _delayed(bench, multiplier, latency, "multiplier"),
        _delayed(bench, shift, latency, "shift").as_signed(), result_bits=result_bits,
        max_right=max(0, -shifts[0]))
    filled = Signal(range(latency + 1))
    with m.If(filled != latency):
        m.d.sync += filled.eq(filled + 1)
    m.d.comb += Assert((filled != latency) | (dut.result == expected),
                       "TfliteRequant differs from the formula")
    return bench, latency + 1


def tflite_iterative_equivalence(*, cycles=2, a_bits=4, m_bits=4, shifts=(-128, 127),
                                 result_bits=16):
    """Return ``(bench, depth)``: an iterative ``TfliteRequant(cycles)`` equals the formula.

    The unit runs as the PostProcessor runs it: ``en`` low exactly while it holds, every
    operand an element. The operands taken in each enabled cycle are recorded, and ``result``
    must equal :func:`tflite_reference` of those taken six enabled cycles earlier; the depth
    covers two results of elements that waited in the iterative stage.
    """
    bench = FormalBench()
    m = bench.m
    m.submodules.dut = dut = TfliteRequant(cycles, result_bits=result_bits)
    m.d.comb += [dut.valid.eq(1), dut.en.eq(~dut.hold)]
    a, multiplier, shift = _free_operands(bench, dut, a_bits=a_bits, m_bits=m_bits,
                                          shifts=shifts)

    latency = TfliteRequant.latency
    taken = []
    for stage in range(latency):
        regs = tuple(Signal.like(v, name=f"{v.name}_{stage}") for v in (a, multiplier, shift))
        sources = (a, multiplier, shift) if stage == 0 else taken[-1]
        with m.If(dut.en):
            m.d.sync += [r.eq(s) for r, s in zip(regs, sources)]
        taken.append(regs)
    old_a, old_m, old_shift = taken[-1]
    expected = tflite_reference(m, old_a.as_signed(), old_m, old_shift.as_signed(),
                                result_bits=result_bits, max_right=max(0, -shifts[0]))
    filled = Signal(range(latency + 1))
    with m.If(dut.en & (filled != latency)):
        m.d.sync += filled.eq(filled + 1)
    m.d.comb += Assert((filled != latency) | (dut.result == expected),
                       "the iterative TfliteRequant differs from the formula")
    # six elements (the first two enabled cycles, then one every `cycles`), two checks after
    return bench, 2 + (latency - 1) * cycles + 2
