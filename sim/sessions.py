"""Open simulation sessions, ended and cleaned up when the host process gets SIGTERM.

On SIGINT Python raises ``KeyboardInterrupt``, which unwinds through ``with connect("sim")``:
the device closes, the simulator exits and its temporary directory is removed. SIGTERM's default
action ends the host at once instead, leaving the temporary directories (and a simulator until
it notices the closed socket). So while a session is open and SIGTERM still has its default
action, this module handles it: it kills every open session's simulator, removes the temporary
directories, restores the default action and terminates the process with SIGTERM as before.
A program with its own SIGTERM handler keeps it (and cleans up by unwinding, as on SIGINT).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["register", "unregister", "open_sessions"]

#: Open sessions: SimulatorProcess -> its cleanup (or None when the work dir is the user's).
_sessions: dict = {}
_lock = threading.Lock()


def open_sessions() -> list:
    """Return the simulator processes of the open sessions."""
    with _lock:
        return list(_sessions)


def register(process, cleanup=None):
    """Track ``process`` (a :class:`~tessera.sim.backend.SimulatorProcess`) until closed.

    ``cleanup`` removes its temporary directory. Installs the SIGTERM handler when SIGTERM
    has its default action and this is the main thread (signal handlers live there).
    """
    with _lock:
        _sessions[process] = cleanup
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _on_sigterm)


def unregister(process):
    """Forget ``process`` (its session was closed by the host)."""
    with _lock:
        _sessions.pop(process, None)


def _on_sigterm(signum, frame):
    with _lock:
        sessions = list(_sessions.items())
        _sessions.clear()
    for process, cleanup in sessions:
        process.kill()
        if cleanup is not None:
            cleanup()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
