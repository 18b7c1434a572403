"""``tessera.connect("sim")``: the host driver talking to the RTL in a simulator process.

The simulation runs in a child process (``python -m tessera.sim.serve``: cocotb + Verilator or
Icarus) whose bridge connects back to a socket opened here; the
:class:`~tessera.runtime.device.Device` driver is the very one used for the emulator and for
boards, over a :class:`SocketTransport`. The child runs in its own process group, so closing the
device (or a failure) never leaves a simulator behind; a simulator that dies or fails surfaces
as a :class:`~tessera.runtime.errors.LinkError` carrying the tail of its log.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tessera.runtime.errors import LinkError
from tessera.runtime.transport import Transport

from . import runner, sessions
from .waves import check_waves_path

__all__ = ["SocketTransport", "SimulatorProcess", "launch", "work_directory", "connect_sim",
           "print_progress", "DEFAULT_TIMEOUT_S", "STARTUP_TIMEOUT_S"]

#: How long the simulator may take to start and connect back (wall-clock seconds).
STARTUP_TIMEOUT_S = 120.0

#: Default per-request timeout: generous, the RTL runs 10^4 - 10^5 cycles per second.
DEFAULT_TIMEOUT_S = 120.0


class SimulatorProcess:
    """A running ``python -m tessera.sim.serve`` child (its own process group) and its log.

    Parameters
    ----------
    sim : runner.SimBuild
    module : str
        The cocotb bridge module (``"bridge"`` or ``"bridge_uart"``).
    address : str
        ``host:port`` the bridge connects to.
    work_dir : Path
        Where ``sim.log`` and ``serve.log`` go.
    extra_env : dict, optional
        Environment variables for the bridge.
    waves_file : Path, optional
        Dump a waveform of the session there (``sim`` must be a build made for its format).
    cleanup : callable, optional
        Removes ``work_dir`` (a temporary directory); run if the host gets SIGTERM while the
        child runs (:mod:`tessera.sim.sessions`).
    """

    def __init__(self, sim, module, address, work_dir: Path, extra_env=None, waves_file=None,
                 cleanup=None):
        self.sim = sim
        self.work_dir = work_dir
        self.log_path = work_dir / "sim.log"
        self.serve_log_path = work_dir / "serve.log"
        runner.prepare_environment()
        with open(self.serve_log_path, "wb") as serve_log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tessera.sim.serve", "--simulator", sim.simulator,
                 "--build-dir", str(sim.build_dir), "--toplevel", sim.toplevel,
                 "--module", module, "--address", address, "--test-dir", str(work_dir)]
                + (["--waves", str(waves_file)] if waves_file is not None else []),
                stdin=subprocess.DEVNULL, stdout=serve_log, stderr=subprocess.STDOUT,
                env={**os.environ, **(extra_env or {})}, start_new_session=True)
        sessions.register(self, cleanup)

    @property
    def pid(self) -> int:
        """Process id of the child, also the id of its process group."""
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars=3000) -> str:
        """Return the end of the simulator's log and of the child's own output."""
        parts = []
        for path in (self.log_path, self.serve_log_path):
            if path.exists():
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"[{path.name}]\n{text[-chars:]}")
        return "\n".join(parts) if parts else "(no simulator output)"

    def kill(self):
        """Kill the child and everything it started (the simulator)."""
        sessions.unregister(self)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def stop(self, timeout_s=30.0):
        """Wait for the child to exit after the host closed the link; kill it if it does not."""
        sessions.unregister(self)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            # The child is gone; make sure no simulator of its group outlives it.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class SocketTransport(Transport):
    """Byte pipe to the simulation bridge; reports a dead simulator with its log tail.

    Parameters
    ----------
    sock : socket.socket
        Connected to the bridge.
    simulator : SimulatorProcess, optional
        Watched while waiting; closed with the transport.
    on_close : callable, optional
        Called after the simulator stopped cleanly (e.g. to remove its work directory).
    """

    def __init__(self, sock: socket.socket, simulator: SimulatorProcess | None = None,
                 on_close=None):
        self._sock = sock
        self._sim = simulator
        self._on_close = on_close
        self._closed = False

    @property
    def simulator(self) -> SimulatorProcess | None:
        """The simulator process behind the socket."""
        return self._sim

    def write(self, data: bytes):
        self._check_alive()
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise self._dead(f"writing to the simulator failed ({e})") from None

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        self._check_alive()
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._sock], [], [], max(0.0, min(remaining, 0.5)))
            if ready:
                try:
                    data = self._sock.recv(max_bytes)
                except OSError as e:
                    raise self._dead(f"reading from the simulator failed ({e})") from None
                if not data:
                    raise self._dead("the simulator closed the link")
                return data
            self._check_alive()
            if remaining <= 0:
                return b""

    def _check_alive(self):
        if self._closed:
            raise LinkError("The simulation link is closed; connect again with "
                            "tessera.connect('sim')")
        if self._sim is not None and not self._sim.alive():
            raise self._dead(f"the simulator exited (code {self._sim.process.returncode})")

    def _dead(self, what):
        tail = ""
        if self._sim is not None:
            try:   # let it finish writing its log
                self._sim.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            tail = (f" Simulator log ({self._sim.work_dir}) tail:\n{self._sim.log_tail()}")
        return LinkError(f"RTL simulation failed: {what}.{tail}")

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.close()
        finally:
            if self._sim is not None:
                self._sim.stop()
            # Keep the logs of a simulator that failed or had to be killed.
            clean = self._sim is None or self._sim.process.returncode == 0
            if self._on_close is not None and clean:
                self._on_close()


def launch(sim, module, work_dir: Path, extra_env=None, waves_file=None, cleanup=None):
    """Start the bridge ``module`` on ``sim``; return ``(SimulatorProcess, connected socket)``.

    ``waves_file``, ``cleanup``: see :class:`SimulatorProcess`.

    Raises
    ------
    LinkError
        The simulator exited or did not connect within :data:`STARTUP_TIMEOUT_S`.
    """
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.25)
    host, port = server.getsockname()[:2]
    process = SimulatorProcess(sim, module, f"{host}:{port}", work_dir, extra_env, waves_file,
                               cleanup)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            try:
                sock, _ = server.accept()
                break
            except socket.timeout:
                if not process.alive() or time.monotonic() > deadline:
                    why = "exited" if not process.alive() else \
                        f"did not connect within {STARTUP_TIMEOUT_S:g} s"
                    process.kill()
                    raise LinkError(f"The {sim.simulator} simulation {why}. Simulator log "
                                    f"({work_dir}) tail:\n{process.log_tail()}") from None
    finally:
        server.close()
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return process, sock


def print_progress(message):
    """Print a build step on stderr (the default ``progress`` of :func:`connect_sim`)."""
    print(f"tessera sim: {message}", file=sys.stderr, flush=True)


def work_directory(work_dir):
    """Return ``(path, cleanup)``: ``work_dir``, or a new temporary directory and its remover."""
    if work_dir is not None:
        path = Path(work_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path, None
    path = Path(tempfile.mkdtemp(prefix="tessera-sim-"))
    return path, lambda: shutil.rmtree(path, ignore_errors=True)


def connect_sim(config=None, simulator=None, *, timeout_s=None, retries=5, progress=None,
                work_dir=None, waves=None, transport_wrapper=None, **options):
    """Start the RTL simulation of ``config`` and return a connected Device.

    Parameters
    ----------
    config : AcceleratorConfig, optional
        Defaults to ``AcceleratorConfig()``.
    simulator : str, optional
        ``"verilator"`` or ``"icarus"``; defaults to ``$SIM`` or the first one installed.
    timeout_s : float, optional
        Per-request timeout in wall-clock seconds (default :data:`DEFAULT_TIMEOUT_S`).
    retries : int
        Resends of a request before the driver gives up.
    progress : callable or bool, optional
        Called with a one-line message at each step of a compilation (once per configuration
        and simulator; a cached build says nothing). Default: print them on stderr; ``False``:
        silent.
    work_dir : path, optional
        Where the simulator's logs go (default: a temporary directory, removed on close).
    waves : path, optional
        Dump a waveform of the whole session to this file, complete once the device is
        closed: ``.fst`` or ``.vcd`` (see :mod:`tessera.sim.waves`; a separate cached build).
    transport_wrapper : callable, optional
        Wraps the :class:`SocketTransport` (e.g. in a
        :class:`~tessera.runtime.transport.FaultyTransport`, for tests).

    Raises
    ------
    SimulatorUnavailable
        The simulator is not installed.
    ValueError
        ``waves`` names a format the simulator cannot write here, or a missing directory.
    LinkError
        The simulator failed to start (the message carries its log tail).
    """
    from tessera.runtime.device import Device
    from tessera.spec import AcceleratorConfig

    if options:
        raise TypeError(f"Unknown option(s) for the simulation backend: "
                        f"{', '.join(sorted(options))}; valid options are progress, work_dir, "
                        f"waves and transport_wrapper")
    config = config if config is not None else AcceleratorConfig()
    simulator = runner.resolve_simulator(simulator)
    waves_file = check_waves_path(waves, simulator) if waves is not None else None
    if progress is None:
        progress = print_progress
    sim = runner.build(config, simulator, progress=progress or None,
                       waves=waves_file.suffix if waves_file else False)
    path, cleanup = work_directory(work_dir)
    try:
        process, sock = launch(sim, "bridge", path, waves_file=waves_file, cleanup=cleanup)
    except BaseException:
        if cleanup is not None:
            cleanup()
        raise
    transport = SocketTransport(sock, process, on_close=cleanup)
    wrapped = transport_wrapper(transport) if transport_wrapper is not None else transport
    try:
        return Device(wrapped, config,
                      timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
                      retries=retries)
    except BaseException:
        wrapped.close()
        raise
