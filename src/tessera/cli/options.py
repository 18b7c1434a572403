"""What the subcommands share: option value types and the checked reading of user files.

Every check here runs before any work starts, and every failure is a ``ValueError`` or
``OSError`` whose message says what was wrong and what to give instead; :func:`tessera.cli.main`
prints it as one line and exits with status 2. NumPy files are recognised by their magic bytes
before NumPy reads them, so a text or CSV file named ``.npy`` is reported as what it is (NumPy
itself would call it pickled data and suggest loading it unsafely); pickled data is never loaded.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["positive_int", "positive_float", "nonnegative_int", "load_config", "read_npy",
           "check_npz", "npy_output_path"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


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


def _head(path, size=8) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _describe_head(head: bytes) -> str:
    text = head.decode("ascii", errors="replace")
    if all(c.isprintable() or c.isspace() for c in text):
        return f"it starts with {text!r}, like a text or CSV file"
    return f"it starts with the bytes {head.hex(' ')}"


def _existing_file(path, what):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{what} file {path} is a directory; give a file")
    return path


def read_npy(path, what="Input"):
    """Return the array of the ``.npy`` file ``path``, refusing anything else with a clear error.

    ``what`` names the file's role in messages ("Input", "Calibration").
    """
    import numpy as np
    path = _existing_file(path, what)
    head = _head(path)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes), not a NumPy .npy file; save the array "
                         "with numpy.save")
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        raise ValueError(f"{path} is a NumPy .npz archive, not one .npy array; save the one "
                         "array with numpy.save (e.g. np.save('x.npy', np.load(archive)['x']))")
    if not head.startswith(_NPY_MAGIC):
        raise ValueError(f"{path} is not a NumPy .npy file ({_describe_head(head)}); convert it "
                         "with numpy.save (e.g. np.save('x.npy', np.loadtxt(file, "
                         "delimiter=',')))")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):
            raise ValueError(f"{path} holds Python objects (pickled data), which Tessera never "
                             "loads; save a numeric array") from None
        raise ValueError(f"{path} is a damaged NumPy .npy file ({e})") from None
    except EOFError:
        raise ValueError(f"{path} is a truncated NumPy .npy file (its data ends early); save "
                         "it again with numpy.save") from None


def check_npz(path, what="Model"):
    """Refuse ``path`` unless it is a zip archive, as every ``.npz`` file is; return the path."""
    path = _existing_file(path, what)
    head = _head(path)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes), not a NumPy .npz archive")
    if head.startswith(_NPY_MAGIC):
        raise ValueError(f"{path} is a single NumPy .npy array, not an .npz archive")
    if not head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        raise ValueError(f"{path} is not a NumPy .npz archive ({_describe_head(head)})")
    return path


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
