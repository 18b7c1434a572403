"""A dependency-free progress bar for long CLI steps (stderr, only on a terminal)."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Show ``label [#####.....] done/total`` on stderr while a loop runs.

    On a non-terminal stream it prints one line at start and one at the end instead of redrawing.
    """

    def __init__(self, label: str, total: int, *, stream=None, width: int = 30):
        self.label, self.total, self.width = label, max(int(total), 1), width
        self.stream = stream or sys.stderr
        self.done = 0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = time.monotonic()
        if not self._tty:
            print(f"{label}: {total} ...", file=self.stream, flush=True)
        else:
            self._draw()

    def advance(self, n: int = 1):
        self.done = min(self.total, self.done + n)
        if self._tty:
            self._draw()

    def _draw(self):
        filled = self.width * self.done // self.total
        elapsed = time.monotonic() - self._start
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s")
        self.stream.flush()

    def close(self):
        elapsed = time.monotonic() - self._start
        if self._tty:
            self._draw()
            self.stream.write("\n")
        else:
            print(f"{self.label}: done in {elapsed:.1f}s", file=self.stream, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
