"""The GEMM engine: reads the operands of one ``GEMM`` command and steps the MAC array.

A command is accepted in cycle *T* (``i_cmd`` transfer) and occupies the array for exactly
``k + GEMM_OVERHEAD_CYCLES`` cycles, *T+1 ... T+k+4*:

==============  ==========================================================================
cycle           what happens
==============  ==========================================================================
T               ``i_cmd`` transfer; the command is latched (not counted as compute)
T+1 ... T+k     read ``ACT[a_addr+i]`` and ``WGT[w_addr+i]`` for ``i = 0 ... k-1``
T+2 ... T+k+1   read data valid: step ``i`` presented to the array (``clear`` on step 0)
T+3 ... T+k+2   the array multiplies step ``i`` (``events.macs = m_rows*n_cols``)
T+4 ... T+k+3   the array accumulates step ``i``
T+k+4           hand-off: with ``drain``, the accumulators are copied to the shadow and
                the drain starts (``o_drain`` transfer); a new command may be accepted
==============  ==========================================================================

``events.compute`` is high in the ``k + 4`` cycles T+1 ... T+k+4. If the drain is still busy
with the previous tile at T+k+4, the hand-off waits: each waiting cycle has ``events.stall`` high
and ``events.compute`` low, and the cycle in which the hand-off finally happens counts as
compute. The next command is accepted in the hand-off cycle at the earliest, so back-to-back
GEMMs keep the array busy except for the 4 overhead cycles of each.
"""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import AcceleratorConfig, BitLayout, Field, isa
from tessera.spec.timing import GEMM_OVERHEAD_CYCLES

from .array import MacArray
from .counters import EventSignature
from .layouts import struct_layout
from .pool import TAPS_BITS
from .shift_add import narrow_product

__all__ = ["GEMM_COMMAND", "DRAIN_COMMAND", "POST_STATE", "GemmEngine", "gemm_command",
           "engine_command", "drain_command"]


def _fields(opcode, names):
    layout = isa.LAYOUTS[opcode]
    return tuple(layout.field(name) for name in names)


POST_STATE = ("mode", "lut", "zero_point", "lo", "hi")


def _post_state(config):
    # mode and lut as POST declares them; zero_point, lo and hi narrowed to the output width
    # (the decoder refuses POST values outside the output range, so nothing is lost).
    return _fields(isa.Opcode.POST, ("mode", "lut")) + tuple(
        Field(name, config.output_bits, signed=True) for name in ("zero_point", "lo", "hi"))


def gemm_command(config) -> data.StructLayout:
    """Return the layout of one GEMM command as the executor hands it to the core.

    The ``GEMM`` instruction's fields (declared in :mod:`tessera.spec.isa`) plus the post state
    captured at issue, whose ``zero_point``, ``lo`` and ``hi`` are ``config.output_bits`` wide.
    """
    return struct_layout(BitLayout("GemmCommand", _fields(isa.Opcode.GEMM, (
        "a_addr", "w_addr", "k", "out_addr", "param_addr", "m_rows", "n_cols", "clear", "drain",
    )) + _post_state(config)))


def engine_command(config) -> data.StructLayout:
    """Return the layout of one command as the GEMM engine takes it.

    :func:`gemm_command`; with ``config.cnn`` also ``gathered`` (a ``CONV`` command: the steps
    come from :class:`~tessera.hw.gathered.GatheredSteps`, ``a_addr`` and ``w_addr`` unused) and
    the ``CONV`` ``kind`` (:class:`tessera.spec.isa.ConvKind`; 0 for a plain ``GEMM``).
    """
    command = gemm_command(config)
    if not config.cnn:
        return command
    return data.StructLayout({**{name: command[name].shape for name in command.members},
                              "gathered": unsigned(1), "kind": unsigned(2)})


def drain_command(config) -> data.StructLayout:
    """Return the layout of what the GEMM engine hands to the drain with the accumulators.

    Where the tile goes, its parameters and post state, and ``elements = m_rows * n_cols``; with
    ``config.cnn`` also the ``CONV`` ``kind`` (pools drain through the
    :class:`~tessera.hw.pool_post.PoolPostProcessor`) and each row's in-bounds ``taps`` (an
    average pool's divisors).
    """
    command = gemm_command(config)
    cnn = {"kind": unsigned(2),
           "taps": data.ArrayLayout(unsigned(TAPS_BITS), config.rows)} if config.cnn else {}
    return data.StructLayout({
        **{name: command[name].shape for name in ("out_addr", "param_addr", "m_rows", "n_cols")},
        "elements": unsigned(16),
        **{name: command[name].shape for name in POST_STATE},
        **cnn,
    })


