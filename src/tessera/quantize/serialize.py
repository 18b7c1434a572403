"""Save and load a :class:`~tessera.quantize.QuantizedModel` without pickle.

The file is an uncompressed NumPy ``.npz`` archive read with ``allow_pickle=False``:

``meta``
    uint8 bytes of a UTF-8 JSON object: ``format`` (``"tessera.QuantizedModel"``), ``version``
    (:data:`FORMAT_VERSION`), ``info``, and per layer its name, zero points, mode, activation
    and float activation.
``layer{i}.weight`` int8 [K, N], ``layer{i}.bias`` int32 [N], ``layer{i}.weight_scale`` float32
[N], ``layer{i}.scales`` float32 [2] (input, output) or [3] (+ LUT input), ``layer{i}.lut`` int8
[256] (LUT layers)
    The quantized layers, bit for bit.
``float{i}.weight`` float64, ``float{i}.bias`` float64, ``reference_input`` float32
    Optional float reference data for ``summary()``.

A file that is not such an archive, lacks an entry, has another format name or a newer version,
or holds invalid values raises :class:`ValueError` naming the file and the problem.
"""

from __future__ import annotations

import json

import numpy as np

from .floatmodel import FloatLayer
from .model import QuantizedLayer, QuantizedModel

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save", "load"]

FORMAT_NAME = "tessera.QuantizedModel"
FORMAT_VERSION = 1


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
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "info": qmodel.info,
            "layers": layers_meta}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def _read(path):
    try:
        # Open the file here: np.load leaks its own handle when the archive is truncated.
        with open(path, "rb") as file:
            archive = np.load(file, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an .npz archive")
            with archive:
                return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # BadZipFile, pickled data, truncated entries, ...
        raise ValueError(f"{str(path)!r} is not a readable Tessera quantized model "
                         f"(.npz written by QuantizedModel.save): {exc}") from None


def _parse_meta(path, arrays):
    if "meta" not in arrays:
        raise ValueError(f"{str(path)!r} is an .npz archive but not a Tessera quantized model "
                         "(no 'meta' entry); write it with QuantizedModel.save()")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
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
    """Return the :class:`QuantizedModel` stored at ``path`` by :func:`save`.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a valid Tessera quantized model (the message says why).
    """
    arrays = _read(path)
    meta = _parse_meta(path, arrays)
    try:
        return _build(meta, arrays)
    except KeyError as exc:
        raise ValueError(f"{str(path)!r} is corrupted: missing entry {exc}") from None
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{str(path)!r} is corrupted: {exc}") from None
