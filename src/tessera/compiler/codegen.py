"""Code generation: the operation stream of the setup frames and of one chunk of a batch.

A chunk is ``tiles`` row tiles (``tiles * rows`` batch rows, the last tile possibly partial).
Its schedule:

1. ``LOAD ACT`` of the packed input (layer 0's input region);
2. per layer: ``LOAD LUT`` if the table is not resident and differs from the loaded one,
   ``POST``, then the tiles. With whole K (resident, ``"double"``, ``"single"`` weights) the
   loop is *column tile outer, row tile inner*: the resident column tiles first, then each
   streamed weight tile (and parameter tile) is loaded once per chunk into the ring and used by
   every row tile; ``"split"`` layers loop row tile, column tile, K part, re-sending the weights
   per row tile because the accumulators hold one tile;
3. ``STORE`` of the last layer's output, per row tile, in pieces of at most
   ``max_store_entries`` entries (each ending its own frame).

``SYNC`` instructions are added afterwards by :func:`.hazards.insert_syncs`.
"""

from __future__ import annotations

import numpy as np

from ..spec import isa
from ..spec.isa import Buffer
from ..spec.packing import operand_dtype, pack_entries
from .ops import GemmOp, LoadOp, PostOp, StoreOp
from .program import StoreTarget
from .tiling import split_fixed

__all__ = ["WeightTiles", "setup_ops", "chunk_ops", "pack_input"]


class WeightTiles:
    """Packed WGT payloads of every layer, column tile and K part (built once, cached).

    A WGT entry is ``cols`` operands of ``config.weight_bits`` packed by
    :func:`tessera.spec.pack_operands`: operand *c* is column ``n0 + c`` of one *k*; columns
    beyond the layer's N (or beyond ``tile_n``) are zero.
    """

    def __init__(self, layers, alloc, config):
        self._layers, self._alloc, self.cols = layers, alloc, config.cols
        self.bits = config.weight_bits
        self.entry_bytes = config.weight_entry_bytes
        self._cache = {}

    def tile(self, index, j, k0=0, k_len=None) -> bytes:
        """Return the WGT bytes of layer ``index``, column tile ``j``, rows ``k0 .. +k_len``."""
        key = (index, j, k0, k_len)
        data = self._cache.get(key)
        if data is None:
            layer = self._layers[index]
            n0, n_cols = self._alloc.layers[index].n_tiles[j]
            k_len = layer.k - k0 if k_len is None else k_len
            block = np.zeros((k_len, self.cols), dtype=operand_dtype(self.bits))
            block[:, :n_cols] = layer.weight[k0:k0 + k_len, n0:n0 + n_cols]
            data = self._cache[key] = pack_entries(block, self.bits)
        return data


