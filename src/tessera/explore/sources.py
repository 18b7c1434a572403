"""What a sweep evaluates: the float model and the user's data, as one picklable workload.

A sweep re-quantizes the model for every operand width, so it needs the *float* model, not a
saved :class:`~tessera.quantize.QuantizedModel`. :func:`load_workload` accepts:

- ``"digits"``: the demo's scikit-learn MLP (64-32-10) trained, seeded, on the digits data set
  (:func:`tessera.cli.demo.train_digits_mlp`);
- a float ONNX file (``.onnx``), imported by :mod:`tessera.quantize`;
- a ``.npz`` of float layers: arrays ``w0, b0, w1, b1, ...`` (``w<i>`` shaped
  ``[in_features, out_features]``, ``y = act(x @ w + b)``) and optional string scalars
  ``act0, act1, ...`` (``"relu"``, ``"none"``, ``"sigmoid"``, ...; default ``"none"``).

The data is ``"digits"`` (the demo's train/test split) or a ``.npz`` with ``x_train``
(calibration inputs, float ``[M, K]``), ``x_test`` (float ``[T, K]``) and ``y_test`` (integer
class labels ``[T]``; the predicted class is the argmax of the model's outputs), or inputs
``x.npy`` with optional labels ``y.npy`` (a float model is then calibrated on the same inputs).

A model that is already quantized — an int8 ``.tflite`` file (the MLPerf Tiny models), a
quantized ``.onnx`` file, a saved ``.npz`` :class:`~tessera.quantize.QuantizedModel` — is swept
at its own width and mode (:mod:`tessera.explore.quantized`); data is then optional (without it
the sweep reports latency and resources, no accuracy).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Workload", "load_workload", "load_float_layers", "load_data", "array_digest"]


@dataclass(frozen=True)
class Workload:
    """The float model and the data every design point is evaluated on.

    Attributes
    ----------
    name : str
        What the model is (for reports).
    layers : tuple of (numpy.ndarray, numpy.ndarray, str)
        Float layers ``(W [in, out], b [out], activation)``, as :func:`tessera.quantize` takes.
    x_calibration, x_test : numpy.ndarray
        float32 calibration inputs and test inputs.
    y_test : numpy.ndarray
        int64 class labels of ``x_test``.
    model_hash, data_hash : str
        SHA-256 digests of the layers and of the data (part of every cache key).
    quantized : QuantizedModel or QuantizedGraph, optional
        A model that is already quantized (``layers`` is then empty): swept at its own width
        and mode. ``x_calibration`` is then ``None``, and so are ``x_test`` and ``y_test``
        without data; ``y_test`` is ``None`` when inputs come without labels.
    """

    name: str
    layers: tuple
    x_calibration: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    model_hash: str
    data_hash: str
    quantized: object = None

    @property
    def in_features(self) -> int:
        """Inputs of the model."""
        return self.layers[0][0].shape[0]

    def float_accuracy(self):
        """Return the float model's accuracy on the test data (``None`` if not applicable)."""
        if self.quantized is not None or self.y_test is None:
            return None
        from tessera.quantize.floatmodel import apply_activation
        y = self.x_test.astype(np.float64)
        for w, b, act in self.layers:
            y = apply_activation(act, y @ w + b)
        return float((np.argmax(y, axis=1) == self.y_test).mean())


