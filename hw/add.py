"""The element-wise ``ADD`` of ISA version 3 on the drain's tflite requant, three passes each.

docs/isa.md ("``ADD``"): for every operand pair ``(a, b)``, with the three PARAM entries
``p_a, p_b, p_y`` and the post state's ``zero_point``, ``lo``, ``hi``::

    s = MBQM((a + p_a.bias) << 20, p_a) + MBQM((b + p_b.bias) << 20, p_b)
    y = clamp(MBQM(wrap32(s), p_y) + zero_point, lo, hi)

(``MBQM`` is TFLite's ``MultiplyByQuantizedMultiplier``; ``tessera.runtime.conv.run_add``.)
An ``ADD`` runs only while the drain unit is free, so :class:`AddUnit` has no requant of its own:
it runs the three ``MBQM`` on the PostProcessor's
(:class:`~tessera.hw.postproc.SharedRequantSignature`), whose stage 0 forms ``(a + bias) << 20``
as ``(a << 20) + (bias << 20)`` (modulo 2^32), in a fixed rotation of three passes, one per
advance of that pipeline: the input pass of ``a`` of element *i*, the input pass of ``b`` of
element *i*, the output pass of element *i − 2* (its input results are summed by then). The
input passes take the unsaturated int32 result (``rounded``), the output pass the saturated one:
saturating to int16 before the zero point and the 8-bit clamp changes nothing
(hw/requant_onnx.py).

Timing: everything moves with the pipeline's advances. Without an iterative product
(``requant_cycles = 1``) the pipeline advances every cycle, so an element is taken every
:data:`~tessera.spec.timing.ADD_PASSES` cycles and an element accepted in cycle *T* has its
result on ``o_value`` (``o_valid``) in cycle *T +* :attr:`AddUnit.latency`. With
``requant_cycles = q > 1`` each pass the product works on holds the pipeline ``q - 1`` cycles:
a stream of elements costs ``ADD_PASSES * q`` cycles each, and the passes that are not there
(the output passes of the first two elements, the input passes after the last) one cycle each,
so an ``ADD`` of ``n`` elements per unit ends ``ADD_PASSES * q * n +`` a constant after its
first acceptance (hw/add_stream.py).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import ADD_PASSES

from .layouts import PARAM_ENTRY
from .postproc import SharedRequantSignature
from .requant_tflite import TfliteRequant

__all__ = ["AddUnit", "ADD_LEFT_SHIFT"]

#: TFLite's int8 ADD scales both inputs by 2^20 before their multipliers (``add.cc``).
ADD_LEFT_SHIFT = 20

# The pass kinds travelling beside the pipeline.
_NONE, _PASS_A, _PASS_B, _PASS_OUT = range(4)


class AddUnit(wiring.Component):
    """TFLite's int8 ``ADD`` of operand pairs on a lent requant, one pair per three passes.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
        ``input_bits`` (8 with ``cnn``), ``output_bits``, ``acc_bits``.

    Members
    -------
    params : In(ArrayLayout(PARAM_ENTRY, 3))
        ``p_a``, ``p_b``, ``p_y`` (held while elements run).
    zero_point, lo, hi : In(signed(output_bits))
        The post state (held).
    i_elem : In(stream.Signature(StructLayout({"a": signed(input_bits), "b": ...})))
        Operand pairs; ready in the first advance of each rotation.
    sel : In(1)
        An ``ADD`` has the drain unit (a register, high from before the first pass until after
        the last): passed on as ``requant.sel``.
    requant : Out(SharedRequantSignature(config))
        The PostProcessor's requant (hw/postproc.py).
    o_valid : Out(1)
    o_value : Out(signed(output_bits))
    """

    #: Cycles from an element's acceptance to its result when the pipeline advances every
    #: cycle (``requant_cycles = 1``): the output pass is taken in the third advance of the
    #: rotation after the ``b`` pass's unsaturated result (advance 8), then stage 0, the
    #: requant and the zero point and clamp register.
    latency = 2 * ADD_PASSES + 2 + 1 + TfliteRequant.latency + 1

    def __init__(self, config):
        self._config = config
        bits = config.input_bits
        out = signed(config.output_bits)
        super().__init__({
            "params": In(data.ArrayLayout(PARAM_ENTRY, 3)),
            "zero_point": In(out), "lo": In(out), "hi": In(out),
            "i_elem": In(stream.Signature(data.StructLayout({"a": signed(bits),
                                                             "b": signed(bits)}))),
            "requant": Out(SharedRequantSignature(config)),
            "sel": In(1),
            "o_valid": Out(1),
            "o_value": Out(out),
        })

    def elaborate(self, platform):
        m = Module()
        requant = self.requant
        advance = requant.advance

        phase = Signal(range(ADD_PASSES))       # the rotation: pass a, pass b, output pass
        with m.If(advance):
            m.d.sync += phase.eq(Mux(phase == ADD_PASSES - 1, 0, phase + 1))
        m.d.comb += self.i_elem.ready.eq((phase == 0) & advance)

        b_operand = Signal(signed(self._config.input_bits))
        b_valid = Signal()
        accept = self.i_elem.valid & self.i_elem.ready
        with m.If(advance):
            m.d.sync += b_valid.eq(accept)
        with m.If(accept):
            m.d.sync += b_operand.eq(self.i_elem.payload.b)

        sum_value = Signal(signed(32))          # wrap32(s) of the element waiting for its pass
        sum_valid = Signal()
        first = Signal(signed(32))
        p_a, p_b, p_y = self.params[0], self.params[1], self.params[2]

        # The pass presented in this cycle (taken if the pipeline advances): its operands chosen
        # by the phase alone (a register), whether it is there by the phase and the operands'
        # validity. (operand + bias) << 20 modulo 2^32 is summed by stage 0.
        kind = Signal(2)
        m.d.comb += requant.sel.eq(self.sel)
        with m.Switch(phase):
            with m.Case(0):
                m.d.comb += [requant.acc.eq(self.i_elem.payload.a << ADD_LEFT_SHIFT),
                             requant.param.bias.eq(p_a.bias << ADD_LEFT_SHIFT),
                             requant.param.multiplier.eq(p_a.multiplier),
                             requant.param.shift.eq(p_a.shift),
                             kind.eq(Mux(self.i_elem.valid, _PASS_A, _NONE))]
            with m.Case(1):
                m.d.comb += [requant.acc.eq(b_operand << ADD_LEFT_SHIFT),
                             requant.param.bias.eq(p_b.bias << ADD_LEFT_SHIFT),
                             requant.param.multiplier.eq(p_b.multiplier),
                             requant.param.shift.eq(p_b.shift),
                             kind.eq(Mux(b_valid, _PASS_B, _NONE))]
            with m.Default():
                m.d.comb += [requant.acc.eq(sum_value),
                             requant.param.multiplier.eq(p_y.multiplier),
                             requant.param.shift.eq(p_y.shift),
                             kind.eq(Mux(sum_valid, _PASS_OUT, _NONE))]
        with m.If(advance & (kind == _PASS_OUT)):
            m.d.sync += sum_valid.eq(0)
        m.d.comb += requant.valid.eq(kind != _NONE)

        # kinds[j]: the pass in stage j of the PostProcessor (stage 0 its input register).
        stages = 1 + TfliteRequant.latency
        kinds = [Signal(2, name=f"pass_{j}") for j in range(stages)]
        with m.If(advance):
            m.d.sync += [kinds[0].eq(kind), *(kinds[j].eq(kinds[j - 1])
                                              for j in range(1, stages))]
        rounded_stage = 1 + TfliteRequant.rounded_latency - 1
        with m.If(advance & (kinds[rounded_stage] == _PASS_A)):
            m.d.sync += first.eq(requant.rounded)
        with m.If(advance & (kinds[rounded_stage] == _PASS_B)):
            m.d.sync += [sum_value.eq((first + requant.rounded)[:32]), sum_valid.eq(1)]

        # The output pass's saturated result is in the last stage from the cycle after the
        # advance that moved it there.
        arrived = Signal()
        m.d.sync += arrived.eq(advance & (kinds[stages - 2] == _PASS_OUT))
        value = Signal(signed(len(requant.result) + 2))
        m.d.comb += value.eq(requant.result + self.zero_point)
        done = Signal()
        m.d.sync += done.eq(arrived)
        with m.If(arrived):
            m.d.sync += self.o_value.eq(Mux(value < self.lo, self.lo,
                                            Mux(value > self.hi, self.hi, value)))
        m.d.comb += self.o_valid.eq(done)
        return m
