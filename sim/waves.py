"""Waveform dumps of an RTL simulation: the formats, the builds they need, how to ask for them.

A waveform needs a build made for it (Verilator compiles tracing code in; Icarus adds a
``$dumpvars`` module), cached beside the plain build. Both simulators write FST (``.fst``) and
VCD (``.vcd``); the file's suffix chooses (:func:`check_waves_path`). Verilator's FST writer
compiles against the lz4 and zlib headers (``apt-get install liblz4-dev zlib1g-dev``); without
them Verilator writes VCD only. Icarus writes either format from the same build. Open the file
with GTKWave (``gtkwave run.fst``) or Surfer (``surfer run.fst``); see docs/simulation.md.

``WAVES=1`` in the environment (cocotb's own switch) makes every :func:`tessera.sim.runner.build`
a waveform build and every cocotb run (:func:`tessera.sim.runner.run_test`) dump
``<toplevel>.fst`` (or ``.vcd``) into its test directory; a failing run names that file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["FORMATS", "check_waves_path", "waves_format", "build_formats",
           "verilator_trace_args", "fst_headers_missing", "icarus_dump_module",
           "waves_from_environment", "without_waves_variable", "runner_for"]

#: The waveform file suffixes Tessera can write.
FORMATS = (".fst", ".vcd")

#: Top module of the Icarus dump module (:func:`icarus_dump_module`).
ICARUS_DUMP_TOP = "tessera_waves"

_TRUE = ("1", "yes", "y", "on", "true", "enable")

#: Headers Verilator's FST writer includes, and the packages that provide them.
_FST_HEADERS = {"lz4.h": "liblz4-dev", "zlib.h": "zlib1g-dev"}


@functools.lru_cache(maxsize=None)
def fst_headers_missing() -> tuple:
    """Return the headers Verilator's FST writer needs that the C++ compiler cannot find."""
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        return tuple(_FST_HEADERS)
    missing = []
    for header in _FST_HEADERS:
        probe = subprocess.run([compiler, "-E", "-x", "c++", "-"], input=f"#include <{header}>\n",
                               capture_output=True, text=True)
        if probe.returncode != 0:
            missing.append(header)
    return tuple(missing)


def _fst_refusal(name) -> str | None:
    missing = fst_headers_missing()
    if not missing:
        return None
    return (f"Verilator cannot write the FST waveform {name}: its FST writer needs "
            f"{', '.join(missing)}, which the C++ compiler does not find; install them with "
            f"`apt-get install {' '.join(_FST_HEADERS[h] for h in missing)}`, or name the file "
            f".vcd, or use 'sim:icarus'")


def check_waves_path(path, simulator) -> Path:
    """Return ``path`` made absolute, once ``simulator`` can write its format here.

    Raises
    ------
    ValueError
        The suffix is not ``.fst`` or ``.vcd``, Verilator lacks the FST writer's headers, or
        the directory does not exist.
    """
    path = Path(path).expanduser().resolve()
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"Waveform file {path.name} must end in .fst or .vcd (the format "
                         f"follows the suffix; {simulator} writes both)")
    if simulator == "verilator" and suffix == ".fst" and _fst_refusal(path.name):
        raise ValueError(_fst_refusal(path.name))
    if not path.parent.is_dir():
        raise ValueError(f"Cannot write the waveform {path}: directory {path.parent} does "
                         f"not exist")
    return path


def waves_format(waves, simulator) -> str | None:
    """Return the suffix a build for ``waves`` dumps, or None for no waveform.

    ``waves`` is None (``$WAVES`` decides), a bool, or a suffix (``".fst"``/``"vcd"``). True
    means FST, or VCD on a Verilator without the FST writer's headers.
    """
    if waves is None:
        waves = waves_from_environment()
    if waves is False:
        return None
    if waves is True:
        refused = simulator == "verilator" and _fst_refusal("")
        return ".vcd" if refused else ".fst"
    suffix = "." + str(waves).lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"Waveform format must be fst or vcd, not {waves!r}")
    return suffix


def build_formats(simulator, suffix) -> tuple:
    """Return the suffixes a waveform build for ``suffix`` can write (Icarus: both)."""
    if suffix is None:
        return ()
    return FORMATS if simulator == "icarus" else (suffix,)


def verilator_trace_args(suffix) -> list:
    """Return Verilator's arguments for a ``suffix`` build (cocotb's runner adds ``--trace``)."""
    return ["--trace-fst"] if suffix == ".fst" else []


def icarus_dump_module(toplevel) -> str:
    """Return a Verilog-2005 module dumping every signal under ``toplevel`` on Icarus.

    cocotb's own dump module declares a SystemVerilog ``string``, which the ``-g2005`` the
    Tessera builds need (``runner._build_args``) rejects. The file comes from the plusarg
    ``+dumpfile_path=...``, the format from ``vvp``'s ``-fst`` / ``-vcd`` (:func:`runner_for`).
    """
    return f"""module {ICARUS_DUMP_TOP};
    reg [8*4096-1:0] path;
    initial begin
        if ($value$plusargs("dumpfile_path=%s", path))
            $dumpfile(path);
        $dumpvars(0, {toplevel});
    end
endmodule
"""


def waves_from_environment() -> bool:
    """Whether ``$WAVES`` asks for waveforms (cocotb's convention: 1, yes, on, true)."""
    return os.environ.get("WAVES", "").strip().lower() in _TRUE


@contextlib.contextmanager
def without_waves_variable():
    """Hide ``$WAVES`` from cocotb's runner while the block runs.

    The runner lets ``$WAVES`` override its ``waves`` argument: a plain build would then be
    compiled with tracing into the cache directory of the plain build. Tessera decides (from the
    same variable, see :func:`waves_from_environment`) and passes the decision explicitly.
    """
    saved = os.environ.pop("WAVES", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["WAVES"] = saved


def runner_for(simulator, waves_suffix=None):
    """Return cocotb's runner for ``simulator``, writing ``waves_suffix`` (``.vcd``) if given.

    cocotb's Icarus runner always asks ``vvp`` for FST when dumping; for ``.vcd`` the returned
    runner asks for VCD instead.
    """
    from cocotb_tools.runner import Icarus, get_runner
    if simulator != "icarus" or waves_suffix != ".vcd":
        return get_runner(simulator)

    class IcarusVcd(Icarus):
        def _test_command(self):
            return [["-vcd" if arg == "-fst" else arg for arg in command]
                    for command in super()._test_command()]

    return IcarusVcd()
