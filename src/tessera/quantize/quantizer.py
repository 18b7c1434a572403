"""``quantize()``: post-training static int8 quantization of an MLP.

Pipeline: import the model as float layers → validate the calibration batch → run the float model
on it and observe every tensor's range → derive activation scales/zero points (ORT's formula, see
:mod:`.calibrate`) → quantize weights and biases (:mod:`.weights`) → build lookup tables for
sigmoid/tanh/... → prove each layer's int32 accumulator cannot overflow (:mod:`.overflow`).
"""

from __future__ import annotations

import numpy as np

from ..spec import REQUANT_MODES
from .calibrate import CALIBRATION_METHODS, activation_qparams, calibrate, check_calibration_data
from .floatmodel import LUT_ACTIVATIONS
from .importers import import_model
from .model import QuantizedLayer, QuantizedModel
from .overflow import prove_accumulator_fits
from .prequantized import RUNTIME_MATCHES
from .weights import quantize_bias, quantize_weights

__all__ = ["REFERENCE_ROWS", "quantize"]

#: Rows of the calibration batch kept in the model as the reference input of ``summary()``.
REFERENCE_ROWS = 256

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_bits(bits, weight_bits):
    """Return ``(bits, weight_bits)`` as ints (NumPy integers accepted, ``8.0`` refused)."""
    from ..spec import check_operand_bits
    return check_operand_bits("bits", bits), check_operand_bits("weight_bits", weight_bits)


def _check_options(mode, per_channel, calibration_method, percentile):
    if mode not in REQUANT_MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in REQUANT_MODES)}, "
                         f"not {mode!r}")
    if not isinstance(per_channel, (bool, np.bool_)):
        raise TypeError(f"per_channel must be True or False, not {per_channel!r}")
    if calibration_method not in CALIBRATION_METHODS:
        raise ValueError("calibration_method must be one of "
                         f"{', '.join(repr(m) for m in CALIBRATION_METHODS)}, "
                         f"not {calibration_method!r}")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number)) \
            or not 0 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (0, 100] (e.g. 99.99), "
                         f"not {percentile!r}")


def _check_requant(name, x_scale, w_scale, y_scale, mode):
    from .. import numerics
    try:
        numerics.requant_multipliers(x_scale, w_scale, y_scale, mode)
    except ValueError as exc:
        raise ValueError(f"Layer {name!r}: the requantization multiplier input_scale * "
                         f"weight_scale / output_scale is not supported in mode {mode!r} "
                         f"({exc}); the layer's output range is out of proportion to its "
                         "inputs and weights: check the calibration data") from None


def _quantize_layer(float_layer, ranges, in_qparams, *, mode, per_channel, bits=8,
                    weight_bits=8):
    from .. import numerics
    name = float_layer.name
    peak = float(np.abs(float_layer.weight).max())
    if peak > _FLOAT32_MAX:
        raise ValueError(f"Layer {name!r}: weight magnitude {peak:.3g} does not fit float32; "
                         "rescale the layer")
    in_scale, in_zp = in_qparams
    out_scale, out_zp = activation_qparams(ranges.output.rmin, ranges.output.rmax, bits)
    w_q, w_scale = quantize_weights(float_layer.weight, per_channel=per_channel,
                                    bits=weight_bits)
    b_q = quantize_bias(float_layer.bias, in_scale, w_scale, layer_name=name)
    lut_fields = {}
    activation = float_layer.activation
    if activation in LUT_ACTIVATIONS and bits != 8:
        raise ValueError(f"Layer {name!r}: activation {activation!r} needs the 8-bit lookup "
                         f"table, which {bits}-bit activations do not have; quantize with "
                         "bits=8 or use relu/relu6/identity layers")
    if activation in LUT_ACTIVATIONS:
        lut_scale, lut_zp = activation_qparams(ranges.pre_activation.rmin,
                                               ranges.pre_activation.rmax)
        function = LUT_ACTIVATIONS[activation]
        lut = numerics.make_lut(lambda v: function(v.astype(np.float64)), lut_scale, lut_zp,
                                out_scale, out_zp, mode=mode)
        lut_fields = {"lut": lut, "lut_input_scale": lut_scale, "lut_input_zero_point": lut_zp}
        activation = "lut"
    requant_scale = lut_fields.get("lut_input_scale", out_scale)
    _check_requant(name, in_scale, w_scale, requant_scale, mode)
    prove_accumulator_fits(name, w_q, b_q, in_zp, input_bits=bits, weight_bits=weight_bits)
    return QuantizedLayer(
        name=name, weight=w_q, bias=b_q, input_scale=in_scale, input_zero_point=in_zp,
        weight_scale=w_scale, output_scale=out_scale, output_zero_point=out_zp, mode=mode,
        activation=activation, input_bits=bits, weight_bits=weight_bits, **lut_fields)


