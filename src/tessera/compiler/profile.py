"""The device model's answer for one inference on a board preset (``tessera profile``).

:func:`profile_model` compiles a model for a CNN preset (:mod:`.presets`), loads it on the emulator, loads one input and then runs one inference: the
emulator's cycle model gives the cycles from the first byte of the inference's first request to
the last byte of its result (MLPerf Tiny's latency: the input is already on the device), the
latency at the preset's clock, the MACs, the utilisation ``MACs / (rows x cols x cycles)`` and a
per-operation breakdown; ``input_transfer_ms`` is the input's frames at the UART rate
(10 bits per byte). What crosses the link during the inference -- weights streamed because they
do not fit ``WGT`` (``streamed_bytes``) and the feature maps to and from the operations the
host runs (``host_transfer_bytes``, per operation ``transfer_bytes``) -- is timed at the UART
rate too (``link_ms``) and added to ``latency_ms`` (the cycle model moves link bytes at one
per cycle, the frame buffer's rate). A dense chain (the anomaly detector) compiles with the
dense compiler; its one program loads the input itself, so its cycles include that load.
"""

from __future__ import annotations

import numpy as np

from ..runtime import Emulator
from ..spec.isa import Buffer, CnnOpcode, Load, Opcode, decode_program
from ..spec.protocol import FrameParser, Kind, Status, encode_frame
from .graph_model import compile_graph
from .memplan import ModelTooLarge, plan_memory
from .presets import get_preset

__all__ = ["profile_model", "PROFILE_KEYS", "format_profile"]

#: The keys of :func:`profile_model`'s result (issue 14), in order.
PROFILE_KEYS = ("cycles", "latency_ms", "macs", "utilisation", "fits", "memory", "layers",
                "input_transfer_ms", "link_ms", "streamed_bytes", "host_transfer_bytes")

_MAX_DEPTH = 1 << 16


class _Runner:
    """Sends EXEC frames straight to an :class:`Emulator` and checks every answer."""

    def __init__(self, config):
        self.emulator = Emulator(config)
        self.parser = FrameParser()
        self.seq = 0
        self.link_bytes = 0

    def exec(self, payload) -> bytes:
        frame = encode_frame(Kind.EXEC, self.seq, payload)
        self.emulator.feed(frame)
        (answer,) = self.parser.feed(self.emulator.read(1 << 24))
        self.seq = (self.seq + 1) & 0xFF
        self.link_bytes += len(frame) + len(answer.payload) + 9
        if answer.kind != Status.OK:
            raise RuntimeError(f"The emulator answered {Status(answer.kind).name}: a compiler bug")
        return answer.payload


def _sample(shape):
    """Return one random int8 input (the cycle model does not depend on the values)."""
    return np.random.default_rng(0).integers(-128, 128, size=shape).astype(np.int8)


