"""The request handler: dispatches each received frame and sends its response.

It takes one received frame at a time from the :class:`~tessera.hw.link.FrameReceiver` (the
payload stays in the receiver's frame buffer, read through the payload cursor, until the
handler releases it), acts on it and hands one response to the
:class:`~tessera.hw.link.FrameSender`. Programs run on the
:class:`~tessera.hw.sequencer.ProgramSequencer`. Request handling follows ``docs/protocol.md``
and the details it shares with the emulator (``tessera.runtime.emulator``):

- link errors (``BAD_CRC``, ``BAD_LENGTH``, ``BAD_KIND``), a wrong payload length for
  ``HELLO``/``COUNTERS``/``CLEAR_COUNTERS`` (empty) or ``READ`` (4 bytes) -> ``BAD_LENGTH``, and
  ``READ`` errors carry an all-zero ``ErrorRecord``;
- ``HELLO`` answers the ID record (:func:`tessera.spec.protocol.encode_id`, a constant) and
  forgets the last ``EXEC`` sequence number;
- ``EXEC`` runs the program, waits until all it did is done, and answers the ``STORE`` data or
  the error with its ``ErrorRecord``; a repeat of the last answered ``seq`` (error or not) is
  answered again without running it (the ``STORE`` region is re-read);
- ``READ`` waits until the Core is idle and answers ACT entries; ``COUNTERS`` reports the counters
  as they are once the request is received; ``CLEAR_COUNTERS`` clears before answering.

A new request kind is a flag of ``IDLE``/``DISPATCH`` and its states here.
"""

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import protocol
from tessera.spec.protocol import Kind, Status

from .counters import CountersSignature
from .decoder import times_const
from .layouts import READ_REQUEST
from .link import FRAME_INFO, RESPONSE_HEADER
from .payload import COUNTER_BYTES, CursorSignature, byte_count_width
from .ports import ReadSignature
from .sequencer import ProgramSignature

__all__ = ["RequestHandler"]


