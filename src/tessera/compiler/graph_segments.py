"""Segments of a compiled graph: the device runs each maximal run of mapped operations, the
host runs the operations between them (docs/compiler.md, "Host fallback").

The steps of :func:`~.graph_lower.lower_graph` are cut, in graph order, into alternating
*device* and *host* segments. A device segment begins by loading the tensors its operations
read that the device does not hold yet (the graph input, the outputs of host operations), runs
resident, and ends with the ``STORE``\\ s of the tensors the host needs afterwards (the inputs
of later host operations and the graph's output). A host segment runs each operation with the
graph's own bit-exact kernel (``op.spec.run``, the one ``QuantizedGraph.predict`` uses). Tensors
are named by their alias root (a 1x1 ``RESHAPE`` shares its input's entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..runtime.conv import map_entries
from .graph_lower import ALIAS, DEVICE, HOST, demote_host_read, map_shape, to_host

__all__ = ["Segment", "split_segments", "alias_roots", "link_entries", "prefer_host"]


@dataclass(eq=False)
class Segment:
    """A run of steps on one side of the link.

    Attributes
    ----------
    where : {"device", "host"}
    steps : list of DeviceStep
    loads : list of str
        Device segments: tensors (alias roots) the host loads before the first operation.
    stores : list of str
        Device segments: tensors (alias roots) returned by the ``STORE``\\ s at the end.
    """

    where: str
    steps: list = field(default_factory=list)
    loads: list = field(default_factory=list)
    stores: list = field(default_factory=list)


def alias_roots(steps) -> dict:
    """Return ``{alias: root}`` of the device-side aliases (``RESHAPE`` of a 1x1 map)."""
    root = {}
    for step in steps:
        if step.where == ALIAS:
            root[step.output] = root.get(step.inputs[0], step.inputs[0])
    return root


def split_segments(graph, steps) -> list:
    """Return the :class:`Segment` list of ``steps`` (graph order, device and host alternate).

    A device segment without a device operation (only aliases or folded operations) is
    dropped: nothing runs in it.
    """
    root = alias_roots(steps)

    def base(name):
        return root.get(name, name)

    host_reads = {base(n) for s in steps if s.where == HOST for n in s.inputs}
    host_reads.add(base(graph.outputs[0]))
    segments, on_device = [], set()
    for step in steps:
        where = HOST if step.where == HOST else DEVICE
        if not segments or segments[-1].where != where:
            segments.append(Segment(where))
        segment = segments[-1]
        segment.steps.append(step)
        if step.where != DEVICE:
            continue
        for name in map(base, step.inputs):
            if name not in on_device:
                segment.loads.append(name)
                on_device.add(name)
        on_device.add(step.output)
        if step.output in host_reads:
            segment.stores.append(step.output)
    return [s for s in segments
            if s.where == HOST or any(step.where == DEVICE for step in s.steps)]


def link_entries(graph, segments, rows) -> int:
    """Return the ``ACT`` entries the segments load and store per inference."""
    def entries(name):
        h, w, c = map_shape(graph.tensor(name).shape)
        return map_entries(h * w, c, rows)
    return sum(entries(n) for s in segments for n in s.loads + s.stores)


def prefer_host(graph, steps, rows):
    """Move to the host each device segment without weights (pools, ``ADD``, clamps) whose
    operations cost more link traffic on the device than on the host; return ``steps``.

    Such a segment between host operations only makes the feature maps cross the link twice.
    A segment that loads the graph's input or stores its output stays on the device.
    """
    cost = link_entries(graph, split_segments(graph, steps), rows)
    ends = {graph.inputs[0], graph.outputs[0]}
    for segment in split_segments(graph, steps):
        device = [s for s in segment.steps if s.where == DEVICE]
        if segment.where != DEVICE or any(s.weights is not None for s in device) or \
                ends & set(segment.loads + segment.stores):     # the model's own ends stay
            continue
        saved = [(s, dict(vars(s), extra=dict(s.extra))) for s in segment.steps]
        for step in device:
            to_host(graph, step, "no weights, and the link carries less with it on the host "
                                 "than around it")
        demote_host_read(graph, steps)
        new = link_entries(graph, split_segments(graph, steps), rows)
        if new < cost:
            cost = new
            continue
        for step, state in saved:
            vars(step).update(state)
    return steps
