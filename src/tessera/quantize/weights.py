"""Symmetric intN weights and int32 biases, computed as ONNX Runtime's static quantizer does.

Weights (symmetric, zero point 0, restricted range ``-127 .. 127`` — ORT's
``ONNX_INT_TYPE_SYMMETRIC_RANGE`` for int8 and TFLite's int8 weight spec alike; -128 is never
produced, so ``-w`` is always representable)::

    w32   = float32(W)                                   # as stored in an ONNX/TFLite file
    absmax = max|w32| over the channel (per channel) or the tensor (per tensor)
    scale = float32(float64(2 * absmax) / 254)           # absmax == 0: scale 1
    w_q   = clip(round_half_even(w32 / scale), -127, 127)  # float32 division

Bias (int32, zero point 0, scale ``float32(sx * sw)`` computed in float32)::

    b_q = round_half_even(float64(float32(b)) / float64(float32(sx) * float32(sw)))

ONNX Runtime clips a bias that overflows int32 with a warning; Tessera refuses it instead.
"""

from __future__ import annotations

import numpy as np

from ..spec.packing import operand_dtype

__all__ = ["weight_qparams", "quantize_weights", "quantize_bias"]

_WMAX = 127
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def weight_qparams(weight, *, per_channel=True, bits=8):
    """Return the float32 weight scale [N] of ``weight`` [K, N] (per-tensor: N equal values).

    ``bits``-wide weights use the restricted symmetric range ``±(2^(bits-1) - 1)`` (ORT's rule
    generalised: 127 for int8, 7 for int4, 32767 for int16).
    """
    wmax = (1 << (bits - 1)) - 1
    w32 = np.asarray(weight, dtype=np.float32)
    absmax = np.abs(w32).max(axis=0) if per_channel else np.full(w32.shape[1], np.abs(w32).max())
    scale64 = (2.0 * absmax.astype(np.float64)) / (2 * wmax)
    return np.where(scale64 < np.finfo(np.float32).tiny, 1.0, scale64).astype(np.float32)


def quantize_weights(weight, *, per_channel=True, bits=8):
    """Return ``(w_q [K, N], scale float32 [N])`` for the float weight ``[K, N]``.

    ``w_q`` is int8 for 4- and 8-bit weights, int16 for 16-bit ones.
    """
    wmax = (1 << (bits - 1)) - 1
    w32 = np.asarray(weight, dtype=np.float32)
    scale = weight_qparams(w32, per_channel=per_channel, bits=bits)
    w_q = np.clip(np.round(w32 / scale), -wmax, wmax).astype(operand_dtype(bits))
    return w_q, scale


def quantize_bias(bias, input_scale, weight_scale, *, layer_name="layer"):
    """Return the int32 bias ``round(b / (sx * sw))``.

    Raises
    ------
    OverflowError
        Some channel does not fit int32 (the message names the layer, the channel and the fix).
    """
    bias_scale = np.float32(input_scale) * np.asarray(weight_scale, dtype=np.float32)
    b32 = np.asarray(bias, dtype=np.float32).astype(np.float64)
    b_q = np.round(b32 / bias_scale.astype(np.float64))
    bad = (b_q < _INT32_MIN) | (b_q > _INT32_MAX)
    if np.any(bad):
        c = int(np.flatnonzero(bad)[0])
        raise OverflowError(
            f"Layer {layer_name!r}: bias of output channel {c} ({float(b32[c]):.6g}) divided by "
            f"its scale input_scale*weight_scale = {float(bias_scale[c]):.6g} is "
            f"{float(b_q[c]):.6g}, beyond int32; the bias is out of proportion to the inputs and "
            "weights: rescale the layer's inputs (e.g. standardise the data) or retrain with "
            "weight decay")
    return b_q.astype(np.int32)
