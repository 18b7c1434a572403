"""Every request is answered, and the device idle again, within a bound: a k-induction proof.

The harness is :func:`formal.executor.executor_environment` (the real ``Executor`` and
``FrameSender``, every frame, payload byte and Core handshake chosen by the solver) with the
host's stop-and-wait: a descriptor is offered only once the previous request is answered and
the device is quiet (``busy`` low in the executor and the sender). From the offer, a ghost clock
``age`` counts cycles; the property is that the request's one response header is sent and the
device is quiet at most :func:`answer_bound` cycles after the offer, and that the executor stays
in bounds (:func:`formal.executor.assert_in_bounds`) and never takes a payload byte past the
frame's length.

The proof is unbounded (k-induction of :data:`INDUCTION_DEPTH` steps), so it holds after any
number of requests, in every reachable state, for programs of every length up to
``max_payload``. An induction step starts from any state in which the assertions held for the
last ``INDUCTION_DEPTH`` steps; the invariants below (true in every reachable state) exclude the
unreachable ones. The bound is a progress measure, with ghost registers beside ``age``:

- before the answer, ``t_take`` is the age at which the executor last took a payload byte
  (1 until the first) and ``takes`` counts them; ``t_take <= 1 + TAKE_GAP * takes`` because no
  two takes are more than :data:`TAKE_GAP` cycles apart while a program runs (a take every
  cycle, plus at most ``CORE_WAIT`` cycles for the Core at a GEMM, SYNC or ``LOAD`` entry
  write), and ``takes <= max_payload``. The response header is accepted at most
  :data:`END_GAP` cycles after the last take (the program's end, ``FINISH``'s wait for
  ``settled``, ``READ_WAIT_EXEC``'s for ``idle``, the hand-over);
- after it, ``t_send`` is the age at which the sender last passed a payload byte (the header's
  6 bytes first): consecutive bytes are at most 1 cycle apart, or :data:`ACT_GAP` for ACT
  entries (each is read, latched, then sent), and the CRC's 2 bytes and idle follow.

Hence ``answer_bound = 1 + TAKE_GAP * max_payload + END_GAP + 6 + ACT_GAP * max_payload + 3``
(the longest response is ``max_payload`` bytes of ACT entries; the ID record and the 48 counter
bytes are shorter at one cycle a byte).
"""

from amaranth.hdl import Assert, Assume, Cat, Mux, Signal

from tessera.hw.executor import Executor
from tessera.hw.payload import COUNTER_BYTES
from tessera.spec import AcceleratorConfig, isa, protocol
from tessera.spec.protocol import Kind, Status

from .executor import CORE_WAIT, assert_in_bounds, executor_environment

__all__ = ["ANSWERS_CONFIG", "ACT_GAP", "END_GAP", "INDUCTION_DEPTH", "TAKE_GAP",
           "answer_bound", "end_gap", "executor_answers", "induction_depth", "take_gap"]

#: A legal configuration (``max_payload`` is the 64-byte minimum: four instructions, or a
#: ``LOAD`` of up to 24 ACT/WGT entries or 5 PARAM entries, or 48 LUT entries, and more).
ANSWERS_CONFIG = AcceleratorConfig(rows=2, cols=2, act_depth=16, weight_depth=16,
                                   param_depth=8, max_payload=64)


def induction_depth(core_wait=CORE_WAIT):
    """Return the k-induction's length: the end of a request (``FINISH`` to ``RESPOND``) fits.

    8 steps for the default Core; 14 for ``core_wait=3`` (proved too).
    """
    return 5 + 3 * core_wait


#: The k-induction's length for the default Core.
INDUCTION_DEPTH = induction_depth()



def take_gap(core_wait=CORE_WAIT):
    """Return the most cycles between two payload bytes taken while a program runs.

    One a cycle, except before a GEMM's acceptance, a SYNC's ``settled`` or a ``LOAD`` entry's
    write: one Core wait each.
    """
    return 1 + core_wait


