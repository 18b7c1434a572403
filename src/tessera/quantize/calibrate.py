"""Activation calibration: observe tensor ranges on real data, derive int8 scale and zero point.

The float model runs on the calibration batch; an observer records the range of every tensor
between layers (the model input, each layer's output after its activation) and, for layers with a
lookup-table activation, of the pre-activation too.

Observers
---------
``"minmax"``
    ``[min(x), max(x)]`` over the whole batch (ONNX Runtime's ``MinMaxCalibrater``).
``"percentile"``
    Cuts ``(100 - p) / 2`` percent of the values from each side: ``[P((100-p)/2),
    P(100 - (100-p)/2)]`` with NumPy's exact (linearly interpolated) percentiles, the asymmetric
    rule of ONNX Runtime's percentile calibrator without its histogram binning.

Scale and zero point (asymmetric int8, ``qmin, qmax = -128, 127``), exactly ONNX Runtime's
``quant_utils.compute_scale_zp``::

    rmin = min(rmin, 0); rmax = max(rmax, 0)                 # zero must be representable
    scale64 = (float64(rmax) - float64(rmin)) / 255
    zero_point = round_half_even(qmin - rmin / scale64)     # float64
    scale = float32(scale64)                                 # scale64 < FLT_MIN: scale 1, zp 0

With ``uint8`` activations ORT gets the same scale and ``zero_point + 128``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .floatmodel import LUT_ACTIVATIONS, apply_activation

__all__ = ["CALIBRATION_METHODS", "TensorRange", "LayerRanges", "activation_qparams",
           "observe_range", "calibrate", "check_calibration_data", "check_graph_calibration",
           "calibrate_graph"]

#: Calibration methods accepted by :func:`tessera.quantize.quantize`.
CALIBRATION_METHODS = ("minmax", "percentile")

_QMIN, _QMAX = -128, 127


@dataclass(frozen=True)
class TensorRange:
    """The observed float range of one tensor, as float32 (ORT stores calibration ranges so)."""

    rmin: np.float32
    rmax: np.float32


@dataclass(frozen=True)
class LayerRanges:
    """Observed ranges around one layer: its input, pre-activation (LUT layers only), output."""

    input: TensorRange
    pre_activation: TensorRange | None
    output: TensorRange


def activation_qparams(rmin, rmax, bits=8):
    """Return ``(scale, zero_point)`` of a ``bits``-wide tensor observed in ``[rmin, rmax]``.

    4 and 8 bits: asymmetric, exactly ONNX Runtime's ``compute_scale_zp(rmin, rmax, qmin, qmax)``
    for float32 ranges; the range is first widened to include 0. 16 bits: symmetric (zero point
    0, ``scale = max(|rmin|, |rmax|) / 32767``) as TFLite's int16 activations — a zero point
    there would fold into the bias as ``zx * colsum(w)``, far beyond the int32 bias.
    Returns ``(numpy.float32, int)``.
    """
    qmin, qmax = (_QMIN, _QMAX) if bits == 8 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    rmin = min(np.float32(rmin), np.float32(0.0))
    rmax = max(np.float32(rmax), np.float32(0.0))
    if not (np.isfinite(rmin) and np.isfinite(rmax)):
        raise ValueError(f"Cannot quantize a tensor with range [{rmin}, {rmax}]")
    if bits == 16:
        absmax = max(-np.float64(rmin), np.float64(rmax))
        scale64 = absmax / np.float64(qmax)
        if scale64 < np.finfo(np.float32).tiny:
            return np.float32(1.0), 0
        return np.float32(scale64), 0
    scale64 = (np.float64(rmax) - np.float64(rmin)) / np.float64(qmax - qmin)
    if scale64 < np.finfo(np.float32).tiny:
        return np.float32(1.0), 0
    zero_point = int(np.round(qmin - np.float64(rmin) / scale64))
    return np.float32(scale64), min(max(zero_point, qmin), qmax)


def observe_range(values, method="minmax", percentile=99.99):
    """Return the :class:`TensorRange` of ``values`` under the observer ``method``."""
    values = np.asarray(values)
    if method == "minmax":
        lo, hi = values.min(), values.max()
    elif method == "percentile":
        cut = (100.0 - percentile) / 2.0
        lo, hi = np.percentile(values, [cut, 100.0 - cut])
    else:
        raise ValueError(f"calibration_method must be one of {CALIBRATION_METHODS}, "
                         f"not {method!r}")
    return TensorRange(np.float32(lo), np.float32(hi))


def check_calibration_data(calibration, in_features):
    """Return the calibration batch as float64 [M, K] after validating it.

    Raises
    ------
    ValueError, TypeError
        Missing, empty, wrongly shaped, non-numeric or non-finite data (the message says how to
        fix it).
    """
    if calibration is None:
        raise ValueError("quantize() needs calibration data: pass calibration=x, a "
                         f"representative float batch [M, {in_features}] of real inputs (a few "
                         "hundred rows is typical)")
    try:
        x = np.asarray(calibration)
    except Exception as exc:
        raise TypeError(f"calibration is not an array: {exc}") from None
    if x.dtype == object or not (np.issubdtype(x.dtype, np.integer)
                                 or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"calibration must be a real numeric array, not dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"calibration must be a 2-D array [M, {in_features}], not shape "
                         f"{x.shape}; reshape it to (samples, features)")
    if x.shape[0] == 0:
        raise ValueError("calibration is empty (0 rows); pass at least one representative "
                         "input row, ideally a few hundred")
    if x.shape[1] != in_features:
        raise ValueError(f"calibration has {x.shape[1]} features but layer 'fc0' expects "
                         f"{in_features} inputs; pass data shaped [M, {in_features}]")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if np.any(bad):
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"calibration contains {int(bad.sum())} NaN/infinite value(s), the "
                         f"first at row {row}, column {col}; drop or impute those rows")
    return x


def _checked(values, layer, what):
    if not np.all(np.isfinite(values)):
        raise ValueError(f"Layer {layer.name!r}: the float {what} overflows to NaN/infinity on "
                         "the calibration data; check the model's weights and the input scaling")
    return values


def calibrate(float_layers, x, method="minmax", percentile=99.99):
    """Run the float model on ``x`` and return one :class:`LayerRanges` per layer.

    Layer *i*'s output range is layer *i + 1*'s input range (the same tensor). For ``relu`` and
    ``relu6`` layers the observed output range starts at 0 by construction.
    """
    observe = lambda values: observe_range(values, method, percentile)  # noqa: E731
    current = observe(x)
    ranges = []
    for layer in float_layers:
        z = _checked(layer.pre_activation(x), layer, "pre-activation")
        pre = observe(z) if layer.activation in LUT_ACTIVATIONS else None
        x = _checked(apply_activation(layer.activation, z), layer, "output")
        out = observe(x)
        if layer.activation in ("relu", "relu6"):
            out = TensorRange(np.float32(0.0), out.rmax)
        ranges.append(LayerRanges(current, pre, out))
        current = out
    return ranges


def check_graph_calibration(calibration, input_shape, layout="NHWC"):
    """Return the calibration batch of a graph as float64 NHWC ``[M, *input_shape]``.

    ``calibration`` is in the source's ``layout`` (NCHW batches are transposed).

    Raises
    ------
    ValueError, TypeError
        Missing, empty, wrongly shaped, non-numeric or non-finite data.
    """
    shape = tuple(input_shape)
    source = (shape[2], shape[0], shape[1]) if layout == "NCHW" and len(shape) == 3 else shape
    if calibration is None:
        raise ValueError("quantize() needs calibration data: pass calibration=x, a "
                         f"representative float batch [M, {', '.join(map(str, source))}] "
                         f"({layout}) of real inputs (a few hundred samples is typical)")
    x = np.asarray(calibration)
    if x.dtype == object or x.dtype.kind not in "iuf":
        raise TypeError(f"calibration must be a real numeric array, not dtype {x.dtype}")
    if x.shape[1:] != source or x.shape[0] == 0:
        raise ValueError(f"calibration has shape {x.shape} but the model takes [M, "
                         f"{', '.join(map(str, source))}] ({layout}) with M >= 1; pass "
                         "samples in the model's own input layout")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"calibration contains {int((~np.isfinite(x)).sum())} NaN/infinite "
                         "value(s); drop or impute those samples")
    return np.transpose(x, (0, 2, 3, 1)) if source != shape else x


def calibrate_graph(graph, x, method="minmax", percentile=99.99):
    """Run the float graph on NHWC ``x`` and return tensor name -> :class:`TensorRange`.

    Every tensor is observed; an output clamped by relu/relu6 starts at 0 by construction.
    """
    ranges = {}

    def observe(name, value):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"Tensor {name!r}: the float model overflows to NaN/infinity on the "
                             "calibration data; check the model's weights and input scaling")
        ranges[name] = observe_range(value, method, percentile)

    graph.forward(x, observe=observe)        # tensors are dropped after their last reader
    for op in graph.ops:
        if op.attrs.get("activation", op.attrs.get("function")) in ("relu", "relu6"):
            ranges[op.output] = TensorRange(np.float32(0.0), ranges[op.output].rmax)
    return ranges
