"""Save and load a :class:`~tessera.quantize.QuantizedModel` or a graph without pickle.

The file is an uncompressed NumPy ``.npz`` archive, read by :mod:`tessera.quantize.npz_safe`
(never pickle, only the entries listed below, each entry's size checked before it is
decompressed):

``meta``
    uint8 bytes of a UTF-8 JSON object: ``format`` (``"tessera.QuantizedModel"``), ``version``
    (:data:`FORMAT_VERSION`), ``info``, and per layer its name, zero points, mode, activation
    and float activation.
``layer{i}.weight`` int8 [K, N] (int16 for weights over 8 bits), ``layer{i}.bias`` int32 [N],
``layer{i}.weight_scale`` float32 [N], ``layer{i}.scales`` float32 [2] (input, output) or [3]
(+ LUT input), ``layer{i}.lut`` int8 [256] (LUT layers)
    The quantized layers, bit for bit.
``float{i}.weight`` float64, ``float{i}.bias`` float64, ``reference_input`` float32
    Optional float reference data for ``summary()``.

Version 2 files hold a :class:`tessera.graph.QuantizedGraph` (metadata ``kind`` ``"graph"``;
the entries are defined in :mod:`tessera.graph.serialize` and docs/graph.md). Dense chains are
still written as version 1, and both versions are read.

A file that is not such an archive, lacks an entry, holds an entry the metadata does not define
(a model with more layers than its metadata lists is refused, not truncated), declares shapes
that do not chain or more than :data:`MAX_MODEL_BYTES` of arrays, has another format name or a
newer version, or holds invalid values raises :class:`ValueError` naming the file and the
problem.
"""

from __future__ import annotations

import json

import numpy as np

from .floatmodel import FloatLayer
from .model import QuantizedLayer, QuantizedModel
from .npz_safe import NpzEntryError, NpzReader

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save", "save_graph", "load"]

FORMAT_NAME = "tessera.QuantizedModel"
#: The newest version this Tessera reads and writes (2: graphs; dense chains are written as 1).
FORMAT_VERSION = 2
_CHAIN_VERSION = 1


def save(qmodel, path, *, include_reference=True):
    """Write ``qmodel`` to ``path`` (the name is used as given; no suffix is added).

    Parameters
    ----------
    include_reference : bool
        Also store the float layers and reference input (for ``summary()`` after loading).
    """
    arrays = {}
    layers_meta = []
    keep_float = include_reference and qmodel.float_layers is not None
    for i, layer in enumerate(qmodel.layers):
        arrays[f"layer{i}.weight"] = layer.weight
        arrays[f"layer{i}.bias"] = layer.bias
        arrays[f"layer{i}.weight_scale"] = layer.weight_scale
        scales = [layer.input_scale, layer.output_scale]
        entry = {"name": layer.name, "input_zero_point": layer.input_zero_point,
                 "output_zero_point": layer.output_zero_point, "mode": layer.mode,
                 "input_bits": layer.input_bits, "weight_bits": layer.weight_bits,
                 "activation": layer.activation}
        if layer.activation == "lut":
            scales.append(layer.lut_input_scale)
            arrays[f"layer{i}.lut"] = layer.lut
            entry["lut_input_zero_point"] = layer.lut_input_zero_point
        arrays[f"layer{i}.scales"] = np.array(scales, dtype=np.float32)
        if keep_float:
            float_layer = qmodel.float_layers[i]
            arrays[f"float{i}.weight"] = float_layer.weight
            arrays[f"float{i}.bias"] = float_layer.bias
            entry["float_activation"] = float_layer.activation
        layers_meta.append(entry)
    if include_reference and qmodel.reference_input is not None:
        arrays["reference_input"] = qmodel.reference_input
    meta = {"format": FORMAT_NAME, "version": _CHAIN_VERSION, "info": qmodel.info,
            "layers": layers_meta}
    _write(path, meta, arrays)


