"""The memory plan of a compiled graph: every buffer region, placed by tensor lifetime.

Activation tensors a device operation writes or reads (the graph input and host operations'
outputs too) get ``ACT`` regions live from their producer to their last reader, device or host
(a graph input from the start, the graph's output to the end); regions are placed first-fit and
freed after the last reader, so a residual block's skip tensor keeps its region across the block
while the tensors inside it reuse memory. A ``RESHAPE`` alias shares its input's region; an
``ADD`` writes over an input it reads last. Weights and ``PARAM`` entries of the steps follow
one another; when the weights do not fit ``WGT``, the fewest bytes' worth of them are streamed
per inference into one shared region after the resident ones. See docs/compiler.md, "Graphs".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..runtime.conv import map_entries
from .graph_lower import ALIAS, DEVICE, HOST, map_shape

__all__ = ["MemoryPlan", "ModelTooLarge", "device_tensors", "plan_memory"]


class ModelTooLarge(ValueError):
    """A model's resident state does not fit the configuration's memories."""


@dataclass
class MemoryPlan:
    """Where everything lives.

    Attributes
    ----------
    act : dict of str to (int, int)
        Tensor name -> ``(addr, entries)`` in ``ACT`` (aliases share their root's region).
    act_entries, weight_entries, param_entries : int
        Entries used (``act_entries``: the peak end address of any region).
    weight_addr, param_addr : dict of int to int
        Step index -> first ``WGT`` / ``PARAM`` entry.
    streamed : dict of int to int
        Step index -> ``WGT`` entries of the steps whose weights are not resident: they are
        loaded per inference into one shared region (``weight_addr`` of each), after the
        resident ones. Empty when every weight is resident.
    """

    act: dict
    act_entries: int
    weight_entries: int
    param_entries: int
    weight_addr: dict
    param_addr: dict
    streamed: dict = field(default_factory=dict)

    @property
    def resident(self) -> bool:
        """Whether every weight stays on the device (nothing is streamed per inference)."""
        return not self.streamed

    @property
    def streamed_entries(self) -> int:
        """``WGT`` entries loaded per inference."""
        return sum(self.streamed.values())

    def usage(self, config) -> dict:
        """Return bytes needed and available per memory (``ACT``, ``WGT``, ``PARAM``)."""
        return {
            "ACT": {"entries": self.act_entries, "depth": config.act_depth,
                    "bytes": self.act_entries * config.act_entry_bytes,
                    "available_bytes": config.act_depth * config.act_entry_bytes},
            "WGT": {"entries": self.weight_entries, "depth": config.weight_depth,
                    "bytes": self.weight_entries * config.weight_entry_bytes,
                    "available_bytes": config.weight_depth * config.weight_entry_bytes,
                    "streamed_bytes": self.streamed_entries * config.weight_entry_bytes},
            "PARAM": {"entries": self.param_entries, "depth": config.param_depth,
                      "bytes": self.param_entries * config.param_entry_bytes,
                      "available_bytes": config.param_depth * config.param_entry_bytes},
        }

    def fits(self, config) -> bool:
        return (self.act_entries <= config.act_depth and
                self.weight_entries <= config.weight_depth and
                self.param_entries <= config.param_depth)


def _first_fit(free_list, size):
    """Return the lowest address where ``size`` entries fit between the ``free_list`` blocks."""
    addr = 0
    for start, stop in sorted(free_list):
        if start - addr >= size:
            return addr
        addr = max(addr, stop)
    return addr


def plan_memory(graph, steps, config) -> MemoryPlan:
    """Return the :class:`MemoryPlan` of ``steps`` (from :func:`lower_graph`) on ``config``.

    The plan is computed whatever the depths; :meth:`MemoryPlan.fits` says whether it fits.
    """
    root = {}
    for step in steps:
        if step.where == ALIAS:
            root[step.output] = root.get(step.inputs[0], step.inputs[0])

    def base(name):
        return root.get(name, name)

    resident = device_tensors(graph, steps)
    last_use = {}
    for i, step in enumerate(steps):
        if step.where in (DEVICE, HOST):
            for name in step.inputs:
                last_use[base(name)] = i
    end = len(steps)
    for name in graph.outputs:
        last_use[base(name)] = end

    def entries(name):
        h, w, c = map_shape(graph.tensor(name).shape)
        return map_entries(h * w, c, config.rows)

    first = base(graph.inputs[0])
    # Two placements of the input, the better kept: at the bottom, or (so that its region,
    # freed early, leaves no hole under the larger maps) placed last, between the regions
    # live while it is.
    if first not in resident:        # the first operation runs on the host
        first = None
    plans = [_place(steps, base, last_use, entries, first, resident, at_start=flag)
             for flag in ((1, 0) if first else (1,))]
    act, peak, weight_addr, param_addr, wgt, prm = min(plans, key=lambda plan: plan[1])
    for name, target in root.items():
        if target in act:
            act[name] = act[target]
    streamed = {}
    if wgt > config.weight_depth:
        sizes = {s.index: len(s.weights) for s in steps if s.index in weight_addr}
        chosen = _streamed_weights(sizes, config.weight_depth)
        if chosen is not None:
            weight_addr, wgt = {}, 0
            for index, size in sizes.items():
                if index not in chosen:
                    weight_addr[index], wgt = wgt, wgt + size
            for index in chosen:
                weight_addr[index], streamed[index] = wgt, sizes[index]
            wgt += max(streamed.values())
    return MemoryPlan(act, peak, wgt, prm, weight_addr, param_addr, streamed)


def _streamed_weights(sizes, depth):
    """Return the steps whose weights to stream (fewest entries streamed), or None.

    The streamed weights share one region as large as the largest of them, after the resident
    ones: for each candidate region size ``S`` (a step's size), the streamed set holds that step
    and the smallest subset of the steps no larger than ``S`` whose entries cover the excess
    (exact subset sums over bitsets).
    """
    total = sum(sizes.values())
    best = None
    for anchor, slot in sizes.items():
        need = total - depth        # entries to stream besides the anchor's
        others = [(i, n) for i, n in sizes.items() if i != anchor and n <= slot]
        reach = [1]
        for _, n in others:
            reach.append(reach[-1] | (reach[-1] << n))
        sums = reach[-1] >> need
        if not sums:
            continue
        target = need + (sums & -sums).bit_length() - 1   # the least sum >= need
        chosen = [anchor]
        for k in range(len(others), 0, -1):          # walk the table back
            i, n = others[k - 1]
            if not (reach[k - 1] >> target) & 1:
                chosen.append(i)
                target -= n
        cost = sum(sizes[i] for i in chosen)
        if best is None or cost < best[0]:
            best = (cost, sorted(chosen))
    return None if best is None else set(best[1])


def device_tensors(graph, steps) -> set:
    """Return the tensors (alias roots) that need an ``ACT`` region.

    The outputs of device steps, and the graph input and host steps' outputs that a device step
    reads (the host loads them).
    """
    root = {}
    for step in steps:
        if step.where == ALIAS:
            root[step.output] = root.get(step.inputs[0], step.inputs[0])
    names = {step.output for step in steps if step.where == DEVICE}
    names |= {root.get(n, n) for step in steps if step.where == DEVICE for n in step.inputs}
    return names


def _place(steps, base, last_use, entries, first, resident, *, at_start):
    """Return ``(act, peak, weight_addr, param_addr, wgt, prm)`` of one placement."""
    live, act, spans = {}, {}, []         # spans: (addr, size, first step, last step)
    if first and at_start:
        act[first] = live[first] = (0, entries(first))
    peak = entries(first) if first and at_start else 0
    weight_addr, param_addr, wgt, prm = {}, {}, 0, 0
    for i, step in enumerate(steps):
        if step.where == DEVICE or (step.where == HOST and step.output in resident):
            size = entries(step.output)
            # An ADD may write over an input it is the last reader of (same entries, read
            # before written: docs/isa.md allows exactly that overlap).
            done = [base(n) for n in step.inputs if last_use.get(base(n)) == i and
                    base(n) in live and live[base(n)][1] == size]
            if step.instruction == "ADD" and done:
                addr = live.pop(done[0])[0]
            else:
                addr = _first_fit([(a, a + n) for a, n in live.values()], size)
            act[step.output] = live[step.output] = (addr, size)
            spans.append((addr, size, i, last_use.get(step.output, i)))
            peak = max(peak, addr + size)
            if step.weights is not None:
                weight_addr[step.index], wgt = wgt, wgt + len(step.weights)
            if step.params is not None:
                param_addr[step.index], prm = prm, prm + len(step.params)
        for name in list(live):
            if last_use.get(name, -1) <= i and name != base(step.output):
                del live[name]
    if first and not at_start:
        busy = [(a, a + n) for a, n, start, _ in spans if start <= last_use.get(first, 0)]
        act[first] = (_first_fit(busy, entries(first)), entries(first))
        peak = max(peak, sum(act[first]))
    return act, peak, weight_addr, param_addr, wgt, prm


def too_large_message(name, plan, config, presets) -> str:
    """Return the error naming bytes needed/available per memory and the smallest preset."""
    usage = plan.usage(config)
    parts = [f"{mem} needs {u['bytes']:,} bytes ({u['entries']:,} entries), "
             f"{u['available_bytes']:,} available ({u['depth']:,})" for mem, u in usage.items()]
    if presets:
        hint = f"the smallest preset that fits it is {presets[0]!r} (tessera.compiler.presets)"
    else:
        hint = "no preset holds it"
    return (f"Model {name!r} does not fit the device resident: " + "; ".join(parts) +
            f" (feature maps and PARAM entries must be resident; weights are streamed per "
            f"inference when the largest streamed layer fits WGT beside the resident ones); "
            f"{hint}")
