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

Timing (as the GEMM engine's operand reads, ``hw/gemm.py``): a step is accepted in cycle *T*
(``i_step`` transfer); its reads are issued in cycles *T+1 … T+n* (``n`` its cost) and the next
step is accepted in cycle *T+n*, so consecutive steps read back to back; the gathered operands
are shown on ``o_operands`` with ``o_valid`` in cycle *T+n+1* (the banks' registered read data),
for that cycle only.
"""

from amaranth.hdl import Array, C, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["GatherArbiter", "gather_request"]


def gather_request(config) -> data.StructLayout:
    """Return the layout of one step's requests: per row lane an ACT entry, an operand, a pad."""
    lane = data.StructLayout({
        "entry": unsigned(max(1, (config.act_depth - 1).bit_length())),
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
        Bank *b* reads ``bank_addr[b]`` this cycle.
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
        m = Module()

        step = Signal(gather_request(cfg))          # the requests being read
        pending = Signal(rows)                       # lanes whose operand is not read yet
        active = Signal()                            # a step is being read (at least a cycle)
        bank_of = Array(C(operand // lanes_per_bank, range(banks)) for operand in range(rows))
        sub_of = Array(C(operand % lanes_per_bank, range(lanes_per_bank))
                       for operand in range(rows))

        # Per bank, the lowest pending lane asking it gives the bank's read this cycle; every
        # pending lane asking that bank for that entry is served by it.
        served = Signal(rows)
        served_terms = [Const(0, 1)] * rows
        for b in range(banks):
            asks = [pending[r] & (bank_of[step[r].operand] == b) for r in range(rows)]
            addr = Const(0, len(self.bank_addr[b]))
            for r in reversed(range(rows)):
                addr = Mux(asks[r], step[r].entry, addr)
            m.d.comb += [self.bank_addr[b].eq(addr), self.bank_en[b].eq(Cat(*asks).any())]
            for r in range(rows):
                served_terms[r] = served_terms[r] | (asks[r] & (step[r].entry == addr))
        m.d.comb += served.eq(Cat(*served_terms))
        last = Signal()                              # the step's last read cycle
        m.d.comb += [last.eq(active & (served == pending)),
                     self.i_step.ready.eq(~active | last)]

        # The served lanes' bank and operand, kept for the data a cycle later.
        took = Signal(rows)
        took_bank = Signal(data.ArrayLayout(range(banks), rows))
        took_sub = Signal(data.ArrayLayout(range(lanes_per_bank), rows))
        m.d.sync += took.eq(served)
        for r in range(rows):
            with m.If(served[r]):
                m.d.sync += [took_bank[r].eq(bank_of[step[r].operand]),
                             took_sub[r].eq(sub_of[step[r].operand])]
        held = Signal(data.ArrayLayout(unsigned(bits), rows))   # operands read before the last
        out_pad = Signal(rows)                       # the padded lanes of the step shown next
        with m.If(last):
            m.d.sync += out_pad.eq(Cat(step[r].pad for r in range(rows)))
        bank_data = Array(self.bank_data[b] for b in range(banks))
        for r in range(rows):
            word = bank_data[took_bank[r]]
            arrived = word.word_select(took_sub[r], bits) if lanes_per_bank > 1 else word
            operand = Mux(took[r], arrived, held[r])
            m.d.sync += held[r].eq(operand)
            m.d.comb += self.o_operands[r].eq(Mux(out_pad[r], self.pad_value, operand))

        done = Signal()
        m.d.sync += done.eq(last)
        m.d.comb += self.o_valid.eq(done)
        with m.If(active):
            m.d.sync += pending.eq(pending & ~served)
        with m.If(last):
            m.d.sync += active.eq(0)
        with m.If(self.i_step.valid & self.i_step.ready):
            request = self.i_step.payload
            m.d.sync += [step.eq(request), active.eq(1),
                         pending.eq(Cat(~request[r].pad for r in range(rows)))]
        return m
