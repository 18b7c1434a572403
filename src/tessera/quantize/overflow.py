"""The per-layer proof that the int32 accumulator cannot overflow, shared by quantizer and compiler.

The accelerator multiplies raw int8 inputs by int8 weights and adds the *folded* bias
``b - zx * colsum(w)`` (docs/numerics.md), so for any int8 input the accumulator is
``sum_k x[k] * w[k, n] + bias_eff[n]``. :func:`tessera.numerics.accumulator_bound` gives its exact
maximum magnitude over all int8 inputs; a layer is accepted iff that bound is at most
``2**31 - 1``. Intermediate partial sums may wrap in two's complement without harm: the final
sum is exact modulo 2^32 and provably in range.

:meth:`tessera.quantize.QuantizedLayer.folded_bias` runs this proof. The compiler still proves
the same bound itself (``tessera.compiler.lowering._check_overflow``, which also covers bare GEMMs
built from raw hardware values) with its own message; merging the two is a known follow-up.
"""

from __future__ import annotations

__all__ = ["INT32_MAX", "prove_accumulator_fits"]

INT32_MAX = (1 << 31) - 1


def prove_accumulator_fits(name, w_q, bias_q, x_zero_point, *, input_bits=8, weight_bits=8,
                           acc_bits=None):
    """Return the folded int32 bias of a layer after proving its accumulator fits ``acc_bits``.

    Parameters
    ----------
    name : str
        Layer name for the error message.
    w_q : numpy.ndarray of int8, shape [K, N]
    bias_q : numpy.ndarray of int32, shape [N]
        Bias at scale ``input_scale * weight_scale``, not folded.
    x_zero_point : int
        The layer's input zero point.
    input_bits, weight_bits : int
        Operand widths (4, 8 or 16).
    acc_bits : {32, 48}, optional
        Accumulator width; default :func:`tessera.numerics.default_acc_bits`.

    Returns
    -------
    numpy.ndarray of int32, shape [N]
        ``bias_q - x_zero_point * colsum(w_q)``.

    Raises
    ------
    OverflowError
        The folded bias or the worst-case accumulator does not fit int32; the message names the
        layer, K and what to do.
    """
    from .. import numerics

    k = w_q.shape[0]
    if acc_bits is None:
        acc_bits = numerics.default_acc_bits(input_bits, weight_bits)
    try:
        bias_eff = numerics.fold_input_zero_point(w_q, bias_q, x_zero_point,
                                                  input_bits=input_bits, weight_bits=weight_bits)
    except OverflowError as exc:
        raise OverflowError(f"Layer {name!r} (K={k}) cannot run on int32 accumulators: {exc}; "
                            "split the layer along K into layers of fewer inputs, or rescale "
                            "the inputs so that the bias is smaller") from None
    bound = numerics.accumulator_bound(w_q, bias_eff, input_bits=input_bits,
                                       weight_bits=weight_bits)
    acc_max = (1 << (acc_bits - 1)) - 1
    if bound > acc_max:
        # A full-scale weight column reaches 2^(ib-1) * (2^(wb-1) - 1) * K without bias.
        safe_k = acc_max // ((1 << (input_bits - 1)) * ((1 << (weight_bits - 1)) - 1))
        wide = "" if acc_bits == 48 else ", use 48-bit accumulators"
        raise OverflowError(
            f"Layer {name!r} (K={k}) can overflow its int{acc_bits} accumulator: for some "
            f"int{input_bits} input |sum_k x*w + bias| reaches {bound} > 2**{acc_bits - 1} - 1; "
            f"split the layer along K into layers of at most {safe_k} inputs (sum the partial "
            f"results in float){wide}, or reduce the input width")
    return bias_eff
