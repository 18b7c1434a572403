"""The float reference MLP every importer normalises a user model to.

A :class:`FloatLayer` is one fully-connected layer ``y = act(x @ W + b)`` with ``W`` shaped
``[in_features, out_features]``. Weights are kept in float64 so that float32 sources (PyTorch,
ONNX) and float64 sources (scikit-learn, NumPy) are represented exactly; the quantizer rounds them
to float32 first, as an exported ONNX or TFLite file would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FLOAT_ACTIVATIONS", "CLAMP_ACTIVATIONS", "LUT_ACTIVATIONS",
    "FloatLayer", "apply_activation", "float_forward",
]


def _sigmoid(z):
    # Split by sign so that exp never overflows (no RuntimeWarning on large |z|).
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _silu(z):
    return z * _sigmoid(z)


def _hardsigmoid(z):
    return np.clip(z / 6.0 + 0.5, 0.0, 1.0)


def _hardswish(z):
    return z * _hardsigmoid(z)


#: Activations applied exactly by the requantizer's clamp (docs/numerics.md).
CLAMP_ACTIVATIONS = {
    "none": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "relu6": lambda z: np.clip(z, 0.0, 6.0),
}

#: Activations realised by the 256-entry int8 lookup table after requantization.
LUT_ACTIVATIONS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "silu": _silu,
    "hardsigmoid": _hardsigmoid,
    "hardswish": _hardswish,
}

#: Every activation name a float layer may carry, mapped to its float function.
FLOAT_ACTIVATIONS = {**CLAMP_ACTIVATIONS, **LUT_ACTIVATIONS}


def apply_activation(name, z):
    """Return ``act(z)`` for the activation called ``name`` (float64 in, float64 out)."""
    return FLOAT_ACTIVATIONS[name](z)


@dataclass(frozen=True)
class FloatLayer:
    """One float fully-connected layer ``y = act(x @ weight + bias)``.

    Parameters
    ----------
    name : str
        Layer name used in summaries and error messages (e.g. ``"fc0"`` or a PyTorch path).
    weight : numpy.ndarray
        float64 ``[in_features, out_features]``.
    bias : numpy.ndarray
        float64 ``[out_features]``.
    activation : str
        A key of :data:`FLOAT_ACTIVATIONS`.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    activation: str

    def __post_init__(self):
        if self.activation not in FLOAT_ACTIVATIONS:
            raise ValueError(
                f"Layer {self.name!r}: unknown activation {self.activation!r}; use one of "
                f"{', '.join(repr(a) for a in FLOAT_ACTIVATIONS)}")
        w, b = self.weight, self.bias
        if not (isinstance(w, np.ndarray) and w.dtype == np.float64 and w.ndim == 2):
            raise TypeError(f"Layer {self.name!r}: weight must be a float64 2-D array")
        if not (isinstance(b, np.ndarray) and b.dtype == np.float64 and b.shape == w.shape[1:]):
            raise TypeError(
                f"Layer {self.name!r}: bias must be a float64 array of shape ({w.shape[1]},)")

    @property
    def in_features(self):
        """Number of inputs K."""
        return self.weight.shape[0]

    @property
    def out_features(self):
        """Number of outputs N."""
        return self.weight.shape[1]

    def pre_activation(self, x):
        """Return ``x @ weight + bias`` in float64."""
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias

    def forward(self, x):
        """Return ``act(x @ weight + bias)`` in float64."""
        return apply_activation(self.activation, self.pre_activation(x))


def float_forward(layers, x):
    """Run the float MLP ``layers`` on ``x`` [M, K] and return the float64 output."""
    y = np.asarray(x, dtype=np.float64)
    for layer in layers:
        y = layer.forward(y)
    return y