def _graph_profile(qgraph, preset):
    config, enlarged = preset.config, False
    try:
        compiled = compile_graph(qgraph, config)
    except ModelTooLarge:
        enlarged = True
        big = config.replace(act_depth=_MAX_DEPTH, weight_depth=_MAX_DEPTH, param_depth=_MAX_DEPTH)
        try:
            compiled = compile_graph(qgraph, big)
        except ModelTooLarge:
            from .graph_lower import lower_graph
            plan = plan_memory(qgraph.graph, lower_graph(qgraph, config), config)
            return dict(cycles=None, latency_ms=None, macs=None, utilisation=None, fits=False,
                        memory=plan.usage(config), layers=[], input_transfer_ms=None,
                        link_ms=None, streamed_bytes=None, host_transfer_bytes=None)
        config = big
    runner = _Runner(config)
    for frame in compiled.setup_frames:
        runner.exec(frame)
    runner.link_bytes = 0
    emu = runner.emulator
    marks = dict(start=emu.cycles.now, macs=emu.cycles.macs, input_bytes=0)   # all on the host
    emu.machine.trace = []

    def loaded():                 # MLPerf Tiny's latency starts with the input on the device
        marks.update(start=emu.cycles.now, macs=emu.cycles.macs, input_bytes=runner.link_bytes)
        emu.machine.trace = []

    compiled.infer(_sample(tuple(qgraph.graph.tensor(compiled.input_name).shape)), runner.exec,
                   input_loaded=loaded)
    start, end = marks["start"], emu.cycles.now
    trace = [t for t in emu.machine.trace if t[1] in (CnnOpcode.CONV, CnnOpcode.ADD)]
    peak = config.rows * config.cols
    layers, device = [], iter(trace)
    bounds = [start] + [t[2] for t in trace[1:]] + [end]
    moved = compiled.transfers()
    streamed = {i: n * config.weight_entry_bytes for i, n in compiled.plan.streamed.items()}
    n = 0
    for step in compiled.steps:
        link = moved.get(step.index, 0) + streamed.get(step.index, 0)
        row = {"name": step.name, "kind": step.kind, "where": step.where,
               "instruction": step.instruction, "cycles": 0, "macs": step.macs,
               "utilisation": 0.0, "transfer_bytes": link,
               "transfer_ms": _link_ms(link, preset)}
        if step.where == "device":
            _, _, _, _, macs = next(device)
            cycles = bounds[n + 1] - bounds[n]
            row.update(cycles=cycles, macs=macs,
                       utilisation=macs / (peak * cycles) if cycles else 0.0)
            n += 1
        layers.append(row)
    return _result(end - start, emu.cycles.macs - marks["macs"],
                   compiled.plan.resident and not enlarged, compiled.plan.usage(preset.config),
                   layers, marks["input_bytes"], preset, streamed=sum(streamed.values()),
                   host=sum(moved.values()))


def _link_ms(nbytes, preset) -> float:
    """Return the UART time of ``nbytes`` (10 bits per byte) at the preset's rate."""
    return nbytes * 10 / preset.baud * 1e3


def _dense_profile(qmodel, preset):
    from .model import compile_model
    config = preset.config
    compiled = compile_model(qmodel, config)
    runner = _Runner(config)
    for frame in compiled.setup_frames:
        runner.exec(frame)
    x = _sample((1, qmodel.in_features))
    emu = runner.emulator
    start, macs0 = emu.cycles.now, emu.cycles.macs
    emu.machine.trace = []
    for frame in compiled.program(x).frames:
        runner.exec(frame)
    end = emu.cycles.now
    gemms = [t for t in emu.machine.trace if t[1] == Opcode.GEMM]
    input_bytes = qmodel.in_features * config.act_entry_bytes
    usage = compiled.buffer_usage
    memory = {name: {"entries": int(used), "depth": int(config.depth(buf)),
                     "bytes": int(used) * config.entry_bytes(buf),
                     "available_bytes": config.depth(buf) * config.entry_bytes(buf)}
              for name, buf, used in _dense_usage(usage)}
    layers = _dense_layers(qmodel, gemms, start, end, config.rows * config.cols)
    streamed = sum(len(i.payload) for frame in compiled.program(x).frames      # weight LOADs
                   for i in decode_program(frame, config)
                   if isinstance(i, Load) and i.buffer == Buffer.WGT)
    return _result(end - start, emu.cycles.macs - macs0, bool(compiled.weights_resident), memory,
                   layers, input_bytes + 25, preset, streamed=streamed)


def _dense_layers(qmodel, gemms, start, end, peak):
    """Return the per-layer rows of a dense chain: its GEMMs follow the layers in order, so a
    layer runs from its first GEMM's fetch to the next layer's (the first from ``start``)."""
    rows, first, done, index = [], [], 0, 0
    totals = [layer.in_features * layer.out_features for layer in qmodel.layers]
    for _, _, fetched, _, macs in gemms:
        if done == 0:
            first.append(fetched)
        done += macs
        if done >= totals[index]:
            done, index = 0, index + 1
    bounds = [start] + first[1:] + [end]
    for i, layer in enumerate(qmodel.layers):
        cycles = bounds[i + 1] - bounds[i]
        rows.append({"name": layer.name, "kind": "FULLY_CONNECTED", "where": "device",
                     "instruction": "GEMM", "cycles": cycles, "macs": totals[i],
                     "utilisation": totals[i] / (peak * cycles) if cycles else 0.0})
    return rows


