"""External oracles for the test suite: small model builders for ONNX Runtime and LiteRT.

Importable from tests as ``from oracles.onnx_models import ...`` (pytest puts ``tests/`` on the
path). These modules import onnx/onnxruntime/ai_edge_litert at the top: only tests use them.
"""
