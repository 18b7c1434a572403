"""Instruction decode and validation: the executor's error table, combinationally.

``docs/isa.md`` fixes which status an instruction earns and in which order the checks apply
(the emulator, :mod:`tessera.runtime.machine`, implements the same order):

1. opcode above 5 -> ``BAD_OPCODE``;
2. non-zero padding (a ``_pad*`` field or any bit after the last field) -> ``BAD_FIELD``;
3. the field checks (``LOAD``: buffer, LUT present, count; ``GEMM``: k, m_rows, n_cols;
   ``POST``: mode built, LUT present; ``STORE``: count) -> ``BAD_FIELD``;
4. buffer ranges (a ``GEMM`` checks all four, drain or not) -> ``BAD_ADDRESS``;
5. a ``LOAD`` payload past the end of the frame -> ``TRUNCATED``; a ``STORE`` that is not last or
   asks for more than ``max_payload`` bytes -> ``STORE_NOT_LAST``.

(An instruction with fewer than 16 bytes left in the frame is caught by the executor before it
is decoded.) Every layout comes from :data:`tessera.hw.layouts.INSN_LAYOUTS`.
"""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.spec import isa
from tessera.spec.isa import Buffer, Mode, Opcode
from tessera.spec.protocol import Status

from .layouts import INSN_LAYOUTS

__all__ = ["InstructionDecoder"]


class InstructionDecoder(wiring.Component):
    """Check one 128-bit instruction against the configuration (purely combinational).

    Parameters
    ----------
    config : tessera.spec.AcceleratorConfig

    Members
    -------
    insn : In(128)
        The instruction word (little-endian bytes, first byte lowest).
    remaining : In(16)
        Frame bytes after the instruction (``length - offset - 16``).
    status : Out(8)
        ``Status.OK`` or the first failing check's status.
    opcode : Out(4)
    entry_bytes : Out(range(max_entry + 1))
        ``LOAD``: bytes per entry of the addressed buffer.
    """

    def __init__(self, config):
        self._config = config
        self._max_entry = max(config.entry_bytes(b) for b in Buffer)
        super().__init__({
            "insn": In(isa.INSN_BYTES * 8),
            "remaining": In(16),
            "status": Out(8),
            "opcode": Out(4),
            "entry_bytes": Out(range(self._max_entry + 1)),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        view = {op: layout(self.insn) for op, layout in INSN_LAYOUTS.items()}
        m.d.comb += self.opcode.eq(self.insn[0:4])

        def pad_bad(op):
            # Padding fields and the tail after the last field (``struct_layout`` names them
            # with a leading underscore) must be zero.
            result = Const(0, 1)
            for name in INSN_LAYOUTS[op].members:
                if name.startswith("_"):
                    result = result | (view[op][name] != 0)
            return result

        def out_of(start, count, depth):
            # start + count > depth, computed without wrap-around (17 bits)
            return (start + count) > depth

        load, gemm, post, store = (view[Opcode.LOAD], view[Opcode.GEMM], view[Opcode.POST],
                                   view[Opcode.STORE])

        # LOAD
        depth = Signal(17)
        entry = Signal(range(self._max_entry + 1))
        with m.Switch(load.buffer):
            for buffer in Buffer:
                with m.Case(buffer):
                    m.d.comb += [depth.eq(cfg.depth(buffer)), entry.eq(cfg.entry_bytes(buffer))]
        m.d.comb += self.entry_bytes.eq(entry)
        load_field = (load.buffer > max(Buffer)) | (load.count == 0)
        if not cfg.lut:
            load_field = load_field | (load.buffer == Buffer.LUT)
        load_addr = out_of(load.addr, load.count, depth)
        load_late = (load.count * entry) > self.remaining

        # GEMM
        gemm_field = ((gemm.k == 0) | (gemm.m_rows == 0) | (gemm.m_rows > cfg.rows) |
                      (gemm.n_cols == 0) | (gemm.n_cols > cfg.cols))
        gemm_addr = (out_of(gemm.a_addr, gemm.k, cfg.act_depth) |
                     out_of(gemm.w_addr, gemm.k, cfg.weight_depth) |
                     out_of(gemm.out_addr, gemm.n_cols, cfg.act_depth) |
                     out_of(gemm.param_addr, gemm.n_cols, cfg.param_depth))

        # POST
        post_field = Const(0, 1)
        for mode in Mode:
            if not cfg.supports(mode.label):
                post_field = post_field | (post.mode == mode)
        if not cfg.lut:
            post_field = post_field | post.lut

        # STORE
        store_field = store.count == 0
        store_addr = out_of(store.addr, store.count, cfg.act_depth)
        store_late = (self.remaining != 0) | (store.count * cfg.act_entry_bytes > cfg.max_payload)

        checks = {
            Opcode.LOAD: (load_field, load_addr, load_late, Status.TRUNCATED),
            Opcode.GEMM: (gemm_field, gemm_addr, Const(0, 1), Status.OK),
            Opcode.POST: (post_field, Const(0, 1), Const(0, 1), Status.OK),
            Opcode.STORE: (store_field, store_addr, store_late, Status.STORE_NOT_LAST),
        }
        with m.Switch(self.opcode):
            for op in Opcode:
                field, addr, late, late_status = checks.get(
                    op, (Const(0, 1), Const(0, 1), Const(0, 1), Status.OK))
                with m.Case(op):
                    with m.If(pad_bad(op)):
                        m.d.comb += self.status.eq(Status.BAD_FIELD)
                    with m.Elif(field):
                        m.d.comb += self.status.eq(Status.BAD_FIELD)
                    with m.Elif(addr):
                        m.d.comb += self.status.eq(Status.BAD_ADDRESS)
                    with m.Elif(late):
                        m.d.comb += self.status.eq(late_status)
                    with m.Else():
                        m.d.comb += self.status.eq(Status.OK)
            with m.Default():
                m.d.comb += self.status.eq(Status.BAD_OPCODE)
        return m
