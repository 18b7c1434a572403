"""A tensor graph compiled for an accelerator with the CNN features (docs/compiler.md, "Graphs").

:func:`compile_graph` lowers every operation (:mod:`.graph_lower`), plans the memories by tensor
lifetime (:mod:`.memplan`), emits ``POST``/``WINDOW``/``CONV``/``ADD`` with the ``SYNC``\\ s the
hazard rules need (and the ``LOAD``\\ s of streamed weights) and frames them, one device segment
at a time (:mod:`.graph_segments`). A :class:`CompiledGraph` holds the setup frames (resident
weights and ``PARAM`` entries, loaded once) and, per device segment, the frames loading what it
reads from the host and the constant frames of its operations, which end with the
``STORE``\\ s of what the host needs; :meth:`CompiledGraph.infer` runs one sample through them
and the host's operations between.
"""

from __future__ import annotations

import numpy as np

from ..runtime.conv import from_entries, to_entries
from ..spec import isa
from ..spec.packing import pack_entries, unpack_entries
from .framing import frame_ops
from .graph_lower import DEVICE, HOST, demote_host_read, lower_graph, map_shape, to_host
from .graph_segments import alias_roots, prefer_host, split_segments
from .memplan import ModelTooLarge, plan_memory, too_large_message
from .ops import LoadOp, StoreOp, SyncOp, WordOp
from .presets import presets_that_fit

__all__ = ["CompiledGraph", "compile_graph"]


