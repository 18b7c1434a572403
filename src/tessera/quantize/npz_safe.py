"""Read ``.npz`` archives from untrusted files: declared entries only, sizes checked first.

``numpy.load`` decompresses whatever an archive holds when an entry is accessed, so a 2 MB file
can hold a 2 GB array of zeros, and it gives the advice to load pickled data "unsafely". This
reader instead

1. lists the archive (its central directory, nothing decompressed) and refuses names that are
   not ``NAME.npy`` or appear twice;
2. reads only the ``.npy`` header of each entry (a few hundred bytes) and refuses object dtypes
   (pickled data), an entry whose header disagrees with the archive's declared size
   (``ZipInfo.file_size``), and a dtype or shape other than the caller expects;
3. only then decompresses the data, at most the declared size (``zipfile`` stops there and
   checks the CRC).

:func:`read_npz_entries` is the one-call form: ``expected`` maps every entry the format defines
to ``(dtype, shape)``; an entry not in it is refused, and so is a missing one unless listed in
``optional``. A format whose entry set depends on metadata stored in the archive (as
:mod:`tessera.quantize.serialize` does) opens an :class:`NpzReader`, reads the metadata entry,
then calls :meth:`NpzReader.read_entries`. Every problem raises :class:`NpzEntryError`, a
``ValueError`` whose message says what is wrong without the path (the caller adds it).
"""

from __future__ import annotations

import math
import zipfile

import numpy as np

__all__ = ["NpzEntryError", "NpzReader", "read_npz_entries", "DEFAULT_MAX_BYTES"]

#: Largest total of declared array bytes :func:`read_npz_entries` accepts by default.
DEFAULT_MAX_BYTES = 1 << 30

_NPY_SUFFIX = ".npy"
_MAX_HEADER_BYTES = 10_000   # numpy's own limit for a trusted .npy header


class NpzEntryError(ValueError):
    """An ``.npz`` archive or one of its entries is not what the format declares."""


def _format_shape(shape) -> str:
    return "[" + ", ".join("any" if n is None else str(n) for n in shape) + "]"


def _nbytes(dtype, shape) -> int:
    return math.prod(shape) * dtype.itemsize


