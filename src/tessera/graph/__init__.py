"""The tensor graph: a quantized model as a DAG of operations over tensors (docs/graph.md).

Quantization parameters belong to tensors (:class:`QuantParams` on :class:`Tensor`); an
:class:`Operation` names its input and output tensors; a :class:`Graph` holds them in topological
order and validates them; :data:`OPS` is the one registry of operation kinds (operands,
attributes, shape inference, MACs, reference kernel). :class:`QuantizedGraph` is the model users
run. The dense-layer chain (:class:`tessera.quantize.QuantizedModel`) converts to and from it.
"""

from .dense import dense_chain_from_graph, graph_from_dense_chain
from .graph import LAYOUTS, Graph, Operation
from .model import QuantizedGraph
from .ops import OPS, OpSpec, conv_output_size
from .tensor import ACTIVATION_DTYPES, QuantParams, Tensor

__all__ = [
    "QuantParams", "Tensor", "Operation", "Graph", "QuantizedGraph", "OPS", "OpSpec",
    "LAYOUTS", "ACTIVATION_DTYPES", "conv_output_size", "graph_from_dense_chain",
    "dense_chain_from_graph",
]
