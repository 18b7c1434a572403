"""Lowering: a quantized layer becomes exactly what the hardware computes.

For each layer the compiler needs the ``weight_bits``-wide weights, the *effective* int32 bias
(the input zero point folded in, docs/numerics.md), the hardware requant parameters of every output
channel, the post-processing state (zero point, clamp bounds in the ``input_bits``-wide output
range, optional lookup table) and a proof that the ``acc_bits``-wide accumulator cannot overflow
for any ``input_bits``-wide input. :class:`HardwareLayer` holds that; :func:`lower_model` builds
it from a :class:`~tessera.quantize.QuantizedModel`, :func:`hardware_layer` from raw values (bare
GEMMs for benchmarks and RTL tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import numerics
from ..spec import OPERAND_BITS, isa, operand_range
from ..spec.packing import check_operand_block, operand_dtype

__all__ = ["HardwareLayer", "hardware_layer", "lower_layer", "lower_model",
           "check_supported", "check_widths", "PARAM_DTYPE"]

#: NumPy view of one PARAM entry (``isa.PARAM_LAYOUT``: bias s32, multiplier u32, shift s8, LE).
PARAM_DTYPE = np.dtype([("bias", "<i4"), ("multiplier", "<u4"), ("shift", "i1")])


@dataclass(frozen=True, eq=False)
class HardwareLayer:
    """One layer as the accelerator executes it.

    ``y = post(wrap(x @ weight + bias))`` with, per channel *n*,
    ``post(a) = lut?[clamp(requant(a, multiplier[n], shift[n], mode) + zero_point, lo, hi)]``;
    ``wrap`` is two's complement at ``acc_bits``, ``y`` is ``input_bits`` wide.

    Parameters
    ----------
    name : str
    weight : numpy.ndarray
        ``weight_bits``-wide operands ``[K, N]`` (int8 up to 8 bits, int16 for 16).
    bias : numpy.ndarray
        int32 ``[N]``, already including ``-zx * colsum(weight)``.
    multiplier, shift : numpy.ndarray
        uint32 / int8 ``[N]``: the hardware requant encoding of docs/isa.md.
    mode : str
        ``"onnx"`` or ``"tflite"``.
    zero_point, lo, hi : int
        Post state: output zero point and clamp bounds (``input_bits`` wide).
    lut : numpy.ndarray or None
        int8 ``[256]`` lookup table (8-bit activations only), or None.
    acc_bound : int
        ``max |x @ weight + bias|`` over all ``input_bits``-wide inputs (below
        ``2**(acc_bits-1)``).
    input_bits, weight_bits : int
        Operand widths (4, 8 or 16); outputs are ``input_bits`` wide.
    acc_bits : int
        Accumulator width (32 or 48) the overflow proof holds for.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    mode: str
    zero_point: int
    lo: int
    hi: int
    lut: np.ndarray | None
    acc_bound: int
    input_bits: int = 8
    weight_bits: int = 8
    acc_bits: int = 32

    @property
    def k(self) -> int:
        """Input features K."""
        return self.weight.shape[0]

    @property
    def n(self) -> int:
        """Output features N."""
        return self.weight.shape[1]

    def param_entries(self, n0=0, count=None) -> bytes:
        """Return the PARAM buffer bytes of channels ``n0 .. n0+count-1``."""
        count = self.n - n0 if count is None else count
        entries = np.empty(count, dtype=PARAM_DTYPE)
        entries["bias"] = self.bias[n0:n0 + count]
        entries["multiplier"] = self.multiplier[n0:n0 + count]
        entries["shift"] = self.shift[n0:n0 + count]
        return entries.tobytes()

    def post(self) -> isa.Post:
        """Return the ``POST`` instruction that sets this layer's post state."""
        return isa.Post(mode=isa.Mode.parse(self.mode), lut=self.lut is not None,
                        zero_point=self.zero_point, lo=self.lo, hi=self.hi)

    def forward(self, x_q) -> np.ndarray:
        """Return the output for the input ``x_q [M, K]``, computed the way the hardware does.

        ``x_q`` and the result are ``input_bits``-wide operands (int8 up to 8 bits, else int16).
        """
        acc = numerics.integer_matmul(x_q, self.weight) + self.bias.astype(np.int64)
        acc = numerics.wrap_signed(acc, self.acc_bits)  # the drain adds the bias modulo 2**acc_bits
        return numerics.postprocess(acc, self.multiplier, self.shift, mode=self.mode,
                                    zero_point=self.zero_point, lo=self.lo, hi=self.hi,
                                    lut=self.lut, bits=self.input_bits, acc_bits=self.acc_bits)


def _check_overflow(name, weight, bias, input_bits, weight_bits, acc_bits):
    bound = numerics.accumulator_bound(weight, bias, input_bits=input_bits,
                                       weight_bits=weight_bits)
    if bound >= 1 << (acc_bits - 1):
        k = weight.shape[0]
        raise OverflowError(
            f"Layer {name!r} (K={k}): the int{acc_bits} accumulator x @ w + bias can reach "
            f"{bound} in magnitude for {input_bits}-bit inputs x and {weight_bits}-bit weights "
            f"w, which does not fit int{acc_bits} (|acc| < 2**{acc_bits - 1}); the folded bias "
            f"b - zx*colsum(w) reaches {int(np.abs(bias.astype(np.int64)).max())}. Fix: "
            f"requantize the layer with a larger input scale or an input zero point nearer 0 "
            f"(smaller bias), or split the layer into layers of fewer than {k} inputs"
            + ("" if acc_bits == 48 else ", or use acc_bits=48 with mode 'onnx'"))
    return bound


