"""The Core's front end of ``CONV``: from the issued instruction to the engine's commands.

An issued ``CONV`` (:func:`~tessera.hw.cnn_issue.conv_issue`: its fields, the window state and
the post state) goes to the :class:`~tessera.hw.conv_commands.ConvCommandSequencer`, whose
commands are taken one at a time by :class:`~tessera.hw.gathered.GatheredSteps` (which reads
their steps from the banked ACT and WGT) and offered to the GEMM engine as gathered commands
(:func:`~tessera.hw.gemm.engine_command`, with ``clear``, ``drain`` and the post state); the
engine's acceptance starts the gather's steps.

Handshake with the program sequencer (the cycle model's "the executor goes on after the last
command is accepted"): the payload of ``i_conv`` is taken in the first cycle ``i_conv.valid``
is seen (the sequencer holds it), and ``i_conv.ready`` (a register) rises in the cycle after
the engine accepted the ``CONV``'s last command
(:data:`~tessera.spec.timing.CONV_RELEASE_CYCLES`).

The window state is kept twice: the command sequencer's copy (with the window's sizes) changes
when a ``CONV`` is taken (cycle *V*); the gather's copy, with ``src``, in the first cycle *Y* from
*V* on in which the gather has nothing in flight (the cycle after the previous ``CONV``'s last
step was shown, ``GEMM_OVERHEAD_CYCLES - 2`` before its hand-off). The window address generator
is set up from *Y+1* (:func:`~tessera.hw.window_setup.setup_cycles`), takes the first command
when it is done, and the engine can accept it in the next cycle:
:func:`~tessera.spec.timing.conv_issue_cycles` after *Y*.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import CONV_ISSUE_CYCLES, CONV_RELEASE_CYCLES, GEMM_OVERHEAD_CYCLES

from .cnn_issue import conv_issue
from .conv_commands import ConvCommandSequencer, conv_command
from .gathered import GatheredSteps
from .gemm import engine_command
from .window import window_state

__all__ = ["ConvFront"]


class ConvFront(wiring.Component):
    """Turn issued ``CONV`` instructions into the GEMM engine's gathered commands and steps.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
        A ``cnn`` configuration.

    Members
    -------
    i_conv : In(stream.Signature(conv_issue(config)))
        See the module docstring for when it is ready.
    o_cmd : Out(stream.Signature(engine_command(config)))
        Gathered commands; ``o_cmd.ready`` is the engine's acceptance (cycle *A*).
    busy : Out(1)
        A ``CONV`` is taken, or a command or a step of one is in flight before its hand-off.
    bank_en, bank_addr, bank_data, wgt_en, wgt_addr, wgt_data, a, w, step, clear, maximum,
    o_last, taps :
        :class:`~tessera.hw.gathered.GatheredSteps`'s.
    """

    def __init__(self, config):
        self._config = config
        self._steps = steps = GatheredSteps(config)
        passed = {name: steps.signature.members[name]
                  for name in ("bank_en", "bank_addr", "bank_data", "wgt_en", "wgt_addr",
                               "wgt_data", "a", "w", "step", "clear", "maximum", "o_last",
                               "taps")}
        super().__init__({
            "i_conv": In(stream.Signature(conv_issue(config))),
            "o_cmd": Out(stream.Signature(engine_command(config))),
            "busy": Out(1),
            **passed,
        })

    def elaborate(self, platform):
        assert CONV_ISSUE_CYCLES == 2, "tessera.spec.timing.CONV_ISSUE_CYCLES: see hw/conv_front.py"
        assert CONV_RELEASE_CYCLES == 1, "tessera.spec.timing.CONV_RELEASE_CYCLES"
        assert GEMM_OVERHEAD_CYCLES >= 3, "the gather goes free before the hand-off"
        cfg = self._config
        m = Module()
        m.submodules.commands = seq = ConvCommandSequencer(cfg)
        m.submodules.steps = steps = self._steps
        for name in ("bank_en", "bank_addr", "wgt_en", "wgt_addr", "a", "w", "step", "clear",
                     "maximum", "o_last", "taps"):
            m.d.comb += getattr(self, name).eq(getattr(steps, name))
        m.d.comb += [steps.bank_data.eq(self.bank_data), steps.wgt_data.eq(self.wgt_data)]

        issue = self.i_conv.payload
        taken = Signal()                  # the CONV on i_conv was given to the sequencer
        load = Signal()
        seq_window = Signal(window_state())
        seq_sizes = Signal.like(issue.sizes)
        gather_window = Signal(window_state())
        post = Signal.like(issue.post)
        m.d.comb += [
            load.eq(self.i_conv.valid & ~taken),
            seq.i_conv.valid.eq(load),
            seq.i_conv.payload.eq(issue.conv),
            seq.window.eq(seq_window),
            seq.sizes.eq(seq_sizes),
            steps.window.eq(gather_window),
        ]
        with m.If(load):
            m.d.comb += [seq.window.eq(issue.window), seq.sizes.eq(issue.sizes)]
            m.d.sync += [taken.eq(1), seq_window.eq(issue.window), seq_sizes.eq(issue.sizes),
                         post.eq(issue.post)]

        # The command GatheredSteps took and the engine has not accepted yet (at most one: the
        # gather takes the next command only after the engine started this one).
        held = Signal(conv_command(cfg))
        held_valid = Signal()
        held_last = Signal()              # it is its CONV's last command
        showing = Signal()                # a started command's last step is not shown yet
        idle_gather = ~held_valid & ~showing
        stale = Signal()                  # gather_window is not the taken CONV's window yet
        gather_src = Signal(16)
        set_up = Signal()                 # the generator's set-up starts (window, src held)
        m.d.comb += [steps.src.eq(gather_src), steps.load.eq(set_up)]
        m.d.sync += set_up.eq(0)
        with m.If(load):
            with m.If(idle_gather):
                m.d.sync += [gather_window.eq(issue.window), gather_src.eq(issue.conv.src),
                             set_up.eq(1)]
            with m.Else():
                m.d.sync += stale.eq(1)
        with m.Elif(stale & idle_gather):
            m.d.sync += [gather_window.eq(seq_window), gather_src.eq(seq.o_cmd.payload.gather.src),
                         stale.eq(0), set_up.eq(1)]

        m.d.comb += [
            steps.i_cmd.payload.eq(seq.o_cmd.payload),
            steps.i_cmd.valid.eq(seq.o_cmd.valid & ~stale),
            seq.o_cmd.ready.eq(steps.i_cmd.ready & ~stale),
        ]

        cmd = self.o_cmd.payload
        m.d.comb += [
            self.o_cmd.valid.eq(held_valid),
            cmd.gathered.eq(1), cmd.kind.eq(held.kind), cmd.k.eq(held.k),
            cmd.out_addr.eq(held.out_addr), cmd.param_addr.eq(held.param_addr),
            cmd.m_rows.eq(held.m_rows), cmd.n_cols.eq(held.n_cols),
            cmd.clear.eq(1), cmd.drain.eq(1),
            cmd.mode.eq(post.mode), cmd.lut.eq(post.lut), cmd.zero_point.eq(post.zero_point),
            cmd.lo.eq(post.lo), cmd.hi.eq(post.hi),
        ]
        accept = self.o_cmd.valid & self.o_cmd.ready
        # i_conv.ready is a register (the engine's acceptance does not reach the program
        # sequencer): up in the cycle after the CONV's last command was accepted
        released = Signal()
        m.d.sync += released.eq(accept & held_last)
        m.d.comb += [steps.start.eq(accept), self.i_conv.ready.eq(released)]
        with m.If(released):
            m.d.sync += taken.eq(0)
        with m.If(accept):
            m.d.sync += [held_valid.eq(0), showing.eq(1)]
        with m.Elif(steps.o_last):
            m.d.sync += showing.eq(0)
        # (after the acceptance, which it overrides; the generator takes the next command in the
        # cycle after the accepted one's last step was taken, at the earliest the cycle after
        # the acceptance)
        with m.If(steps.i_cmd.valid & steps.i_cmd.ready):
            # the sequencer is ready for another CONV once its last command is taken
            m.d.sync += [held.eq(seq.o_cmd.payload), held_valid.eq(1),
                         held_last.eq(seq.i_conv.ready)]
        m.d.comb += self.busy.eq(taken | held_valid | showing)
        return m
