"""Buffer allocation: where weights, parameters, lookup tables and activations live on chip.

* **Activations** (ACT). A *chunk* of ``tiles`` row tiles runs through every layer on chip. Layer
  *i* reads its input region and drains into a disjoint output region, which is the input region
  of layer *i + 1* (ping-pong): even layers read from the bottom of the buffer and write to the
  top, odd layers the other way round, so ``tiles * (K_i + N_i) <= act_depth`` is all a layer
  needs. ``tiles`` is the largest value that holds for every layer; bigger batches run in
  several chunks.
* **Weights** (WGT), per column tile of ``K`` entries. All resident -- loaded once by the setup
  frames -- when they fit. Otherwise as many tiles stay resident as leave room for a *ring*
  after them, and the others are streamed inside the per-batch program into the ring's slots
  (:func:`streamed_tiles` chooses the fewest entries streamed per chunk; a layer keeps its first
  tiles resident and streams its last ones). A streamed tile uses two slots of ``K`` entries
  when the ring holds them (``"double"``: the next tile loads while the array works on the
  current one -- except on a ``cnn`` configuration, whose single-port rule makes every ``ACT`` or
  ``WGT`` load wait for the GEMMs), else one (``"single"``); a layer whose ``K`` exceeds ``WGT``
  is never resident and streams two (or one) slots of a part of ``K`` per GEMM, its tile's K
  split across GEMMs (``"split"``; the ring is then at least half of ``WGT``; its weights are
  re-sent for every row tile).
* **Parameters** (PARAM). Resident when every layer's channels fit, else streamed per column
  tile into a ring of two (or one) slots of ``tile_n`` entries.
* **Lookup table** (LUT). Resident when the model uses at most one distinct table, else loaded
  by the program before each layer whose table differs from the one loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tiling import split_even, split_fixed

__all__ = ["WeightPlan", "LayerAlloc", "Allocation", "allocate", "streamed_tiles"]


@dataclass(frozen=True)
class WeightPlan:
    """Where one layer's weights come from.

    Parameters
    ----------
    strategy : str
        ``"resident"`` when every column tile is, else how the streamed ones are loaded:
        ``"double"``, ``"single"`` or ``"split"`` (see the module docstring).
    addrs : tuple of int
        WGT address of each resident column tile (``K`` entries each): tiles
        ``0 .. len(addrs) - 1`` are resident, the later ones streamed.
    slots : tuple of int
        WGT addresses of the ring slots the streamed tiles use in turn (empty if none is).
    k_parts : tuple of (int, int)
        ``(k_start, k_len)`` of the GEMMs accumulating one tile; ``((0, K),)`` unless split.
    """

    strategy: str
    addrs: tuple
    slots: tuple
    k_parts: tuple

    @property
    def resident_tiles(self) -> int:
        """Column tiles loaded once by the setup frames (the layer's first ones)."""
        return len(self.addrs)


@dataclass(frozen=True)
class LayerAlloc:
    """Allocation of one layer: column tiles, weight plan, resident parameter base, LUT index."""

    name: str
    k: int
    n: int
    n_tiles: tuple
    weights: WeightPlan
    param_base: int | None
    lut_index: int | None


@dataclass(frozen=True)
class Allocation:
    """Buffer allocation of a whole model for one configuration (see the module docstring)."""

    depth: dict
    tile_n: int
    tiles_per_chunk: int
    layers: tuple
    weights_resident: bool
    params_resident: bool
    lut_resident: bool
    param_slots: tuple
    n_luts: int

    def act_regions(self, index: int, tiles: int) -> tuple:
        """Return ``(input_addr, output_addr)`` of layer ``index`` in a chunk of ``tiles``."""
        layer = self.layers[index]
        top = self.depth["ACT"]
        if index % 2 == 0:
            return 0, top - tiles * layer.n
        return top - tiles * layer.k, 0

    @property
    def usage(self) -> dict:
        """Return ``{buffer: {"used": entries, "depth": entries, "use": text}}``."""
        act = self.tiles_per_chunk * max(l.k + l.n for l in self.layers)
        wgt = sum(l.k * l.weights.resident_tiles for l in self.layers)
        streamed = [l for l in self.layers if l.weights.slots]
        if streamed:
            wgt = max(l.weights.slots[-1] + l.weights.k_parts[0][1] for l in streamed)
        if self.params_resident:
            param = sum(l.n for l in self.layers)
        else:
            param = self.param_slots[-1] + self.tile_n
        lut = 256 if self.n_luts else 0
        strategies = sorted({l.weights.strategy for l in streamed})
        n_tiles = sum(len(l.n_tiles) for l in self.layers)
        n_resident = sum(l.weights.resident_tiles for l in self.layers)
        if self.weights_resident:
            wgt_use = "resident"
        elif n_resident:
            wgt_use = (f"{n_resident} of {n_tiles} column tiles resident, the others streamed ("
                       + ", ".join(strategies) + ")")
        else:
            wgt_use = "streamed (" + ", ".join(strategies) + ")"
        return {
            "ACT": {"used": act, "depth": self.depth["ACT"],
                    "use": f"{self.tiles_per_chunk} row tile(s) per chunk, ping-pong"},
            "WGT": {"used": wgt, "depth": self.depth["WGT"],
                    "use": wgt_use},
            "PARAM": {"used": param, "depth": self.depth["PARAM"],
                      "use": "resident" if self.params_resident else "streamed per tile"},
            "LUT": {"used": lut, "depth": self.depth["LUT"],
                    "use": ("unused" if not self.n_luts else
                            "resident" if self.lut_resident else "reloaded per layer")},
        }


def _distinct_luts(layers):
    tables, index = [], []
    for layer in layers:
        if layer.lut is None:
            index.append(None)
            continue
        key = layer.lut.tobytes()
        for i, t in enumerate(tables):
            if t == key:
                index.append(i)
                break
        else:
            tables.append(key)
            index.append(len(tables) - 1)
    return tables, index


def _streamed_plan(k, addrs, base, ring):
    """Return the plan of a layer with resident tiles at ``addrs``, streaming the others into
    the ring of ``ring`` entries at ``base``."""
    if 2 * k <= ring:
        return WeightPlan("double", addrs, (base, base + k), ((0, k),))
    if k <= ring:
        return WeightPlan("single", addrs, (base,), ((0, k),))
    parts = tuple(split_even(k, max(1, ring // 2)))
    length = parts[0][1]
    slots = (base, base + length) if 2 * length <= ring else (base,)
    return WeightPlan("split", addrs, slots, parts)


def _least_cover(items, need):
    """Return the indices of ``items`` (entry counts) whose sum is the least one >= ``need``,
    or None (exact subset sums over bitsets, as :mod:`.memplan` does for whole layers)."""
    if need <= 0:
        return []
    reach = [1]
    for size in items:
        reach.append(reach[-1] | (reach[-1] << size))
    sums = reach[-1] >> need
    if not sums:
        return None
    target = need + (sums & -sums).bit_length() - 1
    chosen = []
    for i in range(len(items), 0, -1):               # walk the table back
        if not (reach[i - 1] >> target) & 1:
            chosen.append(i - 1)
            target -= items[i - 1]
    return chosen


def streamed_tiles(tiles, depth) -> list:
    """Return how many column tiles of each layer to stream (its last ones), fewest entries.

    Parameters
    ----------
    tiles : list of (int, int)
        ``(K, column tiles)`` per layer; a tile is ``K`` WGT entries.
    depth : int
        ``weight_depth``.

    A layer with ``K > depth`` streams every tile, split, and needs a ring of at least half of
    ``WGT`` (so that its parts stay a quarter of ``WGT`` long or more and the LOAD and GEMM
    instructions of the parts a small share of its bytes). The other layers' streamed tiles
    share that ring, after the resident ones; it holds one tile of the largest
    ``K`` streamed. For each candidate ``K`` (one of its tiles streamed), the streamed tiles are
    the smallest set of tiles no larger whose entries leave room for the ring; the candidate
    streaming the fewest entries wins. Multiplicities enter the subset sums in binary pieces
    (1, 2, 4, ... tiles), so the cost grows with the log of the tiles.
    """
    counts = [t if k > depth else 0 for k, t in tiles]
    floor = max(1, depth // 2) if any(counts) else 0      # the ring a split layer needs
    free = [(i, k, t) for i, (k, t) in enumerate(tiles) if k <= depth]
    total = sum(k * t for _, k, t in free)
    if total + floor <= depth:
        return counts                       # every tile that can be resident is
    best = None
    for slot in sorted({k for _, k, _ in free}):
        anchor = next(i for i, k, _ in free if k == slot)
        pieces = []                         # (layer, tiles, entries)
        for i, k, t in free:
            left = t - (i == anchor)
            if k > slot:
                continue
            size = 1
            while left > 0:
                take = min(size, left)
                pieces.append((i, take, take * k))
                left, size = left - take, size * 2
        # Resident entries (total - streamed) and the ring fit depth; the anchor's tile is
        # ``slot`` of the streamed entries.
        ring = max(slot, floor)
        chosen = _least_cover([p[2] for p in pieces], total - depth + ring - slot)
        if chosen is None:
            continue
        cost = slot + sum(pieces[c][2] for c in chosen)
        if best is None or cost < best[0]:
            picked = {anchor: 1}
            for c in chosen:
                picked[pieces[c][0]] = picked.get(pieces[c][0], 0) + pieces[c][1]
            best = (cost, picked)
    if best is None:
        raise AssertionError("a WGT plan always exists: every tile streamed")
    for i, n in best[1].items():
        counts[i] = n
    return counts


def allocate(layers, config) -> Allocation:
    """Return the :class:`Allocation` of the :class:`HardwareLayer` list ``layers``.

    Raises
    ------
    ValueError
        Some layer cannot run even one row tile: its input and output do not both fit in the
        activation buffer (the message names ``act_depth`` and the size needed).
    """
    depth = {"ACT": config.act_depth, "WGT": config.weight_depth,
             "PARAM": config.param_depth, "LUT": 256 if config.lut else 0}
    for layer in layers:
        need = layer.k + layer.n
        if need > config.act_depth:
            raise ValueError(
                f"Layer {layer.name!r} needs K + N = {layer.k} + {layer.n} = {need} activation "
                f"entries for one tile of {config.rows} rows (its input and output live on chip "
                f"together) but act_depth is {config.act_depth}; raise "
                f"AcceleratorConfig.act_depth to at least {need}")
    tiles = min(config.act_depth // (layer.k + layer.n) for layer in layers)
    tile_n = min(config.cols, config.param_depth)
    n_tiles = [tuple(split_fixed(layer.n, tile_n)) for layer in layers]

    streamed = streamed_tiles([(layer.k, len(nt)) for layer, nt in zip(layers, n_tiles)],
                              config.weight_depth)
    weights_resident = not any(streamed)
    ring_base = sum(layer.k * (len(nt) - s) for layer, nt, s in zip(layers, n_tiles, streamed))
    ring = config.weight_depth - ring_base
    params_resident = sum(layer.n for layer in layers) <= config.param_depth
    tables, lut_index = _distinct_luts(layers)

    out, w_addr, p_addr = [], 0, 0
    for layer, nt, li, n_streamed in zip(layers, n_tiles, lut_index, streamed):
        kept = len(nt) - n_streamed
        addrs = tuple(w_addr + j * layer.k for j in range(kept))
        w_addr += layer.k * kept
        if n_streamed:
            plan = _streamed_plan(layer.k, addrs, ring_base, ring)
        else:
            plan = WeightPlan("resident", addrs, (), ((0, layer.k),))
        param_base = None
        if params_resident:
            param_base, p_addr = p_addr, p_addr + layer.n
        out.append(LayerAlloc(layer.name, layer.k, layer.n, nt, plan, param_base, li))
    param_slots = () if params_resident else \
        ((0, tile_n) if 2 * tile_n <= config.param_depth else (0,))
    return Allocation(depth=depth, tile_n=tile_n, tiles_per_chunk=tiles, layers=tuple(out),
                      weights_resident=weights_resident, params_resident=params_resident,
                      lut_resident=len(tables) <= 1, param_slots=param_slots,
                      n_luts=len(tables))