class CompiledGraph:
    """The programs of one graph for one configuration.

    Attributes
    ----------
    qgraph, config
    steps : list of DeviceStep
        Every operation, where it runs and what it loads.
    plan : MemoryPlan
    segments : list of Segment
        The device and host segments in order (:mod:`.graph_segments`); a device segment has
        ``load_template`` (the frames loading ``loads``) and ``frames`` (its operations and the
        ``STORE``\\ s of ``stores``).
    setup_frames : list of bytes
        EXEC payloads loading every resident step's ``WGT`` and ``PARAM`` entries.
    """

    def __init__(self, qgraph, config, steps, plan, segments, setup):
        self.qgraph, self.config, self.steps, self.plan = qgraph, config, steps, plan
        self.segments = segments
        self.setup_frames = setup.render()
        self._root = alias_roots(steps)
        graph = qgraph.graph
        device = [s for s in segments if s.where == DEVICE]
        # One device segment loading the input, then host operations only: the frames of one
        # inference are constant and the host finishes the batch (frames, input_frames, ...).
        self.simple = (bool(device) and segments[0] is device[0] and len(device) == 1 and
                       device[0].loads == [self._base(graph.inputs[0])] and
                       len(device[0].stores) == 1)
        self.host_steps = [st for s in segments if s.where == HOST for st in s.steps]
        self.result = device[0].stores[0] if self.simple else graph.outputs[0]

    def why_not_resident(self):
        """Return None when the whole model runs resident in one device segment, else why not.

        (Weights streamed per inference, or operations on the host between device segments.)
        """
        usage = "; ".join(f"{mem} needs {u['bytes']:,} bytes, {u['available_bytes']:,} available"
                          for mem, u in self.plan.usage(self.config).items())
        if self.plan.streamed:
            streamed = self.plan.streamed_entries * self.config.weight_entry_bytes
            return (f"its weights are not resident: {streamed:,} bytes are streamed per "
                    f"inference ({usage})")
        middle = [s.kind for s in self.host_steps] if not self.simple else []
        if middle:
            return (f"the host runs {', '.join(middle)} between device segments "
                    f"({len(self.segments)} segments)")
        return None

    def _base(self, name):
        return self._root.get(name, name)

    def _first(self):
        if not self.simple:
            raise ValueError(f"Graph {self.qgraph.graph.name!r} runs in {len(self.segments)} "
                             f"device and host segments: run it with infer(sample, exec_frame) "
                             f"or Device.run")
        return self.segments[0]

    @property
    def input_name(self) -> str:
        return self.qgraph.graph.inputs[0]

    @property
    def frames(self) -> list:
        """EXEC payloads of one inference after its input is loaded (one device segment)."""
        return self._first().frames

    @property
    def stores(self) -> dict:
        """Frame index -> ``(first entry, entries)`` of the result (one device segment)."""
        return {i: t[1:] for i, t in self._first().compute.stores.items()}

    def input_frames(self, x_q) -> list:
        """Return the EXEC payloads loading one sample ``x_q`` (int8, the input's shape)."""
        return self._first().load_template.render(self._pack(x_q, self.input_name))

    def _pack(self, value, name) -> bytes:
        h, w, c = map_shape(self.qgraph.graph.tensor(name).shape)
        entries = to_entries(np.asarray(value, np.int8).reshape(h * w, c), self.config.rows)
        return pack_entries(entries, self.config.input_bits)

    def _collect(self, segment, responses) -> dict:
        """Return ``{tensor: array}`` (one sample) of a device segment's ``STORE`` responses."""
        data, count = {}, {}
        for index in sorted(segment.compute.stores):
            name, _, n = segment.compute.stores[index]
            data[name] = data.get(name, b"") + responses[index]
            count[name] = count.get(name, 0) + n
        out = {}
        for name in data:
            tensor = self.qgraph.graph.tensor(name)
            h, w, c = map_shape(tensor.shape)
            entries = unpack_entries(data[name], count[name], self.config.rows,
                                     self.config.input_bits)
            out[name] = from_entries(entries, h * w, c, self.config.rows).reshape(tensor.shape)
        return out

    def output_from(self, responses) -> np.ndarray:
        """Return the device's result tensor (int8) from the ``STORE`` responses of ``frames``."""
        return self._collect(self._first(), responses)[self.result]

    def finish(self, y_q) -> np.ndarray:
        """Apply the host's operations (e.g. a final SOFTMAX) to the batch of results."""
        self._first()
        values = {self.result: y_q}
        for step in self.host_steps:
            self._run_host(step, values)
        return self._value(values, self.qgraph.graph.outputs[0])

    def _value(self, values, name):
        if name in values:
            return values[name]
        value = values[self._base(name)]
        return value.reshape(value.shape[:1] + tuple(self.qgraph.graph.tensor(name).shape))

    def _run_host(self, step, values):
        """Run one host step on the batch ``values`` (tensor -> array) with its graph kernel."""
        graph = self.qgraph.graph
        op = graph.ops[step.index]
        ins = [None if n is None else graph.tensor(n) for n in op.inputs]
        arrays = [None if t is None else (t.data if t.is_constant else self._value(values, t.name))
                  for t in ins]
        values[op.outputs[0]] = op.spec.run(graph.mode, op.attrs, arrays, ins,
                                            graph.tensor(op.outputs[0]))

    def infer(self, x_q, exec_frame, *, input_loaded=None) -> np.ndarray:
        """Run one sample ``x_q`` (graph layout) through every segment; return the output.

        ``exec_frame(payload)`` sends one EXEC payload and returns its response payload (the
        setup frames must have been sent). ``input_loaded()``, if given, is called once the
        first device segment's loads are sent (the profile's start of an inference).
        """
        graph = self.qgraph.graph
        values = {self.input_name: np.asarray(x_q)[None]}
        first = True
        for segment in self.segments:
            if segment.where == HOST:
                for step in segment.steps:
                    self._run_host(step, values)
                continue
            packed = b"".join(self._pack(self._value(values, n)[0], n) for n in segment.loads)
            for frame in segment.load_template.render(packed):
                exec_frame(frame)
            if first and input_loaded is not None:
                input_loaded()
            first = False
            responses = {i: exec_frame(frame) for i, frame in enumerate(segment.frames)}
            for name, value in self._collect(segment, responses).items():
                values[name] = value[None]
        return self._value(values, graph.outputs[0])[0]

    def transfers(self) -> dict:
        """Return ``{step index: bytes}`` crossing the link for each host step per inference.

        A host step is charged the ``STORE``\\ d entries of the device tensors it is the first
        host reader of and the ``LOAD``\\ ed entries of its output; the graph input's load and
        the last device segment's stores (the result) are not counted.
        """
        entry = self.config.act_entry_bytes
        first_reader, producer = {}, {}
        for step in self.host_steps:
            producer[step.output] = step.index
            for name in map(self._base, step.inputs):
                first_reader.setdefault(name, step.index)
        out = {step.index: 0 for step in self.host_steps}
        last = [s for s in self.segments if s.where == DEVICE][-1:]
        for segment in self.segments:
            for name in segment.stores if segment not in last else ():
                if name in first_reader:
                    out[first_reader[name]] += self.plan.act[name][1] * entry
            for name in segment.loads:
                if name in producer:
                    out[producer[name]] += self.plan.act[name][1] * entry
        return out

    def report(self) -> dict:
        """Return the memory plan, the segments and the steps as JSON-compatible data."""
        moved = self.transfers()
        return {"memory": self.plan.usage(self.config),
                "segments": [s.where for s in self.segments],
                "steps": [{"name": s.name, "kind": s.kind, "where": s.where,
                           "instruction": s.instruction, "macs": s.macs,
                           **({"reason": s.extra["reason"], "transfer_bytes": moved[s.index]}
                              if s.where == HOST else {})}
                          for s in self.steps]}


def _overlap(a, b) -> bool:
    return a[0] == b[0] and a[1] < b[1] + b[2] and b[1] < a[1] + a[2]


