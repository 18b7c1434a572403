"""The quantized MLP: what the quantizer produces and the compiler and runtime consume.

A :class:`QuantizedLayer` holds one int8 fully-connected layer with everything needed to run it
bit-exactly (docs/numerics.md): symmetric int8 weights, int32 bias, float32 scales, int8-domain zero
points, the requantization mode and the activation. A :class:`QuantizedModel` chains layers; the
output scale and zero point of layer *i* are the input scale and zero point of layer *i + 1*.

Layers whose activation is a lookup table (sigmoid, tanh, ...) requantize the accumulator to an
intermediate "LUT input" scale and zero point (calibrated on the pre-activation), then map the
int8 value through the table to the output scale. :attr:`QuantizedLayer.requant_scale` and
:attr:`QuantizedLayer.requant_zero_point` name the scale the accumulator is requantized to for
every layer, so the compiler never special-cases this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec import REQUANT_MODES, check_operand_bits
from ..spec.packing import operand_dtype
from .floatmodel import FloatLayer

__all__ = ["LAYER_ACTIVATIONS", "QuantizedLayer", "QuantizedModel"]

#: Activation kinds of a quantized layer: clamps applied by the requantizer, or a lookup table.
LAYER_ACTIVATIONS = ("none", "relu", "relu6", "lut")


def _numerics():
    from .. import numerics  # imported on use: numerics and quantize are sibling packages
    return numerics


def _check_scale(name, what, value):
    scale = np.float32(value)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"Layer {name!r}: {what} must be a positive finite float32, not {value!r}")
    return scale


def _check_zero_point(name, what, value, bits=8):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not lo <= int(value) <= hi:
        raise ValueError(f"Layer {name!r}: {what} must be an integer from {lo} to {hi}, "
                         f"not {value!r}")
    return int(value)


def _frozen_array(array):
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class QuantizedLayer:
    """One int8 fully-connected layer, validated on construction (arrays are copied read-only).

    Parameters
    ----------
    name : str
        Layer name, used in summaries and error messages.
    weight : numpy.ndarray
        int8 ``[K, N]``, symmetric (zero point 0), values in ``-127 .. 127``.
    bias : numpy.ndarray
        int32 ``[N]`` with scale ``input_scale * weight_scale``; *not* folded with the input
        zero point (the compiler folds it, see :func:`tessera.numerics.fold_input_zero_point`).
    input_scale : numpy.float32
    input_zero_point : int
        int8 domain, ``-128 .. 127``.
    weight_scale : numpy.ndarray
        float32 ``[N]``; all equal for per-tensor quantization (see :attr:`per_channel`).
    output_scale : numpy.float32
    output_zero_point : int
        Scale and zero point of the layer's int8 output (after the activation).
    mode : str
        Requantization mode, ``"onnx"`` or ``"tflite"``.
    activation : str
        ``"none"``, ``"relu"``, ``"relu6"`` (clamps) or ``"lut"``.
    lut : numpy.ndarray or None
        int8 ``[256]`` when ``activation == "lut"`` (``y = lut[v + 128]``), else None.
    lut_input_scale : numpy.float32 or None
    lut_input_zero_point : int or None
        For ``"lut"`` layers only: the scale and zero point the accumulator is requantized to
        before the table lookup.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    input_scale: np.float32
    input_zero_point: int
    weight_scale: np.ndarray
    output_scale: np.float32
    output_zero_point: int
    mode: str
    activation: str
    lut: np.ndarray | None = None
    lut_input_scale: np.float32 | None = None
    lut_input_zero_point: int | None = None
    input_bits: int = 8
    weight_bits: int = 8

    def __post_init__(self):
        name = self.name
        put = object.__setattr__
        if not isinstance(name, str) or not name:
            raise ValueError(f"Layer name must be a non-empty string, not {name!r}")
        for what in ("input_bits", "weight_bits"):
            put(self, what, check_operand_bits(f"Layer {name!r}: {what}", getattr(self, what)))
        wb, ib = self.weight_bits, self.input_bits
        w = np.asarray(self.weight)
        w_dtype = operand_dtype(wb)
        if w.dtype != w_dtype or w.ndim != 2 or 0 in w.shape:
            raise ValueError(f"Layer {name!r}: weight must be a non-empty {np.dtype(w_dtype)} "
                             f"[K, N] array ({wb}-bit weights), not {w.dtype} {w.shape}")
        w_max = (1 << (wb - 1)) - 1
        if w.size and (int(w.min()) < -w_max or int(w.max()) > w_max):
            bad = int(w.min()) if int(w.min()) < -w_max else int(w.max())
            raise ValueError(f"Layer {name!r}: symmetric int{wb} weights must lie in "
                             f"-{w_max}..{w_max} (found {bad})")
        n = w.shape[1]
        b = np.asarray(self.bias)
        if b.dtype != np.int32 or b.shape != (n,):
            raise ValueError(f"Layer {name!r}: bias must be an int32 array of shape ({n},), "
                             f"not {b.dtype} {b.shape}")
        ws = np.asarray(self.weight_scale)
        if ws.dtype != np.float32 or ws.shape != (n,):
            raise ValueError(f"Layer {name!r}: weight_scale must be a float32 array of shape "
                             f"({n},), not {ws.dtype} {ws.shape}")
        if not (np.all(np.isfinite(ws)) and np.all(ws > 0)):
            raise ValueError(f"Layer {name!r}: weight_scale must be positive and finite")
        put(self, "weight", _frozen_array(w))
        put(self, "bias", _frozen_array(b))
        put(self, "weight_scale", _frozen_array(ws))
        put(self, "input_scale", _check_scale(name, "input_scale", self.input_scale))
        put(self, "output_scale", _check_scale(name, "output_scale", self.output_scale))
        put(self, "input_zero_point",
            _check_zero_point(name, "input_zero_point", self.input_zero_point, ib))
        put(self, "output_zero_point",
            _check_zero_point(name, "output_zero_point", self.output_zero_point, ib))
        if self.mode not in REQUANT_MODES:
            raise ValueError(f"Layer {name!r}: mode must be one of {REQUANT_MODES}, "
                             f"not {self.mode!r}")
        if self.activation not in LAYER_ACTIVATIONS:
            raise ValueError(f"Layer {name!r}: activation must be one of {LAYER_ACTIVATIONS}, "
                             f"not {self.activation!r}")
        if self.activation == "lut" and ib != 8:
            raise ValueError(f"Layer {name!r}: activation 'lut' needs 8-bit activations, not "
                             f"input_bits={ib}; use a clamp activation or 8-bit activations")
        if self.activation == "lut":
            lut = np.asarray(self.lut) if self.lut is not None else None
            if lut is None or lut.dtype != np.int8 or lut.shape != (256,):
                raise ValueError(f"Layer {name!r}: activation 'lut' needs lut, an int8 array "
                                 "of shape (256,)")
            if self.lut_input_scale is None or self.lut_input_zero_point is None:
                raise ValueError(f"Layer {name!r}: activation 'lut' needs lut_input_scale and "
                                 "lut_input_zero_point")
            put(self, "lut", _frozen_array(lut))
            put(self, "lut_input_scale",
                _check_scale(name, "lut_input_scale", self.lut_input_scale))
            put(self, "lut_input_zero_point",
                _check_zero_point(name, "lut_input_zero_point", self.lut_input_zero_point))
        elif (self.lut, self.lut_input_scale, self.lut_input_zero_point) != (None, None, None):
            raise ValueError(f"Layer {name!r}: lut, lut_input_scale and lut_input_zero_point "
                             f"are only allowed with activation 'lut', not {self.activation!r}")

    @property
    def in_features(self):
        """Number of inputs K."""
        return self.weight.shape[0]

    @property
    def out_features(self):
        """Number of outputs N."""
        return self.weight.shape[1]

    @property
    def per_channel(self):
        """Whether the weight scales differ between output channels."""
        return bool(np.any(self.weight_scale != self.weight_scale[0]))

    @property
    def requant_scale(self):
        """Scale the accumulator is requantized to (the LUT input scale for ``"lut"`` layers)."""
        return self.lut_input_scale if self.activation == "lut" else self.output_scale

    @property
    def requant_zero_point(self):
        """Zero point added after requantization (the LUT input zero point for ``"lut"``)."""
        return self.lut_input_zero_point if self.activation == "lut" else self.output_zero_point

    @property
    def clamp_activation(self):
        """The clamp applied after requantization: ``"none"`` for ``"lut"`` layers."""
        return "none" if self.activation == "lut" else self.activation

    @property
    def bounds(self):
        """``(lo, hi)`` of the post-requantization clamp, see docs/numerics.md."""
        return _numerics().activation_bounds(self.clamp_activation, self.requant_scale,
                                             self.requant_zero_point, bits=self.input_bits)

    @property
    def output_bits(self):
        """Width of the output: ``input_bits`` (the next layer's input)."""
        return self.input_bits

    def folded_bias(self, acc_bits=None):
        """Return ``bias - input_zero_point * colsum(weight)`` (int32 [N]) for the hardware.

        Parameters
        ----------
        acc_bits : {32, 48}, optional
            Accumulator width to prove against; default
            :func:`tessera.numerics.default_acc_bits` of the layer's widths.

        Raises
        ------
        OverflowError
            The accumulator could exceed ``acc_bits`` for some input (see
            :func:`tessera.quantize.overflow.prove_accumulator_fits`).
        """
        from .overflow import prove_accumulator_fits
        return prove_accumulator_fits(self.name, self.weight, self.bias, self.input_zero_point,
                                      input_bits=self.input_bits, weight_bits=self.weight_bits,
                                      acc_bits=acc_bits)

    def forward(self, x_q):
        """Return the int8 output ``[M, N]`` for the int8 input ``x_q`` ``[M, K]``."""
        activation = self.lut if self.activation == "lut" else self.activation
        return _numerics().quantized_linear(
            x_q, self.weight, self.bias, x_scale=self.input_scale,
            x_zero_point=self.input_zero_point, w_scale=self.weight_scale,
            y_scale=self.requant_scale, y_zero_point=self.requant_zero_point, mode=self.mode,
            activation=activation, input_bits=self.input_bits, weight_bits=self.weight_bits)


