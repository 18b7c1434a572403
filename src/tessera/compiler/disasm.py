"""Human-readable listing of EXEC payloads (for documentation, debugging and tests)."""

from __future__ import annotations

from ..spec import isa

__all__ = ["disassemble", "format_instruction"]


def format_instruction(insn) -> str:
    """Return one instruction as text, e.g. ``GEMM  a=0 w=64 k=32 out=2040 param=0 8x8 clear``."""
    if isinstance(insn, isa.Load):
        return f"LOAD  {insn.buffer.name:<5} addr={insn.addr} count={insn.count}"
    if isinstance(insn, isa.Gemm):
        flags = " ".join(f for f, on in (("clear", insn.clear), ("drain", insn.drain)) if on)
        return (f"GEMM  a={insn.a_addr} w={insn.w_addr} k={insn.k} out={insn.out_addr} "
                f"param={insn.param_addr} {insn.m_rows}x{insn.n_cols} {flags}").rstrip()
    if isinstance(insn, isa.Post):
        return (f"POST  mode={insn.mode.label} lut={int(insn.lut)} zp={insn.zero_point} "
                f"lo={insn.lo} hi={insn.hi}")
    if isinstance(insn, isa.Store):
        return f"STORE addr={insn.addr} count={insn.count}"
    return type(insn).__name__.upper()


def disassemble(frames, config, *, start=0) -> str:
    """Return a listing of EXEC payloads: one header line per frame, one line per instruction.

    Parameters
    ----------
    frames : list of bytes or Program
        EXEC payloads (a :class:`~tessera.compiler.program.Program` uses its ``frames``).
    config : AcceleratorConfig
        Gives the entry size of each buffer (to find where each ``LOAD`` payload ends).
    start : int
        Number of the first frame in the listing.
    """
    frames = getattr(frames, "frames", frames)
    lines = []
    for number, payload in enumerate(frames, start):
        insns = isa.decode_program(payload, config)
        lines.append(f"frame {number}: {len(payload)} bytes, {len(insns)} instructions")
        offset = 0
        for insn in insns:
            lines.append(f"  {offset:5d}  {format_instruction(insn)}")
            offset += isa.INSN_BYTES + len(getattr(insn, "payload", b""))
    return "\n".join(lines)
