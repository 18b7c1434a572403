"""The program sequencer: runs the instructions of an ``EXEC`` payload on the Core.

The request handler (:mod:`tessera.hw.requests`) starts a program on a
:class:`ProgramSignature` port; the sequencer fetches its instructions from the payload cursor
(:class:`~tessera.hw.payload.CursorSignature`), checks each with the
:class:`~tessera.hw.decoder.InstructionDecoder`, and executes it: ``LOAD`` gathers payload
bytes into entries written through the Core's host write port, ``GEMM`` is offered to the
Core with the post state current at issue, ``POST`` sets that state, ``SYNC`` waits until the
Core is idle, ``STORE`` (always last) ends the program with the region to answer. The program
ends at the end of the payload, at a ``STORE`` or at the first instruction the decoder refuses,
and reports how on the same port. A new opcode is a case of ``EXECUTE`` here (and its checks in
:mod:`tessera.hw.decoder`).

ISA version 3 (``config.cnn``): ``WINDOW`` sets the window state (all zero at reset), whose
sizes a :class:`~tessera.hw.conv_checks.WindowChecks` derives for the checks of the following
``CONV``s (its registered status joins the decoder's at its outputs, a cycle after step 3); a
valid ``CONV`` or ``ADD`` is issued on ``o_conv``/``o_add`` (:mod:`tessera.hw.cnn_issue`) with
the window and post state at issue.

Timing (the emulator's cycle model, ``docs/architecture.md``): the payload is read one byte per
cycle; an instruction is decoded while its last (padding) bytes are read, a pipeline in
:mod:`tessera.hw.decoder` whose status is registered by the cycle after the 16th byte; when the
instruction completes in that cycle the first byte of the next one is read at the same time, so
an instruction costs 16 cycles and a ``LOAD`` one more per payload byte. A ``GEMM`` is offered
to the Core in its decode cycle and held until accepted. ``SYNC`` and the end of a program see
the Core's ``idle`` through a register: they go on one cycle after the Core went idle.
A ``CONV`` or an ``ADD`` is offered the same way as a ``GEMM``: the sequencer goes on in the cycle
the Core accepts it (for a ``CONV``, the cycle after the engine accepted its last command; an
``ADD`` at once, or the cycle after the one queued before it starts: the cycle model of
``tessera.runtime.cycles``). Both readies are registers of the Core, and with ``config.cnn``
``take`` (the cursor and the frame buffer's read enable) is one flat sum of the states' terms.
"""

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa
from tessera.spec.config import operand_range
from tessera.spec.isa import CnnOpcode, Mode, Opcode
from tessera.spec.protocol import Status

from .cnn_issue import add_issue, conv_issue
from .conv_checks import WindowChecks
from .decoder import DECODE_STEPS, HEAD_BYTES, InstructionDecoder
from .gemm import gemm_command
from .layouts import CNN_INSN_LAYOUTS, INSN_LAYOUTS
from .payload import CursorSignature, byte_count_width
from .ports import BusSignature, WriteSignature, write_width
from .window import window_state

__all__ = ["ProgramSequencer", "ProgramSignature"]


class ProgramSignature(BusSignature):
    """Start a program and learn how it ended, from the request handler's side.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    start : Out(1)
        Run the program in the payload; the cursor presents offset 0 in the next cycle.
    end : In(1)
        The program ends this cycle; ``status`` (``Status.OK`` or the error), ``error`` and
        ``store`` are valid with it.
    status : In(8)
    error : In(1)
        It ended with an error: ``offset`` and ``opcode`` locate the failing instruction (the
        ``ErrorRecord``).
    offset : In(byte_count_width(config))
    opcode : In(4)
    store : In(1)
        It ended with a ``STORE`` of ``store_count`` ACT entries from ``store_addr``.
    store_addr, store_count : In(act_depth.bit_length())
    idle : In(1)
        The Core is idle, seen a cycle late (through a register).
    settled : In(1)
        ``idle`` and no ``LOAD`` entry waiting to be written: all the program did is done.
    """

    def __init__(self, config):
        n_act = config.act_depth.bit_length()
        super().__init__({
            "start": Out(1),
            "end": In(1),
            "status": In(8),
            "error": In(1),
            "offset": In(byte_count_width(config)),
            "opcode": In(4),
            "store": In(1),
            "store_addr": In(n_act),
            "store_count": In(n_act),
            "idle": In(1),
            "settled": In(1),
        })