def _write(path, meta, arrays):
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def save_graph(qgraph, path):
    """Write a :class:`tessera.graph.QuantizedGraph` to ``path`` (format version 2)."""
    from ..graph.serialize import graph_entries
    meta, arrays = graph_entries(qgraph)
    _write(path, {"format": FORMAT_NAME, "version": FORMAT_VERSION, **meta}, arrays)


#: Largest metadata entry accepted (the JSON text of a model with thousands of layers fits).
MAX_META_BYTES = 1 << 24

#: Largest total of array bytes a model file may declare; checked before decompressing.
MAX_MODEL_BYTES = 1 << 30

_NOT_A_MODEL = "is not a readable Tessera quantized model (.npz written by QuantizedModel.save)"
_LAYER_KEYS = ("name", "input_zero_point", "output_zero_point", "mode", "activation")


def _open(path, file):
    if file.read(6) == b"\x93NUMPY":
        raise NpzEntryError("it holds a single array, not an .npz archive")
    file.seek(0)
    return NpzReader(file)


def _read_meta(path, npz):
    if "meta" not in npz.names:
        raise ValueError(f"{str(path)!r} is an .npz archive but not a Tessera quantized model "
                         "(no 'meta' entry); write it with QuantizedModel.save()")
    _, (size,) = npz.check("meta", np.uint8, (None,))
    if size > MAX_META_BYTES:
        raise NpzEntryError(f"its metadata entry declares {size} bytes, more than the "
                            f"{MAX_META_BYTES} a model's metadata can need")
    return _parse_meta(path, npz.read("meta"))


def _parse_meta(path, meta_bytes):
    try:
        meta = json.loads(meta_bytes.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(path)!r}: corrupted metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{str(path)!r} is not a Tessera quantized model (format {found!r}, "
                         f"expected {FORMAT_NAME!r})")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ValueError(f"{str(path)!r} has format version {version!r}; this Tessera reads "
                         f"versions 1 to {FORMAT_VERSION}: upgrade tessera to load it")
    return meta


def _expected_entries(meta):
    """Return ``(expected, optional)``: every entry the metadata defines, as for NpzReader."""
    layers = meta.get("layers")
    if not isinstance(layers, list) or not layers:
        raise NpzEntryError("its metadata lists no layers")
    expected = {"meta": (np.uint8, (None,))}
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict) or any(key not in entry for key in _LAYER_KEYS):
            raise NpzEntryError(f"the metadata of layer {i} is not an object with the keys "
                                f"{', '.join(_LAYER_KEYS)}")
        weight_bits = entry.get("weight_bits", 8)
        weight_dtype = np.int16 if isinstance(weight_bits, int) and weight_bits > 8 else np.int8
        expected[f"layer{i}.weight"] = (weight_dtype, (None, None))
        expected[f"layer{i}.bias"] = (np.int32, (None,))
        expected[f"layer{i}.weight_scale"] = (np.float32, (None,))
        lut = entry["activation"] == "lut"
        expected[f"layer{i}.scales"] = (np.float32, (3 if lut else 2,))
        if lut:
            expected[f"layer{i}.lut"] = (np.int8, (256,))
        if "float_activation" in entry:
            expected[f"float{i}.weight"] = (np.float64, (None, None))
            expected[f"float{i}.bias"] = (np.float64, (None,))
    expected["reference_input"] = (np.float32, (None, None))
    return expected, ("reference_input",)


def _check_shapes(npz, expected, count):
    """Check that the entries' declared shapes chain, before any of them is decompressed."""
    shapes = {name: npz.check(name, *spec)[1] for name, spec in expected.items()
              if name in npz.names}
    k = None
    for i in range(count):
        k_i, n = shapes.get(f"layer{i}.weight", (k, None))
        if k is not None and k_i != k:
            raise NpzEntryError(f"entry 'layer{i}.weight' has {k_i} inputs but layer {i - 1} "
                                f"has {k} outputs")
        for name, want in ((f"layer{i}.bias", (n,)), (f"layer{i}.weight_scale", (n,)),
                           (f"float{i}.weight", (k_i, n)), (f"float{i}.bias", (n,))):
            if name in shapes and n is not None and shapes[name] != want:
                raise NpzEntryError(f"entry {name!r} has shape {list(shapes[name])}, not "
                                    f"{list(want)} as layer{i}.weight implies")
        k = n
    first_k = shapes.get("layer0.weight", (None,))[0]
    if "reference_input" in shapes and shapes["reference_input"][1] != first_k:
        raise NpzEntryError(f"entry 'reference_input' has shape "
                            f"{list(shapes['reference_input'])}, not [any, {first_k}]")