def _dense_usage(usage):
    from ..spec.isa import Buffer
    names = {"ACT": Buffer.ACT, "WGT": Buffer.WGT, "PARAM": Buffer.PARAM}
    for name, buf in names.items():
        used = usage.get(name, usage.get(name.lower(), 0)) if isinstance(usage, dict) else 0
        if isinstance(used, dict):
            used = used.get("used", 0)
        yield name, buf, used


def _result(cycles, macs, fits, memory, layers, input_bytes, preset, *, streamed=0, host=0):
    peak = preset.config.rows * preset.config.cols
    link_ms = _link_ms(streamed + host, preset)
    return dict(cycles=int(cycles), latency_ms=cycles / (preset.clock_mhz * 1e3) + link_ms,
                macs=int(macs), utilisation=macs / (peak * cycles) if cycles else 0.0,
                fits=bool(fits), memory=memory, layers=layers,
                input_transfer_ms=_link_ms(input_bytes, preset), link_ms=link_ms,
                streamed_bytes=int(streamed), host_transfer_bytes=int(host))


def profile_model(model, board, *, mode=None) -> dict:
    """Return the profile of one inference of ``model`` on ``board``'s CNN preset.

    Parameters
    ----------
    model : str, path, QuantizedGraph or QuantizedModel
        A model file is read with ``tessera.load_model(path, mode=mode or "tflite")``.
    board : str
        A preset of :data:`tessera.compiler.CNN_PRESETS` or its board name.
    mode : str, optional

    Returns
    -------
    dict with exactly the keys :data:`PROFILE_KEYS`
    """
    import tessera
    preset = get_preset(board)
    if not hasattr(model, "graph") and not hasattr(model, "layers"):
        model = tessera.load_model(model, mode=mode or "tflite")
    if hasattr(model, "graph"):
        return _graph_profile(model, preset)
    return _dense_profile(model, preset)


def format_profile(result, title="") -> str:
    """Return the profile as a text table."""
    lines = [title] if title else []
    if result["cycles"] is None:
        lines.append("does not fit, even with every buffer at its largest depth")
    else:
        lines.append(f"cycles {result['cycles']:,}  latency {result['latency_ms']:.3f} ms  "
                     f"MACs {result['macs']:,}  utilisation {result['utilisation']:.3f}  "
                     f"fits {'yes' if result['fits'] else 'no'}  input transfer "
                     f"{result['input_transfer_ms']:.3f} ms")
    lines.append(f"{'memory':8} {'bytes':>10} {'available':>10}")
    for name, use in result["memory"].items():
        lines.append(f"{name:8} {use['bytes']:>10,} {use['available_bytes']:>10,}")
    if result.get("link_ms"):
        lines.append(f"link during the inference {result['link_ms']:.3f} ms (in the latency): "
                     f"{result['streamed_bytes']:,} bytes of streamed weights, "
                     f"{result['host_transfer_bytes']:,} bytes to and from host operations")
    lines.append(f"{'operation':32} {'kind':18} {'where':7} {'cycles':>9} {'MACs':>10} util  "
                 f"link bytes")
    for row in result["layers"]:
        cycles = "-" if row["cycles"] is None else f"{row['cycles']:,}"
        util = "-" if row["utilisation"] is None else f"{row['utilisation']:.3f}"
        moved = f"{row['transfer_bytes']:,}" if row.get("transfer_bytes") else ""
        lines.append(f"{row['name'][:32]:32} {row['kind']:18} {row['where']:7} {cycles:>9} "
                     f"{row['macs']:>10,} {util:5} {moved}")
    return "\n".join(lines)
