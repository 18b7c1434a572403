"""Tessera: quantize a trained model, compile it for an FPGA matrix-multiply accelerator, and run
it bit-exactly on an emulator, on the RTL in simulation, or on a board.

Importing :mod:`tessera` needs only NumPy; the gateware (:mod:`tessera.hw`, Amaranth) and the RTL
simulation backend (cocotb) are imported only when used.
"""

import importlib

from .spec import AcceleratorConfig

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AcceleratorConfig",
    "numerics",
    "quantize",
    "QuantizedModel",
    "QuantizedLayer",
    "graph",
    "QuantizedGraph",
    "compile_model",
    "connect",
    "load_model",
    "export_onnx",
    "UnsupportedModelError",
]

# Public names and the module that defines each; loaded on first use so that `import tessera`
# stays fast and dependency-free.
_LAZY = {
    "numerics": ("tessera.numerics", None),
    "quantize": ("tessera.quantize", "quantize"),
    "QuantizedModel": ("tessera.quantize", "QuantizedModel"),
    "QuantizedLayer": ("tessera.quantize", "QuantizedLayer"),
    "graph": ("tessera.graph", None),
    "QuantizedGraph": ("tessera.graph", "QuantizedGraph"),
    "compile_model": ("tessera.compiler", "compile_model"),
    "connect": ("tessera.runtime", "connect"),
    "load_model": ("tessera.quantize", "load_model"),
    "export_onnx": ("tessera.quantize", "export_onnx"),
    "UnsupportedModelError": ("tessera.quantize.errors", "UnsupportedModelError"),
}


def __getattr__(name):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tessera' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