def setup_ops(layers, alloc, weights) -> list:
    """Return the LOADs of everything resident: weights (every layer's resident column tiles),
    parameters, the lookup table."""
    ops = []
    for i, la in enumerate(alloc.layers):
        if la.weights.addrs:
            payload = b"".join(weights.tile(i, j) for j in range(la.weights.resident_tiles))
            ops.append(LoadOp(Buffer.WGT, la.weights.addrs[0],
                              len(payload) // weights.entry_bytes, payload=payload))
    if alloc.params_resident:
        for layer, la in zip(layers, alloc.layers):
            ops.append(LoadOp(Buffer.PARAM, la.param_base, layer.n,
                              payload=layer.param_entries()))
    if alloc.lut_resident:
        for layer in layers:
            if layer.lut is not None:
                ops.append(LoadOp(Buffer.LUT, 0, 256, payload=layer.lut.tobytes()))
                break
    return ops


class _Rings:
    """Round-robin slot choice for streamed weights and parameters."""

    def __init__(self):
        self.wgt = 0
        self.param = 0

    def next_wgt(self, slots):
        self.wgt += 1
        return slots[self.wgt % len(slots)]

    def next_param(self, slots):
        self.param += 1
        return slots[self.param % len(slots)]


def chunk_ops(layers, alloc, weights, config, tiles, last_rows) -> list:
    """Return the operations of a chunk of ``tiles`` row tiles (the last has ``last_rows``).

    Row numbers in the STORE targets are relative to the chunk's first row.
    """
    rows = config.rows
    m_tiles = [(t, rows if t < tiles - 1 else last_rows) for t in range(tiles)]
    ops = []
    k0 = layers[0].k
    in_addr, _ = alloc.act_regions(0, tiles)
    ops.append(LoadOp(Buffer.ACT, in_addr, tiles * k0, x_offset=0))
    rings = _Rings()
    loaded_lut = None if not alloc.lut_resident else 0
    for i, (layer, la) in enumerate(zip(layers, alloc.layers)):
        a_in, a_out = alloc.act_regions(i, tiles)
        use_lut = layer.lut is not None
        if use_lut and not alloc.lut_resident and loaded_lut != la.lut_index:
            ops.append(LoadOp(Buffer.LUT, 0, 256, payload=layer.lut.tobytes()))
            loaded_lut = la.lut_index
        ops.append(PostOp(layer.post()))
        plan = la.weights

        def params(j, n0, n_cols):
            if alloc.params_resident:
                return la.param_base + n0
            addr = rings.next_param(alloc.param_slots)
            ops.append(LoadOp(Buffer.PARAM, addr, n_cols,
                              payload=layer.param_entries(n0, n_cols)))
            return addr

        if plan.strategy != "split":
            for j, (n0, n_cols) in enumerate(la.n_tiles):
                if j < plan.resident_tiles:
                    w_addr = plan.addrs[j]
                else:
                    w_addr = rings.next_wgt(plan.slots)
                    ops.append(LoadOp(Buffer.WGT, w_addr, layer.k, payload=weights.tile(i, j)))
                p_addr = params(j, n0, n_cols)
                for t, m_rows in m_tiles:
                    ops.append(GemmOp(isa.Gemm(
                        a_addr=a_in + t * layer.k, w_addr=w_addr, k=layer.k,
                        out_addr=a_out + t * layer.n + n0, param_addr=p_addr,
                        m_rows=m_rows, n_cols=n_cols, clear=True, drain=True), use_lut))
        else:
            last = len(plan.k_parts) - 1
            for t, m_rows in m_tiles:
                for j, (n0, n_cols) in enumerate(la.n_tiles):
                    p_addr = params(j, n0, n_cols)
                    for p, (ks, kl) in enumerate(plan.k_parts):
                        w_addr = rings.next_wgt(plan.slots)
                        ops.append(LoadOp(Buffer.WGT, w_addr, kl,
                                          payload=weights.tile(i, j, ks, kl)))
                        ops.append(GemmOp(isa.Gemm(
                            a_addr=a_in + t * layer.k + ks, w_addr=w_addr, k=kl,
                            out_addr=a_out + t * layer.n + n0, param_addr=p_addr,
                            m_rows=m_rows, n_cols=n_cols, clear=p == 0, drain=p == last),
                            use_lut))
    n_out = layers[-1].n
    _, out_addr = alloc.act_regions(len(layers) - 1, tiles)
    for t, m_rows in m_tiles:
        for n0, count in split_fixed(n_out, config.max_store_entries):
            ops.append(StoreOp(out_addr + t * n_out + n0, count,
                               StoreTarget(t * rows, m_rows, n0, count)))
    return ops


def pack_input(x_q, tiles, rows, bits=8) -> bytes:
    """Return the ACT bytes of a chunk: tile *t*, entry *k*, operand *r* = ``x_q[t*rows + r, k]``.

    Entries are ``rows`` operands of ``bits`` packed by :func:`tessera.spec.pack_operands`.
    """
    m, k = x_q.shape
    padded = np.zeros((tiles * rows, k), dtype=operand_dtype(bits))
    padded[:m] = x_q
    entries = padded.reshape(tiles, rows, k).transpose(0, 2, 1).reshape(tiles * k, rows)
    return pack_entries(entries, bits)

