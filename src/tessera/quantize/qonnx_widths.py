"""Map the integer grids of a QONNX chain onto the accelerator's 4-, 8- and 16-bit operands.

One activation width serves the whole model (the smallest of 4, 8, 16 that holds every grid);
each layer's weights get the smallest width that holds its integers symmetrically. A grid
``[lo, hi]`` with zero point ``z`` moves onto the width by an integer offset ``d``
(``q' = q + d``, ``z' = z + d``: the values ``(q - z) * scale`` are unchanged), chosen so the
requantizer's clamp is the grid's: ``none`` when ``[lo + d, hi + d]`` is the full range, ``relu``
when ``lo`` is the zero point; anything else — a narrower signed grid, elementwise quantizers on
a layer's output — becomes the layer's 256-entry lookup table, which needs 8-bit activations.
"""

from __future__ import annotations

import numpy as np

from ..spec.packing import operand_dtype
from .errors import UnsupportedModelError
from .model import QuantizedLayer, QuantizedModel

__all__ = ["WIDTHS", "build_model"]

#: Operand widths of the accelerator.
WIDTHS = (4, 8, 16)


class _Unfit(Exception):
    """The grids do not map onto one activation width (the message says why)."""


def _range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _offset(grid, bits, what):
    """Return ``d`` that puts ``grid`` (range and zero point) inside ``bits``: 0 if it fits."""
    wmin, wmax = _range(bits)
    for d in (0, wmax - grid.hi):
        if wmin <= grid.lo + d and grid.hi + d <= wmax and wmin <= grid.zero_point + d <= wmax:
            return d
    raise _Unfit(f"{what} (integers {grid.lo}..{grid.hi}, zero point {grid.zero_point}) does not "
                 f"fit {bits}-bit activations")


def _table(base, final, d_in, d_out):
    """Return the int8 table: LUT index ``v'`` -> clamp to ``base`` -> every step -> ``+ d_out``."""
    lo, hi = base.clamp
    v = np.clip(np.arange(-128, 128) - d_in, lo, hi)
    for source, ints in final.steps:
        v = ints[v - source.lo]
    v = v + d_out
    if v.min() < -128 or v.max() > 127:
        raise _Unfit(f"the table after {base.node.name or base.node.op_type!r} leaves int8")
    return v.astype(np.int8)


def _weight_bits(chain, acc):
    peak = int(np.abs(acc.weight).max()) if acc.weight.size else 0
    for bits in WIDTHS:
        if peak <= (1 << (bits - 1)) - 1:
            return bits
    raise UnsupportedModelError(f"{chain.name}: {chain.describe(acc.node)} has weights up to "
                                f"{peak}; Tessera's widest symmetric weights are 16-bit")


def _layers(reader, finals, bits):
    chain, layers = reader.chain, reader.layers
    wmin, wmax = _range(bits)
    source = layers[0].x
    d_in = wmax - source.hi
    if source.lo + d_in != wmin:
        raise _Unfit(f"the model input's grid (integers {source.lo}..{source.hi}) is not a full "
                     f"{bits}-bit range: Tessera's input quantization saturates to the range")
    built = []
    for i, (acc, final) in enumerate(zip(layers, finals)):
        base = final.steps[0][0] if final.steps else final
        lo, hi = base.clamp
        d_out, activation, lut = wmax - hi, None, {}
        if not final.steps and lo + d_out == wmin:
            activation = "none"
        elif not final.steps and lo == base.zero_point:
            activation = "relu"
        elif bits != 8:
            then = f", then {len(final.steps)} elementwise node(s)" if final.steps else ""
            raise _Unfit(f"the output of {chain.describe(acc.node)} (integers {lo}..{hi}{then}) "
                         "needs a lookup table, which Tessera has for 8-bit activations")
        else:
            d_lut, d_out = _offset(base, 8, f"the output of {chain.describe(acc.node)}"), \
                _offset(final, 8, f"the tensor {final.node.output[0]!r}")
            activation = "lut"
            lut = {"lut": _table(base, final, d_lut, d_out),
                   "lut_input_scale": base.per_tensor_scale,
                   "lut_input_zero_point": base.zero_point + d_lut}
        for grid, d in ((source, d_in), (final, d_out)):
            if not wmin <= grid.zero_point + d <= wmax:
                raise _Unfit(f"a zero point ({grid.zero_point}) leaves {bits}-bit activations")
        weight_bits = _weight_bits(chain, acc)
        built.append(QuantizedLayer(
            name=acc.node.name or acc.node.output[0], weight=acc.weight.astype(
                operand_dtype(weight_bits)),
            bias=acc.bias if acc.bias is not None else np.zeros(acc.weight.shape[1], np.int32),
            input_scale=source.per_tensor_scale, input_zero_point=source.zero_point + d_in,
            weight_scale=acc.weight_scale.astype(np.float32),
            output_scale=final.per_tensor_scale, output_zero_point=final.zero_point + d_out,
            mode="onnx", activation=activation, input_bits=bits, weight_bits=weight_bits, **lut))
        try:
            built[-1].folded_bias()     # the zero-point offset folds into the bias: prove it fits
        except OverflowError as exc:
            hint = "" if d_in == 0 else (
                f" (its input grid was moved by {d_in} onto {bits} bits: quantize that "
                "activation signed, zero point 0, to avoid the offset)")
            raise UnsupportedModelError(f"{chain.name}: {chain.describe(acc.node)}: {exc}{hint}") \
                from None
        source, d_in = final, d_out
    return built


