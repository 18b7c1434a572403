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

Configurations with ``cnn=True`` (ISA version 3) may keep ``ACT`` and ``WGT`` in single-port
memories (the iCE40's SPRAM) and do not arbitrate other readers or writers against the engine's
reads, so there (``single_port``) any ``ADD`` and any ``LOAD`` into ``ACT`` or ``WGT`` while a
``GEMM`` or ``CONV`` is in flight is a hazard too, whatever regions they touch.
"""

from __future__ import annotations

from tessera.spec.isa import Buffer

from .errors import HazardError

__all__ = ["HazardTracker"]


def _region(buffer, start, count) -> str:
    return f"{Buffer(buffer).name}[{start}:{start + count}]"


class HazardTracker:
    """Buffer regions touched by the GEMMs in flight since the last synchronisation point.

    Parameters
    ----------
    single_port : bool
        Apply the single-port rule of ISA version 3 (``config.cnn``): no ``ADD`` and no ``LOAD``
        into ``ACT`` or ``WGT`` while a ``GEMM`` or ``CONV`` is in flight.
    """

    def __init__(self, *, single_port=False):
        self.single_port = single_port
        self._reads = []    # (buffer, start, stop, gemm_offset)
        self._writes = []   # (start, stop, gemm_offset): ACT regions written by drains
        self._engine = []   # (name, offset): the GEMMs and CONVs in flight

    @property
    def in_flight(self) -> bool:
        return bool(self._reads)

    def sync(self):
        """Forget everything in flight (the device is idle)."""
        self._reads.clear()
        self._writes.clear()
        self._engine.clear()

    def _check_single_port(self, what, offset):
        """Refuse ``what`` at byte ``offset`` while the engine reads (single-port memories)."""
        if self.single_port and self._engine:
            name, other = self._engine[-1]
            raise HazardError(
                f"Unsynchronised hazard: the {what} at byte {offset} would access ACT/WGT while "
                f"the {name} at byte {other} is in flight; ACT and WGT may be single-port "
                f"memories on a cnn configuration (ISA version 3, docs/isa.md \"Ordering\"), "
                f"so the compiler must insert a SYNC before it")

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
        self._engine.append(("GEMM", offset))
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
        (an ``ADD`` runs beside the engine), is a hazard, and with ``single_port`` so is an
        ``ADD`` while a ``GEMM`` or ``CONV`` is in flight.
        """
        if name == "ADD":
            self._check_single_port("ADD", offset)
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
        if name == "CONV":
            self._engine.append(("CONV", offset))

    def check_write(self, buffer, addr, count, offset):
        """Check a LOAD at byte ``offset`` writing ``count`` entries of ``buffer`` at ``addr``."""
        if buffer in (Buffer.ACT, Buffer.WGT):
            self._check_single_port(f"LOAD into {_region(buffer, addr, count)}", offset)
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
