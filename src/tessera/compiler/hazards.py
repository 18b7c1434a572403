"""SYNC insertion: the fewest ``SYNC`` instructions that make a schedule race-free, placed early.

The GEMM engine runs asynchronously (docs/isa.md, "Ordering and hazards"). Every GEMM issued
since the last ``SYNC`` or ``STORE`` (a ``STORE`` waits for idle by itself) may still be in
flight: it reads ``ACT[a_addr, +k)`` and ``WGT[w_addr, +k)``, and with ``drain`` its drain
writes ``ACT[out_addr, +n_cols)`` and reads ``PARAM[param_addr, +n_cols)`` and, with the LUT
enabled in its post state, the LUT. A conflict with an in-flight GEMM *g* is

* a ``LOAD`` into a region *g* reads or drains into;
* a ``GEMM`` reading ACT entries *g*'s drain writes (layer chaining);
* a ``GEMM`` whose drain writes entries *g* reads or drains into (never needed by the schedules
  the compiler emits -- GEMMs complete in order -- but checked, so no reading of the contract
  can flag a compiled program);
* on a configuration with ``cnn=True`` (``single_port``: ``ACT`` and ``WGT`` may be single-port
  memories, docs/isa.md "Version 3"), a ``LOAD`` into ``ACT`` or ``WGT`` while any GEMM is in
  flight, whatever entries it touches.

A ``SYNC`` is inserted only when an instruction conflicts, and it waits for everything in
flight. Before a conflicting ``GEMM`` it goes right before that GEMM (the GEMM could not start
earlier anyway, and one ``SYNC`` then covers a whole layer boundary). Before a conflicting
``LOAD`` it goes as *early* as still useful: right before the first GEMM issued after the latest
conflicting one. A weight load for tile *j + 2* into the slot of tile *j* then puts its ``SYNC``
before the GEMMs of tile *j + 1*, after the load of tile *j + 1*, so every weight load overlaps
the GEMMs of the previous tile (double buffering); with ``single_port`` the ``SYNC`` goes right
before the load, which then overlaps nothing. Either way each ``SYNC`` is necessary: without
it the instruction that caused it would race.

The bookkeeping is one array per (buffer, access) holding the sequence number of the last GEMM
touching each entry, so each check is a vectorised ``max`` over the accessed range.
"""

from __future__ import annotations

import numpy as np

from ..spec.isa import Buffer
from .ops import GemmOp, LoadOp, StoreOp, SyncOp

__all__ = ["insert_syncs"]


def insert_syncs(ops, depth, *, single_port=False) -> list:
    """Return ``ops`` with :class:`SyncOp` inserted wherever a hazard requires one.

    Parameters
    ----------
    ops : list
        Operations from :mod:`.ops`, in issue order.
    depth : dict
        Entries of each buffer: ``{"ACT": ..., "WGT": ..., "PARAM": ..., "LUT": ...}``.
    single_port : bool
        The ISA version 3 rule (``config.cnn``): no ``LOAD`` into ``ACT`` or ``WGT`` while a
        GEMM is in flight.
    """
    act_read = np.full(depth["ACT"], -1, dtype=np.int64)
    act_write = np.full(depth["ACT"], -1, dtype=np.int64)
    wgt_read = np.full(depth["WGT"], -1, dtype=np.int64)
    param_read = np.full(depth["PARAM"], -1, dtype=np.int64)
    lut_read = np.full(256, -1, dtype=np.int64)
    load_targets = {Buffer.ACT: (act_read, act_write), Buffer.WGT: (wgt_read,),
                    Buffer.PARAM: (param_read,), Buffer.LUT: (lut_read,)}
    gemm_at = []          # op index of the GEMM with each sequence number
    first_in_flight = 0   # GEMMs with a smaller sequence number are known complete
    sync_before = set()

    for index, op in enumerate(ops):
        if isinstance(op, (SyncOp, StoreOp)):
            first_in_flight = len(gemm_at)
            continue
        latest = -1
        if isinstance(op, LoadOp):
            lo, hi = op.addr, op.addr + op.count
            for table in load_targets[op.buffer]:
                latest = max(latest, int(table[lo:hi].max()))
            if single_port and op.buffer in (Buffer.ACT, Buffer.WGT):
                latest = len(gemm_at) - 1     # every GEMM issued so far reads ACT/WGT
        elif isinstance(op, GemmOp):
            g = op.gemm
            latest = int(act_write[g.a_addr:g.a_addr + g.k].max())
            if g.drain:
                out = slice(g.out_addr, g.out_addr + g.n_cols)
                latest = max(latest, int(act_read[out].max()), int(act_write[out].max()))
        if latest >= first_in_flight:
            if isinstance(op, LoadOp) and latest + 1 < len(gemm_at):
                sync_before.add(gemm_at[latest + 1])
                first_in_flight = latest + 1
            else:
                sync_before.add(index)
                first_in_flight = len(gemm_at)
        if isinstance(op, GemmOp):
            seq = len(gemm_at)
            gemm_at.append(index)
            g = op.gemm
            act_read[g.a_addr:g.a_addr + g.k] = seq
            wgt_read[g.w_addr:g.w_addr + g.k] = seq
            if g.drain:
                act_write[g.out_addr:g.out_addr + g.n_cols] = seq
                param_read[g.param_addr:g.param_addr + g.n_cols] = seq
                if op.lut:
                    lut_read[:] = seq

    if not sync_before:
        return list(ops)
    out = []
    for index, op in enumerate(ops):
        if index in sync_before:
            out.append(SyncOp())
        out.append(op)
    return out
