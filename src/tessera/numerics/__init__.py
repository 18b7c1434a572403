"""Bit-exact NumPy reference of Tessera's int8 arithmetic (``docs/numerics.md``).

Every other layer — the emulator, the RTL, the board — is checked against these functions with
``np.testing.assert_array_equal``. Two requantization modes are registered in
``MODES`` (:mod:`.modes`): ``"onnx"`` (float32 multiplier, ties to even; ONNX Runtime, XNNPACK)
and ``"tflite"`` (gemmlowp fixed point, double rounding; TFLite integer reference kernels, TFLite
Micro, CMSIS-NN).
"""

from .linear import default_acc_bits, linear_accumulators, quantized_linear
from .modes import MODES, RequantMode, get_mode
from .matmul import accumulator_bound, fold_input_zero_point, integer_matmul
from .multipliers import onnx_multiplier, quantize_multiplier, requant_multipliers
from .requant import ACTIVATIONS, activation_bounds, postprocess, requantize
from .rounding import (INT32_MAX, INT32_MIN, float32_bits, float32_from_bits, rdbpot,
                       round_half_away, round_half_even, shift_left_int32, srdhm, wrap_int32,
                       wrap_signed)
from .tensor import dequantize_tensor, make_lut, quantize_tensor

__all__ = [
    # the layer
    "quantized_linear", "linear_accumulators", "default_acc_bits",
    # requantization modes
    "MODES", "RequantMode", "get_mode",
    # requantization
    "requant_multipliers", "requantize", "postprocess", "activation_bounds", "ACTIVATIONS",
    "onnx_multiplier", "quantize_multiplier",
    # integer products
    "integer_matmul", "fold_input_zero_point", "accumulator_bound",
    # float <-> int8
    "quantize_tensor", "dequantize_tensor", "make_lut",
    # rounding primitives
    "round_half_away", "round_half_even", "srdhm", "rdbpot", "wrap_int32", "wrap_signed",
    "shift_left_int32",
    "float32_bits", "float32_from_bits", "INT32_MIN", "INT32_MAX",
]
