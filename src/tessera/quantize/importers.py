"""Normalise a user's model to a tuple of :class:`~tessera.quantize.floatmodel.FloatLayer`.

Supported sources:

* a list of ``(W, b, activation)`` tuples, ``W`` shaped ``[in_features, out_features]``
  (``y = x @ W + b``), ``b`` may be None, ``activation`` a name or None;
* a fitted scikit-learn ``MLPClassifier`` or ``MLPRegressor``; the output layer is imported
  without its softmax/logistic, so a classifier yields logits whose argmax is sklearn's
  ``predict`` (for a binary classifier: the single logit, class 1 iff it is positive);
* a PyTorch ``nn.Module`` built from ``nn.Sequential`` (nested allowed) of ``Linear``, ``ReLU``,
  ``ReLU6``, ``Sigmoid``, ``Tanh``, ``SiLU``, ``Hardsigmoid``, ``Hardswish``, and the no-ops
  ``Flatten``, ``Identity``, ``Dropout`` (inference semantics). PyTorch is imported only if the
  user already imported it.

Layers are named ``fc0``, ``fc1``, ... whatever the source, so equivalent models produce identical
quantized models.
"""

from __future__ import annotations

import sys

import numpy as np

from .errors import UnsupportedModelError
from .floatmodel import FLOAT_ACTIVATIONS, FloatLayer

__all__ = ["ACTIVATION_ALIASES", "import_model"]

#: Alternative activation spellings accepted in layer lists (scikit-learn and Keras names).
ACTIVATION_ALIASES = {None: "none", "identity": "none", "linear": "none", "logistic": "sigmoid",
                      "swish": "silu", "hard_sigmoid": "hardsigmoid", "hard_swish": "hardswish"}

_SUPPORTED_MODELS = ("a list of (W [in, out], b, activation) tuples, a fitted scikit-learn "
                     "MLPClassifier/MLPRegressor, or a PyTorch nn.Sequential")
_TORCH_ACTIVATIONS = {"ReLU": "relu", "ReLU6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh",
                      "SiLU": "silu", "Hardsigmoid": "hardsigmoid", "Hardswish": "hardswish"}
_TORCH_NOOPS = ("Flatten", "Identity", "Dropout")
_TORCH_SUPPORTED = ", ".join(["Linear", *_TORCH_ACTIVATIONS, *_TORCH_NOOPS])


def _activation_name(name, where):
    key = name.lower() if isinstance(name, str) else name
    key = ACTIVATION_ALIASES.get(key, key)
    if key not in FLOAT_ACTIVATIONS:
        raise UnsupportedModelError(
            f"{where}: unsupported activation {name!r}; use one of "
            f"{', '.join(repr(a) for a in FLOAT_ACTIVATIONS)} (or None)")
    return key


def _float_array(value, what, ndim):
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{what} is not an array: {exc}") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.integer)
                                     or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{what} must be a real numeric array, not dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D, not shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{what} is empty (shape {array.shape})")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} contains {int(bad.sum())} NaN/infinite value(s), the first at "
                         f"index {index}; fix the model's parameters before quantizing")
    return array


def _make_layer(index, weight, bias, activation):
    name = f"fc{index}"
    w = _float_array(weight, f"Layer {name!r} weight", 2)
    if bias is None:
        b = np.zeros(w.shape[1])
    else:
        b = _float_array(bias, f"Layer {name!r} bias", 1)
        if b.shape != (w.shape[1],):
            raise ValueError(f"Layer {name!r}: bias has {b.shape[0]} entries but the weight "
                             f"{w.shape} has {w.shape[1]} outputs; W must be shaped "
                             "[in_features, out_features]")
    return FloatLayer(name, w, b, _activation_name(activation, f"Layer {name!r}"))


def _check_chain(layers):
    for prev, nxt in zip(layers, layers[1:]):
        if nxt.in_features != prev.out_features:
            raise ValueError(
                f"Layer {nxt.name!r} expects {nxt.in_features} inputs but layer {prev.name!r} "
                f"produces {prev.out_features}; every W must be shaped [in_features, "
                "out_features] (transpose PyTorch-style [out, in] weights)")
    return tuple(layers)


def _from_list(model):
    if len(model) == 0:
        raise ValueError("The model is an empty list; give at least one (W, b, activation) layer")
    if all(isinstance(item, FloatLayer) for item in model):
        return _check_chain(list(model))
    layers = []
    for index, item in enumerate(model):
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise TypeError(f"Layer 'fc{index}' must be a (W, b, activation) tuple, not "
                            f"{type(item).__name__}"
                            + (f" of length {len(item)}" if isinstance(item, (tuple, list))
                               else ""))
        layers.append(_make_layer(index, *item))
    return _check_chain(layers)


def _from_sklearn(model):
    kind = type(model).__name__
    if not hasattr(model, "coefs_"):
        raise ValueError(f"The {kind} is not fitted; call fit() before quantizing it")
    hidden = model.activation
    count = len(model.coefs_)
    layers = [_make_layer(i, w, b, hidden if i < count - 1 else None)
              for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_))]
    return _check_chain(layers)


def _torch_leaves(module, path):
    import torch.nn as nn
    if isinstance(module, nn.Sequential):
        for child_name, child in module.named_children():
            yield from _torch_leaves(child, f"{path}.{child_name}" if path else child_name)
    else:
        yield path or "<root>", module


def _from_torch(model):
    import torch.nn as nn
    raw = []  # [weight, bias, activation] per Linear
    for path, module in _torch_leaves(model, ""):
        kind = type(module).__name__
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().double().numpy().T
            bias = None if module.bias is None else module.bias.detach().cpu().double().numpy()
            raw.append([weight, bias, None])
        elif type(module) in (getattr(nn, name) for name in _TORCH_ACTIVATIONS):
            if not raw or raw[-1][2] is not None:
                where = "the start of the model" if not raw else \
                    f"activation {raw[-1][2]!r} of layer 'fc{len(raw) - 1}'"
                raise UnsupportedModelError(
                    f"PyTorch module {path!r} ({kind}) follows {where}; Tessera "
                    "fuses one activation into each Linear, so put exactly one "
                    "activation after a Linear")
            raw[-1][2] = _TORCH_ACTIVATIONS[kind]
        elif type(module) in (getattr(nn, name) for name in _TORCH_NOOPS):
            continue
        else:
            raise UnsupportedModelError(
                f"Unsupported PyTorch layer {path!r} ({kind}); supported: "
                f"{_TORCH_SUPPORTED}, inside nn.Sequential containers")
    if not raw:
        raise UnsupportedModelError("The PyTorch model contains no nn.Linear layer")
    return _check_chain([_make_layer(i, *item) for i, item in enumerate(raw)])


def _is_torch_module(model):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_sklearn_mlp(model):
    cls = type(model)
    return cls.__module__.startswith("sklearn.") and cls.__name__ in ("MLPClassifier",
                                                                      "MLPRegressor")


def import_model(model):
    """Return ``model`` as a tuple of float64 :class:`FloatLayer` objects.

    Raises
    ------
    TypeError
        The model is not a model object Tessera knows (the message lists what is).
    UnsupportedModelError
        One of its layers or activations is not supported (the message lists what is).
    ValueError
        Shapes do not chain or a parameter is NaN/infinite.
    """
    if isinstance(model, (list, tuple)):
        return _from_list(model)
    if _is_sklearn_mlp(model):
        return _from_sklearn(model)
    if _is_torch_module(model):
        return _from_torch(model)
    raise TypeError(f"Cannot quantize a {type(model).__module__}.{type(model).__qualname__}; "
                    f"give {_SUPPORTED_MODELS}")
