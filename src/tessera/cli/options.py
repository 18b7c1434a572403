"""What the subcommands share: option value types, the configuration file, the output file.

Every check here runs before any work starts, and every failure is a ``ValueError`` or
``OSError`` whose message says what was wrong and what to give instead; :func:`tessera.cli.main`
prints it as one line and exits with status 2. Input arrays are read by
:mod:`tessera.numpy_files`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["positive_int", "positive_float", "nonnegative_int", "load_config",
           "npy_output_path"]

def _int_at_least(text: str, lo: int, bound: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < lo:
        raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")
    return value


def positive_int(text: str) -> int:
    """Return ``text`` as an integer of at least 1 (an ``argparse`` type)."""
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """Return ``text`` as an integer of at least 0 (an ``argparse`` type)."""
    return _int_at_least(text, 0, "0 or more")


def positive_float(text: str) -> float:
    """Return ``text`` as a finite number greater than 0 (an ``argparse`` type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, not {text}")
    return value


def load_config(path):
    """Return the :class:`~tessera.spec.AcceleratorConfig` in the JSON file ``path`` (or None).

    Raises
    ------
    ValueError
        The file is not JSON or does not hold a valid configuration.
    OSError
        The file is missing or unreadable.
    """
    if path is None:
        return None
    from tessera.spec import AcceleratorConfig
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Configuration file {path} does not exist; write one with "
                                "AcceleratorConfig(...).save(path) (see docs/quickstart.md)")
    try:
        return AcceleratorConfig.load(path)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} is not an AcceleratorConfig JSON file: {e} (see "
                         "docs/quickstart.md for the format)") from None


def npy_output_path(path) -> Path:
    """Return the file ``numpy.save(path, ...)`` writes (it appends ``.npy``), checked up front.

    Raises
    ------
    IsADirectoryError
        ``path`` is a directory.
    FileNotFoundError
        The directory it would go into does not exist.
    """
    given = Path(path)
    if str(path).endswith(("/", "\\")) or given.is_dir():
        raise IsADirectoryError(f"--output {path} is a directory; give a file name such as "
                                f"{given / 'y.npy'}")
    target = given if given.suffix == ".npy" else given.with_name(given.name + ".npy")
    if target.is_dir():
        raise IsADirectoryError(f"--output {path} would write {target}, which is a directory")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"--output {path}: directory {target.parent} does not exist; "
                                "create it first")
    return target
