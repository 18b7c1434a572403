"""Run the native Yosys of PyPI's ``pyosys`` wheel with the ``yosys`` command line of our flows.

``pyosys`` ships ``libyosys`` and a native ``yosys-abc`` but no ``yosys`` program. The console
script ``tessera-yosys`` (:func:`main`) is one, for the subset of ``yosys``'s command line that
Amaranth's build scripts and Tessera's flows use::

    tessera-yosys -V
    tessera-yosys [-q] [-l LOG] [-p COMMANDS]... [SCRIPT.ys]...

As in ``yosys``, the script files run first, then each ``-p``; Yosys itself splits
``COMMANDS`` (``Pass::call``: a token ending in ``;`` ends a command, ``;;`` also runs
``clean``, a quoted argument stays whole). ``-l`` writes the whole log, which ends with
``End of script.`` on success; ``-q`` leaves only warnings and errors on the console
(stderr). Anything else is refused with one line and exit status 2.

Yosys runs in a child process because a Yosys error (``log_error``, and so every failed
``log_assert``) is no Python exception inside ``pyosys``: it prints ``ERROR: ...`` to stderr
and ends the process with status 1. The parent copies the child's output into the log and onto
the console, and turns an end without a message (a signal, a crash) into an ``ERROR:`` line, so
that the log always says why synthesis stopped (``tessera.hw.build`` reads it).
"""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata

__all__ = ["main", "version_text"]

_USAGE = "usage: tessera-yosys -V | tessera-yosys [-q] [-l LOG] [-p COMMANDS]... [SCRIPT.ys]..."

#: What the child process runs: the steps, as (kind, text) pairs, come as its arguments.
_CHILD = "import sys; from tessera.hw.yosys_pyosys import _run_steps; _run_steps(sys.argv[1:])"


class _UsageError(Exception):
    """A command line outside the supported subset."""


def version_text():
    """Return ``yosys -V``'s line for the ``pyosys`` Yosys: ``Yosys 0.70 (...) (pyosys 0.70)``."""
    from pyosys import libyosys
    return f"{libyosys.yosys_maybe_version()} (pyosys {metadata.version('pyosys')})"


def _parse(args):
    """Return ``(quiet, log_path, steps)`` for the command line ``args``.

    ``steps`` are ``("script", path)`` for the script files, then ``("pass", commands)`` for
    each ``-p``, in Yosys's order.
    """
    quiet, log_path, scripts, passes = False, None, [], []
    arguments = iter(args)
    for argument in arguments:
        if argument == "-q":
            quiet = True
        elif argument in ("-l", "-p"):
            value = next(arguments, None)
            if value is None:
                raise _UsageError(f"option {argument} needs "
                                  f"{'a log file name' if argument == '-l' else 'commands'}")
            if argument == "-l":
                log_path = value
            else:
                passes.append(("pass", value))
        elif argument.endswith(".ys") and not argument.startswith("-"):
            scripts.append(("script", argument))
        else:
            raise _UsageError(
                f"unsupported argument {argument!r}: tessera-yosys runs only -V, -q, -l LOG, "
                f"-p COMMANDS and SCRIPT.ys files; for the rest put a Yosys on PATH or point "
                f"$YOSYS at one")
    if not scripts and not passes:
        raise _UsageError("nothing to run: give a SCRIPT.ys or -p COMMANDS")
    return quiet, log_path, scripts + passes


def _run_steps(flat):
    """Run the steps (``kind, text, kind, text, ...``) in this process's Yosys (the child)."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # die with the parent (Python ignores it)
    from pyosys import libyosys
    libyosys.yosys_setup()
    for kind, text in zip(flat[::2], flat[1::2]):
        if kind == "script":
            # pyosys 0.70 cannot convert the default label (None): "" runs the whole script.
            # (The design stays None: a Python handle from yosys_get_design() owns the design
            # and frees it a second time at exit.)
            libyosys.run_frontend(text, "script", None, "")
        else:
            libyosys.run_pass(text)
    libyosys.log_flush()


def _copy_stderr(stream, console, lines):
    for line in iter(stream.readline, b""):
        console.write(line)
        console.flush()
        lines.append(line)


def _run(quiet, log_path, steps):
    """Run ``steps`` in a child process; return the exit status (0, or 1 after an error)."""
    log = open(log_path, "wb", buffering=0) if log_path else None  # as written, for watchers
    try:
        return _supervise(quiet, log, steps)
    finally:
        if log:
            log.close()


def _supervise(quiet, log, steps):
    started = time.monotonic()
    flat = [text for step in steps for text in step]
    # Its own process group, so that stopping it stops what it runs too (yosys-abc, `!` shell
    # commands), which would otherwise hold the pipes open.
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *flat], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    # A build killed with SIGTERM (or its terminal closed) takes its Yosys along.
    previous = {sig: signal.signal(sig, lambda *_: _stop(child, signal.SIGTERM))
                for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _follow(child, quiet, log, started)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(child, sig):
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:  # already gone
        pass


def _follow(child, quiet, log, started):
    """Copy ``child``'s output to ``log`` and the console; return the exit status."""
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    errors = []
    reader = threading.Thread(target=_copy_stderr, args=(child.stderr, stderr, errors),
                              daemon=True)
    reader.start()
    pending = b""
    try:
        while chunk := os.read(child.stdout.fileno(), 1 << 16):
            if log:
                log.write(chunk)
            if not quiet:
                stdout.write(chunk)
                stdout.flush()
                continue
            *lines, pending = (pending + chunk).split(b"\n")
            warnings = [line + b"\n" for line in lines if line.startswith(b"Warning:")]
            if warnings:
                stderr.writelines(warnings)
                stderr.flush()
        child.wait()
        reader.join()
    except KeyboardInterrupt:
        _stop(child, signal.SIGKILL)
        child.wait()
        raise
    if child.returncode == 0:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        end = (f"\nEnd of script. time: {time.monotonic() - started:.2f}s, user: "
               f"{usage.ru_utime:.2f}s, system: {usage.ru_stime:.2f}s (pyosys "
               f"{metadata.version('pyosys')})\n").encode()
        if log:
            log.writelines(errors)
            log.write(end)
        if not quiet:
            stdout.write(end)
            stdout.flush()
        return 0
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        message = f"ERROR: Yosys (pyosys) was stopped by {name}.\n"
    elif not any(line.startswith(b"ERROR:") for line in errors):
        message = (f"ERROR: Yosys (pyosys) ended with status {child.returncode} without an "
                   f"error message.\n")
    else:
        message = ""
    stderr.write(message.encode())
    stderr.flush()
    if log:
        log.writelines(errors)
        log.write(message.encode())
    return 1


def main(argv=None):
    """Run ``tessera-yosys`` with ``argv`` (``sys.argv[1:]`` by default); return the status.

    0 when every step ran, 1 after a Yosys error (its ``ERROR:`` line on stderr and in the log),
    2 for a command line outside the subset (one line on stderr).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["-h"], ["--help"]):
        print(f"{_USAGE}\n\nYosys from the pyosys wheel, run like yosys (tessera.hw.yosys_pyosys).")
        return 0
    if args == ["-V"]:
        print(version_text())
        return 0
    try:
        quiet, log_path, steps = _parse(args)
    except _UsageError as error:
        print(f"tessera-yosys: {error}", file=sys.stderr)
        return 2
    try:
        return _run(quiet, log_path, steps)
    except OSError as error:  # the log file cannot be written
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