def _emit(steps, plan, stores, config):
    """Return the operation list of one device segment (its loads already sent).

    Regions are ``(buffer, addr, entries)``; a ``SYNC`` goes before an operation that reads a
    region an in-flight one writes or writes a region an in-flight one reads or writes, and
    before an ``ADD`` or a streamed weight ``LOAD`` while a ``CONV`` is in flight (``ACT`` and
    ``WGT`` may be single-port memories: docs/isa.md, "Version 3").
    """
    ops, reads, writes = [], [], []
    engine = False      # a CONV issued since the last SYNC
    post = window = None
    act = isa.Buffer.ACT
    for step in steps:
        if step.where != DEVICE:
            continue
        ins = [(act, *plan.act[n]) for n in step.inputs]
        out = (act, *plan.act[step.output])
        used = list(ins)
        if step.weights is not None:
            used.append((isa.Buffer.WGT, plan.weight_addr[step.index], len(step.weights)))
        if step.params is not None:
            used.append((isa.Buffer.PARAM, plan.param_addr[step.index], len(step.params)))
        streamed = [r for r in used if r[0] != act and step.index in plan.streamed and
                    r[0] == isa.Buffer.WGT]
        if any(_overlap(r, w) for r in used for w in writes) or \
                any(_overlap(x, y) for x in [out] + streamed for y in reads + writes) or \
                (engine and (streamed or step.instruction != "CONV")):
            ops.append(SyncOp())
            reads, writes, engine = [], [], False
        for buffer, addr, count in streamed:      # weights that are not resident
            ops.append(LoadOp(buffer, addr, count,
                              payload=pack_entries(step.weights, config.weight_bits)))
        if step.post != post:
            ops.append(WordOp(step.post))
            post = step.post
        if step.instruction == "CONV":
            if step.window != window:
                w = step.window
                ops.append(WordOp(isa.Window(**{k: getattr(w, k)
                                                for k in w.__dataclass_fields__})))
                window = step.window
            engine = True
            ops.append(WordOp(isa.Conv(step.conv_kind, ins[0][1], out[1],
                                       plan.weight_addr.get(step.index, 0),
                                       plan.param_addr.get(step.index, 0))))
        else:
            ops.append(WordOp(isa.Add(ins[0][1], ins[1][1], out[1], out[2],
                                      plan.param_addr[step.index])))
        reads += used
        writes.append(out)
    most = config.max_store_entries
    for name in stores:
        addr, count = plan.act[name]
        for start in range(0, count, most):
            n = min(most, count - start)
            ops.append(StoreOp(addr + start, n, (name, start, n)))
    return ops


def compile_graph(qgraph, config) -> CompiledGraph:
    """Compile a :class:`~tessera.graph.QuantizedGraph` for a configuration with ``cnn``.

    Raises
    ------
    ValueError
        The configuration lacks the CNN features or mode "tflite".
    UnsupportedModelError
        The configuration does not build the graph's requant mode, or the graph has more than
        one input or output. (Operations without a device mapping run on the host.)
    ModelTooLarge
        The feature maps or ``PARAM`` entries do not fit, or the weights cannot even be
        streamed (bytes needed and available per memory, and the smallest preset that fits).
    """
    if not config.cnn or not config.supports("tflite"):
        raise ValueError(f"Graphs with convolutions run on configurations with cnn=True and "
                         f"mode 'tflite' (ISA version 3), not cnn={config.cnn}, requant_modes="
                         f"{config.requant_modes}: use a preset of tessera.compiler.presets")
    graph = qgraph.graph
    if not config.supports(graph.mode):
        from ..quantize.errors import UnsupportedModelError
        raise UnsupportedModelError(
            f"Graph {graph.name!r} is in mode {graph.mode!r} but the configuration builds "
            f"requant modes {config.requant_modes} (the CNN presets run graphs in mode 'tflite' "
            f"only): load the model with mode='tflite', or compile for a configuration with "
            f"cnn=True that builds {graph.mode!r}")
    steps = prefer_host(graph, lower_graph(qgraph, config), config.rows)
    plan = plan_memory(graph, steps, config)
    means = [s for s in steps if s.kind == "MEAN" and s.index in plan.streamed]
    if means:       # streamed ones cost `cols` times the bytes of its map going to the host
        for step in means:
            to_host(graph, step, "its weights of ones would be streamed: the host is cheaper")
        demote_host_read(graph, steps)
        plan = plan_memory(graph, steps, config)
    if not plan.fits(config):
        fitting = presets_that_fit(
            lambda cfg: plan_memory(graph, lower_graph(qgraph, cfg), cfg).fits(cfg))
        raise ModelTooLarge(too_large_message(graph.name, plan, config, fitting))
    setup = []
    for step in steps:
        if step.weights is not None and step.index not in plan.streamed:
            setup.append(LoadOp(isa.Buffer.WGT, plan.weight_addr[step.index], len(step.weights),
                                payload=pack_entries(step.weights, config.weight_bits)))
        if step.params is not None:
            setup.append(LoadOp(isa.Buffer.PARAM, plan.param_addr[step.index],
                                len(step.params), payload=step.params.tobytes()))
    segments = split_segments(graph, steps)
    for segment in segments:
        if segment.where != DEVICE:
            continue
        loads, offset = [], 0
        for name in segment.loads:
            addr, count = plan.act[name]
            loads.append(LoadOp(isa.Buffer.ACT, addr, count, x_offset=offset))
            offset += count * config.act_entry_bytes
        segment.load_template = frame_ops(loads, config)
        segment.compute = frame_ops(_emit(segment.steps, plan, segment.stores, config), config)
        segment.frames = segment.compute.render()
    return CompiledGraph(qgraph, config, steps, plan, segments, frame_ops(setup, config))