#: What a quantized graph's kernels are bit-identical to, per mode (docs/numerics.md).
_GRAPH_MATCHES = {"onnx": "ONNX Runtime CPU int8 kernels (mode 'onnx', docs/numerics.md)",
                  "tflite": "TFLite Micro reference kernels (mode 'tflite', docs/numerics.md)"}


def _quantize_float_graph(graph, source, calibration, *, mode, per_channel, calibration_method,
                          percentile, bits, weight_bits):
    from .calibrate import check_graph_calibration
    from .graph_quantizer import quantize_graph
    if (bits, weight_bits) != (8, 8):
        raise ValueError(f"The {source} is a graph (convolutions, pools or branches), which "
                         f"Tessera quantizes to int8 only, not {bits}-bit activations/"
                         f"{weight_bits}-bit weights: quantize with bits=8")
    mode = "onnx" if mode is None else mode
    _check_options(mode, per_channel, calibration_method, percentile)
    x = check_graph_calibration(calibration, graph.input_shape, graph.input_layout)
    info = {"calibration_method": calibration_method, "percentile": float(percentile),
            "per_channel": bool(per_channel), "calibration_rows": int(x.shape[0]),
            "bits": 8, "weight_bits": 8, "source": source, "matches": _GRAPH_MATCHES[mode]}
    return quantize_graph(graph, x, mode=mode, per_channel=per_channel,
                          calibration_method=calibration_method, percentile=percentile,
                          info=info)