def _float32_exact(layers):
    """Return whether QONNX's float32 Gemm is exact: power-of-two scales, |acc| < 2**24."""
    scales = np.concatenate([np.r_[q.input_scale, q.output_scale, q.weight_scale]
                             for q in layers])
    if not np.all(np.frexp(scales)[0] == 0.5):
        return False
    for q in layers:
        lo, hi = -(1 << (q.input_bits - 1)), (1 << (q.input_bits - 1)) - 1
        reach = max(abs(lo - q.input_zero_point), abs(hi - q.input_zero_point))
        bound = np.abs(q.weight.astype(np.int64)).sum(axis=0) * reach + np.abs(q.bias)
        if int(bound.max()) >= 1 << 24:
            return False
    return True


def build_model(reader):
    """Return the :class:`QuantizedModel` of a read QONNX chain (``qonnx_import._Reader``).

    Raises
    ------
    UnsupportedModelError
        No layer, a layer without an output quantizer, not a chain, or grids that fit none of
        the widths (the message names the node and the grid).
    """
    chain, layers = reader.chain, reader.layers
    if not layers:
        raise UnsupportedModelError(f"{chain.name}: the model has no Gemm or MatMul layer")
    out = reader.values.get(chain.output_name)
    for i, acc in enumerate(layers):
        if acc.out is None:
            raise UnsupportedModelError(
                f"{chain.name}: the output of {chain.describe(acc.node)} is not quantized; "
                "Tessera's layers end in a requantization (Brevitas: give the layer an "
                "output_quant, or follow it with QuantIdentity/QuantReLU)")
    finals = [acc.x for acc in layers[1:]] + [out]
    if layers[0].x.layer is not None or layers[0].x.steps:
        raise UnsupportedModelError(f"{chain.name}: {chain.describe(layers[0].node)} does not "
                                    "take the quantized model input")
    for i, final in enumerate(finals):
        if getattr(final, "layer", None) != i or final.ints is not None or not final.dequantized:
            what = f"the input of {chain.describe(layers[i + 1].node)}" \
                if i + 1 < len(layers) else f"the model output {chain.output_name!r}"
            raise UnsupportedModelError(
                f"{chain.name}: {what} is not the quantized output of "
                f"{chain.describe(layers[i].node)}; Tessera imports chains of layers, each "
                "ending in a quantizer")
    need = max(max(g.hi - g.lo for g in [layers[0].x] + finals).bit_length(), 1)
    reasons = []
    for bits in WIDTHS:
        if bits < need:
            continue
        try:
            built = _layers(reader, finals, bits)
        except _Unfit as exc:
            reasons.append(f"{bits} bits: {exc}")
            continue
        return QuantizedModel(built, info={
            "source": f"QONNX ({chain.name})", "runtime": "QONNX executor",
            "matches": "qonnx.core.onnx_exec.execute_onnx bit for bit (power-of-two scales, "
                       "accumulators below 2**24)" if _float32_exact(built) else
                       "qonnx.core.onnx_exec.execute_onnx up to one step at near-ties (float "
                       "scales or accumulators beyond 2**24: QONNX sums a float32 Gemm; "
                       "docs/import.md)"})
    raise UnsupportedModelError(f"{chain.name}: the quantizers fit none of Tessera's activation "
                                f"widths {WIDTHS}: " + "; ".join(reasons or [
                                    f"they need {need} bits"]))