def _check_bits(name, what, value):
    if isinstance(value, bool) or value not in OPERAND_BITS:
        raise ValueError(f"Layer {name!r}: {what} must be one of {OPERAND_BITS}, not {value!r}")


def hardware_layer(weight, bias, multiplier, shift, *, mode="onnx", zero_point=0, lo=None,
                   hi=None, lut=None, name="gemm", input_bits=8, weight_bits=8,
                   acc_bits=None) -> HardwareLayer:
    """Return a :class:`HardwareLayer` from raw hardware values (a bare GEMM).

    Parameters
    ----------
    weight : array_like, shape [K, N]
        ``weight_bits``-wide operands: int8 up to 8 bits, int16 for 16.
    bias : array_like of int32, shape [N]
        The bias the hardware adds (already folded with any input zero point).
    multiplier, shift : array_like, shape [N] or scalar
        Hardware requant parameters (see :func:`tessera.numerics.requant_multipliers`).
    mode : {"onnx", "tflite"}
    zero_point, lo, hi : int
        Post state, in the ``input_bits``-wide output range, ``lo <= hi``; ``lo``/``hi``
        default to the ends of that range.
    lut : array_like of int8, shape [256], optional
        Lookup table (8-bit outputs only).
    name : str
    input_bits, weight_bits : {4, 8, 16}
        Operand widths; outputs are ``input_bits`` wide.
    acc_bits : {32, 48}, optional
        Accumulator width; default :func:`tessera.numerics.default_acc_bits` of the widths.

    Raises
    ------
    ValueError
        A value has the wrong type, shape or range.
    OverflowError
        The accumulator of some input could exceed ``acc_bits``.
    """
    _check_bits(name, "input_bits", input_bits)
    _check_bits(name, "weight_bits", weight_bits)
    if acc_bits is None:
        acc_bits = numerics.default_acc_bits(input_bits, weight_bits)
    w = np.asarray(weight)
    w_dtype = operand_dtype(weight_bits)
    if w.dtype != w_dtype or w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"Layer {name!r}: weight must be a non-empty {w_dtype} [K, N] array "
                         f"({weight_bits}-bit weights), not {w.dtype} {w.shape}")
    try:
        check_operand_block("weight", w, weight_bits)
    except ValueError as e:
        raise ValueError(f"Layer {name!r}: {e}") from None
    n = w.shape[1]
    b = np.asarray(bias)
    if b.dtype != np.int32 or b.shape != (n,):
        raise ValueError(f"Layer {name!r}: bias must be an int32 array of shape ({n},), "
                         f"not {b.dtype} {b.shape}")
    mode = isa.Mode.parse(mode).label
    mult = np.broadcast_to(np.asarray(multiplier), (n,))
    sh = np.broadcast_to(np.asarray(shift), (n,))
    if not np.issubdtype(mult.dtype, np.integer) or np.any(mult < 0) or np.any(mult >= 1 << 32):
        raise ValueError(f"Layer {name!r}: multiplier must be unsigned 32-bit integers")
    if not np.issubdtype(sh.dtype, np.integer) or np.any(sh < -128) or np.any(sh > 127):
        raise ValueError(f"Layer {name!r}: shift must be signed 8-bit integers")
    q_lo, q_hi = operand_range(input_bits)
    lo = q_lo if lo is None else lo
    hi = q_hi if hi is None else hi
    for what, v in (("zero_point", zero_point), ("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not q_lo <= v <= q_hi:
            raise ValueError(f"Layer {name!r}: {what} must be an integer from {q_lo} to {q_hi} "
                             f"(the {input_bits}-bit output range), not {v!r}")
    if lo > hi:
        raise ValueError(f"Layer {name!r}: lo must not exceed hi, not lo={lo} > hi={hi}")
    if lut is not None and input_bits != 8:
        raise ValueError(f"Layer {name!r}: a lookup table needs 8-bit outputs, not "
                         f"input_bits={input_bits}; use lo/hi clamps")
    if lut is not None:
        lut = np.asarray(lut)
        if lut.dtype != np.int8 or lut.shape != (256,):
            raise ValueError(f"Layer {name!r}: lut must be an int8 array of shape (256,), "
                             f"not {lut.dtype} {lut.shape}")
        lut = lut.copy()
    bound = _check_overflow(name, w, b, input_bits, weight_bits, acc_bits)
    return HardwareLayer(name=name, weight=np.ascontiguousarray(w), bias=b.copy(),
                         multiplier=mult.astype(np.uint32), shift=sh.astype(np.int8), mode=mode,
                         zero_point=int(zero_point), lo=int(lo), hi=int(hi), lut=lut,
                         acc_bound=bound, input_bits=input_bits, weight_bits=weight_bits,
                         acc_bits=acc_bits)


def lower_layer(layer, *, acc_bits=None) -> HardwareLayer:
    """Return the :class:`HardwareLayer` of a :class:`~tessera.quantize.QuantizedLayer`.

    Parameters
    ----------
    layer : QuantizedLayer
    acc_bits : {32, 48}, optional
        Accumulator width of the target; default :func:`tessera.numerics.default_acc_bits` of
        the layer's widths.

    Raises
    ------
    OverflowError
        The folded bias does not fit int32, or the accumulator could exceed ``acc_bits`` (the
        message names the layer, K and the fix).
    ValueError
        The requant multiplier is outside what the hardware supports.
    """
    ib, wb = layer.input_bits, layer.weight_bits
    if acc_bits is None:
        acc_bits = numerics.default_acc_bits(ib, wb)
    try:
        bias = numerics.fold_input_zero_point(layer.weight, layer.bias, layer.input_zero_point,
                                              input_bits=ib, weight_bits=wb)
    except OverflowError as e:
        raise OverflowError(f"Layer {layer.name!r} (K={layer.in_features}): {e}") from None
    try:
        multiplier, shift = numerics.requant_multipliers(
            layer.input_scale, layer.weight_scale, layer.requant_scale, layer.mode)
    except ValueError as e:
        raise ValueError(f"Layer {layer.name!r}: {e}") from None
    lo, hi = numerics.activation_bounds(layer.clamp_activation, layer.requant_scale,
                                        layer.requant_zero_point, bits=ib)
    lut = layer.lut if layer.activation == "lut" else None
    bound = _check_overflow(layer.name, layer.weight, bias, ib, wb, acc_bits)
    return HardwareLayer(name=layer.name, weight=np.ascontiguousarray(layer.weight), bias=bias,
                         multiplier=multiplier, shift=shift, mode=layer.mode,
                         zero_point=int(layer.requant_zero_point), lo=int(lo), hi=int(hi),
                         lut=None if lut is None else np.array(lut), acc_bound=bound,
                         input_bits=ib, weight_bits=wb, acc_bits=acc_bits)


def lower_model(qmodel, *, acc_bits=None) -> list:
    """Return the :class:`HardwareLayer` list of a :class:`~tessera.quantize.QuantizedModel`.

    ``acc_bits`` is the target's accumulator width (see :func:`lower_layer`).
    """
    layers = getattr(qmodel, "layers", None)
    if not layers:
        raise TypeError(f"compile_model needs a tessera QuantizedModel (with .layers), "
                        f"not {type(qmodel).__name__}; build one with tessera.quantize(...)")
    return [lower_layer(layer, acc_bits=acc_bits) for layer in layers]


def check_widths(layers, config):
    """Raise ``ValueError`` unless every layer's operand widths run on ``config``.

    ``layers`` are :class:`HardwareLayer` or :class:`~tessera.quantize.QuantizedLayer` objects.
    Activations must be exactly ``config.input_bits`` wide (they are the buffer format);
    weights at most ``config.weight_bits`` wide (narrower weights are exact in a wider array).
    """
    ib, wb = config.input_bits, config.weight_bits
    for layer in layers:
        if layer.input_bits != ib:
            raise ValueError(
                f"Layer {layer.name!r} has {layer.input_bits}-bit activations but the "
                f"accelerator configuration has input_bits={ib}: quantize the model with "
                f"tessera.quantize(..., bits={ib}), or compile for a configuration with "
                f"input_bits={layer.input_bits} (config.with_widths({layer.input_bits}, "
                f"{max(l.weight_bits for l in layers)}))")
        if layer.weight_bits > wb:
            raise ValueError(
                f"Layer {layer.name!r} has {layer.weight_bits}-bit weights but the accelerator "
                f"configuration has weight_bits={wb}: quantize the model with "
                f"tessera.quantize(..., weight_bits={wb}), or compile for a configuration with "
                f"weight_bits={layer.weight_bits}")


def check_supported(layers, config):
    """Raise ``ValueError`` if a layer needs a feature or width ``config`` was built without."""
    check_widths(layers, config)
    for layer in layers:
        if layer.acc_bits != config.acc_bits:
            raise ValueError(
                f"Layer {layer.name!r} was lowered for {layer.acc_bits}-bit accumulators but "
                f"the accelerator configuration has acc_bits={config.acc_bits}: lower it with "
                f"acc_bits={config.acc_bits} (compile_model does)")
        if not config.supports(layer.mode):
            raise ValueError(
                f"Layer {layer.name!r} uses requant mode {layer.mode!r} but the accelerator "
                f"configuration has requant_modes={config.requant_modes}; add {layer.mode!r} to "
                f"AcceleratorConfig.requant_modes or quantize with mode="
                f"{config.requant_modes[0]!r}")
        if layer.lut is not None and not config.lut:
            raise ValueError(
                f"Layer {layer.name!r} needs the activation lookup table but the accelerator "
                f"configuration has lut=False; set AcceleratorConfig.lut=True or use a "
                f"relu/relu6/none activation")
