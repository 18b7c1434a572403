"""The memory plan of a compiled graph: every buffer region, placed by tensor lifetime.

Activation tensors get ``ACT`` regions live from their producer to their last reader (a graph
input from the start, the device's result to the end); regions are placed first-fit and freed
after the last reader, so a residual block's skip tensor keeps its region across the block while
the tensors inside it reuse memory. A ``RESHAPE`` alias shares its input's region; an ``ADD``
writes over an input it reads last. Weights and
``PARAM`` entries of the steps follow one another. See docs/compiler.md, "Graphs".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime.conv import map_entries
from .graph_lower import ALIAS, DEVICE, HOST, map_shape

__all__ = ["MemoryPlan", "ModelTooLarge", "plan_memory"]


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
    """

    act: dict
    act_entries: int
    weight_entries: int
    param_entries: int
    weight_addr: dict
    param_addr: dict

    def usage(self, config) -> dict:
        """Return bytes needed and available per memory (``ACT``, ``WGT``, ``PARAM``)."""
        return {
            "ACT": {"entries": self.act_entries, "depth": config.act_depth,
                    "bytes": self.act_entries * config.act_entry_bytes,
                    "available_bytes": config.act_depth * config.act_entry_bytes},
            "WGT": {"entries": self.weight_entries, "depth": config.weight_depth,
                    "bytes": self.weight_entries * config.weight_entry_bytes,
                    "available_bytes": config.weight_depth * config.weight_entry_bytes},
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

    last_use = {}
    for i, step in enumerate(steps):
        for name in step.inputs:
            last_use[base(name)] = i
    end = len(steps)
    for step in steps:   # the device's result is read at the end
        if step.where == HOST:
            last_use[base(step.inputs[0])] = end
    for name in graph.outputs:
        last_use[base(name)] = end

    def entries(name):
        h, w, c = map_shape(graph.tensor(name).shape)
        return map_entries(h * w, c, config.rows)

    first = base(graph.inputs[0])
    # Two placements of the input, the better kept: at the bottom, or (so that its region,
    # freed early, leaves no hole under the larger maps) placed last, between the regions
    # live while it is.
    plans = [_place(steps, base, last_use, entries, first, at_start=flag) for flag in (1, 0)]
    act, peak, weight_addr, param_addr, wgt, prm = min(plans, key=lambda plan: plan[1])
    for name, target in root.items():
        act[name] = act[target]
    return MemoryPlan(act, peak, wgt, prm, weight_addr, param_addr)


def _place(steps, base, last_use, entries, first, *, at_start):
    """Return ``(act, peak, weight_addr, param_addr, wgt, prm)`` of one placement."""
    live, act, spans = {}, {}, []         # spans: (addr, size, first step, last step)
    if at_start:
        act[first] = live[first] = (0, entries(first))
    peak = entries(first) if at_start else 0
    weight_addr, param_addr, wgt, prm = {}, {}, 0, 0
    for i, step in enumerate(steps):
        if step.where == DEVICE:
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
    if not at_start:
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
        hint = "no preset holds it resident; its weights cannot be streamed (only dense chains can)"
    return (f"Model {name!r} does not fit the device resident: " + "; ".join(parts) +
            f"; {hint}")
