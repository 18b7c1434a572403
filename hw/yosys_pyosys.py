"""Run the native Yosys of PyPI's ``pyosys`` wheel with the ``yosys`` command line of our flows.

``pyosys`` ships ``libyosys`` and a native ``yosys-abc`` but no ``yosys`` program. The console
script ``tessera-yosys`` (:func:`main`) is one, for the subset of ``yosys``'s command line that
Amaranth's build scripts and Tessera's flows use::

    tessera-yosys -V
    tessera-yosys [-q] [-l LOG] [-p COMMANDS]... [SCRIPT.ys]...
    tessera-yosys [-q] [-l LOG] -

As in ``yosys``, the script files run first, then each ``-p``, each a top-level command as
``yosys`` runs it (so the netlist is ``yosys``'s, byte for byte); Yosys itself splits
``COMMANDS`` (``Pass::call``: a token ending in ``;`` ends a command, ``;;`` also runs
``clean``, a quoted argument stays whole). ``-l`` writes the whole log, which ends with
``End of script.`` on success; ``-q`` leaves only warnings and errors on the console
(stderr). ``-`` runs a script from stdin, alone, with stdout for what its commands write there
(Amaranth's Verilog export: ``yosys -q -``). Anything else is refused with one line and exit
status 2.

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
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

__all__ = ["main", "version_text"]

_USAGE = ("usage: tessera-yosys -V | tessera-yosys [-q] [-l LOG] [-p COMMANDS]... [SCRIPT.ys]... "
          "| tessera-yosys [-q] [-l LOG] -")

#: What the child process runs: the steps, as (kind, text) pairs, come as its arguments.
_CHILD = "import sys; from tessera.hw.yosys_pyosys import _run_steps; _run_steps(sys.argv[1:])"

#: The child's arguments for ``-``: the script on stdin, run as ``_run_stdin`` says.
_CHILD_STDIN = ("import sys; from tessera.hw.yosys_pyosys import _run_stdin; "
                "_run_stdin(*sys.argv[1:])")


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
        elif argument == "-" or argument.endswith(".ys") and not argument.startswith("-"):
            scripts.append(("script", argument))
        else:
            raise _UsageError(
                f"unsupported argument {argument!r}: tessera-yosys runs only -V, -q, -l LOG, "
                f"-p COMMANDS, SCRIPT.ys files and - (a script on stdin); for the rest put a "
                f"Yosys on PATH or point $YOSYS at one")
    if not scripts and not passes:
        raise _UsageError("nothing to run: give a SCRIPT.ys, - or -p COMMANDS")
    if ("script", "-") in scripts and len(scripts + passes) > 1:
        raise _UsageError("- (a script on stdin) runs alone: give no other script or -p")
    return quiet, log_path, scripts + passes


def _run_steps(flat):
    """Run the steps (``kind, text, kind, text, ...``) in this process's Yosys (the child).

    Each at the top level, as ``yosys`` runs them: nested in another command (``tee``,
    ``script``) they would give other netlists on large designs, since Yosys frees unused
    names only between top-level commands (``tests/test_toolchain.py``).
    """
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


def _run_stdin(log_path, quiet):
    """Run the script on stdin in this process's Yosys (the child), the log into ``log_path``.

    Inside ``tee`` (the only way to steer pyosys's log), so that stdout carries only what the
    commands write there themselves (``write_verilog`` without a file name). Nested commands
    suit Amaranth's Verilog export (its text is YoWASP Yosys's); synthesis runs as
    :func:`_run_steps` does.
    """
    import ctypes
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    from pyosys import libyosys
    libyosys.yosys_setup()
    # This handle owns the design (pyosys 0.70) and would free it a second time at exit,
    # hence os._exit below.
    design = libyosys.yosys_get_design()
    libyosys.Pass.call(design, ["tee", *(["-q"] if quiet else []), "-a", log_path, "script", "-"])
    libyosys.log_flush()
    ctypes.CDLL(None).fflush(None)
    os._exit(0)


def _copy_stderr(stream, console, lines):
    for line in iter(stream.readline, b""):
        console.write(line)
        console.flush()
        lines.append(line)


def _run(quiet, log_path, steps):
    """Run ``steps`` in a child process; return the exit status (0, or 1 after an error)."""
    if steps == [("script", "-")]:
        with tempfile.TemporaryDirectory(prefix="tessera-yosys-") as scratch:
            log_path = log_path or os.path.join(scratch, "yosys.log")
            open(log_path, "wb").close()  # a new log, as yosys -l; the child appends to it
            command = [sys.executable, "-c", _CHILD_STDIN, log_path, "-q" if quiet else ""]
            return _supervise(command, quiet, None, log_path)
    log = open(log_path, "wb", buffering=0) if log_path else None  # as written, for watchers
    try:
        flat = [text for step in steps for text in step]
        return _supervise([sys.executable, "-c", _CHILD, *flat], quiet, log, None)
    finally:
        if log:
            log.close()


def _supervise(command, quiet, log, child_log):
    """Run ``command`` (the child), its log piped into ``log`` or written to ``child_log``."""
    started = time.monotonic()
    # Its own process group, so that stopping it stops what it runs too (yosys-abc, `!` shell
    # commands), which would otherwise hold the pipes open.
    child = subprocess.Popen(command, stdin=None if child_log else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    # A build killed with SIGTERM (or its terminal closed) takes its Yosys along.
    previous = {sig: signal.signal(sig, lambda *_: _stop(child, signal.SIGTERM))
                for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _follow(child, quiet, log, child_log, started)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(child, sig):
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:  # already gone
        pass


def _follow(child, quiet, log, child_log, started):
    """Copy ``child``'s output to ``log`` and the console; end the log; return the status.

    With ``child_log`` (``-``), the child writes its log there itself and its stdout is passed
    on as it is.
    """
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
            if not quiet or child_log:
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
    if child_log:
        reported = _show_child_log(child_log, quiet, child.returncode)
        with open(child_log, "ab") as written:
            return _end(child, quiet, written, [], reported, started)
    reported = any(line.startswith(b"ERROR:") for line in errors)
    return _end(child, quiet, log, errors, reported, started)


def _show_child_log(path, quiet, returncode):
    """Put the warnings and the error of ``path`` on stderr if ``quiet`` (``tee -q`` kept them
    from the console); return whether it has an ``ERROR:`` line."""
    lines = Path(path).read_bytes().splitlines(keepends=True)
    starts = [number for number, line in enumerate(lines) if line.startswith(b"ERROR:")]
    if quiet:
        shown = [line for line in lines if line.startswith(b"Warning:")]
        if starts and returncode > 0:
            shown += lines[starts[-1]:]
        sys.stderr.buffer.writelines(shown)
        sys.stderr.buffer.flush()
    return bool(starts)


def _end(child, quiet, log, unlogged, reported, started):
    """End ``log`` (``End of script.``, or an ``ERROR:`` line unless one was ``reported``),
    after the child's stderr lines not yet in it; return the exit status."""
    if child.returncode == 0:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        end = (f"\nEnd of script. time: {time.monotonic() - started:.2f}s, user: "
               f"{usage.ru_utime:.2f}s, system: {usage.ru_stime:.2f}s (pyosys "
               f"{metadata.version('pyosys')})\n").encode()
        if log:
            log.writelines(unlogged)
            log.write(end)
        if not quiet:
            sys.stdout.buffer.write(end)
            sys.stdout.buffer.flush()
        return 0
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        message = f"ERROR: Yosys (pyosys) was stopped by {name}.\n"
    elif not reported:
        message = (f"ERROR: Yosys (pyosys) ended with status {child.returncode} without an "
                   f"error message.\n")
    else:
        message = ""
    sys.stderr.buffer.write(message.encode())
    sys.stderr.buffer.flush()
    if log:
        log.writelines(unlogged)
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
