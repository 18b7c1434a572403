"""``tessera verilog``: write the accelerator's Verilog for a configuration.

The output is one file, ``<DIR>/tessera_top.v`` (module ``tessera_top``; ports ``clk``, ``rst``,
``i_rx__payload/valid/ready``, ``o_tx__payload/valid/ready``, ``busy``), plus the configuration
it was generated from as ``<DIR>/tessera_top.json`` so the pair stays together.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "verilog", help="write the accelerator's Verilog for a configuration",
        description="Elaborate the Amaranth accelerator for an AcceleratorConfig and write "
                    "tessera_top.v (and the configuration as tessera_top.json) into a directory.")
    p.add_argument("--config", metavar="FILE",
                   help="AcceleratorConfig JSON (default: the default 8x8 configuration)")
    p.add_argument("-o", "--output", metavar="DIR", default=".",
                   help="output directory (default: the current directory)")
    return p


def run(args) -> int:
    from tessera.spec import AcceleratorConfig
    try:
        from tessera.hw.top import TOP_NAME, generate_verilog
    except ModuleNotFoundError as e:
        if e.name != "amaranth":
            raise
        from tessera.install import install_hint
        raise OSError(f"tessera verilog needs Amaranth: {install_hint('hw')}") from None

    from .options import load_config
    config = load_config(args.config) or AcceleratorConfig()
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise OSError(f"{out_dir} exists and is not a directory; pass a directory with -o")
    path = generate_verilog(config, out_dir)
    (out_dir / f"{TOP_NAME}.json").write_text(config.to_json() + "\n")
    print(f"Wrote {path} ({config.rows}x{config.cols} MACs, config {config.hash_hex})")
    return 0