class RequestHandler(wiring.Component):
    """Frame dispatch, ``READ`` requests, the ``EXEC`` answer and response serialisation.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    i_frame : In(stream.Signature(FRAME_INFO))
        Received frames; accepted once the payload has been used (the receiver holds it).
    seek, length : Out(1), Out(byte_count_width(config))
        To the payload reader: present the payload (``length`` bytes, the held frame's
        descriptor) from offset 0.
    take : Out(1)
        Consume the cursor's byte (the ``READ`` request's four bytes).
    cursor : In(CursorSignature(config))
    program : Out(ProgramSignature(config))
        To the program sequencer.
    o_resp : Out(stream.Signature(RESPONSE_HEADER))
        Response header, then ``length`` bytes on ``o_payload``.
    o_payload : Out(stream.Signature(8))
    read : Out(ReadSignature.for_act(config))
        ACT reads through the Core's host read port (only while the Core is idle).
    counters : In(CountersSignature(config))
        The performance counters (``protocol.COUNTER_NAMES`` order) and their clear.
    busy : Out(1)
        A request is being handled or answered.
    """

    def __init__(self, config):
        self._config = config
        width = byte_count_width(config)
        super().__init__({
            "i_frame": In(stream.Signature(FRAME_INFO)),
            "seek": Out(1),
            "length": Out(width),
            "take": Out(1),
            "cursor": In(CursorSignature(config)),
            "program": Out(ProgramSignature(config)),
            "o_resp": Out(stream.Signature(RESPONSE_HEADER)),
            "o_payload": Out(stream.Signature(8)),
            "read": Out(ReadSignature.for_act(config)),
            "counters": In(CountersSignature(config)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        entry_bytes = cfg.act_entry_bytes   # bytes of an ACT entry in READ/STORE responses
        # Register widths from the configuration, not the 16-bit protocol fields (see
        # byte_count_width; an ACT region outside the buffer is refused before it is used).
        n_bytes = byte_count_width(cfg)
        n_act = cfg.act_depth.bit_length()
        program, cursor = self.program, self.cursor
        window = cursor.window
        m = Module()

        # -- the frame being handled -------------------------------------------------------
        seq = Signal(8)
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

        # -- error and response state ----------------------------------------------------------
        status = Signal(8)
        err_offset = Signal(n_bytes)
        err_opcode = Signal(4)
        store_valid = Signal()
        store_addr = Signal(n_act)
        store_count = Signal(n_act)
        # the last EXEC answered (dedup)
        last_valid = Signal()
        # (named: the invariants of formal/answers.py find them by name)
        last = {name: Signal(shape, name=f"last_{name}") for name, shape in (
            ("seq", 8), ("status", 8), ("offset", n_bytes), ("opcode", 4), ("store_valid", 1),
            ("store_addr", n_act), ("store_count", n_act))}

        # A counter is sent as a u64 but only its low `counter_bytes` are held in `vec`: the
        # other bytes are zeros sent without shifting `vec` (`pad_phase`, the byte in the u64).
        counter_bytes = min(COUNTER_BYTES, (cfg.counter_bits + 7) // 8)
        vec_width = max(counter_bytes * 8 * len(protocol.COUNTER_NAMES),
                        protocol.ID_LAYOUT.width, protocol.ERROR_LAYOUT.width, 8 * entry_bytes)
        vec = Signal(vec_width)          # bytes to send, lowest first
        resp_counters = Signal()         # the payload is the counters (zero-padded to u64)
        pad_phase = Signal(range(COUNTER_BYTES))
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
        counters = Cat(*(Cat(value, C(0, 8 * counter_bytes - cfg.counter_bits))
                         for value in self.counters.values))

        def respond_error(code):
            # An all-zero ErrorRecord: ``vec`` was zeroed in DISPATCH.
            m.d.sync += [status.eq(code), resp_length.eq(protocol.ERROR_LAYOUT.nbytes),
                         resp_act.eq(0)]
            m.next = "RESPOND"

        # The payload length for the reader's seek: the held frame's descriptor (the receiver
        # keeps it until the frame is released in RESPOND, after every seek).
        m.d.comb += self.length.eq(self.i_frame.payload.length)

        with m.FSM(name="requests") as fsm:
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
                    m.d.sync += [seq.eq(info.seq), held.eq(1),
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
                                 resp_length.eq(COUNTER_BYTES * len(protocol.COUNTER_NAMES))]
                    m.next = "RESPOND"
                with m.If(go[Kind.CLEAR_COUNTERS]):
                    m.d.comb += self.counters.clear.eq(1)
                    m.d.sync += [status.eq(Status.OK), resp_length.eq(0), resp_act.eq(0)]
                    m.next = "RESPOND"
                with m.If(go[Kind.READ]):
                    m.d.comb += self.seek.eq(1)
                    m.next = "READ_REQUEST"
                with m.If(go_repeat):
                    m.d.sync += [status.eq(last["status"]), err_offset.eq(last["offset"]),
                                 err_opcode.eq(last["opcode"]),
                                 store_valid.eq(last["store_valid"]),
                                 store_addr.eq(last["store_addr"]),
                                 store_count.eq(last["store_count"])]
                    m.next = "ANSWER_EXEC"
                with m.If(go_exec):
                    m.d.comb += [self.seek.eq(1), program.start.eq(1)]
                    m.d.sync += [store_valid.eq(0), last_valid.eq(0)]
                    m.next = "RUN"

            # -- READ ---------------------------------------------------------------------------
            with m.State("READ_REQUEST"):
                # The request's 4 bytes (its length was checked in IDLE) are taken back to back:
                # the cursor counts them, `rest_zero` (a register) ends the request.
                m.d.comb += self.take.eq(~cursor.rest_zero)
                # addr (bytes 0-1) is complete while byte 2 is read: the room above it is
                # registered then, so the final range check is one compare (no add)
                with m.If(cursor.pos == 2):
                    m.d.sync += read_room.eq(C(cfg.act_depth, signed(18)) - window[-16:])
                # The request is complete: its checks go into registers and READ_CHECK acts on
                # them (the compares feeding the status register's enable directly were the
                # iCEBreaker's critical path, 35 ns): one cycle per READ request.
                request = READ_REQUEST(window[-protocol.READ_LAYOUT.width:])
                with m.If(~self.take):
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
                with m.If(program.idle):
                    m.d.sync += [status.eq(Status.OK), resp_act.eq(1), act_addr.eq(store_addr),
                                 resp_length.eq(times_const(store_count, entry_bytes))]
                    m.next = "RESPOND"

            # -- EXEC ---------------------------------------------------------------------------
            with m.State("RUN"):
                # How the program ended (the sequencer reports it in the cycle it ends).
                with m.If(program.end):
                    m.d.sync += status.eq(program.status)
                    m.next = "FINISH"
                with m.If(program.error):
                    m.d.sync += [err_offset.eq(program.offset), err_opcode.eq(program.opcode)]
                with m.If(program.store):
                    m.d.sync += [store_valid.eq(1), store_addr.eq(program.store_addr),
                                 store_count.eq(program.store_count)]
            with m.State("FINISH"):
                # Every EXEC is answered once all the program did is done (the Core idle, the
                # last LOAD entry written).
                with m.If(program.settled):
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
                with m.If(program.idle):
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
                m.d.comb += [self.read.en.eq(1), self.read.addr.eq(act_addr)]
                m.next = "ACT_LATCH"
            with m.State("ACT_LATCH"):
                m.d.sync += [entry.eq(self.read.data), entry_byte.eq(0),
                             act_addr.eq(act_addr + 1), entry_left.eq(entry_bytes)]
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