def array_digest(*arrays) -> str:
    """Return the SHA-256 hex digest of arrays' dtypes, shapes and bytes, in order."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, str):
            h.update(b"s" + a.encode())
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _layers_from_float(float_layers):
    return tuple((np.asarray(l.weight, np.float64), np.asarray(l.bias, np.float64),
                  str(l.activation)) for l in float_layers)


def _layers_from_npz(path):
    from tessera.numpy_files import read_npz
    arrays = read_npz(path, "Model")
    if "meta" in arrays:
        raise ValueError(f"{path} is a saved QuantizedModel; tessera explore re-quantizes the "
                         "model for every width, so give the float model (digits, an .onnx "
                         "file or an .npz of float layers w0, b0, act0, ...)")
    indices = sorted(int(k[1:]) for k in arrays
                     if k[:1] == "w" and k[1:].isdigit() and k[1:] == str(int(k[1:])))
    if not indices:
        raise ValueError(f"{path} holds no float layers: expected arrays w0, b0 (and w1, b1, "
                         f"...; optional act0, ...), found {', '.join(sorted(arrays)) or 'none'}")
    count = len(indices)
    if indices != list(range(count)):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        raise ValueError(f"{path}: layer weights must be numbered w0, w1, ... without gaps, "
                         f"but {', '.join(f'w{i}' for i in missing)} is missing (found "
                         f"{', '.join(f'w{i}' for i in indices)})")
    known = {f"{kind}{i}" for i in range(count) for kind in ("w", "b", "act")}
    extra = sorted(set(arrays) - known)
    if extra:
        raise ValueError(f"{path}: unexpected entries {', '.join(extra)}; a float-layer .npz "
                         f"holds only w0..w{count - 1}, b0..b{count - 1} and optional "
                         f"act0..act{count - 1}")
    layers = []
    for i in range(count):
        if f"b{i}" not in arrays:
            raise ValueError(f"{path}: layer {i} has w{i} but no bias b{i}")
        act = str(arrays[f"act{i}"]) if f"act{i}" in arrays else "none"
        layers.append((arrays[f"w{i}"], arrays[f"b{i}"], act))
    from tessera.quantize import import_model
    return _layers_from_float(import_model(layers))


def load_float_layers(model, calibration=None):
    """Return ``(name, layers)`` for an ``.onnx`` path or an ``.npz`` of float layers."""
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"Model file {path} does not exist; give digits, a float .onnx "
                                f"file or an .npz of float layers")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return path.name, _layers_from_npz(path)
    if suffix == ".onnx":
        from tessera.quantize.sources import resolve_source
        kind, payload, source = resolve_source(os.fspath(path), calibration=calibration)
        if kind != "float":
            raise ValueError(f"{path} is an already quantized ONNX model; tessera explore "
                             "re-quantizes for every width, so give the float model")
        from tessera.quantize import import_model
        return source, _layers_from_float(import_model(payload))
    raise ValueError(f"Cannot sweep {path}: give digits, a float .onnx file, an .npz of float "
                     f"layers (w0, b0, act0, ...) or a quantized model (.tflite, quantized "
                     f".onnx, saved .npz)")


def _load_npy(data, labels):
    x = np.load(check_file(data, "Data"), allow_pickle=False)
    y = None
    if labels is not None:
        y = np.load(check_file(labels, "Labels"), allow_pickle=False)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
            raise ValueError(f"--labels {labels} must be a 1-D array of {len(x)} integer class "
                             f"labels (one per row of --data), not {y.dtype} {y.shape}")
    return x, x, y


def check_file(path, what):
    """Return ``path`` as a :class:`~pathlib.Path`; raise ``FileNotFoundError`` if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    return path


def load_data(data, labels=None):
    """Return ``(x_train, x_test, y_test)`` from ``"digits"``, an ``.npz`` or an ``.npy`` file.

    An ``.npy`` holds inputs only: they are the test rows and the calibration rows, with the
    labels of ``labels`` (an ``.npy`` of integers) or none (``y_test`` is ``None``).
    """
    if str(data).lower().endswith(".npy"):
        return _load_npy(data, labels)
    if labels is not None:
        raise ValueError("--labels goes with --data x.npy; an .npz data file holds its labels "
                         "as y_test")
    if data == "digits":
        from tessera.cli.demo import _digits
        x_train, x_test, _, y_test = _digits(0)
        return x_train, x_test, y_test
    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"Data file {path} does not exist; give digits or an .npz with "
                                f"x_train, x_test and y_test")
    from tessera.numpy_files import read_npz
    arrays = read_npz(path, "Data")
    missing = [k for k in ("x_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: the data file needs x_train "
                         f"(calibration inputs), x_test and y_test (integer labels)")
    y = arrays["y_test"]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: y_test must be a 1-D array of integer class labels, not "
                         f"{y.dtype} {y.shape}")
    x_train, x_test = (np.asarray(arrays[k], np.float32) for k in ("x_train", "x_test"))
    if x_test.ndim != 2 or len(x_test) != len(y):
        raise ValueError(f"{path}: x_test must be [T, K] with T = len(y_test) = {len(y)}, not "
                         f"{x_test.shape}")
    return x_train, x_test, y


