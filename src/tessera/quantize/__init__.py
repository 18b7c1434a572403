"""Post-training int8 quantization of MLPs: ``tessera.quantize(model, calibration=x)``.

Weights are symmetric int8 (zero point 0, values -127..127), per output channel or per tensor;
activations are asymmetric int8 calibrated on the user's data; scales, zero points and int32
biases follow ONNX Runtime's static quantizer. See docs/quantization.md.
"""

from .floatmodel import FLOAT_ACTIVATIONS, FloatLayer
from .model import LAYER_ACTIVATIONS, QuantizedLayer, QuantizedModel

__all__ = [
    "FLOAT_ACTIVATIONS", "LAYER_ACTIVATIONS",
    "FloatLayer", "QuantizedLayer", "QuantizedModel",
]
