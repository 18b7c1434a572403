"""``tessera compile``: show what the compiler makes of a model for one configuration.

Prints the compiled model's summary (rows per chunk, buffer use, link bytes per inference) and,
with ``--disasm``, the program itself: the setup frames (weights, parameters and tables that
stay on chip) and the EXEC frames of one batch, one line per instruction
(:func:`tessera.compiler.disassemble`; the ISA is docs/isa.md). A CNN graph compiles for a
configuration with the CNN features (``cnn=True``, e.g. a preset of
:mod:`tessera.compiler.presets`): its memory plan and steps, and with ``--disasm`` its setup,
input and inference frames.
"""

from __future__ import annotations

import argparse
import json

from .options import positive_int

__all__ = ["add_parser", "run", "format_listing", "format_graph_listing", "compile_any"]

_EXAMPLES = """\
examples:
  tessera compile mlp.npz                          # summary for the default 8x8 configuration
  tessera compile mlp.npz --config cfg.json --disasm --batch 4
  tessera compile mlp_qdq.onnx --disasm | less
  tessera compile mlp.onnx --calibration calib.npy --json
  tessera compile kws.tflite --mode tflite --config cnn.json --disasm   # a CNN on a cnn preset

MODEL is read as tessera run reads it: .npz (QuantizedModel.save, e.g. from tessera quantize),
.onnx (quantized, or float with --calibration) or .tflite (int8).
"""


def add_parser(subparsers):
    """Register ``tessera compile``."""
    p = subparsers.add_parser(
        "compile", help="compile a quantized model; show its summary or disassembled program",
        description=__doc__.split("\n\n")[1].replace("\n", " "), epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help=".npz (QuantizedModel.save), .onnx or .tflite")
    p.add_argument("--config", metavar="FILE",
                   help="AcceleratorConfig JSON (default: the default 8x8 configuration)")
    p.add_argument("--calibration", metavar="FILE",
                   help="float calibration batch (.npy) to quantize a float .onnx model")
    p.add_argument("--mode", choices=("onnx", "tflite"),
                   help="requantization rule of an .onnx/.tflite model (default: onnx, or the "
                        "runtime it was quantized for); CNN graphs compile in tflite")
    p.add_argument("--disasm", action="store_true",
                   help="also list the setup frames and the program of one batch, instruction "
                        "by instruction")
    p.add_argument("--batch", type=positive_int, default=1, metavar="M",
                   help="rows of the batch whose program --disasm lists (default 1)")
    p.add_argument("--json", action="store_true",
                   help="print the compiler's report (resources and costs) as JSON")
    return p


def format_listing(compiled, batch) -> str:
    """Return the setup frames and the program of a ``batch``-row input, disassembled.

    The input is all zero points: the instructions do not depend on the input values, only the
    bytes of the activation ``LOAD`` payloads do.
    """
    import numpy as np

    from tessera.compiler import disassemble
    qmodel, config = compiled.qmodel, compiled.config
    x_q = qmodel.quantize_input(np.zeros((batch, compiled.in_features), np.float32))
    program = compiled.program(x_q)
    setup = compiled.setup_frames
    lines = [f"setup: {len(setup)} frame(s), sent once per model",
             disassemble(setup, config) if setup else "  (none)",
             f"program of a {batch}-row batch: {len(program.frames)} frame(s), "
             f"{program.n_instructions} instructions, {program.macs} MACs",
             disassemble(program, config, start=len(setup))]
    return "\n".join(lines)


