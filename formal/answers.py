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
  :data:`END_GAP` cycles after the last take (end of program, ``settled``, the answer's ACT
  read, the hand-over);
- after it, ``t_send`` is the age at which the sender last passed a payload byte (the header's
  6 bytes first): consecutive bytes are at most 1 cycle apart, or :data:`ACT_GAP` for ACT
  entries (each is read, latched, then sent), and the CRC's 2 bytes and idle follow.

Hence ``answer_bound = 1 + TAKE_GAP * max_payload + END_GAP + 6 + ACT_GAP * max_payload + 3``
(the longest response is ``max_payload`` bytes of ACT entries; the ID record and the 48 counter
bytes are shorter at one cycle a byte).
"""

from amaranth.hdl import Assert, Assume, Cat, Mux, Signal

from tessera.hw.executor import Executor
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
    longest = max(ACT_GAP * config.max_payload,
                  protocol.COUNTER_NAMES.__len__() * 8, protocol.ID_LAYOUT.nbytes,
                  protocol.ERROR_LAYOUT.nbytes)
    return (1 + take_gap(core_wait) * config.max_payload + end_gap(core_wait) +
            protocol.HEADER_BYTES + longest +
            protocol.TRAILER_BYTES + 1)


def executor_answers(*, config=ANSWERS_CONFIG, executor_class=Executor, core_wait=CORE_WAIT,
                     bound=None, depth=None):
    """Return ``(bench, depth)``: the no-wedge and in-bounds properties with their invariants.

    ``bound`` defaults to :func:`answer_bound`; ``depth``, the induction's length, to
    :func:`induction_depth`.
    """
    bench, dut, tx, history = executor_environment(config, executor_class,
                                                   core_wait=core_wait)
    gaps = {"take": take_gap(core_wait), "end": end_gap(core_wait)}
    executor = dut.design
    m = bench.m
    assert_in_bounds(bench, executor, config)
    bound = answer_bound(config, core_wait) if bound is None else bound
    clock = range(2 * bound + 16)

    def invariant(condition, message):
        m.d.comb += Assert(condition, message, src_loc_at=1)

    def handler(*states):
        return dut.state("requests.requests", *states)

    def sequencer(*states):
        return dut.state("sequencer.sequencer", *states)

    def sender(*states):
        return tx.state("tx", *states)

    frame = executor.i_frame
    info = frame.payload
    reg = {name: dut[f"requests.{name}"] for name in (
        "held", "go_error", "go_hello", "go_read", "go_counters", "go_clear_counters",
        "go_repeat", "go_exec", "resp_left", "resp_length", "resp_act", "act_addr",
        "entry_left", "entry_byte", "read_bad_count", "read_bad_addr", "store_valid",
        "store_addr", "store_count", "last_store_valid", "last_store_addr", "last_store_count")}
    seq = {name: dut[f"sequencer.{name}"] for name in (
        "fetched", "insn_left", "ld_index", "ld_entry", "ld_addr", "ld_left", "ld_buffer",
        "ld_lane", "wr_pending")}
    pos, rest = dut["reader.pos_r"], dut["reader.rest_r"]
    take = dut["take"]

    # -- the ghost clock -------------------------------------------------------------------
    working = Signal()      # a request was offered and the device is not quiet again yet
    taken = Signal()        # the executor released its descriptor
    answered = Signal()     # its response header went to the sender
    age = Signal(clock)
    takes = Signal(range(config.max_payload + 2))
    t_take = Signal(clock)
    t_answer = Signal(clock)
    t_send = Signal(clock)
    quiet = ~executor.busy & ~tx.design.busy
    m.d.comb += Assume(~frame.valid | ~taken)   # stop and wait: no new request meanwhile
    with m.If(frame.valid & ~working):
        m.d.sync += [working.eq(1), taken.eq(0), answered.eq(0), age.eq(1), takes.eq(0),
                     t_take.eq(1)]
    with m.Elif(working):
        with m.If(age <= bound):
            m.d.sync += age.eq(age + 1)
        with m.If(take & (takes <= config.max_payload)):
            m.d.sync += [takes.eq(takes + 1), t_take.eq(age)]
        with m.If(frame.valid & frame.ready):
            m.d.sync += taken.eq(1)
        with m.If(executor.o_resp.valid & executor.o_resp.ready):
            m.d.sync += [answered.eq(1), t_answer.eq(age),
                         t_send.eq(age + protocol.HEADER_BYTES)]
        with m.If(executor.o_payload.valid & executor.o_payload.ready):
            m.d.sync += t_send.eq(age)
        with m.If(taken & quiet):
            m.d.sync += [working.eq(0), taken.eq(0)]
            invariant(answered, "request finished without a response")
    invariant(~working | (age <= bound), "request not answered within the bound")
    invariant(~take | ~dut["reader.cursor__rest_zero"], "payload byte taken past its length")

    for probe, fsm in ((dut, "requests.requests"), (dut, "sequencer.sequencer"), (tx, "tx")):
        invariant(probe.state(fsm, *probe.states(fsm)), f"{fsm}: a state of the FSM")

    # -- the payload reader: its flags match its counters -----------------------------------
    invariant((dut["reader.pos_next"] == (pos + 1)[:len(pos)]) &
              (dut["reader.cursor__rest_zero"] == (rest == 0)) &
              (dut["reader.rest_short"] == (rest < isa.INSN_BYTES)) &
              (dut["reader.rest_whole"] == (rest >= isa.INSN_BYTES)), "reader flags")

    # -- between requests: everything idle ---------------------------------------------------
    invariant(working | (handler("IDLE") & ~reg["held"] & sequencer("IDLE") & sender("IDLE") &
                         ~seq["wr_pending"] & ~taken), "idle between requests")
    invariant(handler("RUN") == ~sequencer("IDLE"), "the sequencer runs only in RUN")

    # -- the held descriptor ------------------------------------------------------------------
    go = [reg[f"go_{name}"] for name in ("error", "hello", "read", "counters",
                                          "clear_counters", "repeat", "exec")]
    ok_kind = (info.status == Status.OK)
    invariant(~working | (reg["held"] == ~taken), "held until released")
    invariant(~working | (taken == answered), "released with the answer")
    invariant(~working | taken | (frame.valid & history.was_valid & ~history.was_ready &
                                  ~handler("IDLE") & (sum(go) == 1) &
                                  (~reg["go_exec"] | (ok_kind & (info.kind == Kind.EXEC))) &
                                  (~reg["go_repeat"] | (ok_kind & (info.kind == Kind.EXEC))) &
                                  (~reg["go_read"] | (ok_kind & (info.kind == Kind.READ) &
                                                      (info.length == 4)))),
              "the held request's classification")
    invariant(~handler("RUN", "FINISH") | reg["go_exec"], "RUN and FINISH run an EXEC")
    invariant(~handler("READ_REQUEST", "READ_CHECK", "READ_WAIT") | reg["go_read"],
              "READ states serve a READ")
    invariant(~handler("ANSWER_EXEC", "READ_WAIT_EXEC") | reg["go_exec"] | reg["go_repeat"],
              "EXEC answers serve an EXEC")

    # -- before the answer: progress through the payload -------------------------------------
    before = working & ~answered
    seeks = reg["go_exec"] | reg["go_read"]
    gap = age - t_take
    invariant(~before | (t_take <= 1 + gaps["take"] * takes), "takes on time")
    invariant(~before | handler("DISPATCH") | ~seeks |
              ((pos == takes) & (pos + rest == info.length)), "takes counted by the cursor")
    invariant(~before | seeks | (takes == 0), "no takes outside EXEC and READ")
    invariant(~before | ~handler("DISPATCH") | ((age == 1) & (takes == 0) & (t_take == 1)),
              "DISPATCH right after the offer")
    invariant(~before | ~handler("RUN") | ((t_take <= age) & (gap <= gaps["take"])),
              "no long wait in a program")
    invariant(~before | ((t_take <= age) & (gap <= gaps["end"])), "no long wait before the answer")
    invariant(~before | ~handler("READ_REQUEST") | (gap == 1), "READ request bytes in a row")
    invariant(~before | ~seq["wr_pending"] | (gap <= 1 + core_wait),
              "a LOAD entry written within a Core wait of its last byte")

    # -- the sequencer ------------------------------------------------------------------------
    invariant(~sequencer("FETCH") | ((seq["fetched"] >= 1) & (seq["fetched"] < isa.INSN_BYTES) &
                                     (seq["insn_left"] + isa.INSN_BYTES ==
                                      rest + seq["fetched"]) & (gap == 1)),
              "FETCH matches the cursor")
    invariant(~sequencer("EXECUTE") | (seq["insn_left"] == rest), "EXECUTE after 16 bytes")
    entry_bytes = Mux(seq["ld_buffer"] == isa.Buffer.ACT, config.act_entry_bytes,
                      Mux(seq["ld_buffer"] == isa.Buffer.WGT, config.weight_entry_bytes,
                          Mux(seq["ld_buffer"] == isa.Buffer.PARAM, config.param_entry_bytes,
                              1)))
    buffer_depth = Mux(seq["ld_buffer"] == isa.Buffer.ACT, config.act_depth,
                Mux(seq["ld_buffer"] == isa.Buffer.WGT, config.weight_depth,
                    Mux(seq["ld_buffer"] == isa.Buffer.PARAM, config.param_depth,
                        256 if config.lut else 0)))
    index, entry, left = seq["ld_index"], seq["ld_entry"], seq["ld_left"]
    lanes = Cat(*(index == lane for lane in range(len(seq["ld_lane"]))))
    invariant(~sequencer("LOAD") | (
        (left >= 1) & (index < entry) & (entry == entry_bytes) &
        (seq["ld_lane"] == lanes) &
        (dut["sequencer.ld_last"] == (index + 1 == entry)) &
        (dut["sequencer.ld_final"] == (left == 1)) &
        ((left - 1) * entry + entry - index <= rest) &
        (seq["ld_addr"] + left <= buffer_depth)), "LOAD gathers within the payload and its buffer")

    # -- the answer ---------------------------------------------------------------------------
    act_bytes = config.act_entry_bytes

    def region_checked(addr, count):
        return ((count >= 1) & (addr + count <= config.act_depth) &
                (count * act_bytes <= config.max_payload))

    # (a READ request overwrites store_addr/count; an EXEC clears store_valid when it starts)
    invariant(~handler("RUN", "FINISH", "ANSWER_EXEC") | ~reg["store_valid"] |
              region_checked(reg["store_addr"], reg["store_count"]), "STORE region checked")
    invariant(~reg["last_store_valid"] |
              region_checked(reg["last_store_addr"], reg["last_store_count"]),
              "repeated STORE region checked")
    invariant(~handler("READ_CHECK") | reg["read_bad_count"] | reg["read_bad_addr"] |
              region_checked(reg["store_addr"], reg["store_count"]), "READ region checked")
    invariant(~handler("READ_WAIT") | region_checked(reg["store_addr"], reg["store_count"]),
              "READ region checked")
    after = working & answered
    resp_left, resp_length = reg["resp_left"], reg["resp_length"]
    send_gap = Mux(reg["resp_act"], ACT_GAP, 1)
    longest_record = max(len(protocol.COUNTER_NAMES) * 8, protocol.ID_LAYOUT.nbytes,
                         protocol.ERROR_LAYOUT.nbytes)
    invariant(~after | (t_answer <= 1 + gaps["take"] * config.max_payload + gaps["end"]),
              "answered on time")
    invariant(~after | (resp_left <= resp_length) &
              (t_send <= t_answer + protocol.HEADER_BYTES + send_gap * (resp_length - resp_left)),
              "response bytes on time")
    invariant(~reg["resp_act"] |
              ((resp_length <= config.max_payload) & (resp_length % act_bytes == 0)),
              "ACT response length")
    invariant(~reg["resp_act"] | ~handler("READ_WAIT_EXEC", "RESPOND") |
              (reg["act_addr"] * act_bytes + resp_length <= config.act_depth * act_bytes),
              "ACT response region")
    invariant(reg["resp_act"] | (resp_length <= longest_record), "record response length")
    ends = config.act_depth * act_bytes
    invariant(~after | ~reg["resp_act"] | ~handler("ACT_READ", "ACT_LATCH") | (
        (resp_left >= 1) & (resp_left % act_bytes == 0) &
        (reg["act_addr"] * act_bytes + resp_left <= ends)), "ACT entries to read")
    entry_left = reg["entry_left"]
    invariant(~after | ~reg["resp_act"] | ~handler("SEND") | (
        (entry_left >= 1) & (entry_left <= act_bytes) & (entry_left <= resp_left) &
        (reg["entry_byte"] + entry_left == act_bytes) &
        ((resp_left - entry_left) % act_bytes == 0) &
        (reg["act_addr"] * act_bytes + resp_left - entry_left <= ends)), "ACT entry being sent")
    sent, remaining, length = tx["sent"], tx["remaining"], tx["length"]
    invariant(~after | (
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
    invariant(~before | (sender("IDLE") & ~handler("IDLE", "SEND", "ACT_READ", "ACT_LATCH")),
              "nothing sent before the answer")
    return bench, induction_depth(core_wait) if depth is None else depth
