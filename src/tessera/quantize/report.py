"""The per-layer summary table of a :class:`~tessera.quantize.QuantizedModel`.

Besides shapes, scales, zero points, activation and mode, the table reports each layer's error
against the float model: the quantized chain and the float chain run on the same input (the
reference rows kept from calibration, or data passed in), and layer *i*'s dequantized int8 output
is compared with the float output of layer *i* — so the error accumulates down the table as it
does in deployment. ``err/LSB`` is the maximum error in units of the layer's output scale.
"""

from __future__ import annotations

import numpy as np

from .floatmodel import float_forward

__all__ = ["layer_errors", "summary"]


def layer_errors(qmodel, x):
    """Return ``[(max_abs_error, rms_error), ...]`` per layer on float input ``x`` [M, K].

    Raises
    ------
    ValueError
        The model carries no float reference layers (e.g. it was loaded from a file saved
        without them).
    """
    if qmodel.float_layers is None:
        raise ValueError("This QuantizedModel has no float reference layers (it was saved "
                         "without them); errors against float need the model from quantize()")
    from .. import numerics
    outputs = qmodel.forward_raw(qmodel.quantize_input(x))
    reference = np.asarray(x, dtype=np.float64)
    errors = []
    for layer, float_layer, y_q in zip(qmodel.layers, qmodel.float_layers, outputs):
        reference = float_forward([float_layer], reference)
        y = numerics.dequantize_tensor(y_q, layer.output_scale, layer.output_zero_point)
        diff = y.astype(np.float64) - reference
        errors.append((float(np.abs(diff).max()), float(np.sqrt(np.mean(diff * diff)))))
    return errors


def _scale_range(scale):
    lo, hi = float(scale.min()), float(scale.max())
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}..{hi:.3g}"


def summary(qmodel, x=None):
    """Return a text table describing every layer of ``qmodel``.

    Parameters
    ----------
    qmodel : QuantizedModel
    x : numpy.ndarray, optional
        Float input [M, K] for the error columns; defaults to the model's reference input. The
        error columns show ``-`` when neither input nor float layers are available.
    """
    if x is None:
        x = qmodel.reference_input
    errors = None
    if x is not None and qmodel.float_layers is not None:
        errors = layer_errors(qmodel, x)
    info = qmodel.info
    head = [f"QuantizedModel {qmodel.in_features} -> "
            + " -> ".join(str(layer.out_features) for layer in qmodel.layers)
            + f", mode {qmodel.mode!r}, input scale {float(qmodel.input_scale):.6g} "
            f"zp {qmodel.input_zero_point}"]
    if info:
        head.append(", ".join(f"{key} {value}" for key, value in info.items()))
    columns = ("layer", "shape", "activation", "w scale", "per-ch", "in scale", "in zp",
               "out scale", "out zp", "lut in (scale, zp)", "mode", "max|err|", "rms err",
               "err/LSB")
    rows = []
    for i, layer in enumerate(qmodel.layers):
        float_act = qmodel.float_layers[i].activation if qmodel.float_layers else None
        activation = layer.activation if float_act is None or float_act == layer.activation \
            else f"{layer.activation}:{float_act}"
        lut = "-" if layer.activation != "lut" else \
            f"{float(layer.lut_input_scale):.3g}, {layer.lut_input_zero_point}"
        err = ("-", "-", "-") if errors is None else (
            f"{errors[i][0]:.3g}", f"{errors[i][1]:.3g}",
            f"{errors[i][0] / float(layer.output_scale):.2f}")
        rows.append((layer.name, f"{layer.in_features}x{layer.out_features}", activation,
                     _scale_range(layer.weight_scale), "yes" if layer.per_channel else "no",
                     f"{float(layer.input_scale):.4g}", str(layer.input_zero_point),
                     f"{float(layer.output_scale):.4g}", str(layer.output_zero_point), lut,
                     layer.mode, *err))
    widths = [max(len(c), *(len(r[j]) for r in rows)) for j, c in enumerate(columns)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa
    table = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in rows]
    return "\n".join(head + table)
