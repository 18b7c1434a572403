"""The exception every importer raises for a model Tessera cannot run.

:class:`UnsupportedModelError` means the model file or object is well-formed but uses an
operator, layer, attribute, data type or topology that Tessera does not import; the message names
the node or layer and lists what is supported. A file that is not a model at all (empty,
truncated, another format) raises a plain :class:`ValueError`, and an argument that is not a
model object a :class:`TypeError`.
"""

from __future__ import annotations

__all__ = ["UnsupportedModelError"]


class UnsupportedModelError(ValueError):
    """The model uses an operator, layer or structure that Tessera does not import.

    Raised by every importer (ONNX float and quantized, TFLite, Keras, PyTorch, scikit-learn,
    layer lists). It is a :class:`ValueError`, so ``except ValueError`` keeps working.
    """
