"""The int8 [256] lookup table of a standalone TFLite element-wise operator.

Both TFLite importers (:mod:`.tflite_import`, :mod:`.tflite_graph`) turn RELU, RELU6,
LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH and an int8 -> int8 QUANTIZE into a table over all 256
inputs. In mode ``"tflite"`` the table is TFLite Micro's arithmetic for that operator:

:mod:`tessera.numerics.activations_tflite`, NumPy ports of the TFLite Micro kernels. RELU6
clamps in the input's domain and ignores the output quantization, as TFLite Micro does (LiteRT
rescales instead); LOGISTIC and TANH use gemmlowp's fixed point (LiteRT's ``BUILTIN_REF``
differs by 1 at small power-of-two input scales, e.g. a TANH's 1/128 output feeding a
LOGISTIC); HARD_SWISH its int16 fixed point, refusing what TFLite Micro refuses.

``tests/test_tflite_tables.py`` checks every table against the ``tflite-micro`` wheel.

In mode ``"onnx"`` every table is run in LiteRT's default resolver (what LiteRT users get).
An operator whose table cannot be made exactly (TFLite Micro, or in mode ``"onnx"`` LiteRT,
refuses its quantization; a negative LEAKY_RELU alpha) is refused with
:class:`UnsupportedModelError`.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedModelError
from .lut_tabulate import numpy_lut, tabulate_tflite

__all__ = ["TABLE_OPS", "tflite_table", "constant_operand_table"]

#: Standalone element-wise operators imported as a lookup table.
TABLE_OPS = ("RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH", "QUANTIZE")

_ALL_INT8 = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
_FLOAT = {"LOGISTIC": lambda x: 1 / (1 + np.exp(-x)), "TANH": np.tanh,
          "RELU": lambda x: np.maximum(x, 0), "RELU6": lambda x: np.clip(x, 0, 6)}


def _scalar(quant, where, what):
    if quant is None or quant.scale is None or len(quant.scale) != 1:
        raise UnsupportedModelError(f"{where}: its {what} is not quantized per tensor; a "
                                    "table activation needs one scale and zero point")
    zero_point = int(quant.zeroPoint[0]) if quant.zeroPoint is not None else 0
    return np.float32(quant.scale[0]), zero_point


def _numpy_tflm(kind, op, x, y, where):
    from ..numerics import activations_tflite as act
    q = {"x_scale": x[0], "x_zero_point": x[1], "y_scale": y[0], "y_zero_point": y[1]}
    if kind == "LOGISTIC" and y[1] != -128:
        raise UnsupportedModelError(f"{where}: TFLite Micro's int8 LOGISTIC needs output zero "
                                    f"point -128, not {y[1]}")
    if kind in ("LOGISTIC", "TANH"):       # the output quantization is implied (1/256, 1/128)
        return (act.logistic if kind == "LOGISTIC" else act.tanh)(
            _ALL_INT8, x_scale=x[0], x_zero_point=x[1])
    if kind == "LEAKY_RELU":
        alpha = float(op.builtinOptions.alpha) if op.builtinOptions is not None else 0.2
        try:
            return act.leaky_relu(_ALL_INT8, alpha=alpha, **q)
        except ValueError as exc:
            raise UnsupportedModelError(f"{where}: {exc}") from None
    fn = {"RELU": act.relu, "RELU6": act.relu6, "QUANTIZE": act.requantize_int8,
          "HARD_SWISH": act.hard_swish}[kind]
    try:
        return fn(_ALL_INT8, **q)
    except ValueError as exc:
        raise UnsupportedModelError(f"{where}: {exc}") from None


def tflite_table(kind, op, opcode, in_quant, out_quant, *, mode, where):
    """Return ``(table, source)``: operator ``op``'s int8 table and what computed it.

    Parameters
    ----------
    kind : str
        One of :data:`TABLE_OPS`.
    op : schema.OperatorT
    opcode : schema.OperatorCodeT
    in_quant, out_quant : schema.QuantizationParametersT
    mode : {"tflite", "onnx"}
    where : str
        Names the operator in messages.

    Returns
    -------
    (numpy.ndarray of int8 [256], str)
        ``table[x + 128]`` is the operator's output for input ``x``.

    Raises
    ------
    UnsupportedModelError
        Per-channel quantization, or a quantization the runtime refuses for this operator.
    """
    x, y = _scalar(in_quant, where, "input"), _scalar(out_quant, where, "output")
    if mode == "tflite":
        return _numpy_tflm(kind, op, x, y, where), "TFLite Micro arithmetic (NumPy)"
    try:
        lut = tabulate_tflite(op, opcode, in_quant, out_quant, reference=False)
    except (RuntimeError, ValueError) as exc:
        raise UnsupportedModelError(
            f"{where}: LiteRT refuses this operator with input (scale {float(x[0])!r}, zero "
            f"point {x[1]}) and output (scale {float(y[0])!r}, zero point {y[1]}): "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from None
    if lut is not None:
        return lut, "LiteRT default resolver"
    if kind not in _FLOAT:
        raise UnsupportedModelError(f"{where}: its table needs ai-edge-litert (pip install "
                                    "'tessera-fpga[tflite]')")
    return numpy_lut(_FLOAT[kind], x[0], x[1], y[0], y[1], "tflite"), "numpy float32"


def constant_operand_table(kind, x, constant, y, *, activation, where):
    """Return TFLite Micro's int8 ``kind`` (ADD or MUL) of ``x`` and a scalar constant as a table.

    ``x``, ``y``: ``(scale, zero_point)`` of the activation input and the output; ``constant``:
    ``(int8 value, scale, zero_point)``. Both kernels are symmetric in their operands, so the
    table does not depend on which input the constant was.
    """
    from ..numerics import ops_tflite
    value, c_scale, c_zero_point = constant
    fn = {"ADD": ops_tflite.add, "MUL": ops_tflite.mul}[kind]
    try:
        return fn(_ALL_INT8, np.full(256, value, np.int8), a_scale=x[0], a_zero_point=x[1],
                  b_scale=c_scale, b_zero_point=c_zero_point, y_scale=y[0], y_zero_point=y[1],
                  activation=activation)
    except ValueError as exc:
        raise UnsupportedModelError(f"{where}: {exc}") from None