def load_workload(model, data=None, labels=None, *, mode=None):
    """Return the :class:`Workload` of ``model`` on ``data`` (see the module docstring).

    Parameters
    ----------
    model : str or path
        ``"digits"`` or a model file.
    data, labels : str or path, optional
        See :func:`load_data`.
    mode : str, optional
        Requantization mode to read a quantized model in (default: its file's).

    Raises
    ------
    ValueError, FileNotFoundError
        Unknown model or data source, or inconsistent shapes; the message says what to give.
    """
    from .quantized import is_quantized_file, load_quantized_workload
    if model != "digits" and is_quantized_file(model):
        return load_quantized_workload(model, data, labels, mode=mode)
    if data is None:
        if model != "digits":
            raise ValueError(f"Give --data FILE.npz (x_train, x_test, y_test) for {model}; only "
                             "the built-in digits model comes with its data (a quantized model "
                             "runs without data: latency and resources, no accuracy)")
        data = "digits"
    x_train, x_test, y_test = load_data(data, labels)
    x_train, x_test = (np.asarray(x, np.float32) for x in (x_train, x_test))
    y_test = None if y_test is None else y_test.astype(np.int64)
    if model == "digits":
        from tessera.cli.demo import train_digits_mlp
        clf = train_digits_mlp(seed=0)[0]
        from tessera.quantize import import_model
        name, layers = "digits MLP 64-32-10 (scikit-learn, seed 0)", \
            _layers_from_float(import_model(clf))
    else:
        from tessera.quantize.errors import UnsupportedModelError
        try:
            name, layers = load_float_layers(model, calibration=x_train)
        except UnsupportedModelError:
            if Path(model).suffix.lower() != ".onnx":
                raise
            # Not a dense chain: a float CNN, swept on the boards' CNN presets at int8.
            from .quantized import quantize_float_graph
            return quantize_float_graph(model, x_train, x_test, y_test,
                                        array_digest(*data_arrays(x_train, x_test, y_test)))
    k = layers[0][0].shape[0]
    for what, x in (("x_train", x_train), ("x_test", x_test)):
        if x.ndim != 2 or x.shape[1] != k:
            raise ValueError(f"{what} is {x.shape} but the model takes {k} inputs per row")
    n_out = layers[-1][0].shape[1]
    check_labels(y_test, n_out)
    model_hash = array_digest(*[item for layer in layers for item in layer])
    data_hash = array_digest(*data_arrays(x_train, x_test, y_test))
    return Workload(name=name, layers=layers, x_calibration=x_train, x_test=x_test,
                    y_test=y_test, model_hash=model_hash, data_hash=data_hash)


def data_arrays(*arrays):
    """Return ``arrays`` for :func:`array_digest`, each ``None`` replaced by a marker."""
    return [a if a is not None else f"none{i}" for i, a in enumerate(arrays)]


def check_labels(y_test, n_out):
    """Raise ``ValueError`` if a label of ``y_test`` is not an output index of the model."""
    if y_test is not None and len(y_test) and (y_test.min() < 0 or y_test.max() >= n_out):
        raise ValueError(f"y_test labels run from {y_test.min()} to {y_test.max()} but the model "
                         f"has {n_out} outputs (the class is the index of the largest output)")
