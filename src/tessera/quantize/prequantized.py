"""Assemble a :class:`QuantizedModel` from a pre-quantized model's parameters, kept exactly.

The ONNX (QDQ / QOperator) and TFLite importers walk their graphs and call
:meth:`LayerDrafts.add_linear` for every quantized fully-connected operator and
:meth:`LayerDrafts.attach_table` for every quantized activation that follows one. Nothing is
re-quantized: weights, biases, scales and zero points are the file's; uint8 tensors are mapped to
int8 by ``q - 128``, ``z - 128`` (docs/numerics.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model import QuantizedLayer, QuantizedModel

__all__ = ["QParams", "LayerDrafts", "RUNTIME_MATCHES", "symmetric_int8_weights"]

#: What each requantization mode is bit-identical to (measured, see docs/numerics.md).
RUNTIME_MATCHES = {
    "onnx": "ONNX Runtime CPU (QGemm / QLinearMatMul / fused QDQ); LiteRT default resolver "
            "(XNNPACK) FULLY_CONNECTED",
    "tflite": "TFLite MultiplyByQuantizedMultiplier kernels (LiteRT BUILTIN_REF CONV_2D, "
              "TFLite Micro / CMSIS-NN style); NOT LiteRT 2.3 FULLY_CONNECTED",
}


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantization in the int8 domain."""

    scale: np.float32
    zero_point: int

    @classmethod
    def from_file(cls, scale, zero_point, *, where):
        """Build from a file's scale and (int8 or uint8) zero point, validating both."""
        s = np.asarray(scale, dtype=np.float32).ravel()
        z = np.asarray(0 if zero_point is None else zero_point).ravel()
        if s.size != 1 or z.size != 1:
            raise ValueError(f"{where}: activations must be quantized per tensor (one scale "
                             f"and zero point), found {s.size} scales and {z.size} zero points")
        zp = int(z[0]) - (128 if z.dtype == np.uint8 else 0)
        if not (np.isfinite(s[0]) and s[0] > 0) or not -128 <= zp <= 127:
            raise ValueError(f"{where}: invalid quantization scale {s[0]!r} / zero point "
                             f"{int(z[0])}")
        return cls(np.float32(s[0]), zp)


def symmetric_int8_weights(q, zero_point, *, where):
    """Return int8 weights with zero point 0 from int8 (zp 0) or uint8 (zp 128) file data."""
    q = np.asarray(q)
    zp = np.asarray(0 if zero_point is None else zero_point).ravel()
    if q.dtype == np.uint8 and np.all(zp == 128):
        q = (q.astype(np.int16) - 128).astype(np.int8)
    elif q.dtype != np.int8 or np.any(zp != 0):
        raise ValueError(f"{where}: weights must be symmetric (int8 with zero point 0 or uint8 "
                         f"with zero point 128), found {q.dtype} with zero point(s) "
                         f"{sorted(set(zp.tolist()))[:4]}; re-quantize with symmetric weights")
    if q.size and int(q.min()) == -128:
        raise ValueError(f"{where}: weight value -128 found; Tessera's symmetric int8 weights "
                         "lie in -127..127 (quantize weights with a symmetric/narrow range)")
    return q


@dataclass
class _Draft:
    name: str
    weight: np.ndarray
    bias: np.ndarray
    inp: QParams
    weight_scale: np.ndarray
    out: QParams
    activation: str = "none"
    lut: np.ndarray | None = None
    lut_input: QParams | None = None


@dataclass
class LayerDrafts:
    """Layers under construction, in chain order."""

    mode: str
    drafts: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)     # how LUTs were tabulated -> count

    def add_linear(self, name, weight, bias, inp, weight_scale, out):
        """Append a layer; return its index."""
        n = weight.shape[1]
        ws = np.asarray(weight_scale, dtype=np.float32).ravel()
        if ws.size == 1:
            ws = np.full(n, ws[0], dtype=np.float32)
        if ws.shape != (n,):
            raise ValueError(f"Layer {name!r}: {ws.size} weight scales for {n} output channels; "
                             "per-channel scales must run along the output axis")
        b = np.zeros(n, np.int32) if bias is None else np.asarray(bias)
        if b.dtype != np.int32 or b.size != n:
            raise ValueError(f"Layer {name!r}: the bias must be int32 with {n} entries, not "
                             f"{b.dtype} with {b.size}")
        self.drafts.append(_Draft(name, weight, b.reshape(n), inp, ws, out))
        return len(self.drafts) - 1

    def attach_table(self, index, lut, out, *, what, source):
        """Fuse the activation table ``lut`` (int8 [256]) into layer ``index``.

        A table equal to the clamp of none/relu/relu6 with unchanged quantization becomes that
        clamp (no table needed); otherwise the layer requantizes to its old output quantization
        and looks the table up.
        """
        from .. import numerics
        draft = self.drafts[index]
        if draft.activation == "lut":
            raise ValueError(f"{what} follows layer {draft.name!r}, which already has a lookup "
                             "table; Tessera fuses one table per layer")
        self.tables[source] = self.tables.get(source, 0) + 1
        if draft.activation in ("relu", "relu6"):      # clamp, then table == one composed table
            lo, hi = numerics.activation_bounds(draft.activation, draft.out.scale,
                                                draft.out.zero_point)
            lut = np.asarray(lut)[np.clip(np.arange(-128, 128), lo, hi) + 128]
            draft.activation = "none"
        if out == draft.out:
            v = np.arange(-128, 128)
            for clamp in ("none", "relu", "relu6"):
                lo, hi = numerics.activation_bounds(clamp, out.scale, out.zero_point)
                if np.array_equal(np.clip(v, lo, hi), lut):
                    draft.activation = clamp
                    return
        draft.activation, draft.lut, draft.lut_input, draft.out = "lut", lut, draft.out, out

    def set_clamp(self, index, activation):
        """Give layer ``index`` the fused clamp ``activation`` (relu/relu6/none)."""
        self.drafts[index].activation = activation

    def finish(self, info):
        """Return the :class:`QuantizedModel` (validates every layer)."""
        layers = []
        for d in self.drafts:
            lut = {} if d.activation != "lut" else {
                "lut": d.lut, "lut_input_scale": d.lut_input.scale,
                "lut_input_zero_point": d.lut_input.zero_point}
            layers.append(QuantizedLayer(
                name=d.name, weight=d.weight, bias=d.bias, input_scale=d.inp.scale,
                input_zero_point=d.inp.zero_point, weight_scale=d.weight_scale,
                output_scale=d.out.scale, output_zero_point=d.out.zero_point, mode=self.mode,
                activation=d.activation, **lut))
        if self.tables:
            info = dict(info, lut_tables=", ".join(f"{n} by {s}" for s, n in self.tables.items()))
        info = dict(info, matches=RUNTIME_MATCHES[self.mode])
        return QuantizedModel(layers, info=info)
