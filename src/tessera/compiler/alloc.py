"""Buffer allocation: where weights, parameters, lookup tables and activations live on chip.

* **Activations** (ACT). A *chunk* of ``tiles`` row tiles runs through every layer on chip. Layer
  *i* reads its input region and drains into a disjoint output region, which is the input region
  of layer *i + 1* (ping-pong): even layers read from the bottom of the buffer and write to the
  top, odd layers the other way round, so ``tiles * (K_i + N_i) <= act_depth`` is all a layer
  needs. ``tiles`` is the largest value that holds for every layer; bigger batches run in
  several chunks.
* **Weights** (WGT). Resident -- loaded once by the setup frames -- when all layers fit.
  Otherwise every layer streams its weights inside the per-batch program, one column tile at a
  time, into a ring of slots: two slots of ``K`` entries (``"double"``: the next tile loads while
  the array works on the current one), one slot (``"single"``), or, when even one tile's ``K``
  does not fit, two slots of a part of ``K`` with the tile's K split across GEMMs
  (``"split"``; the weights are then re-sent for every row tile).
* **Parameters** (PARAM). Resident when every layer's channels fit, else streamed per column
  tile into a ring of two (or one) slots of ``tile_n`` entries.
* **Lookup table** (LUT). Resident when the model uses at most one distinct table, else loaded
  by the program before each layer whose table differs from the one loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tiling import split_even, split_fixed

__all__ = ["WeightPlan", "LayerAlloc", "Allocation", "allocate"]


@dataclass(frozen=True)
class WeightPlan:
    """Where one layer's weights come from.

    Parameters
    ----------
    strategy : str
        ``"resident"``, ``"double"``, ``"single"`` or ``"split"`` (see the module docstring).
    addrs : tuple of int
        Resident: WGT address of each column tile (``K`` entries each).
    slots : tuple of int
        Streamed: WGT addresses of the ring slots, used in turn.
    k_parts : tuple of (int, int)
        ``(k_start, k_len)`` of the GEMMs accumulating one tile; ``((0, K),)`` unless split.
    """

    strategy: str
    addrs: tuple
    slots: tuple
    k_parts: tuple


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
        if self.weights_resident:
            wgt = sum(l.k * len(l.n_tiles) for l in self.layers)
        else:
            wgt = max(l.weights.slots[-1] + l.weights.k_parts[0][1] for l in self.layers)
        if self.params_resident:
            param = sum(l.n for l in self.layers)
        else:
            param = self.param_slots[-1] + self.tile_n
        lut = 256 if self.n_luts else 0
        strategies = sorted({l.weights.strategy for l in self.layers})
        return {
            "ACT": {"used": act, "depth": self.depth["ACT"],
                    "use": f"{self.tiles_per_chunk} row tile(s) per chunk, ping-pong"},
            "WGT": {"used": wgt, "depth": self.depth["WGT"],
                    "use": "resident" if self.weights_resident
                    else "streamed (" + ", ".join(strategies) + ")"},
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


def _streamed_plan(k, weight_depth):
    if 2 * k <= weight_depth:
        return WeightPlan("double", (), (0, k), ((0, k),))
    if k <= weight_depth:
        return WeightPlan("single", (), (0,), ((0, k),))
    part = max(1, weight_depth // 2)
    parts = tuple(split_even(k, part))
    length = parts[0][1]
    slots = (0, length) if 2 * length <= weight_depth else (0,)
    return WeightPlan("split", (), slots, parts)


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

    resident_wgt = sum(layer.k * len(nt) for layer, nt in zip(layers, n_tiles))
    weights_resident = resident_wgt <= config.weight_depth
    params_resident = sum(layer.n for layer in layers) <= config.param_depth
    tables, lut_index = _distinct_luts(layers)

    out, w_addr, p_addr = [], 0, 0
    for layer, nt, li in zip(layers, n_tiles, lut_index):
        if weights_resident:
            addrs = tuple(w_addr + j * layer.k for j in range(len(nt)))
            w_addr += layer.k * len(nt)
            plan = WeightPlan("resident", addrs, (), ((0, layer.k),))
        else:
            plan = _streamed_plan(layer.k, config.weight_depth)
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
