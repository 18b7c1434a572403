"""The gather of one ``CONV`` step: per-lane ACT reads from a banked ACT, conflicts serialised.

ISA version 3 (docs/isa.md, "Window gather") has each row lane *r* of a gathered ``GEMM`` step
read its own operand: operand ``lane[r]`` of ``ACT[entry[r]]``, or the window's ``pad_value``.
The ACT of a ``cnn`` configuration is built as ``rows / act_bank_lanes`` banks, each holding
``act_bank_lanes`` consecutive operands of every entry behind its own read address
(docs/architecture.md, "Memories and the gather"). :class:`GatherArbiter` takes one step's
requests and reads them in as few cycles as the banks allow: in each cycle every bank reads the
entry of its lowest pending lane, which serves every pending lane asking that bank for that
entry. A step therefore takes as many cycles as its busiest bank has distinct entries, at least
one: exactly ``tessera.runtime.conv.gather_plan(...).step_cycles``, the emulator's cost.

For 100 MHz on the ECP5 (issue #15) nothing is compared while a step is read: at its
acceptance the step's requests are turned into registers — each lane's bank (one-hot) and, per
pair of lanes, "same bank" and "same bank, other entry" (the pairs still pending are kept as
``live``), and per lane whether a lower lane is pending on its bank (``below``, kept a cycle
ahead from the lanes each cycle leaves pending) — so that each cycle the lowest pending lane per
bank is one AND, the lanes it serves and the banks' addresses are AND-OR logic of registers,
and ``i_step.ready`` (the last read cycle: no live pair left) one OR of registers; the banks'
data reach ``o_operands`` through the bank choice and one select. ``rows * (rows - 1) / 2``
bits per matrix: 28 at 8 lanes, 496 at 32. These registers load from the payload in every
cycle in which a step may be accepted (``i_step.ready``), accepted or not; the acceptance itself,
late (the GEMM engine's start), reaches only ``active`` and the pending lanes.

The reads are pipelined so that no logic meets a block RAM's ports in the cycle it uses them
(on the ECP5 of speed grade 6 a DP16KD's clock-to-output is 5.8 ns of a 10 ns cycle): a read
decided in cycle *t* reaches the bank from the ``bank_en``/``bank_addr`` registers in *t+1*, its
data (the bank's registered read) is registered again beside the bank in *t+3* (``bank_q``), and
only then chosen by the lanes; each read's lane tags travel down the same three registers.

Timing (as the GEMM engine's operand reads, ``hw/gemm.py``, plus
:data:`~tessera.spec.timing.GATHER_PIPELINE_CYCLES`): a step is accepted in cycle *T*
(``i_step`` transfer); its reads are decided in cycles *T+1 … T+n* (``n`` its cost) and
issued to the banks a cycle later, and the next step is accepted in cycle *T+n*, so consecutive
steps read back to back; the gathered operands are shown on ``o_operands`` with ``o_valid`` in
cycle *T+n+3* (*T+n+1+GATHER_PIPELINE_CYCLES*), for that cycle only.
"""

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.spec.timing import GATHER_PIPELINE_CYCLES

__all__ = ["GatherArbiter", "gather_request"]


def gather_request(config) -> data.StructLayout:
    """Return the layout of one step's requests: per row lane an ACT entry, an operand, a pad
    (and the entry's base: ``entry`` less a channel common to the step's lanes)."""
    entry = unsigned(max(1, (config.act_depth - 1).bit_length()))
    lane = data.StructLayout({
        "entry": entry,
        # the entry less the step's channel (the same for every lane): two lanes ask for the
        # same entry when their bases are equal, compared without the adder that makes `entry`
        "base": entry,
        "operand": unsigned(max(1, (config.rows - 1).bit_length())),
        "pad": unsigned(1),
    })
    return data.ArrayLayout(lane, config.rows)


