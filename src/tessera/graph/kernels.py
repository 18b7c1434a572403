"""The reference kernel call of each operation kind (docs/graph.md, Operations).

Each function takes ``(mode, attrs, arrays, inputs, output)``: the graph's requantization mode
name, the checked attributes, the input arrays (activations ``[B, *shape]``, constants as
stored; None for an absent bias), the input :class:`~tessera.graph.Tensor` objects (for their
quantization) and the output tensor; it returns the output array ``[B, *output.shape]``. The
arithmetic is in :mod:`tessera.numerics` (:mod:`~tessera.numerics.cnn` and the mode's kernel
module, ``get_mode(mode).ops``); nothing here rounds or requantizes on its own.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fully_connected", "conv2d", "depthwise_conv2d", "average_pool2d", "max_pool2d",
           "mean", "add", "mul", "pad", "reshape", "concatenate", "softmax", "relu", "relu6",
           "lut"]


def _ops(mode):
    from ..numerics.modes import get_mode
    return get_mode(mode).ops


def _cnn():
    from ..numerics import cnn
    return cnn


def _q(tensor):
    """Return ``(scale float32, zero_point int)`` of a per-tensor quantized tensor."""
    return tensor.qparams.scalar_scale, tensor.qparams.scalar_zero_point


def _io(inputs, output):
    (xs, xz), (ys, yz) = _q(inputs[0]), _q(output)
    return {"x_scale": xs, "x_zero_point": xz, "y_scale": ys, "y_zero_point": yz}


def _weight_scale(weight, channels):
    scale = weight.qparams.scale
    return np.broadcast_to(scale, (channels,)).astype(np.float32) if scale.ndim == 0 else scale


def _bias(bias, channels):
    return np.zeros(channels, np.int32) if bias is None else bias


def fully_connected(mode, attrs, arrays, inputs, output):
    """Run FULLY_CONNECTED with :func:`tessera.numerics.quantized_linear`."""
    from ..numerics import quantized_linear
    x, w, b = arrays
    n = w.shape[1]
    io = _io(inputs, output)
    return quantized_linear(
        x, w, _bias(b, n), x_scale=io["x_scale"], x_zero_point=io["x_zero_point"],
        w_scale=_weight_scale(inputs[1], n), y_scale=io["y_scale"],
        y_zero_point=io["y_zero_point"], mode=mode, activation=attrs["activation"],
        input_bits=inputs[0].qparams.bits, weight_bits=inputs[1].qparams.bits)


def _conv_args(attrs, inputs, output, channels):
    return dict(_io(inputs, output), w_scale=_weight_scale(inputs[1], channels),
                stride=attrs["stride"], dilation=attrs["dilation"], padding=attrs["padding"],
                activation=attrs["activation"], bits=output.qparams.bits)


def conv2d(mode, attrs, arrays, inputs, output):
    """Run CONV_2D with the mode's ``conv2d``."""
    x, w, b = arrays
    oc = w.shape[0]
    return _ops(mode).conv2d(x, w, _bias(b, oc), **_conv_args(attrs, inputs, output, oc))


def depthwise_conv2d(mode, attrs, arrays, inputs, output):
    """Run DEPTHWISE_CONV_2D with the mode's ``depthwise_conv2d``."""
    x, w, b = arrays
    channels = w.shape[3]
    return _ops(mode).depthwise_conv2d(x, w, _bias(b, channels),
                                       depth_multiplier=attrs["depth_multiplier"],
                                       **_conv_args(attrs, inputs, output, channels))


def _pool_args(attrs, inputs, output):
    return dict(_io(inputs, output), pool=attrs["pool"], stride=attrs["stride"],
                padding=attrs["padding"], activation=attrs["activation"])


def average_pool2d(mode, attrs, arrays, inputs, output):
    """Run AVERAGE_POOL_2D with the mode's ``average_pool2d`` (in-bounds taps only)."""
    unsigned = {"unsigned": True} if attrs["unsigned"] else {}     # ONNX uint8 models only
    return _ops(mode).average_pool2d(arrays[0], **_pool_args(attrs, inputs, output), **unsigned)


