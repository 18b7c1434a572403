"""Lowering: a quantized layer becomes exactly what the hardware computes.

For each layer the compiler needs the int8 weights, the *effective* int32 bias (the input zero
point folded in, NUMERICS.md), the hardware requant parameters of every output channel, the
post-processing state (zero point, clamp bounds, optional lookup table) and a proof that the
int32 accumulator cannot overflow. :class:`HardwareLayer` holds that; :func:`lower_model` builds
it from a :class:`~tessera.quantize.QuantizedModel`, :func:`hardware_layer` from raw values (bare
GEMMs for benchmarks and RTL tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import numerics
from ..spec import isa

__all__ = ["HardwareLayer", "hardware_layer", "lower_layer", "lower_model",
           "check_supported", "PARAM_DTYPE"]

_INT32_LIMIT = 1 << 31

#: NumPy view of one PARAM entry (``isa.PARAM_LAYOUT``: bias s32, multiplier u32, shift s8, LE).
PARAM_DTYPE = np.dtype([("bias", "<i4"), ("multiplier", "<u4"), ("shift", "i1")])


@dataclass(frozen=True, eq=False)
class HardwareLayer:
    """One layer as the accelerator executes it.

    ``y = post(wrap32(x @ weight + bias))`` with, per channel *n*,
    ``post(a) = lut?[clamp(requant(a, multiplier[n], shift[n], mode) + zero_point, lo, hi)]``.

    Parameters
    ----------
    name : str
    weight : numpy.ndarray
        int8 ``[K, N]``.
    bias : numpy.ndarray
        int32 ``[N]``, already including ``-zx * colsum(weight)``.
    multiplier, shift : numpy.ndarray
        uint32 / int8 ``[N]``: the hardware requant encoding of docs/isa.md.
    mode : str
        ``"onnx"`` or ``"tflite"``.
    zero_point, lo, hi : int
        Post state: output zero point and clamp bounds (int8).
    lut : numpy.ndarray or None
        int8 ``[256]`` lookup table, or None.
    acc_bound : int
        ``max |x @ weight + bias|`` over all int8 inputs (below 2**31).
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
        """Return the int8 output for int8 ``x_q [M, K]``, computed the way the hardware does."""
        acc = numerics.integer_matmul(x_q, self.weight) + self.bias.astype(np.int64)
        acc = numerics.wrap_int32(acc)  # the drain adds the bias modulo 2**32
        return numerics.postprocess(acc.astype(np.int32), self.multiplier, self.shift,
                                    mode=self.mode, zero_point=self.zero_point, lo=self.lo,
                                    hi=self.hi, lut=self.lut)


def _check_overflow(name, weight, bias):
    bound = numerics.accumulator_bound(weight, bias)
    if bound >= _INT32_LIMIT:
        k = weight.shape[0]
        raise OverflowError(
            f"Layer {name!r} (K={k}): the int32 accumulator x @ w + bias can reach {bound} in "
            f"magnitude, which does not fit int32 (|acc| < 2**31); the folded bias "
            f"b - zx*colsum(w) reaches {int(np.abs(bias.astype(np.int64)).max())}. Fix: "
            f"requantize the layer with a larger input scale or an input zero point nearer 0 "
            f"(smaller bias), or split the layer into layers of fewer than {k} inputs")
    return bound


def hardware_layer(weight, bias, multiplier, shift, *, mode="onnx", zero_point=0, lo=-128,
                   hi=127, lut=None, name="gemm") -> HardwareLayer:
    """Return a :class:`HardwareLayer` from raw hardware values (a bare GEMM).

    Parameters
    ----------
    weight : array_like of int8, shape [K, N]
    bias : array_like of int32, shape [N]
        The bias the hardware adds (already folded with any input zero point).
    multiplier, shift : array_like, shape [N] or scalar
        Hardware requant parameters (see :func:`tessera.numerics.requant_multipliers`).
    mode : {"onnx", "tflite"}
    zero_point, lo, hi : int
        Post state (int8 values, ``lo <= hi``).
    lut : array_like of int8, shape [256], optional
    name : str

    Raises
    ------
    ValueError
        A value has the wrong type, shape or range.
    OverflowError
        The accumulator of some input could exceed int32.
    """
    w = np.asarray(weight)
    if w.dtype != np.int8 or w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"Layer {name!r}: weight must be a non-empty int8 [K, N] array, "
                         f"not {w.dtype} {w.shape}")
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
    for what, v in (("zero_point", zero_point), ("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -128 <= v <= 127:
            raise ValueError(f"Layer {name!r}: {what} must be an integer from -128 to 127, "
                             f"not {v!r}")
    if lo > hi:
        raise ValueError(f"Layer {name!r}: lo must not exceed hi, not lo={lo} > hi={hi}")
    if lut is not None:
        lut = np.asarray(lut)
        if lut.dtype != np.int8 or lut.shape != (256,):
            raise ValueError(f"Layer {name!r}: lut must be an int8 array of shape (256,), "
                             f"not {lut.dtype} {lut.shape}")
        lut = lut.copy()
    bound = _check_overflow(name, w, b)
    return HardwareLayer(name=name, weight=np.ascontiguousarray(w), bias=b.copy(),
                         multiplier=mult.astype(np.uint32), shift=sh.astype(np.int8), mode=mode,
                         zero_point=int(zero_point), lo=int(lo), hi=int(hi), lut=lut,
                         acc_bound=bound)


def lower_layer(layer) -> HardwareLayer:
    """Return the :class:`HardwareLayer` of a :class:`~tessera.quantize.QuantizedLayer`.

    Raises
    ------
    OverflowError
        The folded bias does not fit int32, or the accumulator could exceed int32 (the message
        names the layer, K and the fix).
    ValueError
        The requant multiplier is outside what the hardware supports.
    """
    try:
        bias = numerics.fold_input_zero_point(layer.weight, layer.bias, layer.input_zero_point)
    except OverflowError as e:
        raise OverflowError(f"Layer {layer.name!r} (K={layer.in_features}): {e}") from None
    try:
        multiplier, shift = numerics.requant_multipliers(
            layer.input_scale, layer.weight_scale, layer.requant_scale, layer.mode)
    except ValueError as e:
        raise ValueError(f"Layer {layer.name!r}: {e}") from None
    lo, hi = numerics.activation_bounds(layer.clamp_activation, layer.requant_scale,
                                        layer.requant_zero_point)
    lut = layer.lut if layer.activation == "lut" else None
    bound = _check_overflow(layer.name, layer.weight, bias)
    return HardwareLayer(name=layer.name, weight=np.ascontiguousarray(layer.weight), bias=bias,
                         multiplier=multiplier, shift=shift, mode=layer.mode,
                         zero_point=int(layer.requant_zero_point), lo=int(lo), hi=int(hi),
                         lut=None if lut is None else np.array(lut), acc_bound=bound)


def lower_model(qmodel) -> list:
    """Return the :class:`HardwareLayer` list of a :class:`~tessera.quantize.QuantizedModel`."""
    layers = getattr(qmodel, "layers", None)
    if not layers:
        raise TypeError(f"compile_model needs a tessera QuantizedModel (with .layers), "
                        f"not {type(qmodel).__name__}; build one with tessera.quantize(...)")
    return [lower_layer(layer) for layer in layers]


def check_supported(layers, config):
    """Raise ``ValueError`` if a layer needs a feature ``config`` was built without."""
    for layer in layers:
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
