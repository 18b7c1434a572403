"""Framing: pack the instruction stream into EXEC payloads.

Rules (docs/isa.md, docs/protocol.md): a payload is at most ``config.max_payload`` bytes of whole
instructions, a ``LOAD`` with all of its payload; a ``STORE`` is the last instruction of its frame
and returns at most ``config.max_store_entries`` entries. Frames are filled greedily: a ``LOAD``
that does not fit in what is left of a frame is split (each piece a complete ``LOAD`` of at most
``config.max_load_entries`` entries) so that every frame but the last of a run is nearly full --
fewer frames means fewer link round trips.

The result is a :class:`FrameTemplate`: frames made of constant byte strings and references to
the batch input, filled in by :meth:`FrameTemplate.render`.
"""

from __future__ import annotations

from ..spec import isa
from ..spec.isa import INSN_BYTES
from .ops import GemmOp, LoadOp, PostOp, StoreOp, SyncOp, WordOp

__all__ = ["FrameTemplate", "frame_ops"]

_SYNC_WORD = isa.encode(isa.Sync())


class FrameTemplate:
    """Frames of one schedule, with the batch input left as holes.

    Attributes
    ----------
    frames : list of list
        Each frame is a list of parts: ``bytes`` or ``(x_offset, length)`` into the input.
    stores : dict of int to StoreTarget
        Frame index -> target of the STORE ending that frame (rows relative to the chunk).
    n_instructions : int
        Instructions in all frames.
    """

    def __init__(self, frames, stores, n_instructions):
        self.frames = frames
        self.stores = stores
        self.n_instructions = n_instructions

    @property
    def frame_bytes(self) -> list:
        """Return the payload length of every frame."""
        return [sum(len(p) if isinstance(p, bytes) else p[1] for p in f) for f in self.frames]

    def render(self, x_bytes=b"") -> list:
        """Return the EXEC payloads with the input bytes ``x_bytes`` filled in."""
        out = []
        for parts in self.frames:
            if len(parts) == 1 and isinstance(parts[0], bytes):
                out.append(parts[0])
            else:
                out.append(b"".join(p if isinstance(p, bytes) else
                                    x_bytes[p[0]:p[0] + p[1]] for p in parts))
        return out


class _Packer:
    def __init__(self, config):
        self.config = config
        self.limit = config.max_payload
        self.frames, self.stores = [], {}
        self.parts, self.size, self.n_instructions = [], 0, 0

    def flush(self):
        if self.parts:
            merged = []
            for p in self.parts:  # join neighbouring constant parts: fewer joins per render
                if isinstance(p, bytes) and merged and isinstance(merged[-1], bytes):
                    merged[-1] += p
                else:
                    merged.append(p)
            self.frames.append(merged)
            self.parts, self.size = [], 0

    def word(self, word):
        if self.size + INSN_BYTES > self.limit:
            self.flush()
        self.parts.append(word)
        self.size += INSN_BYTES
        self.n_instructions += 1

    def load(self, op):
        entry = self.config.entry_bytes(op.buffer)
        done = 0
        while done < op.count:
            room = (self.limit - self.size - INSN_BYTES) // entry
            if room < 1:
                self.flush()
                continue
            count = min(room, op.count - done)
            header = isa.encode(isa.Load(op.buffer, op.addr + done, count))
            start, length = done * entry, count * entry
            if op.payload is not None:
                body = op.payload[start:start + length]
            else:
                body = (op.x_offset + start, length)
            self.parts += [header, body]
            self.size += INSN_BYTES + length
            self.n_instructions += 1
            done += count


def frame_ops(ops, config) -> FrameTemplate:
    """Return the :class:`FrameTemplate` of the operation list ``ops`` (SYNCs already in)."""
    packer = _Packer(config)
    for op in ops:
        if isinstance(op, LoadOp):
            packer.load(op)
        elif isinstance(op, GemmOp):
            packer.word(isa.encode(op.gemm))
        elif isinstance(op, PostOp):
            packer.word(isa.encode(op.post))
        elif isinstance(op, SyncOp):
            packer.word(_SYNC_WORD)
        elif isinstance(op, WordOp):
            packer.word(isa.encode(op.insn))
        elif isinstance(op, StoreOp):
            if op.count > config.max_store_entries:
                raise AssertionError(f"STORE of {op.count} entries exceeds max_store_entries")
            packer.word(isa.encode(isa.Store(op.addr, op.count)))
            packer.stores[len(packer.frames)] = op.target
            packer.flush()
        else:
            raise TypeError(f"Unknown operation {op!r}")
    packer.flush()
    return FrameTemplate(packer.frames, packer.stores, packer.n_instructions)
