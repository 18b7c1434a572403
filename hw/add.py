"""The element-wise ``ADD`` of ISA version 3 on one tflite requant unit, three passes each.

docs/isa.md ("``ADD``"): for every operand pair ``(a, b)``, with the three PARAM entries
``p_a, p_b, p_y`` and the post state's ``zero_point``, ``lo``, ``hi``::

    s = MBQM((a + p_a.bias) << 20, p_a) + MBQM((b + p_b.bias) << 20, p_b)
    y = clamp(MBQM(wrap32(s), p_y) + zero_point, lo, hi)

(``MBQM`` is TFLite's ``MultiplyByQuantizedMultiplier``; ``tessera.runtime.conv.run_add``.)
:class:`AddUnit` runs the three ``MBQM`` on one :class:`~tessera.hw.requant_tflite.TfliteRequant`
(unsaturated, ``result_bits = 32``) in a fixed rotation of three cycles: the input pass of
``a`` of element *i*, the input pass of ``b`` of element *i*, the output pass of element
*i − 2* (whose input passes are done by then). So elements are taken every
:data:`~tessera.spec.timing.ADD_PASSES` cycles, back to back, and results leave in order.

Timing: an element accepted in cycle *T* (``i_elem`` transfer, only in the rotation's first
cycle) has its result on ``o_value`` (``o_valid``) in cycle *T +* :attr:`AddUnit.latency`.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import ADD_PASSES

from .layouts import PARAM_ENTRY
from .requant_tflite import TfliteRequant

__all__ = ["AddUnit", "ADD_LEFT_SHIFT"]

#: TFLite's int8 ADD scales both inputs by 2^20 before their multipliers (``add.cc``).
ADD_LEFT_SHIFT = 20


class AddUnit(wiring.Component):
    """TFLite's int8 ``ADD`` of operand pairs, one pair every three cycles.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
        ``input_bits`` (8 with ``cnn``) and ``output_bits``.

    Members
    -------
    params : In(ArrayLayout(PARAM_ENTRY, 3))
        ``p_a``, ``p_b``, ``p_y`` (held while elements run).
    zero_point, lo, hi : In(signed(output_bits))
        The post state (held).
    i_elem : In(stream.Signature(StructLayout({"a": signed(input_bits), "b": ...})))
        Operand pairs; ready in the first cycle of each three-cycle rotation.
    o_valid : Out(1)
    o_value : Out(signed(output_bits))
    """

    #: Cycles from an element's acceptance to its result: the output pass is issued in the
    #: rotation's third cycle after the ``b`` pass's result (cycle 8), then the requant and the
    #: zero point and clamp register.
    latency = 2 * ADD_PASSES + 2 + TfliteRequant.latency + 1

    def __init__(self, config):
        self._config = config
        bits = config.input_bits
        out = signed(config.output_bits)
        super().__init__({
            "params": In(data.ArrayLayout(PARAM_ENTRY, 3)),
            "zero_point": In(out), "lo": In(out), "hi": In(out),
            "i_elem": In(stream.Signature(data.StructLayout({"a": signed(bits),
                                                             "b": signed(bits)}))),
            "o_valid": Out(1),
            "o_value": Out(out),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.requant = requant = TfliteRequant(result_bits=32)
        lat = TfliteRequant.latency
        m.d.comb += requant.en.eq(1)

        phase = Signal(range(ADD_PASSES))       # the rotation: pass a, pass b, output pass
        m.d.sync += phase.eq(Mux(phase == ADD_PASSES - 1, 0, phase + 1))
        m.d.comb += self.i_elem.ready.eq(phase == 0)

        b_operand = Signal(signed(self._config.input_bits))
        b_valid = Signal()
        accept = self.i_elem.valid & self.i_elem.ready
        m.d.sync += b_valid.eq(accept)
        with m.If(accept):
            m.d.sync += b_operand.eq(self.i_elem.payload.b)

        # What each pass issued into the requant is, `lat` cycles later: 1 a, 2 b, 3 output.
        issued = Signal(2)
        kinds = [Signal(2, name=f"pass_{i}") for i in range(lat)]
        m.d.sync += kinds[0].eq(issued)
        m.d.sync += [kinds[i].eq(kinds[i - 1]) for i in range(1, lat)]
        leaving = kinds[-1]

        sum_value = Signal(signed(32))          # wrap32(s) of the element waiting for its pass
        sum_valid = Signal()
        first = Signal(signed(32))
        p_a, p_b, p_y = self.params[0], self.params[1], self.params[2]

        def input_pass(operand, param):
            return [requant.a.eq(((operand + param.bias) << ADD_LEFT_SHIFT)[:32]),
                    requant.multiplier.eq(param.multiplier), requant.shift.eq(param.shift)]

        with m.If(accept):
            m.d.comb += [*input_pass(self.i_elem.payload.a, p_a), issued.eq(1)]
        with m.Elif(b_valid):
            m.d.comb += [*input_pass(b_operand, p_b), issued.eq(2)]
        with m.Elif((phase == 2) & sum_valid):
            m.d.comb += [requant.a.eq(sum_value), requant.multiplier.eq(p_y.multiplier),
                         requant.shift.eq(p_y.shift), issued.eq(3)]
            m.d.sync += sum_valid.eq(0)

        with m.If(leaving == 1):
            m.d.sync += first.eq(requant.result)
        with m.If(leaving == 2):
            m.d.sync += [sum_value.eq((first + requant.result)[:32]), sum_valid.eq(1)]

        value = Signal(signed(34))
        m.d.comb += value.eq(requant.result + self.zero_point)
        done = Signal()
        m.d.sync += done.eq(leaving == 3)
        with m.If(leaving == 3):
            m.d.sync += self.o_value.eq(Mux(value < self.lo, self.lo,
                                            Mux(value > self.hi, self.hi, value)))
        m.d.comb += self.o_valid.eq(done)
        return m
