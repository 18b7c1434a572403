"""Recognise model files and objects and route them to the right importer.

:func:`resolve_source` is what :func:`tessera.quantize` calls first. It returns either float
layers to quantize with calibration (float ONNX, Keras) or a finished :class:`QuantizedModel`
whose parameters come unchanged from the file (QDQ/QOperator ONNX, int8 TFLite).
:func:`load_model` is the one-call entry point used by ``tessera run``: ``.npz`` files saved by
:meth:`QuantizedModel.save` or :meth:`tessera.graph.QuantizedGraph.save`, ``.onnx`` and
``.tflite`` files, or model objects. A model that is a chain of dense layers comes back as a
:class:`QuantizedModel` (it runs on the accelerator); any other graph (CNNs, residual DAGs) as a
:class:`tessera.graph.QuantizedGraph`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MODEL_SUFFIXES", "resolve_source", "load_model", "file_kind",
           "read_model_bytes"]

#: File suffixes :func:`load_model` recognises (others are sniffed by content).
MODEL_SUFFIXES = {".onnx": "onnx", ".tflite": "tflite", ".npz": "npz", ".tq": "npz"}


def read_model_bytes(source, fmt):
    """Return ``(data, name)`` of a model given as bytes or as a file path.

    ``fmt`` (``"ONNX"``, ``"TFLite"``) names the format in ``name`` (``"the ONNX bytes"``) and in
    the ``FileNotFoundError`` of a path that does not exist.
    """
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), f"the {fmt} bytes"
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{fmt} model file {path} does not exist")
    return path.read_bytes(), str(path)


def file_kind(path):
    """Return ``"onnx"``, ``"tflite"`` or ``"npz"`` for a model file (suffix, then content)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file {path} does not exist")
    kind = MODEL_SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        return kind
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:2] == b"PK":
        return "npz"
    return "onnx"


def _is_keras(model):
    cls = type(model)
    return hasattr(model, "layers") and not isinstance(model, (list, tuple)) and (
        cls.__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow")
        or cls.__name__ == "Sequential")


def _float_needs_calibration(calibration, what):
    if calibration is None:
        raise ValueError(f"{what} is a float model: quantizing it needs calibration data "
                         "(calibration=x, a representative float batch [M, in_features]; on the "
                         "command line --calibration FILE.npy)")


def resolve_source(model, *, calibration=None, mode=None):
    """Return ``("float", layers, source)`` or ``("quantized", QuantizedModel, source)``.

    ``model`` that is not a file or an ONNX/Keras object is returned as ``("other", model,
    None)`` for :func:`tessera.quantize.importers.import_model`.
    """
    from .onnx_graph import is_onnx_model
    if isinstance(model, (str, os.PathLike)):
        kind = file_kind(model)
        if kind == "npz":
            raise ValueError(f"{model} is a saved QuantizedModel; load it with "
                             "tessera.QuantizedModel.load (or tessera.load_model)")
        if kind == "tflite":
            return _tflite(model, calibration, mode)
        return _onnx(model, calibration, mode)
    if isinstance(model, (bytes, bytearray)):
        from .tflite_import import is_tflite_bytes
        return _tflite(model, calibration, mode) if is_tflite_bytes(model) \
            else _onnx(model, calibration, mode)
    if is_onnx_model(model):
        return _onnx(model, calibration, mode)
    if _is_keras(model):
        from .keras_import import keras_layers
        _float_needs_calibration(calibration, f"The Keras model {type(model).__name__}")
        return "float", keras_layers(model), f"Keras {type(model).__name__}"
    return "other", model, None


def _prequantized(what, calibration, mode, allowed):
    if calibration is not None:
        raise ValueError(f"{what} is already quantized: Tessera keeps its parameters exactly, so "
                         "calibration data is not used; call without calibration")
    if mode is not None and mode not in allowed:
        raise ValueError(f"{what} is quantized for a runtime that mode {mode!r} does not "
                         f"reproduce; use mode {' or '.join(repr(m) for m in allowed)} (or None)")


def _onnx(source, calibration, mode):
    from .onnx_graph import OnnxChain, float_layers_from_onnx, load_onnx
    from .onnx_quantized import import_quantized_onnx, is_quantized_onnx
    chain = OnnxChain(*load_onnx(source))
    from .qonnx_import import import_qonnx, is_qonnx_model
    if is_qonnx_model(chain.model):         # QONNX / Brevitas QCDQ: quantization-aware models
        _prequantized(f"QONNX model {chain.name}", calibration, mode, ("onnx",))
        return "quantized", import_qonnx(chain), f"QONNX ({chain.name})"
    if is_quantized_onnx(chain):
        _prequantized(f"ONNX model {chain.name}", calibration, mode, ("onnx",))
        return "quantized", import_quantized_onnx(chain), f"ONNX ({chain.name})"
    layers = float_layers_from_onnx(chain)
    _float_needs_calibration(calibration, f"ONNX model {chain.name}")
    return "float", layers, f"ONNX ({chain.name})"


def _tflite(source, calibration, mode):
    from .tflite_import import import_tflite
    what = "TFLite model" + (f" {source}" if not isinstance(source, (bytes, bytearray)) else "")
    _prequantized(what, calibration, mode, ("onnx", "tflite"))
    return "quantized", import_tflite(source, mode=mode), what


def load_model(source, calibration=None, **options):
    """Return a :class:`QuantizedModel` or a :class:`~tessera.graph.QuantizedGraph` (one call).

    Dense-layer chains come back as a :class:`QuantizedModel` (so they keep running on the
    device); other graphs (int8 TFLite CNNs, ...) as a :class:`~tessera.graph.QuantizedGraph`.

    Parameters
    ----------
    source : path, bytes, onnx.ModelProto, Keras model or anything :func:`tessera.quantize`
        takes. ``.npz`` files are read with :func:`tessera.quantize.serialize.load` (format
        versions 1 and 2); pre-quantized ONNX and TFLite files keep their parameters; float
        models are quantized with ``calibration``.
    calibration : array_like [M, K], optional
        Required for float models only.
    **options
        Passed to :func:`tessera.quantize` (``mode``, ``per_channel``, ...).
    """
    if isinstance(source, (str, os.PathLike)) and file_kind(source) == "npz":
        from .serialize import load
        if calibration is not None or options:
            raise ValueError(f"{source} is an already quantized model; calibration and "
                             "quantization options do not apply")
        return load(source)
    from .quantizer import quantize
    return quantize(source, calibration, **options)
