"""The per-layer proof that the int32 accumulator cannot overflow, shared by quantizer and compiler.

The accelerator multiplies raw int8 inputs by int8 weights and adds the *folded* bias
``b - zx * colsum(w)`` (NUMERICS.md), so for any int8 input the accumulator is
``sum_k x[k] * w[k, n] + bias_eff[n]``. :func:`tessera.numerics.accumulator_bound` gives its exact
maximum magnitude over all int8 inputs; a layer is accepted iff that bound is at most
``2**31 - 1``. Intermediate partial sums may wrap in two's complement without harm: the final
sum is exact modulo 2^32 and provably in range.

The quantizer refuses such a layer when it is built; the compiler calls
:meth:`tessera.quantize.QuantizedLayer.folded_bias` (which runs this proof) to get the bias it
loads into the parameter buffer, so the check lives in one place.
"""

from __future__ import annotations

__all__ = ["INT32_MAX", "prove_accumulator_fits"]

INT32_MAX = (1 << 31) - 1


def prove_accumulator_fits(name, w_q, bias_q, x_zero_point):
    """Return the folded int32 bias of a layer after proving its accumulator fits int32.

    Parameters
    ----------
    name : str
        Layer name for the error message.
    w_q : numpy.ndarray of int8, shape [K, N]
    bias_q : numpy.ndarray of int32, shape [N]
        Bias at scale ``input_scale * weight_scale``, not folded.
    x_zero_point : int
        The layer's input zero point.

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
    try:
        bias_eff = numerics.fold_input_zero_point(w_q, bias_q, x_zero_point)
    except OverflowError as exc:
        raise OverflowError(f"Layer {name!r} (K={k}) cannot run on int32 accumulators: {exc}; "
                            "split the layer along K into layers of fewer inputs, or rescale "
                            "the inputs so that the bias is smaller") from None
    bound = numerics.accumulator_bound(w_q, bias_eff)
    if bound > INT32_MAX:
        # An all-127 weight column reaches 128 * 127 * K, so K <= 132103 is always safe
        # without bias.
        safe_k = INT32_MAX // (128 * 127)
        raise OverflowError(
            f"Layer {name!r} (K={k}) can overflow its int32 accumulator: for some int8 input "
            f"|sum_k x*w + bias| reaches {bound} > 2**31 - 1; split the layer along K into "
            f"layers of at most {safe_k} inputs (sum the partial results in float), or reduce "
            "the input width")
    return bias_eff
