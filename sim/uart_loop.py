"""UART in the loop: the RTL with its UART gateware behind a pseudo-terminal, for ``serial://``.

:class:`UartSimulation` builds :mod:`uart_top` (UART + accelerator), runs it under
:mod:`bridge_uart` and exposes the slave side of a pseudo-terminal, so that
``tessera.connect(sim.url(), ...)`` drives it through the runtime's real
:class:`~tessera.runtime.serial.SerialTransport` (pyserial), as it would drive a board. POSIX
only (``os.openpty``).

Example
-------
>>> with UartSimulation(config) as sim:                                  # doctest: +SKIP
...     with tessera.connect(sim.url(), config=config, timeout_s=30) as dev:
...         y = dev.run(qmodel, x)
"""

from __future__ import annotations

import select
import time

from tessera.runtime.errors import LinkError

from . import runner
from .backend import STARTUP_TIMEOUT_S, launch, work_directory

__all__ = ["UartSimulation"]


class UartSimulation:
    """The UART simulation top of ``config`` serving a pseudo-terminal (a context manager).

    Parameters
    ----------
    config : AcceleratorConfig, optional
    simulator : str, optional
        ``"verilator"`` or ``"icarus"`` (default ``$SIM`` or the first installed).
    divisor : int, optional
        Clock cycles per UART bit (default :data:`uart_top.DEFAULT_DIVISOR`).
    work_dir : path, optional
        Where the logs go (default: a temporary directory, removed on a clean close).

    Attributes
    ----------
    port : str
        Path of the pseudo-terminal the host opens (``/dev/pts/N``).
    process : SimulatorProcess
    """

    def __init__(self, config=None, simulator=None, *, divisor=None, work_dir=None,
                 progress=None):
        from tessera.spec import AcceleratorConfig
        self.config = config if config is not None else AcceleratorConfig()
        sim = runner.build(self.config, simulator, design="uart", divisor=divisor,
                           progress=progress)
        from .uart_top import DEFAULT_DIVISOR
        self.divisor = DEFAULT_DIVISOR if divisor is None else divisor
        self.work_dir, self._cleanup = work_directory(work_dir)
        self.process, self._control = launch(
            sim, "bridge_uart", self.work_dir,
            extra_env={"TESSERA_UART_DIVISOR": str(self.divisor)}, cleanup=self._cleanup)
        try:
            self.port = self._read_port()
        except BaseException:
            self.close()
            raise
        self._closed = False

    def _read_port(self) -> str:
        line = b""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self._control], [], [], 0.5)
            if ready:
                data = self._control.recv(256)
                if not data:
                    break
                line += data
            elif not self.process.alive() or time.monotonic() > deadline:
                break
        if not line.endswith(b"\n"):
            raise LinkError(f"The UART simulation did not report its pseudo-terminal. Simulator "
                            f"log ({self.work_dir}) tail:\n{self.process.log_tail()}")
        return line.decode().strip()

    def url(self, baud=115200) -> str:
        """Return the ``serial://`` target of the pseudo-terminal.

        The baud rate is only what pyserial sets on the pty (ignored by it); the simulated
        UART runs at ``divisor`` clock cycles per bit.
        """
        return f"serial://{self.port}?baud={baud}"

    def close(self):
        """End the session: the bridge sees the control socket close and the simulator exits."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self._control.close()
        self.process.stop()
        if self._cleanup is not None and self.process.process.returncode == 0:
            self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
