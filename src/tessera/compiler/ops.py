"""The compiler's instruction stream before framing.

Code generation emits these operations; :mod:`.hazards` inserts ``SYNC`` between them and
:mod:`.framing` splits ``LOAD`` payloads across frames and encodes everything with
:func:`tessera.spec.isa.encode`. A ``LOAD`` either carries its payload (weights, parameters,
tables) or refers to a byte range of the batch input that :meth:`CompiledModel.program` fills
in, so one schedule serves every batch of the same shape.
"""

from __future__ import annotations

from ..spec import isa

__all__ = ["LoadOp", "GemmOp", "PostOp", "SyncOp", "StoreOp", "WordOp"]


class LoadOp:
    """``LOAD`` of ``count`` entries of ``buffer`` at ``addr``.

    Exactly one of ``payload`` (the bytes) and ``x_offset`` (byte offset into the chunk's packed
    input) is given.
    """

    __slots__ = ("buffer", "addr", "count", "payload", "x_offset")

    def __init__(self, buffer, addr, count, *, payload=None, x_offset=None):
        self.buffer, self.addr, self.count = isa.Buffer(buffer), addr, count
        self.payload, self.x_offset = payload, x_offset

    def __repr__(self):
        src = f"x+{self.x_offset}" if self.payload is None else f"{len(self.payload)} bytes"
        return f"LoadOp({self.buffer.name}, addr={self.addr}, count={self.count}, {src})"


class GemmOp:
    """``GEMM``; ``lut`` records whether its drain uses the lookup table (the post state)."""

    __slots__ = ("gemm", "lut")

    def __init__(self, gemm: isa.Gemm, lut: bool):
        self.gemm, self.lut = gemm, lut

    def __repr__(self):
        return f"GemmOp({self.gemm}, lut={self.lut})"


class PostOp:
    """``POST``: sets the post state captured by later GEMMs."""

    __slots__ = ("post",)

    def __init__(self, post: isa.Post):
        self.post = post


class SyncOp:
    """``SYNC``: wait until the GEMM engine and the drain unit are idle."""

    __slots__ = ()


class StoreOp:
    """``STORE`` of ``count`` ACT entries at ``addr``; ``target`` places the response."""

    __slots__ = ("addr", "count", "target")

    def __init__(self, addr, count, target):
        self.addr, self.count, self.target = addr, count, target


class WordOp:
    """Any other instruction (``WINDOW``, ``CONV``, ``ADD`` of ISA version 3), encoded as is."""

    __slots__ = ("insn",)

    def __init__(self, insn: isa.Instruction):
        self.insn = insn

    def __repr__(self):
        return f"WordOp({self.insn})"
