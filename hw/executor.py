"""The executor: answers verified requests and runs ``EXEC`` programs on the Core.

It takes one received frame at a time from the :class:`~tessera.hw.link.FrameReceiver` (the
payload stays in the receiver's frame buffer until the executor releases it), acts on it and
hands one response to the :class:`~tessera.hw.link.FrameSender`. Request handling follows
``docs/protocol.md`` and the details it shares with the emulator (``tessera.runtime.emulator``):

- link errors (``BAD_CRC``, ``BAD_LENGTH``, ``BAD_KIND``), a wrong payload length for
  ``HELLO``/``COUNTERS``/``CLEAR_COUNTERS`` (empty) or ``READ`` (4 bytes) -> ``BAD_LENGTH``, and
  ``READ`` errors carry an all-zero ``ErrorRecord``;
- ``HELLO`` answers the ID record (:func:`tessera.spec.protocol.encode_id`, a constant) and
  forgets the last ``EXEC`` sequence number;
- ``EXEC`` runs the program (decode and checks: :mod:`tessera.hw.decoder`), waits until the Core
  is idle, and answers the ``STORE`` data or the error with its ``ErrorRecord``; a repeat of the
  last answered ``seq`` (error or not) is answered again without running it (the ``STORE`` region
  is re-read);
- ``READ`` waits until the Core is idle and answers ACT entries; ``COUNTERS`` reports the counters
  as they are once the request is received; ``CLEAR_COUNTERS`` clears before answering.

Timing (the emulator's cycle model, ``docs/architecture.md``): the frame buffer is read one byte
per cycle; an instruction is decoded while its last (padding) bytes are read, a pipeline in
:mod:`tessera.hw.decoder` whose status is registered by the cycle after the 16th byte; when the
instruction completes in that cycle the first byte of the next one is read at the same time, so
an instruction costs 16 cycles and a ``LOAD`` one more per payload byte. A ``GEMM`` is offered to the Core in its decode
cycle and held until accepted. ``SYNC``, ``STORE``, ``READ`` and the end of a frame see the
Core's ``idle`` through a register: they go on one cycle after the Core went idle.
"""

from amaranth.hdl import C, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tessera.spec import isa, protocol
from tessera.spec.config import operand_range
from tessera.spec.isa import Opcode
from tessera.spec.protocol import Kind, Status

from .core import gemm_command, write_width
from .decoder import DECODE_STEPS, HEAD_BYTES, InstructionDecoder, times_const
from .layouts import INSN_LAYOUTS, READ_REQUEST
from .link import FRAME_INFO, RESPONSE_HEADER

__all__ = ["Executor"]

_COUNTER_BYTES = 8   # each counter is a u64 in the COUNTERS response