def end_gap(core_wait=CORE_WAIT):
    """Return the most cycles from the last payload byte taken to the response's hand-over.

    From the last byte taken (or the descriptor's offer): ``EXECUTE`` and the last instruction's
    Core wait, ``FINISH`` (a GEMM's acceptance clears the Core's ``idle``, seen a cycle late,
    then a Core wait), ``ANSWER_EXEC``, ``READ_WAIT_EXEC`` (a Core wait) and ``RESPOND``.
    """
    return 6 + 3 * core_wait


#: :func:`take_gap` and :func:`end_gap` of the default Core (``CORE_WAIT``).
TAKE_GAP, END_GAP = take_gap(), end_gap()


#: Most cycles between two payload bytes of an ACT response (the next entry read and latched).
ACT_GAP = 3


def answer_bound(config, core_wait=CORE_WAIT):
    """Return the cycles from a descriptor's offer until it is answered and the device quiet."""
    longest = max(ACT_GAP * config.max_payload, len(protocol.COUNTER_NAMES) * COUNTER_BYTES,
                  protocol.ID_LAYOUT.nbytes, protocol.ERROR_LAYOUT.nbytes)
    return (1 + take_gap(core_wait) * config.max_payload + end_gap(core_wait) +
            protocol.HEADER_BYTES + longest + protocol.TRAILER_BYTES + 1)


def executor_answers(*, config=ANSWERS_CONFIG, executor_class=Executor, core_wait=CORE_WAIT,
                     bound=None, depth=None):
    """Return ``(bench, depth)``: the no-wedge and in-bounds properties with their invariants.

    ``bound`` defaults to :func:`answer_bound`; ``depth``, the induction's length, to
    :func:`induction_depth`.
    """
    bench, dut, tx, history = executor_environment(config, executor_class,
                                                   core_wait=core_wait)
    assert_in_bounds(bench, dut.design, config)
    proof = _AnswerProof(bench, dut, tx, config, core_wait,
                         answer_bound(config, core_wait) if bound is None else bound)
    proof.ghost_clock()
    proof.consistency(history)
    proof.progress()
    proof.load_gather()
    proof.regions()
    proof.response()
    return bench, induction_depth(core_wait) if depth is None else depth


def _per_buffer(code, value_of):
    # value_of(buffer) for the buffer whose ISA code is `code`
    result = value_of(isa.Buffer.LUT)
    for buffer in (isa.Buffer.PARAM, isa.Buffer.WGT, isa.Buffer.ACT):
        result = Mux(code == buffer, value_of(buffer), result)
    return result