def format_graph_listing(compiled) -> str:
    """Return the frames of a :class:`~tessera.compiler.CompiledGraph`, disassembled.

    The input frames are those of one all-zero-point sample; only their data depends on it.
    """
    import numpy as np

    from tessera.compiler import disassemble
    qgraph, config = compiled.qgraph, compiled.config
    shape = tuple(qgraph.graph.tensor(compiled.input_name).shape)
    setup = compiled.setup_frames
    parts = [(f"setup: {len(setup)} frame(s), sent once per model", setup)]
    if compiled.simple:
        sample = np.full(shape, qgraph.input_zero_point, np.int8)
        inputs = compiled.input_frames(sample)
        parts += [(f"input of one sample {list(shape)}: {len(inputs)} frame(s)", inputs),
                  (f"inference: {len(compiled.frames)} frame(s)", compiled.frames)]
    else:       # device and host segments in turn; loads shown with zero data
        entry = config.act_entry_bytes
        for n, segment in enumerate(compiled.segments):
            if segment.where == "host":
                parts.append((f"segment {n}, host: " + ", ".join(
                    f"{s.kind} {s.name!r}" for s in segment.steps), []))
                continue
            size = sum(compiled.plan.act[name][1] * entry for name in segment.loads)
            loads = segment.load_template.render(bytes(size))
            parts += [(f"segment {n}, device: load {', '.join(segment.loads)}: "
                       f"{len(loads)} frame(s)", loads),
                      (f"segment {n}, device: {len(segment.frames)} frame(s), storing "
                       f"{', '.join(segment.stores) or 'nothing'}", segment.frames)]
    lines, start = [], 0
    for title, frames in parts:
        lines += [title, disassemble(frames, config, start=start) if frames else "  (none)"]
        start += len(frames)
    return "\n".join(lines)


def _graph_summary(compiled) -> str:
    report = compiled.report()
    config = compiled.config
    lines = [f"Compiled graph {compiled.qgraph.graph.name!r} for {config.rows}x{config.cols} "
             f"(config {config.hash_hex}), CNN features, mode tflite",
             f"{'step':<28} {'kind':<18} {'where':<7} {'instruction':<12} {'MACs':>10}"]
    for s in report["steps"]:
        lines.append(f"{s['name'][:28]:<28} {s['kind']:<18} {s['where']:<7} "
                     f"{str(s['instruction'] or '-'):<12} {s['macs']:>10}")
    lines.append("memory: " + json.dumps(report["memory"], sort_keys=True))
    return "\n".join(lines)


def compile_any(qmodel, config):
    """Return ``(compiled, is_graph)``: a CNN graph on a ``cnn`` configuration compiles as a
    graph, a graph of dense layers as its dense chain, a :class:`QuantizedModel` as it is."""
    from tessera.compiler import compile_model
    if hasattr(qmodel, "graph") and hasattr(qmodel, "first_unsupported"):
        first = qmodel.first_unsupported(("FULLY_CONNECTED", "LUT"))
        if first is not None:
            if not config.cnn:
                raise ValueError(f"{qmodel.graph.describe(first)} of the graph "
                                 "needs a configuration with the CNN features (cnn=True, mode "
                                 "tflite): give --config with one, e.g. "
                                 "a preset of tessera.compiler.presets saved with "
                                 "AcceleratorConfig.save")
            from tessera.compiler import compile_graph
            return compile_graph(qmodel, config), True
        qmodel = qmodel.to_dense_chain()
    return compile_model(qmodel, config), False


def run(args) -> int:
    """Run ``tessera compile``."""
    from tessera.spec import AcceleratorConfig

    from .options import load_config
    from .run import load_input, load_model
    config = load_config(args.config) or AcceleratorConfig()
    calibration = None
    if args.calibration:
        calibration = load_input(args.calibration, raw=False, what="Calibration")
    qmodel = load_model(args.model, calibration, args.mode)
    compiled, is_graph = compile_any(qmodel, config)
    if args.json:
        print(json.dumps({"model": str(args.model), "config": config.to_dict(),
                          "config_hash": config.hash_hex, **compiled.report()}, indent=2))
        return 0
    print(_graph_summary(compiled) if is_graph else compiled.summary())
    if args.disasm:
        print()
        print(format_graph_listing(compiled) if is_graph else format_listing(compiled, args.batch))
    return 0
