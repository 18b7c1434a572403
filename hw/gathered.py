"""The steps of gathered GEMM commands: window addresses, banked ACT reads and weights.

:class:`GatheredSteps` is the operand side of a ``CONV`` command (ISA version 3): the
:class:`~tessera.hw.window.WindowAddressGenerator` makes each step's per-lane requests, the
:class:`~tessera.hw.gather.GatherArbiter` reads them from the banked ACT, and the weights are
read from ``WGT[w_addr + i]`` for step *i* (operand 0 only matters for one-column kinds; an
average pool's weight is 1, a max pool ignores it). The result is what
:class:`~tessera.hw.array.MacArray` takes: ``a``, ``w``, ``step``, ``clear`` on the command's
first step, ``maximum`` for a max pool.

Timing (hw/gemm.py's, with gathered steps): a command started in cycle *A* (``start``, the
engine's acceptance) has its reads decided from *A+1*, back to back, step *i* of cost ``n_i``
shown on the array inputs ``n_i`` cycles after the previous one, the first at *A+1+n_0+P*
(``P`` = :data:`~tessera.spec.timing.GATHER_PIPELINE_CYCLES`, the registered requests and data
of :class:`~tessera.hw.gather.GatherArbiter`; the weights of a step are read from registers the
cycle after the arbiter takes it and registered beside WGT likewise): its last step is shown at
*A+1+Σn+P* and accumulated by *A+Σn+P+3*, so the hand-off is at *A + Σn + GEMM_OVERHEAD_CYCLES
+ P*, the emulator's compute cycles of a gathered command.
``o_last`` marks the command's last step. The engine's hand-off itself is not part of this
block yet.

The generator hands its steps to the arbiter through a skid register (issue #15): the
generator's ``o_step.ready`` is the register "the skid is empty", so the step acceptance that
enables the generator's registers never waits on the arbiter's ``i_step.ready`` or the engine's
acceptance. The arbiter is offered the skid's step, or the generator's own while the skid is
empty, so a step reaches the arbiter in the cycle the generator offers it, as with the two
connected directly: no cycle of the model changes. The generator takes the next command only
once the arbiter has taken this one's last step, as before. The arbiter's ``i_step.valid`` is
``start`` or "started and not all taken" alone: a started command always has its next step at
the head (and ``start`` comes only when its first is offered).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.isa import ConvKind

from .conv_commands import conv_command
from .gather import GatherArbiter
from .pool import TAPS_BITS
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
    src : In(16)
        The ``CONV``'s ``src``, held with the window.
    load : In(1)
        Set the generator up for the window and ``src`` (held from this cycle on), while no
        command is in flight: :class:`~tessera.hw.window.WindowAddressGenerator`.
    i_cmd : In(stream.Signature(conv_command(config)))
        Taken when the generator is set up and free, from the cycle after the arbiter took the
        previous command's last step (during that command's last steps).
    start : In(1)
        The GEMM engine accepts the command taken last (cycle *A*); at most once per command,
        after its previous command's last step was shown, and when the command's first step is
        offered (the cycle after it was taken, two after for a next-tile command: in a
        ``CONV`` the engine's acceptances are further apart).
    bank_en, bank_addr : Out
        The banked ACT's read ports (see :class:`~tessera.hw.gather.GatherArbiter`).
    bank_data : In
    wgt_en : Out(1)
    wgt_addr : Out(16)
        Registers: WGT reads ``wgt_addr`` this cycle.
    wgt_data : In(cols * weight_bits)
        WGT read port (data the cycle after ``wgt_en``).
    a, w, step, clear, maximum : Out
        The array's step inputs (:class:`~tessera.hw.array.MacArray`).
    o_last : Out(1)
        With ``step``: the command's last step.
    taps : Out(ArrayLayout(unsigned(TAPS_BITS), rows))
        With ``o_last``: each lane's steps that read the input (not padding), an average pool's
        divisor (``tessera.runtime.conv.pool_taps``).
    """

    def __init__(self, config):
        self._config = config
        arbiter = GatherArbiter(config)
        self._arbiter = arbiter
        ports = arbiter.signature.members
        super().__init__({
            "window": In(window_state()),
            "src": In(16),
            "load": In(1),
            "i_cmd": In(stream.Signature(conv_command(config))),
            "start": In(1),
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
            "taps": Out(data.ArrayLayout(unsigned(TAPS_BITS), config.rows)),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.generator = gen = WindowAddressGenerator(cfg)
        m.submodules.arbiter = arb = self._arbiter
        m.d.comb += [
            gen.window.eq(self.window), gen.src.eq(self.src), gen.load.eq(self.load),
            arb.pad_value.eq(self.window.pad_value[:cfg.input_bits]),
            self.bank_en.eq(arb.bank_en), self.bank_addr.eq(arb.bank_addr),
            arb.bank_data.eq(self.bank_data),
        ]

        # The hand-off from the generator to the arbiter: a skid register. The generator's
        # `o_step.ready` is the register "the skid is empty", so the step acceptance that
        # enables its registers (726 of them at 8 lanes, 1,385 at 16) never sees the arbiter's
        # ready or the engine's acceptance (issue #15). The arbiter's head is the skid's step, or,
        # while it is empty, the generator's own (passed through, so that a step reaches the
        # arbiter in the cycle it is offered, as without the skid: no cycle changes); a head
        # step the arbiter does not take stays in the skid (written whenever it is empty,
        # from registers only) and the generator waits on the next one. With the arbiter's
        # step register this is a two-register skid buffer.
        skid = Signal.like(gen.o_step.payload)
        full = Signal()                             # the skid holds the head step
        head_valid = full | gen.o_step.valid
        m.d.comb += [gen.o_step.ready.eq(~full),
                     arb.i_step.payload.eq(Mux(full, skid, gen.o_step.payload))]
        with m.If(~full):
            m.d.sync += skid.eq(gen.o_step.payload)

        # A command is taken by the generator as soon as it is free (its first step waits in
        # the skid), and started by `start` (the engine's acceptance, cycle A): its first step
        # goes to the arbiter in that cycle, so its reads are decided from A+1 as a plain GEMM's
        # are issued (and reach the banks a cycle later, hw/gather.py).
        # `allowed` covers the command's steps until its last is taken.
        nxt = Signal(conv_command(cfg))             # the command the generator works on
        # The generator runs ahead of the arbiter by the skid's step: it takes the next
        # command only when the arbiter has taken this one's last step (`owed`, a register),
        # the cycle after, as without the skid.
        owed = Signal()
        m.d.comb += [gen.i_cmd.payload.gather.eq(self.i_cmd.payload.gather),
                     gen.i_cmd.payload.m_rows.eq(self.i_cmd.payload.m_rows),
                     gen.i_cmd.valid.eq(self.i_cmd.valid & ~owed),
                     self.i_cmd.ready.eq(gen.i_cmd.ready & ~owed)]
        # The step and weight counters are loaded when the generator takes the command (after
        # the previous command's last step was taken), so that `start` only enables.
        to_take = Signal(16)                        # steps of the command not taken
        w_ptr = Signal(16)                          # the WGT address of its next step
        taken = arb.i_step.valid & arb.i_step.ready
        m.d.sync += full.eq(head_valid & ~taken)
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += [nxt.eq(self.i_cmd.payload), to_take.eq(self.i_cmd.payload.k),
                         w_ptr.eq(self.i_cmd.payload.w_addr), owed.eq(1)]
        # The head holds a step of the command whenever `allowed` (one is offered from the
        # generator's first step on, the next one in the cycle after each taken, until the last
        # is taken) and at `start` (the engine accepts only when the first step is offered), so
        # the arbiter's `valid` needs no `head_valid`: the late acceptance meets no more terms
        # than `allowed` and `start`.
        allowed = Signal()
        m.d.comb += arb.i_step.valid.eq(allowed | self.start)
        with m.If(self.start):
            m.d.sync += allowed.eq(1)
        with m.If(taken):
            m.d.sync += [to_take.eq(to_take - 1), w_ptr.eq(w_ptr + 1)]
            with m.If(to_take == 1):
                m.d.sync += [allowed.eq(0), owed.eq(0)]

        # Each lane's in-bounds steps, counted the cycle after the arbiter takes them (the last
        # is taken at least two cycles before it is shown); the start cycle takes the first.
        counted = Signal(cfg.rows)
        restart = Signal()
        m.d.sync += [counted.eq(Cat(taken & ~arb.i_step.payload[r].pad for r in range(cfg.rows))),
                     restart.eq(self.start)]
        for r in range(cfg.rows):
            m.d.sync += self.taps[r].eq(Mux(restart, 0, self.taps[r]) + counted[r])

        # The shown side: latched at the start (the previous command's last step was shown
        # before its hand-off, so before this start).
        kind = Signal.like(nxt.kind)
        left = Signal(16)                           # steps still to show
        first = Signal()
        with m.If(self.start):
            m.d.sync += [kind.eq(nxt.kind), left.eq(nxt.k), first.eq(1)]

        # The weights of a step: read from registers the cycle after the arbiter takes it, the
        # data registered beside WGT (`w_q`), then held until the step is shown (the next step's
        # weights reach `w_hold` only after: they are taken n >= 1 cycles later).
        fresh = Signal(3)                           # taken, read, data registered
        w_q = Signal.like(self.wgt_data)
        w_hold = Signal.like(self.wgt_data)
        m.d.sync += [self.wgt_en.eq(taken), self.wgt_addr.eq(w_ptr), w_q.eq(self.wgt_data),
                     fresh.eq(Cat(taken, fresh[:2]))]
        with m.If(fresh[2]):
            m.d.sync += w_hold.eq(w_q)

        shown = arb.o_valid
        m.d.comb += [
            self.a.eq(arb.o_operands),
            # an average pool sums its taps: weight 1 (WGT is not read for it, docs/isa.md)
            self.w.eq(Mux(kind == ConvKind.AVERAGE_POOL, 1, w_hold)), self.step.eq(shown),
            self.clear.eq(shown & first), self.maximum.eq(kind == ConvKind.MAX_POOL),
            self.o_last.eq(shown & (left == 1)),
        ]
        with m.If(shown):
            m.d.sync += [first.eq(0), left.eq(left - 1)]
        return m
