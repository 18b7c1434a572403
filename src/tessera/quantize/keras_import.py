"""Read the float layers of a Keras ``Sequential`` model (Keras 2 or 3, any backend).

Only the public layer API is used — ``layer.get_weights()``, ``layer.get_config()`` and the class
name — so any object shaped like a Keras Sequential works, and Keras itself is never imported by
Tessera. Supported layers: ``Dense`` (``activation`` linear/relu/relu6/sigmoid/tanh/...),
``Activation``, ``ReLU`` (``max_value`` None or 6, no negative slope or threshold) and the no-ops
``InputLayer``, ``Flatten``, ``Dropout``, ``Reshape`` to one feature axis.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedModelError

__all__ = ["KERAS_LAYERS", "keras_layers"]

#: Keras layer classes Tessera imports.
KERAS_LAYERS = ("Dense", "Activation", "ReLU", "InputLayer", "Flatten", "Dropout", "Reshape")
_NOOPS = ("InputLayer", "Flatten", "Dropout")


def _activation(layer, kind, config):
    if kind == "ReLU":
        if config.get("negative_slope", 0) or config.get("threshold", 0):
            raise UnsupportedModelError(
                f"Keras layer {layer.name!r} (ReLU) has a negative slope or "
                "threshold; only plain ReLU and ReLU(max_value=6) are supported")
        max_value = config.get("max_value")
        if max_value is None:
            return "relu"
        if float(max_value) == 6.0:
            return "relu6"
        raise UnsupportedModelError(
            f"Keras layer {layer.name!r} (ReLU) has max_value={max_value}; "
            "only None (relu) and 6 (relu6) are supported")
    name = config.get("activation", "linear")
    if isinstance(name, dict):                 # serialised activation object
        name = name.get("config", {}).get("name", name.get("class_name"))
    return name


def keras_layers(model):
    """Return ``[(W, b, activation), ...]`` for a Keras Sequential ``model``.

    Raises
    ------
    UnsupportedModelError
        A layer class is not supported (named with the list of supported ones), an activation
        follows a layer that already has one, or the model has no Dense layer.
    """
    layers = []
    for layer in model.layers:
        kind = type(layer).__name__
        config = layer.get_config() if hasattr(layer, "get_config") else {}
        if kind == "Dense":
            weights = layer.get_weights()
            kernel = np.asarray(weights[0], dtype=np.float64)
            bias = np.asarray(weights[1], dtype=np.float64) if len(weights) > 1 else None
            layers.append([kernel, bias, _activation(layer, kind, config)])
        elif kind in ("Activation", "ReLU"):
            act = _activation(layer, kind, config)
            if not layers or layers[-1][2] not in (None, "linear"):
                raise UnsupportedModelError(
                    f"Keras layer {layer.name!r} ({kind}) does not follow a Dense "
                    "layer without activation; Tessera fuses one activation into "
                    "each Dense layer")
            layers[-1][2] = act
        elif kind == "Reshape":
            target = tuple(config.get("target_shape", ()))
            if len(target) != 1:
                raise UnsupportedModelError(
                    f"Keras layer {layer.name!r} (Reshape) reshapes to {target}; "
                    "only a single feature axis is supported")
        elif kind not in _NOOPS:
            raise UnsupportedModelError(
                f"Unsupported Keras layer {layer.name!r} ({kind}); supported: "
                f"{', '.join(KERAS_LAYERS)}")
    if not layers:
        raise UnsupportedModelError("The Keras model contains no Dense layer")
    return [tuple(layer) for layer in layers]