class Executor(wiring.Component):
    """Request handling, program execution and responses.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    i_frame : In(stream.Signature(FRAME_INFO))
        Received frames; accepted once the payload has been used (the receiver holds it).
    buf_rd_en, buf_rd_addr : Out
        Frame-buffer read port (data valid the cycle after ``en``, held while ``en`` is low).
    buf_rd_data : In(8)
    o_resp : Out(stream.Signature(RESPONSE_HEADER))
        Response header, then ``length`` bytes on ``o_payload``.
    o_payload : Out(stream.Signature(8))
    o_cmd : Out(stream.Signature(gemm_command(config)))
        GEMM commands to the Core, with the post state current at issue.
    core_idle : In(1)
        The Core is idle (seen a cycle late, through a register).
    wr_en, wr_buffer, wr_addr, wr_data : Out
        Entry writes through the Core's host write port (one entry per ``wr_en & wr_ready``).
    wr_ready : In(1)
    rd_en, rd_addr : Out
        ACT reads through the Core's host read port (only while the Core is idle).
    rd_data : In(8*act_entry_bytes)
    counters : In(data.ArrayLayout(counter_bits, 6))
        The performance counters (``protocol.COUNTER_NAMES`` order).
    counters_clear : Out(1)
    busy : Out(1)
        A request is being handled or answered.
    """

    def __init__(self, config):
        self._config = config
        self._addr_bits = max(1, ceil_log2(config.max_payload))
        self._wr_width = write_width(config)
        super().__init__({
            "i_frame": In(stream.Signature(FRAME_INFO)),
            "buf_rd_en": Out(1),
            "buf_rd_addr": Out(self._addr_bits),
            "buf_rd_data": In(8),
            "o_resp": Out(stream.Signature(RESPONSE_HEADER)),
            "o_payload": Out(stream.Signature(8)),
            "o_cmd": Out(stream.Signature(gemm_command(config))),
            "core_idle": In(1),
            "wr_en": Out(1),
            "wr_buffer": Out(2),
            "wr_addr": Out(16),
            "wr_data": Out(self._wr_width),
            "wr_ready": In(1),
            "rd_en": Out(1),
            "rd_addr": Out(16),
            "rd_data": In(8 * config.act_entry_bytes),
            "counters": In(data.ArrayLayout(config.counter_bits, len(protocol.COUNTER_NAMES))),
            "counters_clear": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        entry_bytes = cfg.act_entry_bytes   # bytes of an ACT entry in READ/STORE responses
        # Register widths from the configuration, not the 16-bit protocol fields: frame offsets
        # and lengths (a frame longer than max_payload is refused by the receiver, a response
        # is at most max_payload bytes or a fixed record), buffer addresses and entry counts
        # (a LOAD/STORE/READ outside its buffer is refused before they are used).
        n_bytes = max(cfg.max_payload, _COUNTER_BYTES * len(protocol.COUNTER_NAMES),
                      protocol.ID_LAYOUT.nbytes).bit_length()
        n_entries = max(cfg.depth(b) for b in isa.Buffer).bit_length()
        n_act = cfg.act_depth.bit_length()
        m = Module()
        m.submodules.decoder = decoder = InstructionDecoder(cfg)

        # -- the frame being handled -------------------------------------------------------
        seq = Signal(8)
        length = Signal(n_bytes)
        held = Signal()        # the receiver's frame has not been released yet
        # What DISPATCH does with the request, decided when it is taken: one flag per action
        # (exactly one is set), so that DISPATCH's decisions are single registers (the chain
        # of checks behind the byte reader's `seek` reached `rest`/`pos`/`fetched` on the
        # iCEBreaker), and the error's status code.
        go_error = Signal()
        err_code = Signal(8)
        go = {k: Signal(name=f"go_{k.name.lower()}")
              for k in (Kind.HELLO, Kind.READ, Kind.COUNTERS, Kind.CLEAR_COUNTERS)}
        go_repeat = Signal()   # an EXEC with the last answered one's seq: answered again
        go_exec = Signal()     # a new EXEC
        read_room = Signal(signed(18))   # act_depth - addr of a READ request
        read_bad_count = Signal()        # its count is 0 or exceeds max_payload
        read_bad_addr = Signal()         # its entries run past the ACT buffer

        # -- frame-buffer byte reader: `byte` is the payload byte at offset `pos` -----------
        pos = Signal(n_bytes)
        rest = Signal(n_bytes)  # length - pos, kept as a register (no subtract in the decisions)
        # rest == 0 and rest < INSN_BYTES, kept as registers too: the decision to take the
        # next instruction drives the frame buffer's read enable (a timing path on the ECP5)
        rest_zero, rest_short = Signal(init=1), Signal(init=1)
        rest_whole = Signal()  # rest >= INSN_BYTES: an instruction can be fetched (one flag)
        byte = self.buf_rd_data
        take = Signal()        # consume `byte`; the next one is presented next cycle
        seek = Signal()        # present offset 0 next cycle
        # pos + 1 (wrapping like it), kept as a register: the read address is one multiplexer
        # after the late take/seek decisions (on the iCEBreaker an incrementer rippling
        # through LUTs behind them was the critical path)
        pos_next = Signal(n_bytes, init=1)
        m.d.comb += [
            self.buf_rd_en.eq(take | seek),
            self.buf_rd_addr.eq(Mux(seek, 0, pos_next)),
        ]
        with m.If(seek):
            m.d.sync += [pos.eq(0), pos_next.eq(1), rest.eq(length), rest_zero.eq(length == 0),
                         rest_short.eq(length < isa.INSN_BYTES),
                         rest_whole.eq(length >= isa.INSN_BYTES)]
        with m.Elif(take):
            m.d.sync += [pos.eq(pos_next), pos_next.eq(pos_next + 1), rest.eq(rest - 1),
                         rest_zero.eq(rest == 1),
                         rest_short.eq((rest != 0) & (rest <= isa.INSN_BYTES)),
                         rest_whole.eq(rest > isa.INSN_BYTES)]

        # -- instruction register and decode --------------------------------------------------
        insn = Signal(isa.INSN_BYTES * 8)
        fetched = Signal(range(isa.INSN_BYTES + 1))
        insn_offset = Signal(n_bytes)
        insn_left = Signal(n_bytes)  # frame bytes after the instruction being fetched
        # The decode pipeline runs while the last DECODE_STEPS bytes (padding) are read: the
        # first HEAD_BYTES bytes are then the top of the shift register.
        in_fetch = Signal()
        m.d.comb += [
            decoder.head.eq(insn[-HEAD_BYTES * 8:]),
            decoder.tail.eq(byte),
            decoder.left.eq(insn_left),
            decoder.step.eq(Cat(*[in_fetch & (fetched == HEAD_BYTES + i)
                                  for i in range(DECODE_STEPS)])),
        ]
        # `insn` shifts in the read-port byte every cycle (no enable on 128 flip-flops): the
        # last bytes shifted in are always the ones read last. The fields an instruction acts on
        # are latched in `word` in the decode's first step (every named field is in its head).
        m.d.sync += insn.eq(Cat(insn[8:], byte))
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

        # -- LOAD: gather entry bytes, then a one-entry write stage --------------------------
        n_lanes = self._wr_width // 8
        gather = Signal(self._wr_width)
        ld_index = Signal(range(n_lanes))
        ld_entry = Signal(range(n_lanes + 1))
        ld_addr = Signal(n_entries)
        ld_left = Signal(n_entries)
        ld_buffer = Signal(2)
        # ld_index == ld_entry - 1 (the byte taken next ends an entry) and ld_left == 1 (that
        # entry is the LOAD's last), kept as registers beside them: the decision to take a byte
        # drives the frame buffer's read enable and `rest`/`pos` (no subtract and compare there)
        ld_last, ld_final = Signal(), Signal()
        # ld_index one-hot: the frame buffer's late read data meets one multiplexer per lane
        ld_lane = Signal(n_lanes, init=1)
        wr_pending = Signal()
        m.d.comb += self.wr_en.eq(wr_pending)
        # Preset the LOAD state from the instruction while it is decoded (whatever its opcode;
        # nothing uses ld_* between instructions), so that EXECUTE does not choose between the
        # instruction's fields and the registers.
        head_load = INSN_LAYOUTS[Opcode.LOAD](Cat(decoder.head, C(0, (isa.INSN_BYTES - HEAD_BYTES) * 8)))
        with m.If(decoder.step[0]):
            m.d.sync += [ld_index.eq(0), ld_lane.eq(1),
                         ld_addr.eq(head_load.addr), ld_left.eq(head_load.count),
                         ld_final.eq(head_load.count == 1), ld_buffer.eq(head_load.buffer)]
        with m.If(decoder.step[1]):
            m.d.sync += [ld_entry.eq(decoder.entry_bytes), ld_last.eq(decoder.entry_bytes == 1)]
        with m.If(wr_pending & self.wr_ready):
            m.d.sync += wr_pending.eq(0)

        def gather_byte():
            """Take `byte` as byte `ld_index` of the current entry; return the LOAD-done flag."""
            lanes = Cat(*(Mux(ld_lane[i], byte, gather[8 * i:8 * i + 8])
                          for i in range(n_lanes)))
            stage_free = ~wr_pending | self.wr_ready
            can = ~ld_last | stage_free
            m.d.comb += take.eq(can)
            with m.If(can):
                m.d.sync += gather.eq(lanes)
                with m.If(ld_last):
                    m.d.sync += [
                        self.wr_data.eq(lanes), self.wr_addr.eq(ld_addr),
                        self.wr_buffer.eq(ld_buffer), wr_pending.eq(1),
                        ld_index.eq(0), ld_lane.eq(1), ld_last.eq(ld_entry == 1),
                        ld_addr.eq(ld_addr + 1), ld_left.eq(ld_left - 1),
                        ld_final.eq(ld_left == 2),
                    ]
                with m.Else():
                    m.d.sync += [ld_index.eq(ld_index + 1), ld_lane.eq(ld_lane << 1),
                                 ld_last.eq(ld_index + 2 == ld_entry)]
            return can & ld_last & ld_final

        # -- error and response state ----------------------------------------------------------
        status = Signal(8)
        err_offset = Signal(n_bytes)
        err_opcode = Signal(4)
        store_valid = Signal()
        store_addr = Signal(n_act)
        store_count = Signal(n_act)
        # the last EXEC answered (dedup)
        last_valid = Signal()
        last = {"seq": Signal(8), "status": Signal(8), "offset": Signal(n_bytes),
                "opcode": Signal(4), "store_valid": Signal(), "store_addr": Signal(n_act),
                "store_count": Signal(n_act)}

        # A counter is sent as a u64 but only its low `counter_bytes` are held in `vec`: the
        # other bytes are zeros sent without shifting `vec` (`pad_phase`, the byte in the u64).
        counter_bytes = min(_COUNTER_BYTES, (cfg.counter_bits + 7) // 8)
        vec_width = max(counter_bytes * 8 * len(protocol.COUNTER_NAMES),
                        protocol.ID_LAYOUT.width, protocol.ERROR_LAYOUT.width, 8 * entry_bytes)
        vec = Signal(vec_width)          # bytes to send, lowest first
        resp_counters = Signal()         # the payload is the counters (zero-padded to u64)
        pad_phase = Signal(range(_COUNTER_BYTES))
        resp_length = Signal(n_bytes)
        resp_left = Signal(n_bytes)      # payload bytes still to send
        resp_act = Signal()              # the payload is ACT entries
        act_addr = Signal(n_act)
        entry_left = Signal(range(entry_bytes + 1))
        # The ACT entry being sent, loaded from the read port with nothing in front of it (the
        # block RAM's late output crosses the die to here: no response multiplexer on the way),
        # and sent by indexing its bytes.
        entry = Signal(8 * entry_bytes)
        entry_byte = Signal(range(max(entry_bytes, 2)))
        id_record = int.from_bytes(protocol.encode_id(cfg), "little")
        counters = Cat(*(Cat(self.counters[i], C(0, 8 * counter_bytes - cfg.counter_bits))
                         for i in range(len(protocol.COUNTER_NAMES))))

        def respond_error(code):
            # An all-zero ErrorRecord: ``vec`` was zeroed in DISPATCH.
            m.d.sync += [status.eq(code), resp_length.eq(protocol.ERROR_LAYOUT.nbytes),
                         resp_act.eq(0)]
            m.next = "RESPOND"

        def record_error(code, offset, opcode):
            m.d.sync += [status.eq(code), err_offset.eq(offset), err_opcode.eq(opcode)]
            m.next = "FINISH"

        def next_instruction():
            """Start the instruction at offset ``pos``, or end the program."""
            # rest_whole == ~rest_zero & ~rest_short, one register: `take` is one gate after
            # the late `proceed`
            m.d.comb += take.eq(rest_whole)
            with m.If(rest_zero):
                m.d.sync += status.eq(Status.OK)
                m.next = "FINISH"
            with m.Elif(rest_short):
                record_error(Status.TRUNCATED, pos, byte[0:4])
            with m.Else():
                m.d.sync += [fetched.eq(1), insn_offset.eq(pos),
                             insn_left.eq(rest - isa.INSN_BYTES)]
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
        # in the cycle after it accepts a GEMM, so the acceptance clears the copy; SYNC, STORE,
        # READ and the end of a frame proceed one cycle after the Core went idle.
        idle_late = Signal(init=1)
        m.d.sync += idle_late.eq(self.core_idle & ~(self.o_cmd.valid & self.o_cmd.ready))
        proceed = Signal()
        m.d.comb += proceed.eq(
            Mux(op_is[Opcode.GEMM], ~wr_pending & self.o_cmd.ready,
                Mux(op_is[Opcode.SYNC], idle_late & ~wr_pending, 1)))

        with m.FSM(name="executor") as fsm:
            with m.State("IDLE"):
                with m.If(self.i_frame.valid & ~held):
                    # The request is classified here, into registers, so that DISPATCH decides
                    # from flags (the dedup state cannot change between the two cycles).
                    info = self.i_frame.payload
                    rx_bad = info.status != Status.OK
                    kind_bad = (info.kind == 0) | (info.kind > max(Kind))
                    length_bad = (((info.kind == Kind.READ) &
                                   (info.length != protocol.READ_LAYOUT.nbytes)) |
                                  ((info.kind != Kind.READ) & (info.kind != Kind.EXEC) &
                                   (info.length != 0)))
                    error = rx_bad | kind_bad | length_bad
                    repeat = last_valid & (info.seq == last["seq"])
                    is_exec = ~error & (info.kind == Kind.EXEC)
                    m.d.sync += [seq.eq(info.seq), length.eq(info.length), held.eq(1),
                                 go_error.eq(error),
                                 err_code.eq(Mux(rx_bad, info.status,
                                                 Mux(kind_bad, Status.BAD_KIND,
                                                     Status.BAD_LENGTH))),
                                 go_repeat.eq(is_exec & repeat), go_exec.eq(is_exec & ~repeat)]
                    m.d.sync += [go[k].eq(~error & (info.kind == k)) for k in go]
                    m.d.sync += resp_counters.eq(0)
                    m.next = "DISPATCH"

            with m.State("DISPATCH"):
                # `vec`: the ID record, the counters, or zeros (an error's ErrorRecord, and READ's
                # for READ_CHECK's errors). Loading it in every DISPATCH and ANSWER_EXEC instead
                # kept request decisions off its enable (~11.5 ns on the ULX3S-85F) but cost 157
                # logic cells on the iCEBreaker, whose preset then missed 30 MHz (27.5 MHz).
                with m.If(go[Kind.HELLO]):
                    m.d.sync += vec.eq(id_record)
                with m.If(go[Kind.COUNTERS]):
                    m.d.sync += vec.eq(counters)
                with m.If(go_error | go[Kind.READ]):
                    m.d.sync += vec.eq(0)
                with m.If(go_error):
                    respond_error(err_code)
                with m.If(go[Kind.HELLO]):
                    m.d.sync += [last_valid.eq(0), status.eq(Status.OK),
                                 resp_length.eq(protocol.ID_LAYOUT.nbytes), resp_act.eq(0)]
                    m.next = "RESPOND"
                with m.If(go[Kind.COUNTERS]):
                    m.d.sync += [status.eq(Status.OK), resp_act.eq(0),
                                 resp_counters.eq(1),
                                 resp_length.eq(_COUNTER_BYTES * len(protocol.COUNTER_NAMES))]
                    m.next = "RESPOND"
                with m.If(go[Kind.CLEAR_COUNTERS]):
                    m.d.comb += self.counters_clear.eq(1)
                    m.d.sync += [status.eq(Status.OK), resp_length.eq(0), resp_act.eq(0)]
                    m.next = "RESPOND"
                with m.If(go[Kind.READ]):
                    m.d.comb += seek.eq(1)
                    m.d.sync += fetched.eq(0)
                    m.next = "READ_REQUEST"
                with m.If(go_repeat):
                    m.d.sync += [status.eq(last["status"]), err_offset.eq(last["offset"]),
                                 err_opcode.eq(last["opcode"]),
                                 store_valid.eq(last["store_valid"]),
                                 store_addr.eq(last["store_addr"]),
                                 store_count.eq(last["store_count"])]
                    m.next = "ANSWER_EXEC"
                with m.If(go_exec):
                    m.d.comb += seek.eq(1)
                    m.d.sync += [store_valid.eq(0), last_valid.eq(0)]
                    m.next = "FIRST"

            # -- READ ---------------------------------------------------------------------------
            with m.State("READ_REQUEST"):
                m.d.comb += take.eq(fetched != protocol.READ_LAYOUT.nbytes)
                with m.If(take):
                    m.d.sync += fetched.eq(fetched + 1)
                # addr (bytes 0-1) is complete while byte 2 is read: the room above it is
                # registered then, so the final range check is one compare (no add)
                with m.If(fetched == 2):
                    m.d.sync += read_room.eq(C(cfg.act_depth, signed(18)) - insn[-16:])
                # The request is complete: its checks go into registers and READ_CHECK acts on
                # them (the compares feeding the status register's enable directly were the
                # iCEBreaker's critical path, 35 ns): one cycle per READ request.
                request = READ_REQUEST(insn[-protocol.READ_LAYOUT.width:])
                with m.If(~take):
                    m.d.sync += [
                        # count * entry_bytes > max_payload, without the product
                        read_bad_count.eq((request.count == 0) |
                                          (request.count > cfg.max_payload // entry_bytes)),
                        read_bad_addr.eq(request.count > read_room),
                        store_addr.eq(request.addr), store_count.eq(request.count),
                    ]
                    m.next = "READ_CHECK"
            with m.State("READ_CHECK"):
                with m.If(read_bad_count):
                    respond_error(Status.BAD_FIELD)
                with m.Elif(read_bad_addr):
                    respond_error(Status.BAD_ADDRESS)
                with m.Else():
                    m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                with m.If(idle_late):
                    m.d.sync += [status.eq(Status.OK), resp_act.eq(1), act_addr.eq(store_addr),
                                 resp_length.eq(times_const(store_count, entry_bytes))]
                    m.next = "RESPOND"

            # -- EXEC ---------------------------------------------------------------------------
            with m.State("FIRST"):
                next_instruction()
            with m.State("FETCH"):
                m.d.comb += [take.eq(1), in_fetch.eq(1)]
                m.d.sync += fetched.eq(fetched + 1)
                with m.If(fetched == isa.INSN_BYTES - 1):
                    m.next = "EXECUTE"
            with m.State("EXECUTE"):
                opcode = decoder.opcode
                with m.If(~decoder.ok):
                    record_error(decoder.status, insn_offset, opcode)
                with m.Elif(op_is[Opcode.LOAD]):
                    # ld_* were preset during the decode: the first payload byte is gathered
                    # exactly like the others
                    with m.If(gather_byte()):
                        m.next = "NEXT"
                    with m.Else():
                        m.next = "LOAD"
                with m.Elif(op_is[Opcode.STORE]):
                    m.d.sync += [store_valid.eq(1), store_addr.eq(store.addr),
                                 store_count.eq(store.count), status.eq(Status.OK)]
                    m.next = "FINISH"
                with m.Else():   # GEMM, POST, SYNC, NOP: the next instruction once `proceed`
                    with m.If(op_is[Opcode.GEMM]):
                        m.d.comb += self.o_cmd.valid.eq(~wr_pending)
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
                next_instruction()

            with m.State("FINISH"):
                # Every EXEC is answered once the Core is idle (and the last LOAD entry written).
                with m.If(idle_late & ~wr_pending):
                    m.d.sync += [last_valid.eq(1), last["seq"].eq(seq),
                                 last["status"].eq(status), last["offset"].eq(err_offset),
                                 last["opcode"].eq(err_opcode),
                                 last["store_valid"].eq(store_valid & (status == Status.OK)),
                                 last["store_addr"].eq(store_addr),
                                 last["store_count"].eq(store_count)]
                    m.next = "ANSWER_EXEC"
            with m.State("ANSWER_EXEC"):
                with m.If(status != Status.OK):
                    m.d.sync += [vec.eq(Cat(err_offset, C(0, 16 - n_bytes), err_opcode, C(0, 12))),
                                 resp_length.eq(protocol.ERROR_LAYOUT.nbytes), resp_act.eq(0)]
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += [act_addr.eq(store_addr), resp_act.eq(store_valid),
                                 resp_length.eq(Mux(store_valid,
                                                    times_const(store_count, entry_bytes), 0))]
                    m.next = "READ_WAIT_EXEC"
            with m.State("READ_WAIT_EXEC"):
                with m.If(idle_late):
                    m.next = "RESPOND"

            # -- the response -------------------------------------------------------------------
            with m.State("RESPOND"):
                m.d.comb += [
                    self.o_resp.valid.eq(1),
                    self.o_resp.payload.kind.eq(status),
                    self.o_resp.payload.seq.eq(seq),
                    self.o_resp.payload.length.eq(resp_length),
                    self.i_frame.ready.eq(held),
                ]
                with m.If(held):
                    m.d.sync += held.eq(0)
                with m.If(self.o_resp.ready):
                    m.d.sync += [resp_left.eq(resp_length), pad_phase.eq(0)]
                    with m.If(resp_length == 0):
                        m.next = "IDLE"
                    with m.Elif(resp_act):
                        m.next = "ACT_READ"
                    with m.Else():
                        m.next = "SEND"
            with m.State("ACT_READ"):
                m.d.comb += [self.rd_en.eq(1), self.rd_addr.eq(act_addr)]
                m.next = "ACT_LATCH"
            with m.State("ACT_LATCH"):
                m.d.sync += [entry.eq(self.rd_data), entry_byte.eq(0), act_addr.eq(act_addr + 1),
                             entry_left.eq(entry_bytes)]
                m.next = "SEND"
            with m.State("SEND"):
                pad = resp_counters & (pad_phase >= counter_bytes)   # a u64's zero byte
                m.d.comb += [self.o_payload.valid.eq(1),
                             self.o_payload.payload.eq(
                                 Mux(resp_act, entry.word_select(entry_byte, 8),
                                     Mux(pad, 0, vec[0:8])))]
                with m.If(self.o_payload.ready):
                    m.d.sync += [resp_left.eq(resp_left - 1), entry_left.eq(entry_left - 1),
                                 entry_byte.eq(entry_byte + 1), pad_phase.eq(pad_phase + 1)]
                    with m.If(~pad):
                        m.d.sync += vec.eq(vec[8:])
                    with m.If(resp_left == 1):
                        m.next = "IDLE"
                    with m.Elif(resp_act & (entry_left == 1)):
                        m.next = "ACT_READ"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | held)
        return m
