"""``tessera.connect("sim")``: the host driver talking to the RTL in a simulator process.

The simulation runs in a child process (cocotb + Verilator or Icarus) whose bridge connects back
to a socket opened here; the :class:`~tessera.runtime.device.Device` driver is the very one used
for the emulator and for boards, over a :class:`SocketTransport`.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tessera.runtime.errors import LinkError
from tessera.runtime.transport import Transport

from . import runner

__all__ = ["SocketTransport", "SimulatorProcess", "connect_sim"]

_STARTUP_TIMEOUT_S = 120.0


class SimulatorProcess:
    """A running ``python -m tessera.sim.serve`` child and its log."""

    def __init__(self, sim: runner.SimBuild, address: str, work_dir: Path):
        self.sim = sim
        self.work_dir = work_dir
        self.log_path = work_dir / "sim.log"
        self._stderr = open(work_dir / "serve.stderr", "w+b")
        env = dict(os.environ)
        runner.prepare_environment()
        env["PATH"] = os.environ["PATH"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tessera.sim.serve", "--simulator", sim.simulator,
             "--build-dir", str(sim.build_dir), "--address", address,
             "--test-dir", str(work_dir)],
            stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=subprocess.STDOUT, env=env)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars=3000) -> str:
        text = ""
        for path in (self.log_path, self.work_dir / "serve.stderr"):
            if path.exists():
                text += path.read_text(errors="replace")
        return text[-chars:] if text else "(no simulator output)"

    def stop(self, timeout_s=30.0):
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


class SocketTransport(Transport):
    """Byte pipe to the simulation bridge; reports a dead simulator with its log tail."""

    def __init__(self, sock: socket.socket, simulator: SimulatorProcess | None = None):
        self._sock = sock
        self._sim = simulator
        self._closed = False

    def write(self, data: bytes):
        self._check_alive()
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise self._dead(f"writing to the simulator failed ({e})") from None

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._check_alive()
                return b""
            ready, _, _ = select.select([self._sock], [], [], min(remaining, 0.5))
            if ready:
                data = self._sock.recv(max_bytes)
                if not data:
                    raise self._dead("the simulator closed the link")
                return data
            self._check_alive()

    def _check_alive(self):
        if self._closed:
            raise LinkError("The simulation link is closed")
        if self._sim is not None and not self._sim.alive():
            raise self._dead(f"the simulator exited (code {self._sim.process.returncode})")

    def _dead(self, what):
        tail = self._sim.log_tail() if self._sim is not None else ""
        return LinkError(f"RTL simulation failed: {what}. Simulator log tail:\n{tail}")

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.close()
        finally:
            if self._sim is not None:
                self._sim.stop()


def connect_sim(config=None, simulator=None, *, timeout_s=None, retries=5, progress=None,
                work_dir=None, **options):
    """Start the RTL simulation of ``config`` and return a connected Device.

    Parameters
    ----------
    config : AcceleratorConfig, optional
        Defaults to ``AcceleratorConfig()``.
    simulator : str, optional
        ``"verilator"`` or ``"icarus"``; defaults to ``$SIM`` or the first one installed.
    timeout_s : float, optional
        Per-request timeout in wall-clock seconds (default 120: the RTL runs ~10^4-10^5 cycles/s).
    work_dir : path, optional
        Where the simulator log goes (default: a fresh temporary directory).
    """
    from tessera.runtime.device import Device
    from tessera.spec import AcceleratorConfig

    if options:
        raise TypeError(f"Unknown option(s) for the simulation backend: {', '.join(options)}")
    config = config if config is not None else AcceleratorConfig()
    sim = runner.build(config, simulator, progress=progress)
    work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="tessera-sim-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    host, port = server.getsockname()[:2]
    process = SimulatorProcess(sim, f"{host}:{port}", work_dir)
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    try:
        while True:
            try:
                sock, _ = server.accept()
                break
            except socket.timeout:
                if not process.alive() or time.monotonic() > deadline:
                    process.process.kill()
                    process.stop()
                    raise LinkError(f"The {sim.simulator} simulation did not start. "
                                    f"Simulator log tail:\n{process.log_tail()}")
    finally:
        server.close()
    sock.setblocking(True)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = SocketTransport(sock, process)
    try:
        return Device(transport, config, timeout_s=timeout_s or 120.0, retries=retries)
    except BaseException:
        transport.close()
        raise
