"""The steps of gathered GEMM commands: window addresses, banked ACT reads and weights.

:class:`GatheredSteps` is the operand side of a ``CONV`` command (ISA version 3): the
:class:`~tessera.hw.window.WindowAddressGenerator` makes each step's per-lane requests, the
:class:`~tessera.hw.gather.GatherArbiter` reads them from the banked ACT, and the weights are
read from ``WGT[w_addr + i]`` for step *i* (operand 0 only matters for one-column kinds; an
average pool's weight is 1, a max pool ignores it). The result is what
:class:`~tessera.hw.array.MacArray` takes: ``a``, ``w``, ``step``, ``clear`` on the command's
first step, ``maximum`` for a max pool.

Timing: a command accepted in cycle *A* has its steps' reads issued back to back from cycle
*A+2* (the generator's and the arbiter's registers), step *i* of cost ``n_i`` shown on the
array inputs ``n_i`` cycles after the previous one; ``o_last`` marks the command's last step.
The GEMM engine's hand-off rules (hw/gemm.py) are not part of this block yet.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.isa import ConvKind

from .conv_commands import conv_command
from .gather import GatherArbiter
from .window import WindowAddressGenerator, window_state

__all__ = ["GatheredSteps"]


class GatheredSteps(wiring.Component):
    """Turn gathered GEMM commands into array steps.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    window : In(window_state())
    i_cmd : In(stream.Signature(conv_command(config)))
    bank_en, bank_addr : Out
        The banked ACT's read ports (see :class:`~tessera.hw.gather.GatherArbiter`).
    bank_data : In
    wgt_en : Out(1)
    wgt_addr : Out(16)
    wgt_data : In(cols * weight_bits)
        WGT read port (data the cycle after ``wgt_en``, held otherwise).
    a, w, step, clear, maximum : Out
        The array's step inputs (:class:`~tessera.hw.array.MacArray`).
    o_last : Out(1)
        With ``step``: the command's last step.
    """

    def __init__(self, config):
        self._config = config
        arbiter = GatherArbiter(config)
        self._arbiter = arbiter
        ports = arbiter.signature.members
        super().__init__({
            "window": In(window_state()),
            "i_cmd": In(stream.Signature(conv_command(config))),
            "bank_en": Out(ports["bank_en"].shape),
            "bank_addr": Out(ports["bank_addr"].shape),
            "bank_data": In(ports["bank_data"].shape),
            "wgt_en": Out(1),
            "wgt_addr": Out(16),
            "wgt_data": In(config.cols * config.weight_bits),
            "a": Out(data.ArrayLayout(unsigned(config.input_bits), config.rows)),
            "w": Out(config.cols * config.weight_bits),
            "step": Out(1),
            "clear": Out(1),
            "maximum": Out(1),
            "o_last": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.generator = gen = WindowAddressGenerator(cfg)
        m.submodules.arbiter = arb = self._arbiter
        wiring.connect(m, gen.o_step, arb.i_step)
        m.d.comb += [
            gen.window.eq(self.window),
            arb.pad_value.eq(self.window.pad_value[:cfg.input_bits]),
            self.bank_en.eq(arb.bank_en), self.bank_addr.eq(arb.bank_addr),
            arb.bank_data.eq(self.bank_data),
        ]

        # One command at a time: the next is taken when the last step was shown.
        cmd = Signal(conv_command(cfg))
        busy = Signal()
        left = Signal(16)                 # steps still to show
        first = Signal()
        w_ptr = Signal(16)
        accept = self.i_cmd.valid & self.i_cmd.ready
        m.d.comb += [self.i_cmd.ready.eq(~busy), gen.i_cmd.payload.eq(self.i_cmd.payload.gather),
                     gen.i_cmd.valid.eq(self.i_cmd.valid & ~busy)]
        with m.If(accept):
            m.d.sync += [cmd.eq(self.i_cmd.payload), busy.eq(1), left.eq(self.i_cmd.payload.k),
                         first.eq(1), w_ptr.eq(self.i_cmd.payload.w_addr)]

        # The weights of a step: read when the arbiter takes it, held until it is shown.
        taken = arb.i_step.valid & arb.i_step.ready
        fresh = Signal()
        w_hold = Signal.like(self.wgt_data)
        m.d.comb += [self.wgt_en.eq(taken), self.wgt_addr.eq(w_ptr)]
        m.d.sync += fresh.eq(taken)
        with m.If(taken):
            m.d.sync += w_ptr.eq(w_ptr + 1)
        with m.If(fresh):
            m.d.sync += w_hold.eq(self.wgt_data)

        shown = arb.o_valid
        m.d.comb += [
            self.a.eq(arb.o_operands),
            # an average pool sums its taps: weight 1 (WGT is not read for it, docs/isa.md)
            self.w.eq(Mux(cmd.kind == ConvKind.AVERAGE_POOL, 1, w_hold)), self.step.eq(shown),
            self.clear.eq(shown & first), self.maximum.eq(cmd.kind == ConvKind.MAX_POOL),
            self.o_last.eq(shown & (left == 1)),
        ]
        with m.If(shown):
            m.d.sync += [first.eq(0), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += busy.eq(0)
        return m
