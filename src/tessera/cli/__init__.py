"""The ``tessera`` command line: one argparse subcommand per module ``tessera.cli.<name>``.

Each subcommand module exposes ``add_parser(subparsers)`` (registers itself with its ``--help``
text) and ``run(args) -> int``. Modules import their heavy dependencies inside ``run``, so
``tessera --help`` works with only NumPy installed. A subcommand whose module is absent from this
installation is left out; any other import error is a bug and propagates.

Exit statuses: 0 success; 1 the work ran but failed (outputs differ, timing not met, a tool
failed); 2 a user error — a bad option, file or model — reported as one line on stderr,
``tessera COMMAND: error: ...``, without a traceback (``--debug`` shows it); 130 interrupted;
141 the reader of stdout went away (``tessera ... | head``). Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["COMMANDS", "USAGE_ERROR", "main", "build_parser", "user_errors"]

#: Subcommands, in the order ``tessera --help`` lists them.
COMMANDS = ("info", "quantize", "compile", "run", "verilog", "build", "demo", "bench", "explore",
            "profile")

#: Exit status of a user error (as argparse uses for bad options).
USAGE_ERROR = 2

_BROKEN_PIPE = 128 + 13     # what a shell reports for a process killed by SIGPIPE


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what was wrong and where to read more."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    parser = _Parser(
        prog="tessera",
        description="Quantize, compile, emulate, simulate and build fixed-point MLP "
                    "accelerators. Exit status: 0 done, 1 the work failed (outputs differ, "
                    "timing not met), 2 a bad option, file or model (one line on stderr).")
    parser.add_argument("--version", action="version", version=f"tessera {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of every error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules().items():
        sub = module.add_parser(subparsers)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the Python traceback of every error")
        sub.set_defaults(_run=module.run)
    return parser


def user_errors():
    """Return the exception classes reported as a user error (one line, status 2).

    ``ValueError`` (bad values, files and models, :class:`tessera.UnsupportedModelError`),
    ``OSError`` (missing or unreadable files, ports) and the runtime's :class:`TesseraError`
    except the two that reveal a bug in Tessera itself (``HazardError``, ``ParameterError``).
    """
    from tessera.runtime.errors import HazardError, ParameterError, TesseraError
    return (ValueError, OSError, TesseraError), (HazardError, ParameterError)


def _one_line(error) -> str:
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__


def _missing_package(error):
    """Return the one-line advice for an optional package that is not installed, or None."""
    from .info import EXTRAS
    top = (error.name or "").split(".")[0]
    for module, dist, purpose in EXTRAS:
        if module == top:
            return (f"this needs the optional package {dist} ({purpose}): "
                    f"pip install {dist}, or see tessera info for the extras")
    return None


def _silence_stdout():
    # The reader went away: send what is still buffered to /dev/null so that the interpreter's
    # final flush does not raise BrokenPipeError again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv=None) -> int:
    """Run the ``tessera`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return USAGE_ERROR
    from tessera.install import MissingDependencyError
    reported, bugs = user_errors()
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        _silence_stdout()
        return _BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"tessera {args.command}: interrupted", file=sys.stderr)
        return 130
    except MissingDependencyError as e:
        if args.debug:
            raise
        print(f"tessera {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return USAGE_ERROR
    except ModuleNotFoundError as e:
        advice = _missing_package(e)
        if args.debug or advice is None:
            raise
        print(f"tessera {args.command}: error: {advice}", file=sys.stderr)
        return USAGE_ERROR
    except reported as e:
        if args.debug or isinstance(e, bugs):
            raise
        print(f"tessera {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return USAGE_ERROR