def _check_float_input(x, k, what):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [M, {k}], not shape {x.shape}; "
                         "reshape it to (batch, features)")
    if x.shape[1] != k:
        raise ValueError(f"{what} has {x.shape[1]} features but the model expects {k}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"{what} must be a real numeric array, not {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains NaN or infinity; clean the data first")
    return x


class QuantizedModel:
    """A chain of :class:`QuantizedLayer` objects, plus optional float reference data.

    Parameters
    ----------
    layers : sequence of QuantizedLayer
        Non-empty; shapes, scales, zero points and modes must chain.
    float_layers : sequence of FloatLayer, optional
        The float model the layers were quantized from (used by :meth:`summary`).
    reference_input : numpy.ndarray, optional
        A float sample of the calibration data [M, K] (used by :meth:`summary`).
    info : dict, optional
        JSON-serialisable quantization settings (calibration method, per-channel, ...).
    """

    def __init__(self, layers, *, float_layers=None, reference_input=None, info=None):
        layers = tuple(layers)
        if not layers:
            raise ValueError("A QuantizedModel needs at least one layer")
        for layer in layers:
            if not isinstance(layer, QuantizedLayer):
                raise TypeError(f"layers must be QuantizedLayer objects, not {type(layer)!r}")
        for prev, nxt in zip(layers, layers[1:]):
            if prev.out_features != nxt.in_features:
                raise ValueError(f"Layer {nxt.name!r} has {nxt.in_features} inputs but layer "
                                 f"{prev.name!r} produces {prev.out_features}")
            if (prev.output_scale, prev.output_zero_point) != \
                    (nxt.input_scale, nxt.input_zero_point):
                raise ValueError(f"Layer {nxt.name!r}: input scale/zero point "
                                 f"({nxt.input_scale}, {nxt.input_zero_point}) differ from layer "
                                 f"{prev.name!r}'s output ({prev.output_scale}, "
                                 f"{prev.output_zero_point}); they must chain")
            if prev.input_bits != nxt.input_bits:
                raise ValueError(f"Layer {nxt.name!r} takes {nxt.input_bits}-bit inputs but "
                                 f"layer {prev.name!r} produces {prev.input_bits}-bit outputs")
        modes = {layer.mode for layer in layers}
        self.layers = layers
        self.float_layers = None
        if float_layers is not None:
            float_layers = tuple(float_layers)
            if len(float_layers) != len(layers) or any(
                    not isinstance(f, FloatLayer) or f.weight.shape != q.weight.shape
                    for f, q in zip(float_layers, layers)):
                raise ValueError("float_layers must be FloatLayer objects matching the "
                                 "quantized layers one to one")
            self.float_layers = float_layers
        self.reference_input = None
        if reference_input is not None:
            self.reference_input = np.array(
                _check_float_input(reference_input, self.in_features, "reference_input"),
                dtype=np.float32)
        self.info = dict(info or {})
        self._modes = modes

    @property
    def mode(self):
        """The requantization mode of every layer (``"mixed"`` if they differ)."""
        return next(iter(self._modes)) if len(self._modes) == 1 else "mixed"

    @property
    def input_scale(self):
        """Scale of the int8 model input."""
        return self.layers[0].input_scale

    @property
    def input_zero_point(self):
        """Zero point of the int8 model input."""
        return self.layers[0].input_zero_point

    @property
    def output_scale(self):
        """Scale of the int8 model output."""
        return self.layers[-1].output_scale

    @property
    def output_zero_point(self):
        """Zero point of the int8 model output."""
        return self.layers[-1].output_zero_point

    @property
    def in_features(self):
        """Number of model inputs."""
        return self.layers[0].in_features

    @property
    def input_bits(self):
        """Width of the activations (model input, every layer output, model output)."""
        return self.layers[0].input_bits

    @property
    def weight_bits(self):
        """Widest weight width of the layers."""
        return max(layer.weight_bits for layer in self.layers)

    @property
    def out_features(self):
        """Number of model outputs."""
        return self.layers[-1].out_features

    def quantize_input(self, x):
        """Return the float input ``x`` [M, K] quantized to int8 with the model's input scale."""
        x = _check_float_input(x, self.in_features, "Input")
        return _numerics().quantize_tensor(x, self.input_scale, self.input_zero_point,
                                           mode=self.layers[0].mode, bits=self.input_bits)

    def dequantize_output(self, y_q):
        """Return the int8 output ``y_q`` [M, N] as float32."""
        return _numerics().dequantize_tensor(y_q, self.output_scale, self.output_zero_point)

    def forward_raw(self, x_q):
        """Return the int8 outputs of every layer for the int8 input ``x_q`` (a list)."""
        x_q = np.asarray(x_q)
        dtype = operand_dtype(self.input_bits)
        if x_q.dtype != dtype or x_q.ndim != 2 or x_q.shape[1] != self.in_features:
            raise ValueError(f"Raw input must be an {dtype} array [M, {self.in_features}], "
                             f"not {x_q.dtype} {x_q.shape}; use quantize_input() on float data")
        outputs = []
        for layer in self.layers:
            x_q = layer.forward(x_q)
            outputs.append(x_q)
        return outputs

    def predict(self, x, *, raw=False):
        """Run the bit-exact NumPy reference.

        Parameters
        ----------
        x : numpy.ndarray
            float [M, K]; with ``raw=True`` int8 [M, K] already quantized with
            :attr:`input_scale` / :attr:`input_zero_point`.
        raw : bool
            Return the int8 output instead of the dequantized float32 one.
        """
        x_q = np.asarray(x) if raw else self.quantize_input(x)
        y_q = self.forward_raw(x_q)[-1]
        return y_q if raw else self.dequantize_output(y_q)

    def summary(self, x=None):
        """Return a text table of every layer (see :func:`tessera.quantize.report.summary`)."""
        from .report import summary
        return summary(self, x)

    def save(self, path, *, include_reference=True):
        """Write the model to ``path`` (.npz, no pickle; see :mod:`tessera.quantize.serialize`).

        ``include_reference=False`` omits the float layers and reference input.
        """
        from .serialize import save
        save(self, path, include_reference=include_reference)

    def to_graph(self):
        """Return the chain as a :class:`tessera.graph.QuantizedGraph` (lossless; docs/graph.md)."""
        from ..graph import graph_from_dense_chain
        return graph_from_dense_chain(self)

    def to_onnx(self, path=None, *, raw=False, strict=True):
        """Export as an ONNX QDQ model (see :func:`tessera.quantize.onnx_export.export_onnx`)."""
        from .onnx_export import export_onnx
        if (self.input_bits, self.weight_bits) != (8, 8):
            raise ValueError(f"ONNX export writes int8 QDQ models; this model has "
                             f"{self.input_bits}-bit activations and {self.weight_bits}-bit "
                             "weights: quantize with bits=8 to export")
        return export_onnx(self, path, raw=raw, strict=strict)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`."""
        from .serialize import load
        return load(path)

    def __repr__(self):
        shapes = " -> ".join([str(self.in_features)] + [str(l.out_features) for l in self.layers])
        return f"<QuantizedModel {shapes} mode={self.mode}>"
