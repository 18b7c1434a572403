"""The quantized fully-connected layer: the reference every other Tessera layer is checked against.

    acc[m, n] = sum_k (x[m, k] - zx) * w[k, n] + b[n]              (exact; must fit acc_bits)
    y[m, n]   = clamp(requant(acc[m, n], n) + zy, lo, hi)          (input_bits), optional LUT

Operands are ``input_bits``/``weight_bits`` wide (4, 8 or 16; held in int8 arrays up to 8 bits,
int16 arrays for 16); the output has the input's width (it is the next layer's input).
"""

from __future__ import annotations

import numpy as np

from ._checks import ACC_BITS, check_bits, check_int_array, check_operands, check_zero_point, \
    int_range
from .matmul import fold_input_zero_point, integer_matmul
from .modes import get_mode
from .multipliers import requant_multipliers
from .requant import activation_bounds, postprocess

__all__ = ["quantized_linear", "linear_accumulators", "default_acc_bits"]


def default_acc_bits(input_bits, weight_bits) -> int:
    """Return the accumulator width a configuration picks: 32 up to 24 product bits, else 48."""
    return 32 if input_bits + weight_bits <= 24 else 48


def linear_accumulators(x_q, w_q, bias_q, x_zero_point, *, input_bits=8, weight_bits=8,
                        acc_bits=None) -> np.ndarray:
    """Return the exact accumulators ``(x - zx) @ w + b`` as int64.

    Parameters
    ----------
    x_q : numpy.ndarray of int8 (int16 for 16 bits), shape [M, K]
    w_q : numpy.ndarray of int8 (int16 for 16 bits), shape [K, N]
    bias_q : numpy.ndarray of int32, shape [N], or None
    x_zero_point : int
    input_bits, weight_bits : {4, 8, 16}
        Operand widths; the values must fit them.
    acc_bits : {32, 48}, optional
        Accumulator width; default :func:`default_acc_bits`.

    Raises
    ------
    OverflowError
        An accumulator does not fit ``acc_bits`` (the message names the row and output channel).
    """
    check_operands("x_q", x_q, check_bits("input_bits", input_bits), ndim=2)
    check_operands("w_q", w_q, check_bits("weight_bits", weight_bits), ndim=2)
    if acc_bits is None:
        acc_bits = default_acc_bits(input_bits, weight_bits)
    lo, hi = int_range(check_bits("acc_bits", acc_bits, ACC_BITS))
    if w_q.shape[0] != x_q.shape[1]:
        raise ValueError(f"w_q must have shape ({x_q.shape[1]}, N) to match x_q of shape "
                         f"{x_q.shape}, not {w_q.shape}")
    bias_eff = fold_input_zero_point(w_q, bias_q, x_zero_point, input_bits=input_bits,
                                     weight_bits=weight_bits)
    acc = integer_matmul(x_q, w_q)
    acc += bias_eff
    if acc.size and (acc.min() < lo or acc.max() > hi):
        bad = (acc < lo) | (acc > hi)
        m, n = (int(i) for i in np.unravel_index(np.flatnonzero(bad)[0], acc.shape))
        raise OverflowError(f"Accumulator of output channel {n} (row {m}) = {int(acc[m, n])} "
                            f"does not fit int{acc_bits}; split K or reduce the weights")
    return acc


def quantized_linear(x_q, w_q, bias_q, *, x_scale, x_zero_point, w_scale, y_scale,
                     y_zero_point, mode="onnx", activation="none", input_bits=8, weight_bits=8,
                     acc_bits=None) -> np.ndarray:
    """Return the output of a quantized fully-connected layer, exactly as docs/numerics.md.

    Parameters
    ----------
    x_q : numpy.ndarray of int8 (int16 for 16 bits), shape [M, K]
        Quantized input, ``input_bits`` wide.
    w_q : numpy.ndarray of int8 (int16 for 16 bits), shape [K, N]
        Symmetric quantized weights (zero point 0), ``weight_bits`` wide.
    bias_q : numpy.ndarray of int32, shape [N], or None
        Bias at scale ``x_scale * w_scale`` (not folded with the input zero point).
    x_scale, y_scale : float
        Input and output scales (float32).
    x_zero_point, y_zero_point : int
        Input and output zero points (``input_bits`` wide).
    w_scale : float or array_like [N]
        Weight scale, per tensor or per output channel.
    mode : str or RequantMode
        A name in ``tessera.numerics.modes.MODES``.
        Requantization rule (see ``docs/numerics.md``).
    activation : {"none", "relu", "relu6"} or numpy.ndarray of int8 [256]
        Fused activation: a clamp, or a lookup table ``y = lut[v + 128]`` (8-bit only).
    input_bits, weight_bits : {4, 8, 16}
        Operand widths; the output is ``input_bits`` wide.
    acc_bits : {32, 48}, optional
        Accumulator width; default :func:`default_acc_bits`. Mode "tflite" needs 32.

    Returns
    -------
    numpy.ndarray of int8 (int16 for 16-bit inputs), shape [M, N]

    Raises
    ------
    TypeError, ValueError
        An argument has the wrong dtype, shape or value (the message names it).
    OverflowError
        An accumulator does not fit ``acc_bits``, or the folded bias does not fit int32.
    """
    requant_mode = get_mode(mode)
    check_operands("x_q", x_q, check_bits("input_bits", input_bits), ndim=2)
    check_operands("w_q", w_q, check_bits("weight_bits", weight_bits), ndim=2)
    if acc_bits is None:
        acc_bits = default_acc_bits(input_bits, weight_bits)
    check_bits("acc_bits", acc_bits, ACC_BITS)
    n = w_q.shape[1]
    if w_q.shape[0] != x_q.shape[1]:
        raise ValueError(f"w_q must have shape ({x_q.shape[1]}, N) to match x_q of shape "
                         f"{x_q.shape}, not {w_q.shape}")
    if bias_q is not None:
        check_int_array("bias_q", bias_q, np.int32, shape=(n,))
    sw = np.asarray(w_scale)
    if sw.ndim == 1 and sw.shape != (n,):
        raise ValueError(f"w_scale must be a scalar or shape ({n},), not shape {sw.shape}")
    lut = None
    if isinstance(activation, np.ndarray):
        if activation.dtype != np.int8 or activation.shape != (256,):
            raise ValueError("activation lookup table must be an int8 array of shape (256,), "
                             f"not {activation.dtype} {activation.shape}")
        lut = activation
    elif activation == "lut":
        raise ValueError("activation='lut' needs the table itself: pass the int8 [256] array")
    if lut is not None and input_bits != 8:
        raise ValueError(f"A lookup table applies to 8-bit activations only, not "
                         f"input_bits={input_bits}; use a clamp activation (none, relu, relu6)")
    requant_mode.check_acc_bits(acc_bits)
    zy = check_zero_point("y_zero_point", y_zero_point, input_bits)
    lo, hi = activation_bounds(activation, y_scale, zy, bits=input_bits)
    multiplier, shift = requant_multipliers(x_scale, w_scale, y_scale, mode)
    acc = linear_accumulators(x_q, w_q, bias_q, x_zero_point, input_bits=input_bits,
                              weight_bits=weight_bits, acc_bits=acc_bits)
    return postprocess(acc, multiplier, shift, mode=mode, zero_point=zy, lo=lo, hi=hi, lut=lut,
                       bits=input_bits, acc_bits=acc_bits)