class NpzReader:
    """An open ``.npz`` archive whose entries are checked before they are decompressed.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        The archive. A path is opened here and closed by :meth:`close` (or the ``with`` block).

    Attributes
    ----------
    names : frozenset of str
        The entry names without their ``.npy`` suffix.

    Raises
    ------
    NpzEntryError
        The file is not a zip archive, or holds a name that is not ``NAME.npy`` or a repeated
        name.
    """

    def __init__(self, file):
        try:
            self._zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise NpzEntryError(f"not an .npz (zip) archive ({exc})") from None
        self._infos = {}
        try:
            for info in self._zip.infolist():
                name = info.filename
                if not name.endswith(_NPY_SUFFIX) or info.is_dir():
                    raise NpzEntryError(f"the archive holds {name!r}, which is not an array "
                                        f"entry (NAME.npy)")
                key = name[:-len(_NPY_SUFFIX)]
                if key in self._infos:
                    raise NpzEntryError(f"the archive holds entry {key!r} twice")
                self._infos[key] = info
        except BaseException:
            self._zip.close()
            raise
        self.names = frozenset(self._infos)

    def header(self, name):
        """Return ``(dtype, shape, fortran_order, header_bytes)`` of entry ``name``.

        Only the ``.npy`` header is decompressed. The header's array size plus its own length
        must equal the size the archive declares for the entry.
        """
        info = self._infos.get(name)
        if info is None:
            raise NpzEntryError(f"missing entry {name!r}")
        with self._zip.open(info) as f:
            shape, fortran, dtype = self._read_header(name, f)
            header_bytes = f.tell()
        if any(n < 0 for n in shape):
            raise NpzEntryError(f"entry {name!r} declares the negative shape {list(shape)}")
        if dtype.hasobject:
            raise NpzEntryError(f"entry {name!r} holds pickled Python objects (dtype {dtype}); "
                                f"Tessera never loads pickled data")
        if header_bytes + _nbytes(dtype, shape) != info.file_size:
            raise NpzEntryError(
                f"entry {name!r} declares a {dtype} array of shape {list(shape)} "
                f"({_nbytes(dtype, shape)} bytes) but the archive declares "
                f"{info.file_size - header_bytes} bytes of data for it: the file is corrupted")
        return dtype, shape, fortran, header_bytes

    @staticmethod
    def _read_header(name, f):
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_HEADER_BYTES)
            if version == (2, 0):
                return np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_HEADER_BYTES)
            raise ValueError(f".npy format version {version} is not supported")
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
            raise NpzEntryError(f"entry {name!r} is not a readable .npy array ({exc})") from None

    def check(self, name, dtype, shape=None):
        """Return the ``(dtype, shape)`` header of ``name`` after checking it against ``dtype``
        and ``shape`` (``None``, or a tuple whose ``None`` items match any length)."""
        dtype = np.dtype(dtype)
        found, found_shape, _, _ = self.header(name)
        if found != dtype:
            raise NpzEntryError(f"entry {name!r} is a {found} array; the format stores {dtype}")
        if shape is not None and (len(found_shape) != len(shape) or any(
                want is not None and want != got for want, got in zip(shape, found_shape))):
            raise NpzEntryError(f"entry {name!r} has shape {list(found_shape)}; the format "
                                f"expects {_format_shape(shape)}")
        return found, found_shape

    def read(self, name) -> np.ndarray:
        """Return entry ``name`` as an array, after :meth:`header` has checked its size."""
        dtype, shape, fortran, header_bytes = self.header(name)
        size = _nbytes(dtype, shape)
        try:
            with self._zip.open(self._infos[name]) as f:
                f.read(header_bytes)
                data = f.read(size)
                trailing = f.read(1)   # reaches the end, where zipfile checks the CRC
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise NpzEntryError(f"entry {name!r} is corrupted ({exc})") from None
        if len(data) != size or trailing:
            raise NpzEntryError(f"entry {name!r} is corrupted (its data is not the "
                                f"{size} bytes its header declares)")
        array = np.frombuffer(data, dtype=dtype)
        return array.reshape(shape, order="F" if fortran else "C").copy()

    def read_entries(self, expected, *, optional=(), max_bytes=DEFAULT_MAX_BYTES) -> dict:
        """Return ``{name: array}`` for every entry of ``expected`` present in the archive.

        Parameters
        ----------
        expected : dict
            ``name -> (dtype, shape)`` for every entry the format defines; ``shape`` is ``None``
            (any) or a tuple whose ``None`` items match any length.
        optional : iterable of str
            Names of ``expected`` that may be absent.
        max_bytes : int
            Largest total of declared array bytes; checked before anything is decompressed.

        Raises
        ------
        NpzEntryError
            An entry the format does not define, a missing entry, a dtype or shape other than
            expected, inconsistent sizes, more than ``max_bytes`` declared, or corrupted data.
        """
        unknown = sorted(self.names - set(expected))
        if unknown:
            raise NpzEntryError(f"the archive holds entr{'ies' if len(unknown) > 1 else 'y'} "
                                f"{', '.join(map(repr, unknown))} that the format does not "
                                f"define")
        optional = set(optional)
        missing = [name for name in expected if name not in self.names and name not in optional]
        if missing:
            raise NpzEntryError(f"missing entry {missing[0]!r}")
        present = [name for name in expected if name in self.names]
        total = 0
        for name in present:
            dtype, shape = self.check(name, *expected[name])
            total += _nbytes(dtype, shape)
        if total > max_bytes:
            raise NpzEntryError(f"the archive declares {total} bytes of arrays, more than the "
                                f"{max_bytes} bytes this format allows")
        return {name: self.read(name) for name in present}

    def close(self):
        """Close the archive (idempotent)."""
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_npz_entries(file, expected, *, optional=(), max_bytes=DEFAULT_MAX_BYTES) -> dict:
    """Return ``{name: array}`` of the ``.npz`` archive ``file``, reading only what is declared.

    ``expected`` maps every entry the format defines to ``(dtype, shape)`` (``shape`` ``None`` or
    a tuple with ``None`` for any length); see :meth:`NpzReader.read_entries` for ``optional``,
    ``max_bytes`` and the errors (:class:`NpzEntryError`, a ``ValueError``).
    """
    with NpzReader(file) as reader:
        return reader.read_entries(expected, optional=optional, max_bytes=max_bytes)