def quantize(model, calibration=None, *, mode=None, per_channel=True,
             calibration_method="minmax", percentile=99.99, bits=8, weight_bits=None):
    """Quantize a trained MLP to intN (default int8) for Tessera.

    Parameters
    ----------
    model : list of (W, b, activation), sklearn MLP, torch nn.Module, Keras Sequential, ONNX or
        TFLite model (path, bytes or ``onnx.ModelProto``)
        ``W`` is shaped ``[in_features, out_features]``; see :mod:`tessera.quantize.importers`.
        Pre-quantized ONNX (QDQ/QOperator) and int8 TFLite models are imported with their
        parameters unchanged (no calibration); see :mod:`tessera.quantize.sources`.
    calibration : array_like, shape [M, K]
        Representative real inputs (required for float models): activation ranges are observed
        on them.
    mode : {"onnx", "tflite"} or None
        Requantization rule of every layer (docs/numerics.md). None: ``"onnx"``, or for pre-quantized
        models the rule of their runtime.
    per_channel : bool
        One weight scale per output channel (default) or one per layer.
    calibration_method : {"minmax", "percentile"}
        Range observer, see :mod:`tessera.quantize.calibrate`.
    percentile : float
        For ``"percentile"``: the central percentage of values kept, in (0, 100].
    bits : {4, 8, 16}
        Activation width (model input, every layer output) and, unless ``weight_bits`` is
        given, weight width. 16-bit activations are symmetric (zero point 0); the lookup-table
        activations (sigmoid, tanh, ...) need 8 bits. Pre-quantized models keep their widths
        (int8) and refuse other values.
    weight_bits : {4, 8, 16}, optional
        Weight width when it differs from ``bits``.

    Returns
    -------
    QuantizedModel or tessera.graph.QuantizedGraph
        A chain of dense layers is a :class:`QuantizedModel` (it runs on the accelerator), which
        also holds the float layers and the first :data:`REFERENCE_ROWS` calibration rows, so
        ``summary()`` can report the error against float. A float CNN or other DAG (a real
        Keras model, a float ONNX model with convolutions, pools or residual additions, a
        PyTorch module with Conv2d/BatchNorm2d/pooling modules; see
        :mod:`tessera.quantize.graph_sources`) is quantized to a
        :class:`~tessera.graph.QuantizedGraph` (int8, per-channel weights,
        :mod:`tessera.quantize.graph_quantizer`); its ``calibration`` is shaped like the
        model's input (``[M, H, W, C]`` for Keras, ``[M, C, H, W]`` for ONNX and PyTorch).

    Raises
    ------
    TypeError, ValueError
        Unsupported model or layer, bad options, bad or missing calibration data, NaN/inf
        parameters, shape mismatches (messages name the layer and the fix).
    OverflowError
        A bias or an accumulator cannot fit int32 (the message names the layer and K).
    """
    from .graph_sources import float_graph_source
    from .sources import resolve_source
    weight_bits = bits if weight_bits is None else weight_bits
    bits, weight_bits = _check_bits(bits, weight_bits)
    if mode is not None:
        _check_options(mode, per_channel, calibration_method, percentile)
    graph_source = float_graph_source(model, calibration)
    if graph_source is not None and graph_source[0].dense_layers() is None:
        return _quantize_float_graph(*graph_source, calibration, mode=mode,
                                     per_channel=per_channel,
                                     calibration_method=calibration_method,
                                     percentile=percentile, bits=bits, weight_bits=weight_bits)
    if graph_source is not None:                  # a dense chain: a QuantizedModel
        if calibration is None:
            raise ValueError(f"The {graph_source[1]} is a float model: quantizing it needs "
                             "calibration data (calibration=x, a representative float batch "
                             "[M, in_features])")
        kind, payload, source = "float", list(graph_source[0].dense_layers()), graph_source[1]
    else:
        kind, payload, source = resolve_source(model, calibration=calibration, mode=mode)
    if kind == "quantized":
        if (bits, weight_bits) != (8, 8):
            raise ValueError(f"{source or 'This model'} is already quantized to int8; it cannot "
                             f"be re-quantized to {bits}-bit activations/{weight_bits}-bit "
                             "weights: quantize the float model instead")
        return payload
    mode = "onnx" if mode is None else mode
    _check_options(mode, per_channel, calibration_method, percentile)
    float_layers = import_model(payload)
    x = check_calibration_data(calibration, float_layers[0].in_features)
    ranges = calibrate(float_layers, x, calibration_method, percentile)
    qparams = activation_qparams(ranges[0].input.rmin, ranges[0].input.rmax, bits)
    layers = []
    for float_layer, layer_ranges in zip(float_layers, ranges):
        layer = _quantize_layer(float_layer, layer_ranges, qparams, mode=mode,
                                per_channel=bool(per_channel), bits=bits,
                                weight_bits=weight_bits)
        layers.append(layer)
        qparams = (layer.output_scale, layer.output_zero_point)
    info = {"calibration_method": calibration_method, "percentile": float(percentile),
            "per_channel": bool(per_channel), "calibration_rows": int(x.shape[0]),
            "bits": bits, "weight_bits": weight_bits,
            "source": source or f"{type(model).__module__}.{type(model).__qualname__}",
            "matches": RUNTIME_MATCHES[mode] if (bits, weight_bits) == (8, 8) else
            f"Tessera's {mode} rule on int{bits} activations/int{weight_bits} weights (the "
            "runtimes are matched for int8 only)"}
    return QuantizedModel(layers, float_layers=float_layers,
                          reference_input=x[:REFERENCE_ROWS], info=info)