class _AnswerProof:
    # The ghost clock and the invariants, one method per part of the request's life.

    def __init__(self, bench, dut, tx, config, core_wait, bound):
        self.m, self.dut, self.tx, self.config = bench.m, dut, tx, config
        self.core_wait, self.bound = core_wait, bound
        self.executor = dut.design
        self.reg = {name: dut[f"requests.{name}"] for name in (
            "held", "go_error", "go_hello", "go_read", "go_counters", "go_clear_counters",
            "go_repeat", "go_exec", "resp_left", "resp_length", "resp_act", "act_addr",
            "entry_left", "entry_byte", "read_bad_count", "read_bad_addr", "store_valid",
            "store_addr", "store_count", "last_store_valid", "last_store_addr",
            "last_store_count")}
        self.seq = {name: dut[f"sequencer.{name}"] for name in (
            "fetched", "insn_left", "ld_index", "ld_entry", "ld_addr", "ld_left", "ld_buffer",
            "ld_lane", "ld_last", "ld_final", "wr_pending")}
        self.pos, self.rest = dut["reader.pos_r"], dut["reader.rest_r"]
        self.rest_zero = dut["reader.cursor__rest_zero"]
        clock = range(2 * bound + 16)
        self.working = Signal()    # a request was offered and the device is not quiet again yet
        self.taken = Signal()      # the executor released its descriptor
        self.answered = Signal()   # its response header went to the sender
        self.age = Signal(clock)
        self.takes = Signal(range(config.max_payload + 2))
        self.t_take = Signal(clock)
        self.t_answer = Signal(clock)
        self.t_send = Signal(clock)
        self.before = self.working & ~self.answered
        self.after = self.working & self.answered

    def invariant(self, condition, message):
        self.m.d.comb += Assert(condition, message, src_loc_at=1)

    def handler(self, *states):
        return self.dut.state("requests.requests", *states)

    def sequencer(self, *states):
        return self.dut.state("sequencer.sequencer", *states)

    def sender(self, *states):
        return self.tx.state("tx", *states)

    def ghost_clock(self):
        m, executor, config = self.m, self.executor, self.config
        frame = executor.i_frame
        working, taken, answered, age = self.working, self.taken, self.answered, self.age
        take = self.dut["take"]
        quiet = ~executor.busy & ~self.tx.design.busy
        m.d.comb += Assume(~frame.valid | ~taken)   # stop and wait: no new request meanwhile
        with m.If(frame.valid & ~working):
            m.d.sync += [working.eq(1), taken.eq(0), answered.eq(0), age.eq(1),
                         self.takes.eq(0), self.t_take.eq(1)]
        with m.Elif(working):
            with m.If(age <= self.bound):
                m.d.sync += age.eq(age + 1)
            with m.If(take & (self.takes <= config.max_payload)):
                m.d.sync += [self.takes.eq(self.takes + 1), self.t_take.eq(age)]
            with m.If(frame.valid & frame.ready):
                m.d.sync += taken.eq(1)
            with m.If(executor.o_resp.valid & executor.o_resp.ready):
                m.d.sync += [answered.eq(1), self.t_answer.eq(age),
                             self.t_send.eq(age + protocol.HEADER_BYTES)]
            with m.If(executor.o_payload.valid & executor.o_payload.ready):
                m.d.sync += self.t_send.eq(age)
            with m.If(taken & quiet):
                m.d.sync += [working.eq(0), taken.eq(0)]
                self.invariant(answered, "request finished without a response")
        self.invariant(~working | (age <= self.bound), "request not answered within the bound")
        self.invariant(~take | ~self.rest_zero, "payload byte taken past its length")

    def consistency(self, history):
        """Every FSM in a state, the cursor's flags, idle between requests, the held request."""
        dut, reg, tx, handler = self.dut, self.reg, self.tx, self.handler
        pos, rest, working, taken = self.pos, self.rest, self.working, self.taken
        for probe, fsm in ((dut, "requests.requests"), (dut, "sequencer.sequencer"),
                           (tx, "tx")):
            self.invariant(probe.state(fsm, *probe.states(fsm)), f"{fsm}: a state of the FSM")
        self.invariant((dut["reader.pos_next"] == (pos + 1)[:len(pos)]) &
                       (self.rest_zero == (rest == 0)) &
                       (dut["reader.rest_short"] == (rest < isa.INSN_BYTES)) &
                       (dut["reader.rest_whole"] == (rest >= isa.INSN_BYTES)), "reader flags")
        self.invariant(working | (handler("IDLE") & ~reg["held"] & self.sequencer("IDLE") &
                                  self.sender("IDLE") & ~self.seq["wr_pending"] & ~taken),
                       "idle between requests")
        self.invariant(handler("RUN") == ~self.sequencer("IDLE"),
                       "the sequencer runs only in RUN")

        frame = self.executor.i_frame
        info = frame.payload
        go = [reg[f"go_{name}"] for name in ("error", "hello", "read", "counters",
                                              "clear_counters", "repeat", "exec")]
        ok = info.status == Status.OK
        self.invariant(~working | (reg["held"] == ~taken), "held until released")
        self.invariant(~working | (taken == self.answered), "released with the answer")
        self.invariant(~working | taken | (
            frame.valid & history.was_valid & ~history.was_ready & ~handler("IDLE") &
            (sum(go) == 1) &
            (~reg["go_exec"] | (ok & (info.kind == Kind.EXEC))) &
            (~reg["go_repeat"] | (ok & (info.kind == Kind.EXEC))) &
            (~reg["go_read"] | (ok & (info.kind == Kind.READ) & (info.length == 4)))),
            "the held request's classification")
        self.invariant(~handler("RUN", "FINISH") | reg["go_exec"], "RUN and FINISH run an EXEC")
        self.invariant(~handler("READ_REQUEST", "READ_CHECK", "READ_WAIT") | reg["go_read"],
                       "READ states serve a READ")
        self.invariant(~handler("ANSWER_EXEC", "READ_WAIT_EXEC") | reg["go_exec"] |
                       reg["go_repeat"], "EXEC answers serve an EXEC")

    def progress(self):
        """Before the answer: payload bytes taken on time, then the answer within END_GAP."""
        reg, seq, handler, before = self.reg, self.seq, self.handler, self.before
        age, takes, t_take, rest = self.age, self.takes, self.t_take, self.rest
        take_gap_, end_gap_ = take_gap(self.core_wait), end_gap(self.core_wait)
        seeks = reg["go_exec"] | reg["go_read"]
        gap = age - t_take
        self.invariant(~before | (t_take <= 1 + take_gap_ * takes), "takes on time")
        self.invariant(~before | handler("DISPATCH") | ~seeks |
                       ((self.pos == takes) &
                        (self.pos + rest == self.executor.i_frame.payload.length)),
                       "takes counted by the cursor")
        self.invariant(~before | seeks | (takes == 0), "no takes outside EXEC and READ")
        self.invariant(~before | ~handler("DISPATCH") |
                       ((age == 1) & (takes == 0) & (t_take == 1)),
                       "DISPATCH right after the offer")
        self.invariant(~before | ~handler("RUN") | ((t_take <= age) & (gap <= take_gap_)),
                       "no long wait in a program")
        self.invariant(~before | ((t_take <= age) & (gap <= end_gap_)),
                       "no long wait before the answer")
        self.invariant(~before | ~handler("READ_REQUEST") | (gap == 1),
                       "READ request bytes in a row")
        self.invariant(~before | ~seq["wr_pending"] | (gap <= 1 + self.core_wait),
                       "a LOAD entry written within a Core wait of its last byte")
        self.invariant(~self.sequencer("FETCH") | (
            (seq["fetched"] >= 1) & (seq["fetched"] < isa.INSN_BYTES) &
            (seq["insn_left"] + isa.INSN_BYTES == rest + seq["fetched"]) & (gap == 1)),
            "FETCH matches the cursor")
        self.invariant(~self.sequencer("EXECUTE") | (seq["insn_left"] == rest),
                       "EXECUTE after 16 bytes")

    def load_gather(self):
        """A LOAD's gather state: its remaining bytes within the payload, entries in bounds."""
        seq, config = self.seq, self.config
        index, entry, left = seq["ld_index"], seq["ld_entry"], seq["ld_left"]
        lanes = Cat(*(index == lane for lane in range(len(seq["ld_lane"]))))
        self.invariant(~self.sequencer("LOAD") | (
            (left >= 1) & (index < entry) &
            (entry == _per_buffer(seq["ld_buffer"], config.entry_bytes)) &
            (seq["ld_lane"] == lanes) &
            (seq["ld_last"] == (index + 1 == entry)) & (seq["ld_final"] == (left == 1)) &
            ((left - 1) * entry + entry - index <= self.rest) &
            (seq["ld_addr"] + left <= _per_buffer(seq["ld_buffer"], config.depth))),
            "LOAD gathers within the payload and its buffer")

    def regions(self):
        """The ACT regions a STORE, a repeated STORE or a READ answers: checked ones."""
        reg, handler, config = self.reg, self.handler, self.config

        def checked(addr, count):
            return ((count >= 1) & (addr + count <= config.act_depth) &
                    (count * config.act_entry_bytes <= config.max_payload))

        # (a READ request overwrites store_addr/count; an EXEC clears store_valid when it starts)
        self.invariant(~handler("RUN", "FINISH", "ANSWER_EXEC") | ~reg["store_valid"] |
                       checked(reg["store_addr"], reg["store_count"]), "STORE region checked")
        self.invariant(~reg["last_store_valid"] |
                       checked(reg["last_store_addr"], reg["last_store_count"]),
                       "repeated STORE region checked")
        self.invariant(~handler("READ_CHECK") | reg["read_bad_count"] | reg["read_bad_addr"] |
                       checked(reg["store_addr"], reg["store_count"]), "READ region checked")
        self.invariant(~handler("READ_WAIT") | checked(reg["store_addr"], reg["store_count"]),
                       "READ region checked")

    def response(self):
        """After the answer: the sender's bytes on time, ACT entries read within the buffer."""
        reg, handler, sender, config = self.reg, self.handler, self.sender, self.config
        after, age, t_answer, t_send = self.after, self.age, self.t_answer, self.t_send
        resp_left, resp_length, act = reg["resp_left"], reg["resp_length"], reg["resp_act"]
        act_bytes = config.act_entry_bytes
        ends = config.act_depth * act_bytes
        send_gap = Mux(act, ACT_GAP, 1)
        longest_record = max(len(protocol.COUNTER_NAMES) * COUNTER_BYTES,
                             protocol.ID_LAYOUT.nbytes, protocol.ERROR_LAYOUT.nbytes)
        first = take_gap(self.core_wait) * config.max_payload + end_gap(self.core_wait)
        self.invariant(~after | (t_answer <= 1 + first), "answered on time")
        self.invariant(~after | (resp_left <= resp_length) & (
            t_send <= t_answer + protocol.HEADER_BYTES + send_gap * (resp_length - resp_left)),
            "response bytes on time")
        self.invariant(~act | ((resp_length <= config.max_payload) &
                               (resp_length % act_bytes == 0)), "ACT response length")
        self.invariant(~act | ~handler("READ_WAIT_EXEC", "RESPOND") |
                       (reg["act_addr"] * act_bytes + resp_length <= ends),
                       "ACT response region")
        self.invariant(act | (resp_length <= longest_record), "record response length")
        self.invariant(~after | ~act | ~handler("ACT_READ", "ACT_LATCH") | (
            (resp_left >= 1) & (resp_left % act_bytes == 0) &
            (reg["act_addr"] * act_bytes + resp_left <= ends)), "ACT entries to read")
        entry_left = reg["entry_left"]
        self.invariant(~after | ~act | ~handler("SEND") | (
            (entry_left >= 1) & (entry_left <= act_bytes) & (entry_left <= resp_left) &
            (reg["entry_byte"] + entry_left == act_bytes) &
            ((resp_left - entry_left) % act_bytes == 0) &
            (reg["act_addr"] * act_bytes + resp_left - entry_left <= ends)),
            "ACT entry being sent")
        sent, remaining, length = self.tx["sent"], self.tx["remaining"], self.tx["length"]
        self.invariant(~after | (
            (~sender("HEADER") | ((sent < protocol.HEADER_BYTES) & (length == resp_length) &
                                  (remaining == resp_left) & (age == t_answer + 1 + sent) &
                                  (handler("IDLE") == (length == 0)))) &
            (~sender("PAYLOAD") | ((remaining == resp_left) & (remaining >= 1) &
                                   (age - t_send <= send_gap) & (t_send < age))) &
            (~sender("CRC_LO") | (age == t_send + 1)) &
            (~sender("CRC_HI") | (age == t_send + 2)) &
            (~sender("IDLE") | (age == t_send + 3)) &
            (handler("IDLE") | handler("SEND", "ACT_READ", "ACT_LATCH") &
             sender("HEADER", "PAYLOAD")) &
            (~handler("IDLE") | sender("HEADER", "CRC_LO", "CRC_HI", "IDLE"))),
            "the sender sends the response")
        self.invariant(~self.before | (sender("IDLE") &
                                       ~handler("IDLE", "SEND", "ACT_READ", "ACT_LATCH")),
                       "nothing sent before the answer")