def _read(path):
    """Return ``(meta, arrays)``: only the entries the metadata defines, sizes checked first."""
    stage = _NOT_A_MODEL
    try:
        # Open the file here, so that it is closed on every error.
        with open(path, "rb") as file, _open(path, file) as npz:
            meta = _read_meta(path, npz)
            stage = "is corrupted"
            if _is_graph(meta):
                expected, optional = _graph_entries(meta), ()
            else:
                expected, optional = _expected_entries(meta)
                _check_shapes(npz, expected, len(meta["layers"]))
            arrays = npz.read_entries(expected, optional=optional, max_bytes=MAX_MODEL_BYTES)
    except NpzEntryError as exc:
        raise ValueError(f"{str(path)!r} {stage}: {exc}") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{str(path)!r} {stage}: {exc}") from None
    return meta, arrays


def _is_graph(meta):
    from ..graph.serialize import GRAPH_KIND
    kind = meta.get("kind")
    if (meta["version"] >= 2) != (kind == GRAPH_KIND):
        raise NpzEntryError(f"its metadata has version {meta['version']} and kind {kind!r}; "
                            f"version 2 files hold graphs (kind {GRAPH_KIND!r}), version 1 "
                            "files dense chains")
    return kind == GRAPH_KIND


def _graph_entries(meta):
    from ..graph.serialize import expected_entries
    try:
        return expected_entries(meta)
    except ValueError as exc:
        raise NpzEntryError(str(exc)) from None


def _build(meta, arrays):
    layers, float_layers = [], []
    for i, entry in enumerate(meta["layers"]):
        scales = arrays[f"layer{i}.scales"]
        lut = {}
        if entry["activation"] == "lut":
            lut = {"lut": arrays[f"layer{i}.lut"], "lut_input_scale": scales[2],
                   "lut_input_zero_point": entry["lut_input_zero_point"]}
        layers.append(QuantizedLayer(
            name=entry["name"], weight=arrays[f"layer{i}.weight"], bias=arrays[f"layer{i}.bias"],
            input_scale=scales[0], input_zero_point=entry["input_zero_point"],
            weight_scale=arrays[f"layer{i}.weight_scale"], output_scale=scales[1],
            output_zero_point=entry["output_zero_point"], mode=entry["mode"],
            activation=entry["activation"], input_bits=entry.get("input_bits", 8),
            weight_bits=entry.get("weight_bits", 8), **lut))
        if "float_activation" in entry:
            float_layers.append(FloatLayer(entry["name"], arrays[f"float{i}.weight"],
                                           arrays[f"float{i}.bias"], entry["float_activation"]))
    return QuantizedModel(layers, float_layers=float_layers or None,
                          reference_input=arrays.get("reference_input"), info=meta.get("info"))


def load(path):
    """Return the model stored at ``path``: a :class:`QuantizedModel` (saved by :func:`save`)
    or a :class:`tessera.graph.QuantizedGraph` (saved by :func:`save_graph`).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a valid Tessera quantized model (the message says why).
    """
    meta, arrays = _read(path)
    try:
        if meta["version"] >= 2:
            from ..graph.serialize import graph_from_entries
            return graph_from_entries(meta, arrays)
        return _build(meta, arrays)
    except KeyError as exc:
        raise ValueError(f"{str(path)!r} is corrupted: missing entry {exc}") from None
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{str(path)!r} is corrupted: {exc}") from None