class GatherArbiter(wiring.Component):
    """Read the operands of gathered steps from a banked ACT, one bank read per bank per cycle.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
        ``rows``, ``act_bank_lanes``, ``act_depth`` and ``input_bits`` are used.

    Members
    -------
    i_step : In(stream.Signature(gather_request(config)))
        One step's requests; ready when no step is pending or in the last read cycle of one.
    pad_value : In(input_bits)
        The operand of a lane whose request has ``pad`` set (the window's ``pad_value``).
    bank_en : Out(banks)
        Bank *b* reads ``bank_addr[b]`` this cycle (both registers).
    bank_addr : Out(ArrayLayout(entry width, banks))
    bank_data : In(ArrayLayout(act_bank_lanes * input_bits, banks))
        Bank *b*'s read data, the cycle after its read (operand *i* of the bank in bits
        ``[i*input_bits, (i+1)*input_bits)``: operand ``b*act_bank_lanes + i`` of the entry).
    o_valid : Out(1)
        The operands of a step are on ``o_operands`` this cycle.
    o_operands : Out(ArrayLayout(input_bits, rows))
    """

    def __init__(self, config):
        self._config = config
        banks = config.rows // config.act_bank_lanes
        request = gather_request(config)
        entry_width = request.elem_shape["entry"].shape.width
        super().__init__({
            "i_step": In(stream.Signature(request)),
            "pad_value": In(config.input_bits),
            "bank_en": Out(banks),
            "bank_addr": Out(data.ArrayLayout(unsigned(entry_width), banks)),
            "bank_data": In(data.ArrayLayout(unsigned(config.act_bank_lanes * config.input_bits),
                                             banks)),
            "o_valid": Out(1),
            "o_operands": Out(data.ArrayLayout(unsigned(config.input_bits), config.rows)),
        })

    def elaborate(self, platform):
        cfg = self._config
        rows, lanes_per_bank, bits = cfg.rows, cfg.act_bank_lanes, cfg.input_bits
        banks = rows // lanes_per_bank
        sub_bits = (lanes_per_bank - 1).bit_length()  # act_bank_lanes divides rows, a power of 2
        m = Module()

        def bank_of(operand):
            return operand[sub_bits:] if banks > 1 else C(0, 1)

        # What a step needs in each of its cycles, registered at its acceptance (from the
        # payload): the lanes' entries, banks (one-hot) and operands within their bank, and per
        # pair of lanes s < r whether they ask the same bank (`same_bank`) and whether they ask
        # it for different entries (`conflict`). Each cycle is then AND-OR logic of registers.
        step = Signal(gather_request(cfg))
        bank_hot = [Signal(banks, name=f"bank_hot{r}") for r in range(rows)]
        same_bank = [Signal(max(1, r), name=f"same_bank{r}") for r in range(rows)]
        conflict = [Signal(max(1, r), name=f"conflict{r}") for r in range(rows)]
        # Per pair of pending lanes s < r: conflict, kept as lanes are served. None left: the
        # step's last read cycle, the arbiter's `ready` from registers through one OR.
        live = [Signal(max(1, r), name=f"live{r}") for r in range(rows)]
        pending = Signal(rows)                       # lanes whose operand is not read yet
        active = Signal()                            # a step is being read (at least a cycle)

        # Per bank, the lowest pending lane asking it gives the bank's read this cycle; every
        # pending lane asking that bank for that entry is served by it.
        # `below`: a lower lane is pending on the lane's bank (registered: it is known a cycle
        # ahead, from the lanes this cycle leaves pending).
        below = Signal(rows)
        lowest = Signal(rows)
        served = Signal(rows)
        for r in range(rows):
            first = [lowest[s] & conflict[r][s] for s in range(r)]
            m.d.comb += [lowest[r].eq(pending[r] & ~below[r]),
                         served[r].eq(pending[r] & ~Cat(*first).any() if r else pending[r])]
        # The reads decided this cycle reach the banks from registers a cycle later (the
        # request stage of the read pipeline, module docstring).
        for b in range(banks):
            pick = [lowest[r] & bank_hot[r][b] for r in range(rows)]
            addr = 0
            for r in range(rows):
                addr = addr | Mux(pick[r], step[r].entry, 0)
            m.d.sync += [self.bank_addr[b].eq(addr),
                         self.bank_en[b].eq(Cat(*[pending[r] & bank_hot[r][b]
                                                  for r in range(rows)]).any())]
        # The last read cycle: every pending lane is served (no two ask a bank for two entries).
        last = Signal()
        m.d.comb += [last.eq(active & ~Cat(*live[1:]).any()),
                     self.i_step.ready.eq(~active | last)]

        # The served lanes' bank and operand and the step's padded lanes, carried down the read
        # pipeline with the data: decided (cycle t), requested (t+1), read (t+2), registered
        # (t+3, `bank_q`), chosen and shown.
        took = Signal(rows)
        took_bank = Signal(data.ArrayLayout(range(banks), rows))
        took_sub = Signal(data.ArrayLayout(range(lanes_per_bank), rows))
        out_pad = Signal(rows)             # the padded lanes of the step shown (then none)
        done = Signal()
        decided = [Signal.like(v, name=f"{n}0") for v, n in ((took_bank, "took_bank"),
                                                              (took_sub, "took_sub"),
                                                              (out_pad, "out_pad"))]
        for r in range(rows):
            m.d.comb += decided[0][r].eq(bank_of(step[r].operand))
            if sub_bits:
                m.d.comb += decided[1][r].eq(step[r].operand[:sub_bits])
        m.d.comb += decided[2].eq(Mux(last, Cat(step[r].pad for r in range(rows)), 0))
        tags = Cat(served, *decided, last)
        assert GATHER_PIPELINE_CYCLES == 2, "the request and data registers below"
        for stage in range(1 + GATHER_PIPELINE_CYCLES):
            later = Signal(len(tags), name=f"tags{stage + 1}")
            m.d.sync += later.eq(tags)
            tags = later
        m.d.comb += Cat(took, took_bank, took_sub, out_pad, done).eq(tags)
        bank_q = Signal.like(self.bank_data)     # the banks' data, registered beside them
        m.d.sync += bank_q.eq(self.bank_data)
        held = Signal(data.ArrayLayout(unsigned(bits), rows))   # operands read before the last
        bank_data = Array(bank_q[b] for b in range(banks))
        for r in range(rows):
            word = bank_data[took_bank[r]]
            arrived = word.word_select(took_sub[r], bits) if lanes_per_bank > 1 else word
            # A padded lane is never served: the late bank data passes one select only. (A lane
            # padded in a step holds the pad value from its showing until its next operand.)
            operand = Mux(took[r], arrived, Mux(out_pad[r], self.pad_value, held[r]))
            m.d.sync += held[r].eq(operand)
            m.d.comb += self.o_operands[r].eq(operand)

        m.d.comb += self.o_valid.eq(done)
        # Whenever a step may be accepted (`i_step.ready`, from registers) the step's registers
        # load from the payload, whether it is accepted or not, else they update: the acceptance
        # comes late (the engine's start reaches i_step.valid, issue #15) and reaches only
        # `active` and `pending` (as data: a step not accepted leaves no lane pending, and every
        # output is gated by them), not the select of the other registers.
        accept = Signal()
        m.d.comb += accept.eq(self.i_step.valid & self.i_step.ready)
        request = self.i_step.payload
        may = self.i_step.ready

        def load(register, new, update):
            taken = Signal.like(register, name=f"{register.name}_new", attrs={"keep": 1})
            kept = Signal.like(register, name=f"{register.name}_kept", attrs={"keep": 1})
            m.d.comb += [taken.eq(new), kept.eq(update)]
            m.d.sync += register.eq(Mux(may, taken, kept))

        same, differ = {}, {}                        # the payload's pairs s < r
        for r in range(rows):
            for s in range(r):
                same[r, s] = bank_of(request[r].operand) == bank_of(request[s].operand)
                differ[r, s] = same[r, s] & (request[r].base != request[s].base)
        left = pending & ~served
        load(pending, Cat(~request[r].pad & accept for r in range(rows)), left)
        below_new = Cat(C(0, 1), *[Cat(*[same[r, s] & ~request[s].pad for s in range(r)]).any()
                                   for r in range(1, rows)])
        below_upd = Cat(C(0, 1), *[Cat(*[left[s] & same_bank[r][s] for s in range(r)]).any()
                                   for r in range(1, rows)])
        load(below, below_new, Mux(active, below_upd, below))
        for r in range(1, rows):
            live_new = Cat(*[differ[r, s] & ~request[r].pad & ~request[s].pad for s in range(r)])
            live_upd = live[r] & ~Cat(*[served[r] | served[s] for s in range(r)])
            load(live[r], live_new, Mux(active, live_upd, live[r]))
        load(active, accept, active)
        with m.If(may):
            m.d.sync += step.eq(request)
            for r in range(rows):
                m.d.sync += bank_hot[r].eq(C(1, banks) << bank_of(request[r].operand))
                for s in range(r):
                    m.d.sync += [same_bank[r][s].eq(same[r, s]), conflict[r][s].eq(differ[r, s])]
        return m