class ProgramSequencer(wiring.Component):
    """Fetch, check and execute the instructions of one program at a time.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    program : In(ProgramSignature(config))
        From the request handler.
    cursor : In(CursorSignature(config))
        The payload (shared with the request handler).
    take : Out(1)
        Consume the cursor's byte.
    o_cmd : Out(stream.Signature(gemm_command(config)))
        GEMM commands to the Core, with the post state current at issue.
    write : Out(WriteSignature.for_config(config))
        ``LOAD`` entries to the Core's buffers.
    core_idle : In(1)
        The Core is idle.
    o_conv : Out(stream.Signature(conv_issue(config)))
        ``cnn`` only: checked ``CONV`` instructions with the window and post state at issue.
    o_add : Out(stream.Signature(add_issue(config)))
        ``cnn`` only: checked ``ADD`` instructions with the post state at issue.
    """

    def __init__(self, config):
        self._config = config
        cnn = {"o_conv": Out(stream.Signature(conv_issue(config))),
               "o_add": Out(stream.Signature(add_issue(config)))} if config.cnn else {}
        super().__init__({
            "program": In(ProgramSignature(config)),
            "cursor": In(CursorSignature(config)),
            "take": Out(1),
            "o_cmd": Out(stream.Signature(gemm_command(config))),
            "write": Out(WriteSignature.for_config(config)),
            "core_idle": In(1),
            **cnn,
        })

    def elaborate(self, platform):
        cfg = self._config
        # Entry addresses and counts as wide as the largest buffer needs (a LOAD outside its
        # buffer is refused before they are used).
        n_entries = max(cfg.depth(b) for b in isa.Buffer).bit_length()
        m = Module()
        m.submodules.decoder = decoder = InstructionDecoder(cfg)
        program, cursor, take = self.program, self.cursor, self.take
        byte = cursor.byte

        # -- instruction register and decode --------------------------------------------------
        fetched = Signal(range(isa.INSN_BYTES + 1))
        insn_offset = Signal(len(cursor.pos))
        insn_left = Signal(len(cursor.pos))  # payload bytes after the instruction being fetched
        # The decode pipeline runs while the last DECODE_STEPS bytes (padding) are read: the
        # first HEAD_BYTES bytes are then the top of the cursor's window.
        in_fetch = Signal()
        m.d.comb += [
            decoder.head.eq(cursor.window[-HEAD_BYTES * 8:]),
            decoder.tail.eq(byte),
            decoder.left.eq(insn_left),
            decoder.step.eq(Cat(*[in_fetch & (fetched == HEAD_BYTES + i)
                                  for i in range(DECODE_STEPS)])),
        ]
        # The fields an instruction acts on are latched in `word` in the decode's first step
        # (every named field is in its head).
        word = Signal(HEAD_BYTES * 8)
        with m.If(decoder.step[0]):
            m.d.sync += word.eq(decoder.head)
        word_full = Cat(word, C(0, (isa.INSN_BYTES - HEAD_BYTES) * 8))
        gemm = INSN_LAYOUTS[Opcode.GEMM](word_full)
        post = INSN_LAYOUTS[Opcode.POST](word_full)
        store = INSN_LAYOUTS[Opcode.STORE](word_full)

        # reset state: onnx, no LUT, zero point 0, the full output range (docs/isa.md). The
        # values are kept output_bits wide: the decoder refuses a POST whose values leave the
        # output range, so the low bits of the (wider) fields are the whole value.
        out_lo, out_hi = operand_range(cfg.output_bits)
        out = signed(cfg.output_bits)
        post_state = {
            "mode": Signal(1), "lut": Signal(1), "zero_point": Signal(out),
            "lo": Signal(out, init=out_lo), "hi": Signal(out, init=out_hi),
        }
        cmd = self.o_cmd.payload
        for name in ("a_addr", "w_addr", "k", "out_addr", "param_addr", "m_rows", "n_cols",
                     "clear", "drain"):
            m.d.comb += cmd[name].eq(gemm[name])
        for name, sig in post_state.items():
            m.d.comb += cmd[name].eq(sig)
        if cfg.cnn:
            set_window = self._window_state(m, decoder, word, post_state)

        # -- LOAD: gather entry bytes, then a one-entry write stage --------------------------
        wr_width = write_width(cfg)
        n_lanes = wr_width // 8
        gather = Signal(wr_width)
        ld_index = Signal(range(n_lanes))
        ld_entry = Signal(range(n_lanes + 1))
        ld_addr = Signal(n_entries)
        ld_left = Signal(n_entries)
        ld_buffer = Signal(2)
        # ld_index == ld_entry - 1 (the byte taken next ends an entry) and ld_left == 1 (that
        # entry is the LOAD's last), kept as registers beside them: the decision to take a byte
        # drives the frame buffer's read enable and the cursor (no subtract and compare there)
        ld_last, ld_final = Signal(name="ld_last"), Signal(name="ld_final")
        # ld_index one-hot: the frame buffer's late read data meets one multiplexer per lane
        ld_lane = Signal(n_lanes, init=1)
        wr = self.write
        wr_pending = Signal()
        m.d.comb += wr.en.eq(wr_pending)
        # Preset the LOAD state from the instruction while it is decoded (whatever its opcode;
        # nothing uses ld_* between instructions), so that EXECUTE does not choose between the
        # instruction's fields and the registers.
        head_load = INSN_LAYOUTS[Opcode.LOAD](
            Cat(decoder.head, C(0, (isa.INSN_BYTES - HEAD_BYTES) * 8)))
        with m.If(decoder.step[0]):
            m.d.sync += [ld_index.eq(0), ld_lane.eq(1),
                         ld_addr.eq(head_load.addr), ld_left.eq(head_load.count),
                         ld_final.eq(head_load.count == 1), ld_buffer.eq(head_load.buffer)]
        with m.If(decoder.step[1]):
            m.d.sync += [ld_entry.eq(decoder.entry_bytes), ld_last.eq(decoder.entry_bytes == 1)]
        with m.If(wr_pending & wr.ready):
            m.d.sync += wr_pending.eq(0)

        load_can = []   # (gather_byte's `can`, for the flat `take` of a cnn configuration)

        def gather_byte():
            """Take `byte` as byte `ld_index` of the current entry; return the LOAD-done flag."""
            lanes = Cat(*(Mux(ld_lane[i], byte, gather[8 * i:8 * i + 8])
                          for i in range(n_lanes)))
            stage_free = ~wr_pending | wr.ready
            can = ~ld_last | stage_free
            load_can.append(can)
            m.d.comb += take.eq(can)
            with m.If(can):
                m.d.sync += gather.eq(lanes)
                with m.If(ld_last):
                    m.d.sync += [
                        wr.data.eq(lanes), wr.addr.eq(ld_addr),
                        wr.buffer.eq(ld_buffer), wr_pending.eq(1),
                        ld_index.eq(0), ld_lane.eq(1), ld_last.eq(ld_entry == 1),
                        ld_addr.eq(ld_addr + 1), ld_left.eq(ld_left - 1),
                        ld_final.eq(ld_left == 2),
                    ]
                with m.Else():
                    m.d.sync += [ld_index.eq(ld_index + 1), ld_lane.eq(ld_lane << 1),
                                 ld_last.eq(ld_index + 2 == ld_entry)]
            return can & ld_last & ld_final

        # -- the end of the program -----------------------------------------------------------
        m.d.comb += [program.store_addr.eq(store.addr), program.store_count.eq(store.count)]

        def end_program(status=Status.OK):
            m.d.comb += [program.end.eq(1), program.status.eq(status)]
            m.next = "IDLE"

        def end_with_error(status, offset, opcode):
            m.d.comb += [program.error.eq(1), program.offset.eq(offset),
                         program.opcode.eq(opcode)]
            end_program(status)

        def next_instruction():
            """Start the instruction at the cursor, or end the program."""
            # rest_whole == ~rest_zero & ~rest_short, one register: `take` is one gate after
            # the late `proceed`
            m.d.comb += take.eq(cursor.rest_whole)
            with m.If(cursor.rest_zero):
                end_program()
            with m.Elif(cursor.rest_short):
                end_with_error(Status.TRUNCATED, cursor.pos, byte[0:4])
            with m.Else():
                m.d.sync += [fetched.eq(1), insn_offset.eq(cursor.pos),
                             insn_left.eq(cursor.rest - isa.INSN_BYTES)]
                m.next = "FETCH"

        # An executing GEMM, POST, SYNC or NOP is done this cycle: one flat term per opcode, so
        # that the Core's late `idle` and `o_cmd.ready` meet the decisions in the last gates
        # (on the iCEBreaker the drain's busy -> idle -> opcode chain -> `rest` enable was the
        # critical path).
        # The opcode's class as flags, registered from the decoder's opcode (which is set in the
        # decode's first step, two cycles before EXECUTE, and held until the next instruction's
        # decode): no 4-bit compares between EXECUTE and its decisions.
        op_is = {op: Signal(name=f"op_is_{op.name.lower()}")
                 for op in (Opcode.LOAD, Opcode.STORE, Opcode.GEMM, Opcode.SYNC, Opcode.POST)}
        m.d.sync += [flag.eq(decoder.opcode == op) for op, flag in op_is.items()]
        # The Core's `idle` a cycle late, as a register: `core_idle` comes from the engine's and
        # the drain's state through logic, and at the head of idle -> proceed -> take -> the
        # decoder's enables it was the iCEBreaker's critical path. The Core becomes busy only
        # in the cycle after it accepts a GEMM, so the acceptance clears the copy; SYNC and the
        # end of a program (and the handler's STORE and READ answers) proceed one cycle after
        # the Core went idle.
        idle_late = Signal(init=1)
        issued = self.o_cmd.valid & self.o_cmd.ready
        if cfg.cnn:
            op_is.update({op: Signal(name=f"op_is_{op.name.lower()}")
                          for op in (CnnOpcode.WINDOW, CnnOpcode.CONV, CnnOpcode.ADD)})
            m.d.sync += [op_is[op].eq(decoder.opcode == op)
                         for op in (CnnOpcode.WINDOW, CnnOpcode.CONV, CnnOpcode.ADD)]
            issued = (issued | (self.o_conv.valid & self.o_conv.ready) |
                      (self.o_add.valid & self.o_add.ready))
        m.d.sync += idle_late.eq(self.core_idle & ~issued)
        settled = Signal()
        m.d.comb += [settled.eq(idle_late & ~wr_pending),
                     program.idle.eq(idle_late), program.settled.eq(settled)]
        proceed = Signal()
        if cfg.cnn:
            # One flat sum of registered one-hot flags (the opcodes that go on at once: POST,
            # NOP, WINDOW), not a chain of choices: the Core's readies (registers since
            # CONV_RELEASE_CYCLES and ADD_RELEASE_CYCLES; a GEMM's is the engine's) meet it in
            # the last gates.
            op_free = Signal()
            m.d.sync += op_free.eq(~decoder.opcode.matches(
                Opcode.LOAD, Opcode.STORE, Opcode.GEMM, Opcode.SYNC, CnnOpcode.CONV,
                CnnOpcode.ADD))
            m.d.comb += proceed.eq(op_free | ~wr_pending & (
                op_is[Opcode.GEMM] & self.o_cmd.ready | op_is[CnnOpcode.CONV] & self.o_conv.ready |
                op_is[CnnOpcode.ADD] & self.o_add.ready | op_is[Opcode.SYNC] & idle_late))
        else:
            m.d.comb += proceed.eq(
                Mux(op_is[Opcode.GEMM], ~wr_pending & self.o_cmd.ready,
                    Mux(op_is[Opcode.SYNC], settled, 1)))

        with m.FSM(name="sequencer") as fsm:
            with m.State("IDLE"):
                with m.If(program.start):
                    m.next = "NEXT"
            with m.State("FETCH"):
                m.d.comb += [take.eq(1), in_fetch.eq(1)]
                m.d.sync += fetched.eq(fetched + 1)
                with m.If(fetched == isa.INSN_BYTES - 1):
                    m.next = "EXECUTE"
            with m.State("EXECUTE"):
                with m.If(~decoder.ok):
                    end_with_error(decoder.status, insn_offset, decoder.opcode)
                with m.Elif(op_is[Opcode.LOAD]):
                    # ld_* were preset during the decode: the first payload byte is gathered
                    # exactly like the others
                    with m.If(gather_byte()):
                        m.next = "NEXT"
                    with m.Else():
                        m.next = "LOAD"
                with m.Elif(op_is[Opcode.STORE]):
                    m.d.comb += program.store.eq(1)
                    end_program()
                with m.Else():   # GEMM, POST, SYNC, NOP: the next instruction once `proceed`
                    with m.If(op_is[Opcode.GEMM]):
                        m.d.comb += self.o_cmd.valid.eq(~wr_pending)
                    if cfg.cnn:   # CONV, ADD: offered like a GEMM; WINDOW: the window state
                        with m.If(op_is[CnnOpcode.CONV]):
                            m.d.comb += self.o_conv.valid.eq(~wr_pending)
                        with m.If(op_is[CnnOpcode.ADD]):
                            m.d.comb += self.o_add.valid.eq(~wr_pending)
                        with m.If(op_is[CnnOpcode.WINDOW]):
                            m.d.comb += set_window.eq(1)
                    with m.If(op_is[Opcode.POST]):
                        m.d.sync += [post_state["mode"].eq(post.mode),
                                     post_state["lut"].eq(post.lut),
                                     post_state["zero_point"].eq(post.zero_point),
                                     post_state["lo"].eq(post.lo), post_state["hi"].eq(post.hi)]
                    with m.If(proceed):
                        next_instruction()
            with m.State("LOAD"):
                with m.If(gather_byte()):
                    m.next = "NEXT"
            with m.State("NEXT"):
                # the first instruction (the cursor presents offset 0), or the one after a LOAD
                next_instruction()
        if cfg.cnn:
            # `take` drives the cursor and the frame buffer's read enable: as one flat sum of
            # the states' terms (overriding the FSM's, which follow its priority of checks), the
            # Core's late readies meet it in the last gates (orangecrab-25f-cnn's 89 MHz path).
            execute = fsm.ongoing("EXECUTE") & decoder.ok
            m.d.comb += take.eq(fsm.ongoing("FETCH") |
                                (fsm.ongoing("NEXT") & cursor.rest_whole) |
                                ((fsm.ongoing("LOAD") | execute & op_is[Opcode.LOAD]) &
                                 load_can[0]) |
                                (execute & proceed & cursor.rest_whole))
        return m

    def _window_state(self, m, decoder, word, post_state):
        """Add the ISA version 3 state: the window, its checks and the CONV/ADD payloads.

        Return the signal that makes the ``WINDOW`` being executed the window (comb).
        """
        cfg = self._config
        # WINDOW's last fields are in bytes 13 and 14, read while the decode runs (the decoder
        # latches them)
        full = Cat(word, decoder.window_bytes, C(0, 8))
        fields = CNN_INSN_LAYOUTS[CnnOpcode.WINDOW](full)
        conv = CNN_INSN_LAYOUTS[CnnOpcode.CONV](full)
        add = CNN_INSN_LAYOUTS[CnnOpcode.ADD](full)

        window = Signal(window_state())            # reset: all zero (docs/isa.md)
        set_window = Signal()
        load = Signal()                            # the checks take the new window's sizes
        m.d.sync += load.eq(set_window)
        with m.If(set_window):
            m.d.sync += [window[name].eq(fields[name]) for name in window_state().members]
        m.submodules.window_checks = checks = WindowChecks(cfg)
        m.d.comb += [checks.window.eq(window), checks.load.eq(load)]
        for name in ("kind", "src", "dst", "w_addr", "param_addr"):
            m.d.comb += checks.conv[name].eq(conv[name])
        # The sizes of a WINDOW are ready within the next instruction's fetch, by its decode's
        # step 3 (REMAINDER_CYCLES + 2 <= 16 cycles after the WINDOW's EXECUTE); the checks'
        # registered status reaches the decoder's outputs in the cycle after.
        m.d.comb += [decoder.conv_status.eq(checks.status), decoder.conv_bad.eq(checks.bad),
                     decoder.post_tflite.eq(post_state["mode"] == Mode.TFLITE)]

        issue = self.o_conv.payload
        for name in ("kind", "src", "dst", "w_addr", "param_addr"):
            m.d.comb += issue.conv[name].eq(conv[name])
        m.d.comb += [issue.window.eq(window), issue.sizes.eq(checks.sizes)]
        issue_add = self.o_add.payload
        for name in ("a_addr", "b_addr", "dst", "count", "param_addr"):
            m.d.comb += issue_add[name].eq(add[name])
        for name, sig in post_state.items():
            m.d.comb += [issue.post[name].eq(sig), issue_add.post[name].eq(sig)]
        return set_window
