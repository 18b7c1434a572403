"""Read the user's NumPy files, recognised by their magic bytes before NumPy reads them.

A text or CSV file named ``.npy`` is reported as what it is (NumPy itself would call it pickled
data and suggest loading it unsafely), an ``.npz`` archive given for an array says so, an empty
file too; pickled data is never loaded, and ``.npz`` entries are read through
:mod:`tessera.quantize.npz_safe` (sizes checked before anything is decompressed). Every failure
is a ``ValueError`` or ``OSError`` naming the file and what to give instead.
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["read_npy", "check_npz", "read_npz"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


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


def read_npz(path, what="Data") -> dict:
    """Return every array of the ``.npz`` archive ``path`` as ``{name: array}``.

    Object (pickled) entries, entries whose header disagrees with the archive's declared size
    and more than :data:`tessera.quantize.npz_safe.DEFAULT_MAX_BYTES` of declared data are
    refused before anything is decompressed.
    """
    from tessera.quantize.npz_safe import DEFAULT_MAX_BYTES, NpzEntryError, NpzReader
    path = check_npz(path, what)
    try:
        with NpzReader(path) as reader:
            headers = {name: reader.header(name) for name in sorted(reader.names)}
            total = sum(dtype.itemsize * math.prod(shape)
                        for dtype, shape, _, _ in headers.values())
            if total > DEFAULT_MAX_BYTES:
                raise NpzEntryError(f"the archive declares {total} bytes of arrays, more than "
                                    f"the {DEFAULT_MAX_BYTES} bytes Tessera reads")
            return {name: reader.read(name) for name in headers}
    except NpzEntryError as e:
        raise ValueError(f"{path} is not a readable .npz file: {e}") from None
