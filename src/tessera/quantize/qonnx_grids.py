"""The integer grids of QONNX and QCDQ quantizers, read exactly from their nodes.

A quantized tensor is ``value = (q - zero_point) * scale`` with ``q`` an integer in ``[lo, hi]``
(a :class:`Grid`). QONNX writes the grid as one node — ``Quant`` (``int_quant``: scale, zero
point, bit width, ``signed``, ``narrow``, ``rounding_mode``), ``BipolarQuant`` (``±scale``),
``Trunc`` — and Brevitas's QCDQ export as ``QuantizeLinear → Clip → DequantizeLinear``. This
module computes constant grids (weights, biases) the way QONNX's own executor does
(``qonnx.custom_op.general``: divide in float32, add the zero point, clamp, round) and
tabulates an elementwise node applied to an already quantized tensor by running the node itself
in ``qonnx.core.onnx_exec.execute_node`` on every integer of its input grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import UnsupportedModelError

__all__ = ["Grid", "quant_grid", "rounding", "tabulate_node"]

_ROUNDING = {"ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
             "DOWN": np.fix}


@dataclass(frozen=True, eq=False)
class Grid:
    """A tensor on an integer grid: ``value = (q - zero_point) * scale``, ``lo <= q <= hi``.

    ``ints`` holds the integers of a constant (weights, bias); activations have none and keep
    ``layer`` (the index of the layer whose output they are, None for the model input) and
    ``steps``: the elementwise integer functions applied since that layer's requantization
    (``Quant`` of a quantized tensor, ``BipolarQuant``, ``Trunc``, ``Relu``), each with the grid it
    maps from. ``dequantized`` is False between a QCDQ ``QuantizeLinear`` and its
    ``DequantizeLinear``.
    """

    scale: np.ndarray
    zero_point: int
    lo: int
    hi: int
    node: object
    ints: np.ndarray | None = None
    layer: int | None = None
    relu: bool = False
    steps: tuple = field(default=())
    dequantized: bool = True

    @property
    def per_tensor_scale(self):
        """The scalar float32 scale, or None if the scale differs along an axis."""
        s = np.asarray(self.scale, np.float32).ravel()
        return np.float32(s[0]) if s.size and np.all(s == s[0]) else None

    @property
    def clamp(self):
        """``(lo, hi)`` after a ``Relu`` that preceded the quantizer (``q >= zero_point``)."""
        return (max(self.lo, self.zero_point) if self.relu else self.lo), self.hi

    def with_(self, **changes):
        """Return a copy with ``changes``."""
        return replace(self, **changes)


def rounding(chain, node):
    """Return the NumPy rounding function of a ``Quant``/``Trunc`` node's ``rounding_mode``."""
    mode = chain.attribute(node, "rounding_mode", b"ROUND")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    if mode not in _ROUNDING:
        raise UnsupportedModelError(f"{chain.name}: {chain.describe(node)} rounds {mode}; "
                                    f"Tessera reads {', '.join(_ROUNDING)}")
    return mode, _ROUNDING[mode]


def _integer(chain, node, value, what):
    v = np.asarray(value, np.float64)
    if v.size != 1 or not np.isfinite(v).all() or v.ravel()[0] != np.round(v.ravel()[0]):
        raise UnsupportedModelError(f"{chain.name}: {chain.describe(node)} has {what} "
                                    f"{v.ravel().tolist()[:4]}; Tessera needs one integer")
    return int(v.ravel()[0])


def _scale(chain, node, value):
    s = np.asarray(value, np.float32)
    if s.size == 0 or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise UnsupportedModelError(f"{chain.name}: {chain.describe(node)} has scale "
                                    f"{s.ravel().tolist()[:4]}; scales must be positive finite")
    return s


def quant_grid(chain, node, x):
    """Return the :class:`Grid` of a ``Quant`` node (``x``: its constant input or None)."""
    scale = _scale(chain, node, chain.constant(node, 1, "scale"))
    zero_point = _integer(chain, node, chain.constant(node, 2, "zero point"), "zero point")
    bits = _integer(chain, node, chain.constant(node, 3, "bit width"), "bit width")
    signed = bool(chain.attribute(node, "signed", 1))
    narrow = bool(chain.attribute(node, "narrow", 0))
    if not 1 <= bits <= 32:
        raise UnsupportedModelError(f"{chain.name}: {chain.describe(node)} has bit width {bits}; "
                                    "Tessera reads 1 to 32 bits")
    if bits == 1 and signed:               # QONNX's int_quant makes 1-bit signed bipolar
        lo, hi = -1, 1
    else:
        lo = (-(1 << (bits - 1)) + int(narrow)) if signed else 0
        hi = ((1 << (bits - 1)) - 1) if signed else (1 << bits) - 1 - int(narrow)
    grid = Grid(scale, zero_point, lo, hi, node)
    if x is None:
        return grid
    _, round_fn = rounding(chain, node)
    y = np.asarray(x, np.float32) / scale + np.float32(zero_point)
    if bits == 1 and signed:
        ints = np.where(y >= 0, 1, -1)
    else:
        ints = round_fn(np.clip(y, lo, hi))
    return grid.with_(ints=ints.astype(np.int64))


def tabulate_node(chain, node, source, scale, zero_point):
    """Return ``f(q)`` for every integer ``q`` of ``source``'s grid: ``node`` run by QONNX.

    The input values are ``(q - zero_point) * scale`` in float32; the output is read back on the
    grid of ``scale`` and ``zero_point`` and must lie on it exactly (else the node is refused).
    """
    try:
        from qonnx.core.onnx_exec import execute_node
    except ImportError:
        raise UnsupportedModelError(
            f"{chain.name}: {chain.describe(node)} is tabulated by QONNX's executor, which is "
            "not installed: pip install qonnx (or tessera's extra 'qonnx')") from None
    q = np.arange(source.lo, source.hi + 1)
    x = ((q - source.zero_point).astype(np.float32) * source.per_tensor_scale).reshape(1, -1)
    if node.op_type == "Relu":
        y = np.maximum(x, np.float32(0))
    else:
        context = {name: chain.constants[name] for name in node.input[1:] if name}
        context[node.input[0]] = x
        context[node.output[0]] = np.zeros_like(x)
        from qonnx.util.basic import get_preferred_qonnx_opset
        domains = (node.domain,) if node.domain else ("", "ai.onnx")
        opset = next((o.version for o in chain.model.opset_import if o.domain in domains),
                     get_preferred_qonnx_opset())       # what execute_onnx picks
        execute_node(node, context, chain.model.graph, opset)
        y = np.asarray(context[node.output[0]], np.float32)
    s = np.float32(scale)
    ints = np.rint(y / s) + zero_point
    if not np.array_equal(((ints - zero_point) * s).astype(np.float32), y):
        raise UnsupportedModelError(f"{chain.name}: {chain.describe(node)} gives values off its "
                                    "output grid; Tessera cannot tabulate it exactly")
    return ints.astype(np.int64).ravel()
