"""The ``ADD`` of ISA version 3 on the drain unit: its queue, operand reads and write-back.

docs/isa.md ("``ADD``"): ``ACT[dst+e] = add(ACT[a_addr+e], ACT[b_addr+e])`` for ``e < count``,
operand by operand, with ``PARAM[param_addr ... param_addr+2]`` and the post state captured at
issue. :class:`AddStream` runs one on the :class:`~tessera.hw.add.AddUnit`: it reads the three
PARAM entries (the drain's read port), reads each entry pair through the ACT's entry read port,
feeds the ``rows`` operand pairs as the AddUnit takes them (one per rotation of three requant
passes), collects the results into an entry and writes it on the drain's ACT write port. The
AddUnit runs on the drain's requant (``requant``, from the drain's PostProcessor). With
``drain_lanes = L > 1`` there are ``L`` AddUnits in lockstep, each on its lane's PostProcessor
(``requant{i}``), each slot feeding ``L`` consecutive operand pairs.

Order and timing (``tessera.runtime.cycles``): an ``ADD`` is taken at once (``i_add``) unless
one is already queued (``i_add.ready`` is the register ``~pending``: the Core's readiness does
not reach the program sequencer's issue decision through logic); it starts in cycle *S*, the
first cycle after its transfer (:data:`~tessera.spec.timing.ADD_START_CYCLES`: it always waits in
the queue, so that its first addresses are registers) in which the engine and the drain unit are
both free (``unit_free``: everything issued before it has handed off and drained), and
from then occupies the drain unit for exactly ``(rows/L)*count*ADD_PASSES*requant_cycles +
ADD_OVERHEAD_CYCLES`` cycles, *S ... S+n-1* (``busy``). While it is queued or runs, the engine
accepts nothing (``blocks``): the ACT read port is the ADD's, and no block RAM needs a second
read port for it. A second ``ADD`` waits in ``i_add`` until the cycle after the first started
(:data:`~tessera.spec.timing.ADD_RELEASE_CYCLES`).

The last write comes in time for every ``requant_cycles = q``: the first pair is taken at the
latest in *S +* ``_FIRST_FEED_CYCLES``, each later one at the AddUnit's next rotation (an entry's
next pair is there three cycles after its last was taken, and a rotation takes at least three),
and from the first pass to the last result the requant's pipeline advances ``3 * (n - 1) +
AddUnit latency`` times (``n`` pairs per lane), ``q`` cycles for each of the ``3 * n`` passes its
iterative product works on, one for each of the others: ``ADD_PASSES * q * n + AddUnit.latency -
ADD_PASSES`` cycles, then the write. So ``ADD_OVERHEAD_CYCLES >= _FIRST_FEED_CYCLES +
AddUnit.latency + 2 - ADD_PASSES`` for every ``q``.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import ADD_OVERHEAD_CYCLES, ADD_PASSES, ADD_RELEASE_CYCLES

from .add import AddUnit
from .cnn_issue import add_issue
from .layouts import PARAM_ENTRY
from .postproc import SharedRequantSignature, shares_requant

__all__ = ["AddStream"]

# Cycles from the start S to the first pair's earliest acceptance: the ACT reads (S, S+1), the b
# entry's data register (S+2), then up to two cycles for the AddUnit's rotation. PARAM is read
# from registers in S+1 ... S+3: p_a is there from S+3, p_b from S+4 (the b pass).
_FIRST_FEED_CYCLES = 5


class AddStream(wiring.Component):
    """Sequence ``ADD`` instructions through one :class:`~tessera.hw.add.AddUnit`.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    i_add : In(stream.Signature(add_issue(config)))
        Issued ``ADD`` instructions; ready (a register) unless one is queued: ready again in the
        cycle after the queued one starts.
    unit_free : In(1)
        The engine is idle and the drain neither busy nor starting: an ``ADD`` may start.
    blocks : Out(1)
        The engine must not accept a command (an ``ADD`` is queued or runs).
    busy : Out(1)
        An ``ADD`` is queued or running (for the Core's ``idle``).
    param_en, param_addr : Out
        PARAM read (synchronous), registers both (in *S+1 ... S+3*); the drain's port, free
        while the drain unit is this ADD's.
    param_data : In(PARAM_ENTRY)
    act_en, act_addr : Out(1), Out(16)
        ACT entry read (the engine reads nothing meanwhile); ``act_data`` is that entry the
        cycle after. ``act_addr`` is a register's value, the one to read whenever ``blocks``
        (the Core selects it by ``blocks``, not by the later ``act_en``).
    act_data : In(rows * input_bits)
    wr_en, wr_addr, wr_data : Out
        ACT write of a result entry (``rows * output_bits``), on the drain's write port.
    requant, requant{i} : Out(SharedRequantSignature(config))
        Only with mode tflite (``shares_requant``): the drain's requant of lane 0 and of lanes
        1 ... ``drain_lanes - 1`` (hw/postproc.py).
    """

    def __init__(self, config):
        need = _FIRST_FEED_CYCLES + AddUnit.latency + 2 - ADD_PASSES
        if need > ADD_OVERHEAD_CYCLES:
            raise ValueError(f"An ADD's pipeline needs ADD_OVERHEAD_CYCLES >= {need}, but "
                             f"tessera.spec.timing has {ADD_OVERHEAD_CYCLES}; raise it (the "
                             f"emulator follows)")
        assert ADD_RELEASE_CYCLES == 1, "tessera.spec.timing.ADD_RELEASE_CYCLES"
        self._config = config
        # (without mode tflite the decoder refuses every ADD: no requant to lend)
        lanes = {f"requant{i}" if i else "requant": Out(SharedRequantSignature(config))
                 for i in range(config.drain_lanes)} if shares_requant(config) else {}
        super().__init__({
            "i_add": In(stream.Signature(add_issue(config))),
            "unit_free": In(1),
            "blocks": Out(1),
            "busy": Out(1),
            "param_en": Out(1),
            "param_addr": Out(16),
            "param_data": In(PARAM_ENTRY),
            "act_en": Out(1),
            "act_addr": Out(16),
            "act_data": In(config.rows * config.input_bits),
            "wr_en": Out(1),
            "wr_addr": Out(16),
            "wr_data": Out(config.rows * config.output_bits),
            **lanes,
        })

    def elaborate(self, platform):
        cfg = self._config
        rows, bits, lanes = cfg.rows, cfg.input_bits, cfg.drain_lanes
        interval = ADD_PASSES * cfg.requant_cycles
        m = Module()
        units = []
        for i in range(lanes):
            m.submodules[f"unit{i}"] = unit = AddUnit(cfg)
            if shares_requant(cfg):
                wiring.connect(m, unit.requant, wiring.flipped(getattr(self, f"requant{i}" if i
                                                                       else "requant")))
            units.append(unit)
        unit = units[0]                        # the others follow it in lockstep

        # -- the queue: one issued ADD waiting for the drain unit ---------------------------
        # Every ADD waits in the queue for at least a cycle (ADD_START_CYCLES), so that it starts
        # from registers: its first ACT address is the register `a_first`, loaded at the transfer.
        req = Signal(add_issue(cfg))
        pending = Signal()
        cand = req
        timing = Signal()                      # an ADD occupies the drain unit (after S)
        start = Signal()
        m.d.comb += [
            start.eq(pending & ~timing & self.unit_free),
            self.i_add.ready.eq(~pending),
            # (not `| start`: that is the engine's and the drain's state through logic, and it
            # was in the program sequencer's issue decision, orangecrab-25f-cnn's 89 MHz path)
            self.blocks.eq(timing | pending),
            self.busy.eq(timing | pending),
        ]
        transfer = self.i_add.valid & self.i_add.ready
        with m.If(start):
            m.d.sync += pending.eq(0)
        # a transfer (only while none is queued, so never with a start) is queued
        with m.If(transfer):
            m.d.sync += [pending.eq(1), req.eq(self.i_add.payload)]

        # -- the drain unit's occupancy -----------------------------------------------------
        constant = rows // lanes * interval
        timer = Signal(range((1 << 16) * constant + ADD_OVERHEAD_CYCLES))
        scaled = sum(cand.count << b for b in range(constant.bit_length()) if constant >> b & 1)
        with m.If(start):
            m.d.sync += [timer.eq(scaled + ADD_OVERHEAD_CYCLES - 1), timing.eq(1)]
        with m.Elif(timing):
            m.d.sync += [timer.eq(timer - 1), timing.eq(timer != 1)]

        # -- PARAM: p_a, p_b, p_y read in S+1, S+2, S+3 ---------------------------------------
        # The address and the enable are registers (`start` is the engine's and the drain's
        # state through logic: it only enables registers); p_a is in `params` from S+3, the
        # first pair's earliest acceptance, p_b from S+4, the pair's b pass at the earliest.
        p_addr = Signal(16)
        p_en = Signal()
        p_slot = Signal(3)                     # which of the three is read this cycle
        p_got = Signal(3)                      # which of the three arrives this cycle
        m.d.comb += [self.param_en.eq(p_en), self.param_addr.eq(p_addr)]
        m.d.sync += p_got.eq(Mux(p_en, p_slot, 0))
        with m.If(start):
            m.d.sync += [p_addr.eq(cand.param_addr), p_en.eq(1), p_slot.eq(1)]
        with m.Elif(p_en):
            m.d.sync += [p_addr.eq(p_addr + 1), p_slot.eq(p_slot << 1), p_en.eq(~p_slot[2])]
        params = Signal.like(unit.params)
        for i in range(3):
            with m.If(p_got[i]):
                m.d.sync += params[i].eq(self.param_data)

        post = Signal.like(cand.post)
        with m.If(start):
            m.d.sync += post.eq(cand.post)
        for each in units:
            m.d.comb += [each.params.eq(params), each.zero_point.eq(post.zero_point),
                         each.lo.eq(post.lo), each.hi.eq(post.hi)]

        # -- operands: entry a in cycle X, entry b in X+1, usable from X+3 --------------------
        a_ptr, b_ptr, dst = Signal(16), Signal(16), Signal(16)
        entries_left = Signal(17)              # entries not yet fetched
        fetch_b, got_a, got_b = Signal(), Signal(), Signal()
        have = Signal()                        # a_word and b_word hold the entry being fed
        # (shifted by a slot's operands at each feed: lane i's pair is always in bits
        # [i*bits, (i+1)*bits), no multiplexer before the requant's stage 0)
        a_word = Signal(rows * bits)
        b_word = Signal(rows * bits)
        fetch_a = Signal()
        feed = Signal()                        # the units take a slot's pairs
        # (registers only: the Core selects this address while an ADD is queued or runs)
        a_first = Signal(16)                   # the queued ADD's a_addr (a_ptr is in use)
        m.d.comb += [self.act_addr.eq(Mux(fetch_b, b_ptr, Mux(timing, a_ptr, a_first))),
                     self.act_en.eq(fetch_a | fetch_b)]
        m.d.sync += [fetch_b.eq(fetch_a), got_a.eq(fetch_a), got_b.eq(fetch_b)]
        with m.If(got_a):
            m.d.sync += a_word.eq(self.act_data)
        with m.Elif(feed):
            m.d.sync += a_word.eq(a_word >> (bits * lanes))
        with m.If(got_b):
            m.d.sync += [b_word.eq(self.act_data), have.eq(1)]
        with m.Elif(feed):
            m.d.sync += b_word.eq(b_word >> (bits * lanes))
        # `more`: entries_left != 0, kept as a register (the fetch decision feeds ACT's address)
        more = Signal()
        with m.If(transfer):
            m.d.sync += a_first.eq(self.i_add.payload.a_addr)
        with m.If(fetch_a):
            m.d.sync += [a_ptr.eq(self.act_addr + 1), entries_left.eq(entries_left - 1),
                         more.eq(entries_left != 1)]
        with m.If(fetch_b):
            m.d.sync += b_ptr.eq(b_ptr + 1)
        with m.If(start):
            m.d.comb += fetch_a.eq(1)
            m.d.sync += [b_ptr.eq(cand.b_addr), dst.eq(cand.dst),
                         entries_left.eq(cand.count - 1), more.eq(cand.count != 1)]

        # -- feeding: a pair whenever the AddUnits take one -----------------------------------
        row = Signal(range(max(rows, 2)))      # the slot's first operand
        row_last = Signal(init=rows == lanes)  # row == rows - lanes, kept as a register
        for i, each in enumerate(units):
            elem = each.i_elem.payload
            m.d.comb += [
                each.i_elem.valid.eq(have),
                each.sel.eq(timing),
                elem.a.eq(a_word.word_select(i, bits).as_signed()),
                elem.b.eq(b_word.word_select(i, bits).as_signed()),
            ]
        m.d.comb += feed.eq(unit.i_elem.valid & unit.i_elem.ready)
        with m.If(feed):
            m.d.sync += [row.eq(row + lanes),
                         row_last.eq(Mux(row_last, rows == lanes, row + lanes == rows - lanes))]
            with m.If(row_last):
                m.d.sync += [row.eq(0), have.eq(0)]
                with m.If(more):
                    m.d.comb += fetch_a.eq(1)

        # -- results: an entry per `rows` results, written the cycle after the last -----------
        out_row = Signal(range(max(rows, 2)))
        entry = Signal(rows * cfg.output_bits)
        completed = Signal.like(entry)
        m.d.comb += completed.eq(entry)
        with m.If(unit.o_valid):
            for i, each in enumerate(units):
                at = out_row + i if i else out_row
                m.d.comb += completed.word_select(at[:len(out_row)],
                                                  cfg.output_bits).eq(each.o_value)
            m.d.sync += [entry.eq(completed), out_row.eq(out_row + lanes)]
        m.d.sync += self.wr_en.eq(0)
        with m.If(unit.o_valid & (out_row == rows - lanes)):
            m.d.sync += [out_row.eq(0), self.wr_en.eq(1), self.wr_data.eq(completed),
                         self.wr_addr.eq(dst), dst.eq(dst + 1)]
        return m
