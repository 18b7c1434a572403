"""Recognise float models that are read as graphs (CNNs, branches, shared layers).

:func:`float_graph_source` is asked first by :func:`tessera.quantize`:

* a real Keras model (Sequential or functional) is read with :mod:`.keras_graph`;
* a float ONNX model (path, bytes, ``onnx.ModelProto``) with convolutions, pools,
  BatchNormalization, Concat or a residual Add is read with :mod:`.onnx_float_graph`
  (other float ONNX models are dense chains, read by :mod:`.onnx_graph`);
* a PyTorch ``nn.Module`` holding ``Conv2d``, ``BatchNorm2d`` or pooling modules is exported to
  ONNX with ``torch.onnx.export`` (TorchScript tracing, eval mode, one calibration sample as
  the example input) and read the same way; PyTorch MLPs keep the direct reader of
  :mod:`.importers`.

A graph that turns out to be a chain of dense layers is quantized as today's
:class:`~tessera.quantize.QuantizedModel` (it runs on the accelerator); any other graph becomes a
:class:`~tessera.graph.QuantizedGraph` (:mod:`.graph_quantizer`).
"""

from __future__ import annotations

import io
import os
import sys
import warnings

import numpy as np

__all__ = ["TORCH_GRAPH_MODULES", "float_graph_source"]

#: PyTorch module classes that send a model through the ONNX export and the graph reader.
TORCH_GRAPH_MODULES = ("Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d")


def _is_real_keras(model):
    from .sources import _is_keras
    return _is_keras(model) and hasattr(model, "get_config") and hasattr(model, "inputs")


def _onnx_source(model):
    from .onnx_graph import is_onnx_model
    if is_onnx_model(model):
        return True
    if isinstance(model, (bytes, bytearray)):
        from .tflite_import import is_tflite_bytes
        return not is_tflite_bytes(model)
    if isinstance(model, (str, os.PathLike)):
        from .sources import file_kind
        return file_kind(model) == "onnx"
    return False


def _float_onnx_graph(model, name=None):
    from .onnx_float_graph import is_float_cnn, onnx_float_graph
    from .onnx_graph import OnnxChain, load_onnx
    from .onnx_quantized import is_quantized_onnx
    proto, default_name = load_onnx(model)
    chain = OnnxChain(proto, name or default_name)
    if is_quantized_onnx(chain) or not is_float_cnn(chain):
        return None
    return onnx_float_graph(chain), f"ONNX ({chain.name})"


def _torch_cnn(model):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module) and any(
        type(m).__name__ in TORCH_GRAPH_MODULES for m in model.modules())


def _torch_to_onnx(model, calibration):
    import torch
    from .calibrate import check_graph_calibration
    if calibration is None:
        raise ValueError(f"The PyTorch {type(model).__name__} is a float model: quantizing it "
                         "needs calibration data (calibration=x, a representative float batch "
                         "[M, C, H, W])")
    calibration = np.asarray(calibration)
    x = torch.as_tensor(check_graph_calibration(calibration, calibration.shape[1:])[:1],
                        dtype=torch.float32)
    buffer, training = io.BytesIO(), model.training
    try:
        model.eval()
        with warnings.catch_warnings(), torch.no_grad():
            # torch 2.13 warns that the TorchScript exporter is deprecated; it is the one that
            # needs no extra packages and writes plain opset-17 Conv/BatchNorm/Gemm nodes.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                # A static batch of 1: shape arithmetic such as x.view(x.size(0), -1) folds
                # into constants (the graph is per sample; predict takes any batch).
                torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17,
                                  input_names=["input"], output_names=["output"])
            except (RuntimeError, ValueError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc
                raise ValueError(f"The PyTorch {type(model).__name__} cannot run on a "
                                 f"calibration sample of shape {tuple(x.shape[1:])} ({first}); "
                                 "calibration must be a batch of the model's inputs "
                                 "[M, C, H, W]") from None
    finally:
        model.train(training)
    return buffer.getvalue()


def float_graph_source(model, calibration=None):
    """Return ``(FloatGraph, source description)`` for a model read as a graph, else None."""
    if _is_real_keras(model):
        from .keras_graph import keras_float_graph
        return keras_float_graph(model), f"Keras {type(model).__name__} {model.name!r}"
    if _torch_cnn(model):
        what = f"PyTorch {type(model).__name__} (exported to ONNX)"
        graph, _ = _float_onnx_graph(_torch_to_onnx(model, calibration), what)
        return graph, what
    if _onnx_source(model):
        return _float_onnx_graph(model)
    return None
