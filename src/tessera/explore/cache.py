"""The sweep's on-disk cache: one JSON record per evaluated point, one directory per build.

Layout under the cache directory::

    points/<key>.json       the record of one design point (see tessera.explore.evaluate)
    builds/<board>-<config hash>-<clock>mhz-s<seed>/
                            the bitstream build: tool logs, bitstream, report.json
                            (or does-not-fit.json when the part cannot hold the design)

A point's key is the SHA-256 of (config hash, board, clock, model hash, data hash) and of the
evaluation options that change its figures (requant mode, batch size, placement seed, record
format). Records are written atomically (temporary file + rename) by the process that
collects results, as each one arrives, so an interrupted sweep resumes with exactly the points
that were not finished. Builds are cached separately, keyed by what they depend on only, so a
new model or new data re-runs the cheap emulator part and reuses every bitstream.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["ResultCache", "point_key", "build_directory", "write_json", "RECORD_FORMAT"]

#: Version of the point record layout; part of every key, so old records are never misread.
#: 2: emulator-only records carry the fit check's "does not fit".
#: 3: latency in µs at the target clock without a build, memory plans, CNN points.
RECORD_FORMAT = 3


def point_key(point, config_hash, model_hash, data_hash, *, mode, batch, seed) -> str:
    """Return the cache key of ``point`` (a :class:`~tessera.explore.grid.DesignPoint`)."""
    fields = {"format": RECORD_FORMAT, "config": config_hash, "board": point.board,
              "clock_mhz": round(float(point.clock_mhz), 6), "model": model_hash,
              "data": data_hash, "mode": mode, "batch": int(batch), "seed": int(seed)}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build_directory(root, board, config_hash, clock_mhz, seed) -> Path:
    """Return the build directory of a configuration under the cache's ``builds/``."""
    return Path(root) / "builds" / f"{board}-{config_hash}-{float(clock_mhz):g}mhz-s{seed}"


def _write_json_atomic(path: Path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultCache:
    """Point records and builds of sweeps, in directory ``root`` (created on first write).

    Parameters
    ----------
    root : path
        The cache directory (``tessera explore -o DIR`` uses ``DIR/cache``).
    """

    def __init__(self, root):
        self.root = Path(root)

    @property
    def builds(self) -> Path:
        """Directory of the build directories."""
        return self.root / "builds"

    def _point_path(self, key) -> Path:
        return self.root / "points" / f"{key}.json"

    def get(self, key):
        """Return the record stored under ``key``, or ``None`` (also for a damaged file)."""
        try:
            with open(self._point_path(key), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def put(self, key, record):
        """Store ``record`` (a JSON-compatible dict) under ``key``, atomically."""
        _write_json_atomic(self._point_path(key), {**record, "key": key})

    def keys(self):
        """Return the keys of every stored record."""
        folder = self.root / "points"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def clear_points(self):
        """Delete every point record (builds are kept)."""
        for key in self.keys():
            self._point_path(key).unlink(missing_ok=True)


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (used for build records too)."""
    _write_json_atomic(Path(path), data)

