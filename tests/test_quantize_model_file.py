"""Hostile model files: only declared entries are read, and sizes are checked before inflating.

The large files here are written by zipfile's streaming writer, with a stand-in compressor that
emits one precomputed deflate block per 16 MiB of zeros (after a full flush the deflate state is
reset, so every such block is the same bytes): a 2 GiB zero array becomes a ~2 MB entry that any
zip reader inflates to 2 GiB, written in a fraction of a second and with 16 MiB of memory.
"""

import io
import re
import time
import zipfile
import zlib

import numpy as np
import pytest

import tessera
from tessera.quantize import QuantizedModel
from tessera.quantize.npz_safe import NpzEntryError, NpzReader, read_npz_entries

_CHUNK = bytes(1 << 24)


def _deflate_block(data) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


class _RepeatingDeflate:
    """A raw-deflate compressor for zipfile that compresses every write independently."""

    _zeros_block = _deflate_block(_CHUNK)

    def compress(self, data):
        return self._zeros_block if data is _CHUNK else _deflate_block(data)

    def flush(self):
        return zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)


def _npy_header(dtype, shape) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": tuple(shape)})
    return buffer.getvalue()


def _add_zeros_entry(zf, name, dtype, shape):
    """Stream a zero array of ``shape`` (a multiple of 16 MiB) into the open zip ``zf``."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    assert nbytes % len(_CHUNK) == 0
    info = zipfile.ZipInfo(name + ".npy", date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as entry:
        entry._compressor = _RepeatingDeflate()
        entry.write(_npy_header(dtype, shape))
        for _ in range(nbytes // len(_CHUNK)):
            entry.write(_CHUNK)


def _entries(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path, entries, *, zeros=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if zeros is not None:
            _add_zeros_entry(zf, *zeros)


def _model():
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(6, 5)), rng.normal(size=5), "relu"),
              (rng.normal(size=(5, 3)), rng.normal(size=3), None)]
    return tessera.quantize(layers, calibration=rng.normal(size=(40, 6)))


def _load_refused(path, message):
    started = time.perf_counter()
    with pytest.raises(ValueError, match=re.escape(message)):
        QuantizedModel.load(path)
    return time.perf_counter() - started


def test_the_stand_in_compressor_writes_what_it_claims(tmp_path):
    path = tmp_path / "zeros.zip"
    _write_zip(path, {}, zeros=("z", np.float32, (3, 1 << 22)))   # 48 MiB of zeros
    with zipfile.ZipFile(path) as zf:
        data = zf.read("z.npy")   # inflates all of it and checks the CRC
    assert path.stat().st_size < 200_000
    header = _npy_header(np.float32, (3, 1 << 22))
    assert data[:len(header)] == header and data[len(header):] == bytes(3 << 24)


def test_a_2_gib_unused_entry_is_refused_before_it_is_inflated(tmp_path):
    good = tmp_path / "good.npz"
    _model().save(good)
    junk = tmp_path / "junk.npz"
    _write_zip(junk, _entries(good), zeros=("unused", np.float32, (1 << 19, 1 << 10)))
    assert junk.stat().st_size < 4_000_000
    seconds = _load_refused(junk, "junk.npz' is corrupted: the archive holds entry 'unused' "
                                  "that the format does not define")
    assert seconds < 0.5


def test_a_2_gib_declared_entry_is_refused_by_its_declared_size(tmp_path):
    good = tmp_path / "good.npz"
    _model().save(good)
    entries = _entries(good)
    del entries["reference_input.npy"]
    huge = tmp_path / "huge.npz"   # consistent with the metadata, but 1.5 GiB
    _write_zip(huge, entries, zeros=("reference_input", np.float32, (1 << 26, 6)))
    with np.load(good) as archive:
        total = (6 << 28) + sum(archive[k].nbytes for k in archive.files if k != "reference_input")
    seconds = _load_refused(huge, f"huge.npz' is corrupted: the archive declares {total} bytes "
                                  f"of arrays, more than the 1073741824 bytes this format allows")
    assert seconds < 0.5
    lying = tmp_path / "lying.npz"   # a header declaring 6 GiB over an empty entry
    _write_zip(lying, entries | {"reference_input.npy": _npy_header(np.float32, (1 << 28, 6))})
    _load_refused(lying, "entry 'reference_input' declares a float32 array of shape "
                         "[268435456, 6] (6442450944 bytes) but the archive declares 0 bytes "
                         "of data for it: the file is corrupted")


def test_metadata_listing_fewer_layers_than_stored_is_refused(tmp_path):
    qmodel = _model()
    good = tmp_path / "good.npz"
    qmodel.save(good)
    entries = _entries(good)
    meta = np.load(good)["meta"].tobytes().decode()
    first_only = meta[:meta.index(', {"name": "fc1"')] + meta[meta.index("]}"):]
    short = tmp_path / "short.npz"
    buffer = _npy_header(np.uint8, (len(first_only),)) + first_only.encode()
    _write_zip(short, {**entries, "meta.npy": buffer})
    _load_refused(short, "short.npz' is corrupted: the archive holds entries 'float1.bias', "
                         "'float1.weight', 'layer1.bias', 'layer1.scales', 'layer1.weight', "
                         "'layer1.weight_scale' that the format does not define")
    # The same metadata with only the first layer's entries is a valid one-layer model.
    one = tmp_path / "one.npz"
    _write_zip(one, {name: data for name, data in entries.items() if "1." not in name
                     and name != "reference_input.npy"} | {"meta.npy": buffer})
    assert len(QuantizedModel.load(one).layers) == 1


@pytest.mark.parametrize("name, array, message", [
    ("layer0.bias", np.zeros(5, np.int64),
     "entry 'layer0.bias' is a int64 array; the format stores int32"),
    ("layer0.bias", np.zeros(4, np.int32),
     "entry 'layer0.bias' has shape [4], not [5] as layer0.weight implies"),
    ("layer1.weight", np.zeros((4, 3), np.int8),
     "entry 'layer1.weight' has 4 inputs but layer 0 has 5 outputs"),
    ("layer0.scales", np.ones(3, np.float32),
     "entry 'layer0.scales' has shape [3]; the format expects [2]"),
    ("layer0.weight", np.zeros((6, 5, 1), np.int8),
     "entry 'layer0.weight' has shape [6, 5, 1]; the format expects [any, any]"),
    ("layer0.weight", np.array([None] * 30, dtype=object).reshape(6, 5),
     "entry 'layer0.weight' holds pickled Python objects (dtype object); Tessera never loads "
     "pickled data"),
])
def test_entries_that_contradict_the_metadata_are_refused(tmp_path, name, array, message):
    good = tmp_path / "good.npz"
    _model().save(good)
    arrays = {k: v for k, v in np.load(good).items()}
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, **{**arrays, name: array})
    _load_refused(bad, "bad.npz' is corrupted: " + message)


def test_a_header_that_disagrees_with_the_archive_is_refused(tmp_path):
    path = tmp_path / "lying.npz"
    _write_zip(path, {"a.npy": _npy_header(np.int32, (10,)) + bytes(20)})
    with pytest.raises(NpzEntryError, match=re.escape(
            "entry 'a' declares a int32 array of shape [10] (40 bytes) but the archive declares "
            "20 bytes of data for it: the file is corrupted")):
        read_npz_entries(path, {"a": (np.int32, None)})


def test_read_npz_entries(tmp_path):
    path = tmp_path / "x.npz"
    fortran = np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4))
    np.savez_compressed(path, a=fortran, b=np.float32([1.5, -2]))
    got = read_npz_entries(path, {"a": (np.int16, (3, None)), "b": (np.float32, (2,)),
                                  "c": (np.int8, None)}, optional=["c"])
    assert sorted(got) == ["a", "b"]
    np.testing.assert_array_equal(got["a"], fortran)
    np.testing.assert_array_equal(got["b"], np.float32([1.5, -2]))
    with pytest.raises(NpzEntryError, match="^missing entry 'c'$"):
        read_npz_entries(path, {"a": (np.int16, None), "b": (np.float32, None),
                                "c": (np.int8, None)})
    with pytest.raises(NpzEntryError, match=re.escape(
            "the archive holds entry 'b' that the format does not define")):
        read_npz_entries(path, {"a": (np.int16, None)})
    with pytest.raises(NpzEntryError, match=re.escape(
            "the archive declares 32 bytes of arrays, more than the 31 bytes this format "
            "allows")):
        read_npz_entries(path, {"a": (np.int16, None), "b": (np.float32, None)}, max_bytes=31)
    with NpzReader(path) as reader:
        assert reader.names == {"a", "b"}
        assert reader.check("a", np.int16) == (np.dtype(np.int16), (3, 4))
    other = tmp_path / "other.zip"
    _write_zip(other, {"a.npy": b"", "notes.txt": b"hello"})
    with pytest.raises(NpzEntryError, match=re.escape(
            "the archive holds 'notes.txt', which is not an array entry (NAME.npy)")):
        read_npz_entries(other, {"a": (np.int8, None)})
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(NpzEntryError, match="^not an .npz \\(zip\\) archive"):
        read_npz_entries(truncated, {"a": (np.int16, None), "b": (np.float32, None)})
