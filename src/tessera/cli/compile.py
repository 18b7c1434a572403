"""``tessera compile``: show what the compiler makes of a model for one configuration.

Prints the compiled model's summary (rows per chunk, buffer use, link bytes per inference) and,
with ``--disasm``, the program itself: the setup frames (weights, parameters and tables that
stay on chip) and the EXEC frames of one batch, one line per instruction
(:func:`tessera.compiler.disassemble`; the ISA is docs/isa.md).
"""

from __future__ import annotations

import argparse
import json

from .options import positive_int

__all__ = ["add_parser", "run", "format_listing"]

_EXAMPLES = """\
examples:
  tessera compile mlp.npz                          # summary for the default 8x8 configuration
  tessera compile mlp.npz --config cfg.json --disasm --batch 4
  tessera compile mlp_qdq.onnx --disasm | less
  tessera compile mlp.onnx --calibration calib.npy --json

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


def run(args) -> int:
    """Run ``tessera compile``."""
    from tessera.compiler import compile_model
    from tessera.spec import AcceleratorConfig

    from .options import load_config
    from .run import device_model, load_input, load_model
    config = load_config(args.config) or AcceleratorConfig()
    calibration = None
    if args.calibration:
        calibration = load_input(args.calibration, raw=False, what="Calibration")
    qmodel = device_model(load_model(args.model, calibration), args.model)
    compiled = compile_model(qmodel, config)
    if args.json:
        print(json.dumps({"model": str(args.model), "config": config.to_dict(),
                          "config_hash": config.hash_hex, **compiled.report()}, indent=2))
        return 0
    print(compiled.summary())
    if args.disasm:
        print()
        print(format_listing(compiled, args.batch))
    return 0