def max_pool2d(mode, attrs, arrays, inputs, output):
    """Run MAX_POOL_2D with the mode's ``max_pool2d`` (padded taps ignored)."""
    return _ops(mode).max_pool2d(arrays[0], **_pool_args(attrs, inputs, output))


def mean(mode, attrs, arrays, inputs, output):
    """Run MEAN over H and W with the mode's ``mean_hw``."""
    return _ops(mode).mean_hw(arrays[0], keepdims=attrs["keepdims"], **_io(inputs, output))


def add(mode, attrs, arrays, inputs, output):
    """Run ADD with the mode's ``add`` (``unsigned``: rounded as on the source's uint8 values)."""
    (a_s, a_z), (b_s, b_z), (y_s, y_z) = _q(inputs[0]), _q(inputs[1]), _q(output)
    unsigned = {"unsigned": True} if attrs["unsigned"] else {}     # ONNX uint8 models only
    return _ops(mode).add(arrays[0], arrays[1], a_scale=a_s, a_zero_point=a_z, b_scale=b_s,
                          b_zero_point=b_z, y_scale=y_s, y_zero_point=y_z,
                          activation=attrs["activation"], **unsigned)


def mul(mode, attrs, arrays, inputs, output):
    """Run MUL with the mode's ``mul`` (mode "tflite": TFLite Micro's; no other mode has one)."""
    ops = _ops(mode)
    if not hasattr(ops, "mul"):
        raise ValueError(f"MUL has no kernel in mode {mode!r}; Tessera imports MUL from TFLite "
                         "models in mode 'tflite'")
    (a_s, a_z), (b_s, b_z), (y_s, y_z) = _q(inputs[0]), _q(inputs[1]), _q(output)
    return ops.mul(arrays[0], arrays[1], a_scale=a_s, a_zero_point=a_z, b_scale=b_s,
                   b_zero_point=b_z, y_scale=y_s, y_zero_point=y_z,
                   activation=attrs["activation"])


def pad(mode, attrs, arrays, inputs, output):
    """Run PAD with the input zero point (the batch axis is not padded)."""
    paddings = ((0, 0),) + tuple(attrs["paddings"])
    return _cnn().pad(arrays[0], paddings, value=_q(inputs[0])[1])


def reshape(mode, attrs, arrays, inputs, output):
    """Run RESHAPE to the per-sample shape, keeping the batch axis."""
    x = arrays[0]
    return x.reshape((x.shape[0],) + tuple(attrs["shape"]))


def concatenate(mode, attrs, arrays, inputs, output):
    """Run CONCATENATION with the mode's ``concatenate`` (requantizing differing inputs)."""
    axis = attrs["axis"] % len(output.shape) + 1   # past the batch axis
    y_s, y_z = _q(output)
    return _ops(mode).concatenate(list(arrays), x_scales=[_q(t)[0] for t in inputs],
                                  x_zero_points=[_q(t)[1] for t in inputs], y_scale=y_s,
                                  y_zero_point=y_z, axis=axis)


def softmax(mode, attrs, arrays, inputs, output):
    """Run SOFTMAX over the last axis with the mode's ``softmax``."""
    return _ops(mode).softmax(arrays[0], beta=attrs["beta"], **_io(inputs, output))


def _clamp(kind, arrays, output):
    from ..numerics import activation_bounds
    scale, zero_point = _q(output)
    lo, hi = activation_bounds(kind, scale, zero_point, bits=output.qparams.bits)
    return np.clip(arrays[0], lo, hi).astype(arrays[0].dtype)


def relu(mode, attrs, arrays, inputs, output):
    """Run RELU as a clamp on the (shared) quantization of input and output."""
    return _clamp("relu", arrays, output)


def relu6(mode, attrs, arrays, inputs, output):
    """Run RELU6 as a clamp on the (shared) quantization of input and output."""
    return _clamp("relu6", arrays, output)


def lut(mode, attrs, arrays, inputs, output):
    """Run a table activation: ``y = table[x + 128]``."""
    x, table = arrays
    return table[x.astype(np.int16) + 128]
