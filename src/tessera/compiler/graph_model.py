"""A tensor graph compiled for an accelerator with the CNN features (docs/compiler.md, "Graphs").

:func:`compile_graph` lowers every operation (:mod:`.graph_lower`), plans the memories by tensor
lifetime (:mod:`.memplan`), emits ``POST``/``WINDOW``/``CONV``/``ADD`` with the ``SYNC``\\ s the
hazard rules need and frames them. A :class:`CompiledGraph` holds the setup frames (weights and
``PARAM`` entries, loaded once), renders the input frames of one sample, and keeps the constant
frames of one inference, which end with the ``STORE``\\ s of the result.
"""

from __future__ import annotations

import numpy as np

from ..runtime.conv import from_entries, to_entries
from ..spec import isa
from ..spec.packing import pack_entries, unpack_entries
from .framing import frame_ops
from .graph_lower import DEVICE, HOST, lower_graph, map_shape
from .memplan import ModelTooLarge, plan_memory, too_large_message
from .ops import LoadOp, StoreOp, SyncOp, WordOp
from .presets import presets_that_fit

__all__ = ["CompiledGraph", "compile_graph"]


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


class CompiledGraph:
    """The programs of one graph for one configuration.

    Attributes
    ----------
    qgraph, config
    steps : list of DeviceStep
        Every operation, where it runs and what it loads.
    plan : MemoryPlan
    setup_frames : list of bytes
        EXEC payloads loading every step's ``WGT`` and ``PARAM`` entries.
    frames : list of bytes
        EXEC payloads of one inference after its input is loaded.
    stores : dict of int to (int, int)
        Frame index -> ``(first entry, entries)`` of the result its ``STORE`` returns.
    """

    def __init__(self, qgraph, config, steps, plan, setup, inputs, compute):
        self.qgraph, self.config, self.steps, self.plan = qgraph, config, steps, plan
        self.setup_frames = setup.render()
        self._inputs = inputs
        self.frames = compute.render()
        self.stores = compute.stores
        graph = qgraph.graph
        host = [s for s in steps if s.where == HOST]
        self.host_steps = host
        self.result = host[0].inputs[0] if host else graph.outputs[0]

    @property
    def input_name(self) -> str:
        return self.qgraph.graph.inputs[0]

    def input_frames(self, x_q) -> list:
        """Return the EXEC payloads loading one sample ``x_q`` (int8, the input's shape)."""
        h, w, c = map_shape(self.qgraph.graph.tensor(self.input_name).shape)
        entries = to_entries(np.asarray(x_q, np.int8).reshape(h * w, c), self.config.rows)
        return self._inputs.render(pack_entries(entries, self.config.input_bits))

    def output_from(self, responses) -> np.ndarray:
        """Return the device's result tensor (int8) from the ``STORE`` responses of ``frames``."""
        tensor = self.qgraph.graph.tensor(self.result)
        h, w, c = map_shape(tensor.shape)
        data = b"".join(responses[i] for i in sorted(self.stores))
        count = sum(n for _, n in self.stores.values())
        entries = unpack_entries(data, count, self.config.rows, self.config.input_bits)
        return from_entries(entries, h * w, c, self.config.rows).reshape(tensor.shape)

    def finish(self, y_q) -> np.ndarray:
        """Apply the operations the host runs (a final SOFTMAX) to the batch of results."""
        graph = self.qgraph.graph
        for step in self.host_steps:
            op = graph.ops[step.index]
            y_q = op.spec.run(graph.mode, op.attrs, [y_q],
                              [graph.tensor(n) for n in op.inputs],
                              graph.tensor(op.outputs[0]))
        return y_q

    def report(self) -> dict:
        """Return the memory plan and the steps as JSON-compatible data."""
        return {"memory": self.plan.usage(self.config),
                "steps": [{"name": s.name, "kind": s.kind, "where": s.where,
                           "instruction": s.instruction, "macs": s.macs} for s in self.steps]}


def _emit(steps, plan, result, config):
    """Return the operation list of one inference (input already loaded)."""
    ops, reads, writes = [], [], []
    post = window = None
    for step in steps:
        if step.where != DEVICE:
            continue
        ins = [plan.act[n] for n in step.inputs]
        out = plan.act[step.output]
        if any(_overlap(r, w) for r in ins for w in writes) or \
                any(_overlap(out, x) for x in reads + writes):
            ops.append(SyncOp())
            reads, writes = [], []
        if step.post != post:
            ops.append(WordOp(step.post))
            post = step.post
        if step.instruction == "CONV":
            if step.window != window:
                w = step.window
                ops.append(WordOp(isa.Window(**{k: getattr(w, k)
                                                for k in w.__dataclass_fields__})))
                window = step.window
            ops.append(WordOp(isa.Conv(step.conv_kind, ins[0][0], out[0],
                                       plan.weight_addr.get(step.index, 0),
                                       plan.param_addr.get(step.index, 0))))
        else:
            ops.append(WordOp(isa.Add(ins[0][0], ins[1][0], out[0], out[1],
                                      plan.param_addr[step.index])))
        reads += ins
        writes.append(out)
    addr, count = plan.act[result]
    most = config.max_store_entries
    for start in range(0, count, most):
        n = min(most, count - start)
        ops.append(StoreOp(addr + start, n, (start, n)))
    return ops


def compile_graph(qgraph, config) -> CompiledGraph:
    """Compile a :class:`~tessera.graph.QuantizedGraph` for a configuration with ``cnn``.

    Raises
    ------
    ValueError
        The configuration lacks the CNN features or mode "tflite".
    UnsupportedModelError
        An operation has no device mapping (the message names it).
    ModelTooLarge
        The resident model does not fit (bytes needed and available per memory, and the
        smallest preset that fits).
    """
    if not config.cnn or not config.supports("tflite"):
        raise ValueError(f"Graphs with convolutions run on configurations with cnn=True and "
                         f"mode 'tflite' (ISA version 3), not cnn={config.cnn}, requant_modes="
                         f"{config.requant_modes}: use a preset of tessera.compiler.presets")
    steps = lower_graph(qgraph, config)
    graph = qgraph.graph
    plan = plan_memory(graph, steps, config)
    if not plan.fits(config):
        fitting = presets_that_fit(
            lambda cfg: plan_memory(graph, lower_graph(qgraph, cfg), cfg).fits(cfg))
        raise ModelTooLarge(too_large_message(graph.name, plan, config, fitting))
    setup = []
    for step in steps:
        if step.weights is not None:
            setup.append(LoadOp(isa.Buffer.WGT, plan.weight_addr[step.index], len(step.weights),
                                payload=pack_entries(step.weights, config.weight_bits)))
        if step.params is not None:
            setup.append(LoadOp(isa.Buffer.PARAM, plan.param_addr[step.index],
                                len(step.params), payload=step.params.tobytes()))
    addr, count = plan.act[graph.inputs[0]]
    inputs = frame_ops([LoadOp(isa.Buffer.ACT, addr, count, x_offset=0)], config)
    host = [s for s in steps if s.where == HOST]
    result = host[0].inputs[0] if host else graph.outputs[0]
    compute = frame_ops(_emit(steps, plan, result, config), config)
    return CompiledGraph(qgraph, config, steps, plan, frame_ops(setup, config), inputs, compute)
