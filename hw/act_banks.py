"""The banked ACT of a ``cnn`` configuration: one entry-wide view, per-bank gather reads.

docs/architecture.md ("Memories and the gather"): the ACT is built as ``rows / act_bank_lanes``
banks, each holding ``act_bank_lanes`` consecutive operands of every entry behind its own read
address, so a gathered step reads a different entry in each bank. :class:`ActBanks` keeps the
entry-wide ports of the version-2 ACT — one write (a ``LOAD`` entry or a drained column, all
banks at one address) and one read of a whole entry (``STORE``/``READ`` answers, plain
``GEMM`` operands) — beside the :class:`~tessera.hw.gather.GatherArbiter`'s per-bank reads,
which take a bank's read port in the cycles they read it. Each bank is a
:func:`~tessera.hw.ram.block_ram` read through :func:`~tessera.hw.ram.registered_read`.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .ram import block_ram, registered_read
from .spram import SpramMemory

__all__ = ["ActBanks"]


class ActBanks(wiring.Component):
    """``act_depth`` entries of ``rows`` operands in ``rows / act_bank_lanes`` banks.

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig
    spram : bool
        Build each bank on a single-port :class:`~tessera.hw.spram.SpramMemory` (the iCE40
        UltraPlus): a write then takes the bank's only port, so no read may be asked in a cycle
        with ``wr_en``, and a write leaves the read data undefined until the next read.

    Members
    -------
    wr_en, wr_addr, wr_data : In
        Write entry ``wr_addr`` (``rows * input_bits`` bits, operand *r* in bits
        ``[r*input_bits, (r+1)*input_bits)``) this cycle.
    rd_en, rd_addr : In
        Read entry ``rd_addr``; the whole entry is on ``rd_data`` the cycle after (held while no
        read).
    rd_data : Out(rows * input_bits)
    bank_en, bank_addr : In
        Gather reads: bank *b* reads ``bank_addr[b]`` (takes precedence over ``rd_en`` for that
        bank); its data is ``bank_data[b]`` the cycle after.
    bank_data : Out(ArrayLayout(act_bank_lanes * input_bits, banks))
    """

    def __init__(self, config, *, spram=False):
        self._config = config
        self._spram = spram
        banks = config.rows // config.act_bank_lanes
        addr = unsigned(max(1, (config.act_depth - 1).bit_length()))
        lane_bits = config.act_bank_lanes * config.input_bits
        super().__init__({
            "wr_en": In(1), "wr_addr": In(addr), "wr_data": In(config.rows * config.input_bits),
            "rd_en": In(1), "rd_addr": In(addr), "rd_data": Out(config.rows * config.input_bits),
            "bank_en": In(banks),
            "bank_addr": In(data.ArrayLayout(addr, banks)),
            "bank_data": Out(data.ArrayLayout(unsigned(lane_bits), banks)),
        })

    def elaborate(self, platform):
        cfg = self._config
        banks = cfg.rows // cfg.act_bank_lanes
        width = cfg.act_bank_lanes * cfg.input_bits
        m = Module()
        words = []
        for b in range(banks):
            gather = self.bank_en[b]
            if self._spram:
                m.submodules[f"bank{b}"] = mem = SpramMemory(width=width, depth=cfg.act_depth)
                m.d.comb += [
                    mem.write.en.eq(self.wr_en), mem.write.addr.eq(self.wr_addr),
                    mem.write.data.eq(self.wr_data[b * width:(b + 1) * width]),
                    mem.read.en.eq(gather | self.rd_en),
                    mem.read.addr.eq(Mux(gather, self.bank_addr[b], self.rd_addr)),
                    self.bank_data[b].eq(mem.read.data),
                ]
                words.append(mem.read.data)
                continue
            m.submodules[f"bank{b}"] = mem = block_ram(shape=width, depth=cfg.act_depth)
            write = mem.write_port()
            read = registered_read(m, mem, platform, en=gather | self.rd_en,
                                   name=f"bank{b}_rd_data")
            m.d.comb += [
                write.en.eq(self.wr_en), write.addr.eq(self.wr_addr),
                write.data.eq(self.wr_data[b * width:(b + 1) * width]),
                read.addr.eq(Mux(gather, self.bank_addr[b], self.rd_addr)),
                self.bank_data[b].eq(read.data),
            ]
            words.append(read.data)
        m.d.comb += self.rd_data.eq(Cat(*words))
        return m
