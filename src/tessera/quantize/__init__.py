"""Post-training int8 quantization of MLPs: ``tessera.quantize(model, calibration=x)``.

Weights are symmetric int8 (zero point 0, values -127..127), per output channel or per tensor;
activations are asymmetric int8 calibrated on the user's data; scales, zero points and int32
biases follow ONNX Runtime's static quantizer. See docs/quantization.md.

``tessera.quantize`` is both this package and the :func:`quantize` function: the module object is
callable, so ``tessera.quantize(model, ...)`` works even after ``import tessera.quantize``.
"""

import sys
import types

from .calibrate import CALIBRATION_METHODS
from .errors import UnsupportedModelError
from .floatmodel import FLOAT_ACTIVATIONS, FloatLayer
from .importers import import_model
from .model import LAYER_ACTIVATIONS, QuantizedLayer, QuantizedModel
from .overflow import prove_accumulator_fits
from .quantizer import quantize
from .onnx_export import export_onnx
from .serialize import FORMAT_VERSION
from .sources import load_model
from .tflite_convert import keras_to_int8_tflite

__all__ = [
    "quantize", "QuantizedModel", "QuantizedLayer", "FloatLayer", "import_model",
    "prove_accumulator_fits", "CALIBRATION_METHODS", "FLOAT_ACTIVATIONS", "LAYER_ACTIVATIONS",
    "FORMAT_VERSION", "load_model", "export_onnx", "UnsupportedModelError",
    "keras_to_int8_tflite",
]


class _CallableModule(types.ModuleType):
    """Make ``tessera.quantize(...)`` call :func:`quantize` whichever object the name holds."""

    def __call__(self, *args, **kwargs):
        return quantize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
