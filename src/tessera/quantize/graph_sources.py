"""Recognise float models that are read as graphs (CNNs, branches, shared layers).

:func:`float_graph_source` is asked first by :func:`tessera.quantize`: a real Keras model
(Sequential or functional) is read with :mod:`.keras_graph`. A graph that turns out to be a
chain of dense layers is quantized as today's :class:`~tessera.quantize.QuantizedModel` (it runs
on the accelerator); any other graph becomes a :class:`~tessera.graph.QuantizedGraph`
(:mod:`.graph_quantizer`).
"""

from __future__ import annotations

__all__ = ["float_graph_source"]


def _is_real_keras(model):
    from .sources import _is_keras
    return _is_keras(model) and hasattr(model, "get_config") and hasattr(model, "inputs")


def float_graph_source(model):
    """Return ``(FloatGraph, source description)`` for a model read as a graph, else None."""
    if _is_real_keras(model):
        from .keras_graph import keras_float_graph
        return keras_float_graph(model), f"Keras {type(model).__name__} {model.name!r}"
    return None
