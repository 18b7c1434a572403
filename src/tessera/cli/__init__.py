"""The ``tessera`` command line: one argparse subcommand per module ``tessera.cli.<name>``.

Each subcommand module exposes ``add_parser(subparsers)`` (registers itself with its ``--help``
text) and ``run(args) -> int``. Modules import their heavy dependencies inside ``run``, so
``tessera --help`` works with only NumPy installed. A subcommand whose module is absent from this
installation is left out; any other import error is a bug and propagates.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "main", "build_parser"]

#: Subcommands, in the order ``tessera --help`` lists them.
COMMANDS = ("info", "run", "verilog", "build", "demo", "bench", "explore")


def _command_modules():
    modules = {}
    for name in COMMANDS:
        module_name = f"{__name__}.{name}"
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
    return modules


def build_parser():
    """Return the ``tessera`` argument parser with every available subcommand."""
    from tessera import __version__
    parser = argparse.ArgumentParser(
        prog="tessera",
        description="Quantize, compile, emulate, simulate and build int8 MLP accelerators.")
    parser.add_argument("--version", action="version", version=f"tessera {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules().items():
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    """Run the ``tessera`` command line; return the exit status."""
    from tessera.runtime.errors import TesseraError
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (TesseraError, ValueError, OSError) as e:
        print(f"tessera {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tessera {args.command}: interrupted", file=sys.stderr)
        return 130