#: :func:`gemm_command` and :func:`drain_command` of a configuration with 8-bit outputs.
GEMM_COMMAND = gemm_command(AcceleratorConfig())
DRAIN_COMMAND = drain_command(AcceleratorConfig())

# Cycles between the last operand read and the hand-off cycle: the read itself, then the
# array's operand and product registers (MacArray.latency counts from the read data to the
# accumulators).
_FLUSH_CYCLES = MacArray.latency


class GemmEngine(wiring.Component):
    """Operand fetch and array sequencing for GEMM commands.

    Parameters
    ----------
    config : AcceleratorConfig
        Gives the array shape, the operand widths and the ACT/WGT depths (address widths).

    Members
    -------
    i_cmd : In(stream.Signature(engine_command(config)))
        Commands; ready in idle or in the hand-off cycle of the running command.
    o_drain : Out(stream.Signature(drain_command(config)))
        Hand-off to the drain; valid in the hand-off cycle of a command with ``drain``.
    act_addr, act_data : Out(range(act_depth)), In(rows*input_bits)
        ACT read port (synchronous: data the cycle after the address); operand *r* is
        ``act_data[r*input_bits:(r+1)*input_bits]`` (the packing of
        :func:`tessera.spec.config.pack_operands`).
    act_reading : Out(1)
        ``act_addr`` is in use (the core gives the ACT read port to the host otherwise).
    wgt_addr, wgt_data : Out(range(weight_depth)), In(cols*weight_bits)
        WGT read port; weight *c* is ``wgt_data[c*weight_bits:(c+1)*weight_bits]``.
    step, clear, a, w, shadow_load : Out
        Array controls (see :class:`~tessera.hw.array.MacArray`).
    busy : Out(1)
        A command is running or handing off to the drain (low in the hand-off cycle of a
        command without ``drain``: its accumulators are final then).
    events : Out(EventSignature(config))
        Counter events of this cycle (``compute``, ``stall``, ``macs``).
    g_step, g_last : In(1)
        Only with ``config.cnn``: a gathered command's step is shown to the array (its
        ``events.macs`` follow a cycle later), and it is the command's last. A gathered command
        reads nothing itself: it runs until ``g_last``, then flushes and hands off as a ``GEMM``
        does (hand-off three cycles after the last step is shown), so its compute cycles are
        its step cycles plus ``GEMM_OVERHEAD_CYCLES`` (hw/gathered.py).
    taps : In(ArrayLayout(TAPS_BITS, rows))
        Only with ``config.cnn``: passed to ``o_drain`` (GatheredSteps' tap counts, stable until
        the next command starts).
    act_issue : Out(1)
        Only with ``config.cnn``: an operand read is issued this cycle (``act_addr``,
        ``wgt_addr``): a single-port ACT or WGT must read then.
    """

    def __init__(self, config):
        self._config = config
        rows, cols = config.rows, config.cols
        super().__init__({
            "i_cmd": In(stream.Signature(engine_command(config))),
            "o_drain": Out(stream.Signature(drain_command(config))),
            "act_addr": Out(range(config.act_depth)),
            "act_data": In(rows * config.input_bits),
            "act_reading": Out(1),
            "wgt_addr": Out(range(config.weight_depth)),
            "wgt_data": In(cols * config.weight_bits),
            "step": Out(1),
            "clear": Out(1),
            "a": Out(data.ArrayLayout(unsigned(config.input_bits), rows)),
            "w": Out(data.ArrayLayout(unsigned(config.weight_bits), cols)),
            "shadow_load": Out(1),
            "busy": Out(1),
            "events": Out(EventSignature(config)),
            **({"g_step": In(1), "g_last": In(1),
                "taps": In(data.ArrayLayout(unsigned(TAPS_BITS), rows)),
                "act_issue": Out(1)} if config.cnn else {}),
        })

    def elaborate(self, platform):
        assert GEMM_OVERHEAD_CYCLES == _FLUSH_CYCLES + 1, \
            "tessera.spec.timing.GEMM_OVERHEAD_CYCLES does not describe this engine"
        m = Module()
        config = self._config
        rows, cols = config.rows, config.cols

        cmd = Signal(engine_command(config))
        macs_per_step = Signal(range(rows * cols + 1))
        a_ptr = Signal(16)
        w_ptr = Signal(16)
        left = Signal(16)                       # operand reads still to issue
        flush = Signal(range(_FLUSH_CYCLES))    # cycles after the last read, minus one
        first = Signal()                        # the next read is step 0

        # Pipeline of the steps: read issued (cycle t) -> data valid (t+1) -> multiplied (t+2,
        # counted as the step's MACs) -> accumulated (t+3, in the array).
        issue = Signal()
        data_valid = Signal()
        data_first = Signal()
        mac_valid = Signal()
        m.d.sync += [data_valid.eq(issue), data_first.eq(issue & first)]
        if config.cnn:
            # a gathered step shown this cycle is multiplied in the next, as a read one
            m.d.sync += mac_valid.eq(data_valid | self.g_step)
            waiting = Signal()                  # a gathered command's last step not shown yet
        else:
            m.d.sync += mac_valid.eq(data_valid)

        m.d.comb += [
            self.act_addr.eq(a_ptr),
            self.wgt_addr.eq(w_ptr),
            self.a.as_value().eq(self.act_data),
            self.w.as_value().eq(self.wgt_data),
            self.step.eq(data_valid),
            self.clear.eq(data_first & cmd.clear),
            self.events.macs.eq(Mux(mac_valid, macs_per_step, 0)),
        ]

        drain_payload = self.o_drain.payload
        for name in ("out_addr", "param_addr", "m_rows", "n_cols", "mode", "lut", "zero_point",
                     "lo", "hi"):
            m.d.comb += getattr(drain_payload, name).eq(getattr(cmd, name))
        lanes = config.drain_lanes
        if lanes == 1:
            m.d.comb += drain_payload.elements.eq(macs_per_step)
        else:
            # the drain's issue slots, ceil(m_rows / drain_lanes) * n_cols (power-of-two lanes)
            slots = Signal(range(rows * cols + 1))
            m.d.comb += drain_payload.elements.eq(slots)
            with m.If(self.i_cmd.valid & self.i_cmd.ready):
                p = self.i_cmd.payload
                m_rows = p.m_rows[:max(1, rows.bit_length())]
                groups = ((m_rows - 1) >> (lanes.bit_length() - 1)) + 1
                m.d.sync += slots.eq(narrow_product(groups, p.n_cols[:max(1, cols.bit_length())]))
        if config.cnn:
            m.d.comb += [drain_payload.kind.eq(cmd.kind), drain_payload.taps.eq(self.taps),
                         self.act_issue.eq(issue)]

        accept = Signal()
        m.d.comb += accept.eq(self.i_cmd.valid & self.i_cmd.ready)
        with m.If(accept):
            payload = self.i_cmd.payload
            # m_rows <= rows and n_cols <= cols (validated by the executor): narrow the product.
            m_rows = payload.m_rows[:max(1, rows.bit_length())]
            n_cols = payload.n_cols[:max(1, cols.bit_length())]
            m.d.sync += [
                cmd.eq(payload),
                # (cnn: no MULT18X18D for a product of a few bits; dense RTLIL unchanged)
                macs_per_step.eq(narrow_product(m_rows, n_cols) if config.cnn
                                 else m_rows * n_cols),
                a_ptr.eq(payload.a_addr),
                w_ptr.eq(payload.w_addr),
                left.eq(payload.k),
                flush.eq(_FLUSH_CYCLES - 1),
                first.eq(1),
            ]
            if config.cnn:
                # A gathered command reads nothing here: it waits for its last step to be
                # shown, then for the two cycles of the array's registers.
                with m.If(payload.gathered):
                    m.d.sync += [left.eq(0), waiting.eq(1), flush.eq(_FLUSH_CYCLES - 2)]

        with m.FSM(name="engine"):
            with m.State("IDLE"):
                m.d.comb += self.i_cmd.ready.eq(1)
                with m.If(accept):
                    m.next = "RUN"

            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.events.compute.eq(1), self.act_reading.eq(1)]
                with m.If(left != 0):
                    m.d.comb += issue.eq(1)
                    m.d.sync += [
                        a_ptr.eq(a_ptr + 1), w_ptr.eq(w_ptr + 1), left.eq(left - 1),
                        first.eq(0),
                    ]
                if config.cnn:
                    with m.Elif(waiting):
                        with m.If(self.g_last):
                            m.d.sync += waiting.eq(0)
                with m.Elif(flush != 0):
                    m.d.sync += flush.eq(flush - 1)
                with m.Else():
                    m.next = "HANDOFF"

            with m.State("HANDOFF"):
                done = Signal()
                m.d.comb += [
                    # Without drain the tile is final in this cycle: nothing is pending any more.
                    self.busy.eq(cmd.drain),
                    self.o_drain.valid.eq(cmd.drain),
                    done.eq(~cmd.drain | self.o_drain.ready),
                    self.shadow_load.eq(cmd.drain & self.o_drain.ready),
                    self.events.compute.eq(done),
                    self.events.stall.eq(~done),
                    self.i_cmd.ready.eq(done),
                ]
                with m.If(accept):
                    m.next = "RUN"
                with m.Elif(done):
                    m.next = "IDLE"
        return m
