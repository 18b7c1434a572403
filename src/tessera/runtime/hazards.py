"""Detection of unsynchronised data hazards in a program (``docs/isa.md``, "Ordering").

A ``GEMM`` runs asynchronously and its drain overlaps the next ``GEMM``; the hardware does not
check data hazards. A ``GEMM`` counts as *in flight* from its issue until the next ``SYNC``, the
next ``STORE`` or the end of its ``EXEC`` frame (all of which wait until the device is idle),
whatever the cycle model says about when it really finishes: the compiler may not rely on
timing. While it is in flight:

- it reads ``ACT[a_addr, a_addr+k)`` and ``WGT[w_addr, w_addr+k)``, and with ``drain`` also
  ``PARAM[param_addr, param_addr+n_cols)`` and, if the post state selects it, the whole ``LUT``;
- with ``drain`` it writes ``ACT[out_addr, out_addr+n_cols)``.

A ``LOAD`` into any of those regions, or a ``GEMM`` reading activations that an in-flight drain
writes, is a hazard. Later ``GEMM`` drains never race earlier ones (the engine and the drain unit
each work in order, and a ``GEMM`` finishes reading before the next one starts), so those pairs
are not hazards.
"""

from __future__ import annotations

from tessera.spec.isa import Buffer

from .errors import HazardError

__all__ = ["HazardTracker"]


def _region(buffer, start, count) -> str:
    return f"{Buffer(buffer).name}[{start}:{start + count}]"


class HazardTracker:
    """Buffer regions touched by the GEMMs in flight since the last synchronisation point."""

    def __init__(self):
        self._reads = []    # (buffer, start, stop, gemm_offset)
        self._writes = []   # (start, stop, gemm_offset): ACT regions written by drains

    @property
    def in_flight(self) -> bool:
        return bool(self._reads)

    def sync(self):
        """Forget everything in flight (the device is idle)."""
        self._reads.clear()
        self._writes.clear()

    def issue_gemm(self, offset, *, a_addr, w_addr, k, out_addr, param_addr, n_cols, drain,
                   lut):
        """Check a GEMM at byte ``offset`` of its frame and record it as in flight."""
        for start, stop, other in self._writes:
            if a_addr < stop and start < a_addr + k:
                raise HazardError(
                    f"Unsynchronised hazard: the GEMM at byte {offset} reads "
                    f"{_region(Buffer.ACT, a_addr, k)} while the drain of the GEMM at byte "
                    f"{other} may still be writing ACT[{start}:{stop}]; the compiler must "
                    f"insert a SYNC between them (layer chaining)")
        self._reads.append((Buffer.ACT, a_addr, a_addr + k, offset))
        self._reads.append((Buffer.WGT, w_addr, w_addr + k, offset))
        if drain:
            self._reads.append((Buffer.PARAM, param_addr, param_addr + n_cols, offset))
            if lut:
                self._reads.append((Buffer.LUT, 0, 256, offset))
            self._writes.append((out_addr, out_addr + n_cols, offset))

    def issue_unit(self, offset, name, *, reads, writes):
        """Check a ``CONV`` or ``ADD`` (ISA version 3) at byte ``offset`` and record it.

        ``reads``: ``(buffer, start, count)`` regions it reads; ``writes``: ``(start, count)``
        ACT regions it writes. Reading what an in-flight unit writes, or writing what one reads
        (an ``ADD`` runs beside the engine), is a hazard.
        """
        for buffer, start, count in reads:
            if buffer != Buffer.ACT:
                continue
            for w_start, w_stop, other in self._writes:
                if start < w_stop and w_start < start + count:
                    raise HazardError(
                        f"Unsynchronised hazard: the {name} at byte {offset} reads "
                        f"{_region(Buffer.ACT, start, count)} while the instruction at byte "
                        f"{other} may still be writing ACT[{w_start}:{w_stop}]; the compiler "
                        f"must insert a SYNC between them")
        for start, count in writes:
            for buf, r_start, r_stop, other in self._reads:
                if buf == Buffer.ACT and start < r_stop and r_start < start + count:
                    raise HazardError(
                        f"Unsynchronised hazard: the {name} at byte {offset} writes "
                        f"{_region(Buffer.ACT, start, count)} while the instruction at byte "
                        f"{other} may still be reading ACT[{r_start}:{r_stop}]; the compiler "
                        f"must insert a SYNC before it")
        for buffer, start, count in reads:
            self._reads.append((buffer, start, start + count, offset))
        for start, count in writes:
            self._writes.append((start, start + count, offset))

    def check_write(self, buffer, addr, count, offset):
        """Check a LOAD at byte ``offset`` writing ``count`` entries of ``buffer`` at ``addr``."""
        stop = addr + count
        for buf, start, end, other in self._reads:
            if buf == buffer and addr < end and start < stop:
                raise HazardError(
                    f"Unsynchronised hazard: the LOAD at byte {offset} overwrites "
                    f"{_region(buffer, addr, count)} while the GEMM at byte {other} may still "
                    f"be reading {_region(buf, start, end - start)}; the compiler must insert "
                    f"a SYNC before the LOAD")
        if buffer == Buffer.ACT:
            for start, end, other in self._writes:
                if addr < end and start < stop:
                    raise HazardError(
                        f"Unsynchronised hazard: the LOAD at byte {offset} writes "
                        f"{_region(buffer, addr, count)} while the drain of the GEMM at byte "
                        f"{other} may still be writing ACT[{start}:{end}]; the compiler must "
                        f"insert a SYNC before the LOAD")
