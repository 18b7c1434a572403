"""``tessera profile MODEL --board BOARD``: the device model's answer for one inference.

The model runs on the emulator with the board's CNN preset (``tessera.compiler.presets``; the
emulator's counters equal the RTL's): cycles and latency at the preset's target clock,
MACs, utilisation, whether it fits resident, the memory plan, the per-operation breakdown, the
input's transfer time at the UART rate and the link time of streamed weights and host
operations (``tessera.compiler.profile``).
"""

from __future__ import annotations

import json

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    from tessera.compiler.presets import CNN_PRESETS
    boards = ", ".join(p.board for p in CNN_PRESETS.values())
    p = subparsers.add_parser(
        "profile", help="cycles, latency and memory of one inference on a board's CNN preset",
        description="Compile MODEL for the CNN preset of BOARD, load it on the emulator (its "
                    "counters equal the RTL's) and report one "
                    "inference with its input already on the device: cycles, latency_ms at the "
                    "board's clock, macs, utilisation (MACs / (array size x cycles)), fits "
                    "(whole model resident), the memory plan per memory, the per-operation "
                    "breakdown (cycles, utilisation, where it ran, transfer_bytes) and "
                    "input_transfer_ms at the board's UART rate; weights that do not fit are "
                    "streamed per inference and operations the device cannot run run on the "
                    "host: what crosses the link then (streamed_bytes, host_transfer_bytes) is "
                    f"timed at the UART rate (link_ms) and included in latency_ms. Boards: "
                    f"{boards}.")
    p.add_argument("model", metavar="MODEL", help="a .tflite, .onnx or saved .npz model")
    p.add_argument("--board", required=True, metavar="BOARD",
                   help=f"board or preset name ({boards})")
    p.add_argument("--mode", choices=("onnx", "tflite"),
                   help="requantization mode to read the model in (default: tflite; the CNN "
                        "presets build mode tflite only)")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    return p


def run(args) -> int:
    from tessera.compiler.presets import get_preset
    from tessera.compiler.profile import format_profile, profile_model
    preset = get_preset(args.board)
    result = profile_model(args.model, args.board, mode=args.mode)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        target = " target, not met yet" if preset.not_met else ""
        print(format_profile(result, f"{args.model} on {preset.name} ({preset.config.rows}x"
                                     f"{preset.config.cols} at {preset.clock_mhz:g} MHz"
                                     f"{target}, cycle model)"))
    return 0
